"""House rules that keep the design honest: a pure core, least privilege, a small package."""

from __future__ import annotations

import ast
import functools
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from mfawatch.deploy.templates import StageConfig, load_stage_config
from mfawatch.paths import CHALICE_CONFIG, CHALICE_DIR
from tests.conftest import ROOT
from tests.support.environment import drop_endpoint_overrides

# The pure core: the Lambda side's core/ package (and the pipeline/ that runs it, which takes its
# AWS clients injected: only chalicelib/aws/ and app.py import the SDK or the framework), and the
# toolkit's parsing, patterns and templates. No AWS SDK, no framework, no command-line library.
LAMBDA_PACKAGES = ("core", "pipeline")
PURE = [
    *(
        str(path.relative_to(ROOT))
        for package in LAMBDA_PACKAGES
        for path in sorted((ROOT / "chalicelib" / package).glob("*.py"))
    ),
    "chalicelib/__init__.py",
    "mfawatch/patterns/engine.py",
    "mfawatch/replay/readers.py",
    "mfawatch/replay/runner.py",
    "mfawatch/deploy/policy.py",
    "mfawatch/org/forwarder.py",
    *(
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "mfawatch" / "deploy" / "templates").glob("*.py"))
    ),
    "mfawatch/deploy/init.py",
    "mfawatch/patterns/requirements.py",
    "mfawatch/patterns/describe.py",
    "mfawatch/replay/output.py",
    "mfawatch/athena/sql.py",
]
FORBIDDEN = {"boto3", "botocore", "chalice", "click"}


@functools.cache
def _parse(source: str) -> ast.Module:
    return ast.parse(source)


def _tree(path: Path) -> ast.Module:
    """A module's syntax tree, parsed once per session and source: several tests walk every
    module."""
    return _parse(path.read_text(encoding="utf-8"))


#: Where a statement holds statements: an import is a statement, so only these are walked (an
#: expression cannot hold one), about a tenth of a module's nodes.
STATEMENT_LISTS = ("body", "orelse", "finalbody", "handlers", "cases")


def _statements_below(node: ast.AST) -> Iterator[ast.AST]:
    """The statements (and except or case clauses) directly below a node."""
    for field in STATEMENT_LISTS:
        yield from getattr(node, field, ())


@functools.cache
def _import_statements(path: Path) -> tuple[ast.Import | ast.ImportFrom, ...]:
    """A module's import statements, anywhere in it (top level, in a function, under
    TYPE_CHECKING), in source order."""
    found: list[ast.Import | ast.ImportFrom] = []
    pending: list[ast.AST] = [_tree(path)]
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        pending.extend(_statements_below(node))
    return tuple(sorted(found, key=lambda n: (n.lineno, n.col_offset)))


def _top_level_imports(path: Path) -> set[str]:
    """The top-level packages a module imports by absolute name (relative imports stay inside)."""
    imported: set[str] = set()
    for node in _import_statements(path):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported.add(node.module.split(".")[0])
    return imported


@pytest.mark.parametrize("module", PURE)
def test_core_module_imports_no_aws_sdk_or_framework(module: str) -> None:
    imported = _top_level_imports(ROOT / module)
    assert not imported & FORBIDDEN, f"{module} imports {imported & FORBIDDEN}"


LAMBDA_MODULES = [ROOT / "app.py", *sorted((ROOT / "chalicelib").rglob("*.py"))]


@pytest.mark.parametrize("path", LAMBDA_MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_lambda_code_never_imports_the_offline_toolkit(path: Path) -> None:
    # mfawatch/ is never deployed, and click, YAML and jsonschema are not in the Lambda runtime.
    imported = _top_level_imports(path)
    assert not imported & {"mfawatch", "click", "yaml", "jsonschema"}, path.name


# --- the import graph --------------------------------------------------------------------------
# Nodes are the modules of app.py, chalicelib/ and mfawatch/; an edge is an import statement
# anywhere in a module (top level, in a function, under TYPE_CHECKING), resolved to the module it
# names: ``from a.b import c`` is an edge to ``a.b.c`` when that is a module, else to ``a.b``.
# Importing ``a.b.c`` also runs ``a/__init__.py`` and ``a/b/__init__.py``; those implicit edges
# are not counted, as Python only needs the parent package to exist, not to have finished.
GRAPHED = [ROOT / "app.py", *sorted((ROOT / "chalicelib").rglob("*.py"))]
GRAPHED += sorted((ROOT / "mfawatch").rglob("*.py"))
# Private names are checked wider: the tests and benchmarks must use public names too.
PRIVATE_CHECKED = [*GRAPHED, *sorted((ROOT / "tests").rglob("*.py"))]
PRIVATE_CHECKED += sorted((ROOT / "bench").rglob("*.py"))
PRIVATE_CHECKED += sorted((ROOT / "scenarios").rglob("*.py"))

# No exceptions: no import circle and no private name imported across modules, anywhere.


def _module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, root: Path = ROOT) -> list[tuple[str, list[str]]]:
    """Each import of a module: (the absolute module it names, the names it takes from it)."""
    name = _module_name(path, root)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: list[tuple[str, list[str]]] = []
    for node in _import_statements(path):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                module = ".".join([*base, module] if module else base)
            found.append((module, [alias.name for alias in node.names]))
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the modules of this project it imports (see the comment above for edges)."""
    modules = {_module_name(path): path for path in GRAPHED}
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        edges: set[str] = set()
        for target, names in _imports(path):
            submodules = {f"{target}.{n}" for n in names} & modules.keys()
            edges |= submodules
            if target in modules and (len(submodules) < len(names) or not names):
                edges.add(target)
        graph[module] = edges - {module}
    return graph


def import_circles(graph: dict[str, set[str]]) -> set[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan, iteratively)."""
    tarjan = _Tarjan(graph)
    for root in sorted(graph):
        if root not in tarjan.index:
            tarjan.visit(root)
    return {component for component in tarjan.components if len(component) > 1}


class _Tarjan:
    """Tarjan's strongly connected components, with an explicit stack instead of recursion."""

    def __init__(self, graph: dict[str, set[str]]) -> None:
        self.graph = graph
        self.index: dict[str, int] = {}
        self.low: dict[str, int] = {}
        self.stack: list[str] = []
        self.on_stack: set[str] = set()
        self.components: list[frozenset[str]] = []

    def _enter(self, node: str) -> Iterator[str]:
        self.index[node] = self.low[node] = len(self.index)
        self.stack.append(node)
        self.on_stack.add(node)
        return iter(sorted(self.graph[node]))

    def visit(self, root: str) -> None:
        work = [(root, self._enter(root))]
        while work:
            node, edges = work[-1]
            target = next(edges, None)
            if target is not None:
                if target not in self.index:
                    work.append((target, self._enter(target)))
                elif target in self.on_stack:
                    self.low[node] = min(self.low[node], self.index[target])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                self.low[parent] = min(self.low[parent], self.low[node])
            if self.low[node] == self.index[node]:
                self._pop_component(node)

    def _pop_component(self, node: str) -> None:
        component = set()
        while True:
            member = self.stack.pop()
            self.on_stack.discard(member)
            component.add(member)
            if member == node:
                break
        self.components.append(frozenset(component))


def private_imports(paths: list[Path], root: Path = ROOT) -> set[tuple[str, str, str]]:
    """(importer, imported module, name) for each ``from x import _name`` (dunders are public)."""
    found: set[tuple[str, str, str]] = set()
    for path in paths:
        importer = _module_name(path, root)
        for target, names in _imports(path, root):
            for name in names:
                if name.startswith("_") and not name.startswith("__"):
                    found.add((importer, target, name))
            private_parts = [p for p in target.split(".") if p.startswith("_") and p[:2] != "__"]
            if private_parts:
                found.add((importer, target, private_parts[0]))
    return found


def test_import_graph_sees_the_known_edges() -> None:
    # Guards the graph builder itself: a resolver that found no edges would find no circles.
    graph = import_graph()
    assert "chalicelib.pipeline.service" in graph["app"]
    assert "mfawatch.cli.replay" in graph["mfawatch.cli"]  # from mfawatch.cli import replay
    assert "mfawatch.replay.runner" in graph["mfawatch.cli.replay"]
    assert (
        "chalicelib.core.errors" in graph["chalicelib.core.config"]
    )  # from .errors import ConfigError


def test_no_import_circles() -> None:
    circles = import_circles(import_graph())
    assert circles == set(), sorted(sorted(c) for c in circles)


# chalicelib's layers, lowest first: each imports only the layers below it. The core decides,
# the AWS edges translate one service each, the pipeline meets decisions with side effects
# through the store and publisher it is given (app.py hands it the edges).
LAYERS = {
    "chalicelib.core": {"chalicelib", "chalicelib.core"},
    "chalicelib.aws": {"chalicelib", "chalicelib.core", "chalicelib.aws"},
    "chalicelib.pipeline": {"chalicelib", "chalicelib.core", "chalicelib.pipeline"},
}


def _layer(module: str) -> str:
    return ".".join(module.split(".")[:2])


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_chalicelib_layers_import_only_the_layers_below(layer: str) -> None:
    graph = import_graph()
    upward = {
        (module, target)
        for module, targets in graph.items()
        if _layer(module) == layer
        for target in targets
        if target.startswith("chalicelib") and _layer(target) not in LAYERS[layer]
    }
    assert not upward, sorted(upward)


def test_chalicelib_has_no_module_outside_its_layers() -> None:
    loose = {path.name for path in (ROOT / "chalicelib").glob("*.py") if path.name != "__init__.py"}
    assert not loose


def test_the_circle_finder_finds_a_circle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert import_circles(graph) == {frozenset({"a", "b", "c"})}


def test_no_private_name_is_imported_from_another_module() -> None:
    found = private_imports(PRIVATE_CHECKED)
    assert found == set(), sorted(found)


def test_the_private_import_finder_finds_one(tmp_path: Path) -> None:
    importer = tmp_path / "mfawatch" / "probe.py"
    importer.parent.mkdir()
    importer.write_text(
        "from chalicelib.core.rules import _hidden, Rule\nfrom mfawatch._internal import x\n",
        encoding="utf-8",
    )
    assert private_imports([importer], root=tmp_path) == {
        ("mfawatch.probe", "chalicelib.core.rules", "_hidden"),
        ("mfawatch.probe", "mfawatch._internal", "_internal"),
    }


def test_command_modules_import_only_the_shared_options_and_pipelines_never_the_cli() -> None:
    # mfawatch/cli/__init__.py is the root group and imports every command module; a command
    # module imports no other command module (only mfawatch.cli.options); no pipeline package
    # imports the command line.
    graph = import_graph()
    for module, edges in graph.items():
        cli_edges = {e for e in edges if e == "mfawatch.cli" or e.startswith("mfawatch.cli.")}
        if module == "mfawatch.cli":
            continue
        if module.startswith("mfawatch.cli."):
            assert cli_edges <= {"mfawatch.cli.options"}, (module, cli_edges)
        elif module != "mfawatch.__main__":
            assert not cli_edges, (module, cli_edges)


# --- sizes ---------------------------------------------------------------------------------------
# A reader should see a function on one screen and a class in one sitting: no function or method
# over 60 lines and no class over 250 in the Lambda code or the toolkit, counted from the ``def``
# or ``class`` line to the last line of the body (decorators apart), docstring included.
MAX_FUNCTION_LINES = 60
MAX_CLASS_LINES = 250
SIZED = sorted((ROOT / "chalicelib").rglob("*.py")) + sorted((ROOT / "mfawatch").rglob("*.py"))


def definitions(tree: ast.AST, prefix: str = "") -> Iterator[tuple[str, ast.AST, int]]:
    """(qualified name, node, lines) of every class and function, nested ones included."""
    for node in _statements_below(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            name = f"{prefix}{node.name}"
            yield name, node, (node.end_lineno or node.lineno) - node.lineno + 1
            yield from definitions(node, f"{name}.")
        else:
            yield from definitions(node, prefix)


def oversized(paths: list[Path], root: Path = ROOT) -> dict[tuple[str, str], int]:
    """(path, qualified name) -> lines, for each class or function over its limit."""
    found: dict[tuple[str, str], int] = {}
    for path in paths:
        relative = str(path.relative_to(root))
        for name, node, lines in definitions(_tree(path)):
            limit = MAX_CLASS_LINES if isinstance(node, ast.ClassDef) else MAX_FUNCTION_LINES
            if lines > limit:
                found[(relative, name)] = lines
    return found


def test_no_class_over_250_lines_and_no_function_over_60() -> None:
    found = oversized(SIZED)
    assert found == {}, "split these (lines): " + ", ".join(
        f"{path}:{name} ({lines})" for (path, name), lines in sorted(found.items())
    )


def test_the_size_check_finds_a_long_method_in_a_class(tmp_path: Path) -> None:
    # Guards the checker itself: a checker that never counted a method would pass every tree.
    body = "".join(f"        x = {i}\n" for i in range(MAX_FUNCTION_LINES))
    module = tmp_path / "m.py"
    module.write_text(
        f"class A:\n    def short(self):\n        pass\n\n    def long(self):\n{body}"
    )
    assert oversized([module], tmp_path) == {("m.py", "A.long"): MAX_FUNCTION_LINES + 1}
    module.write_text(f"def f():\n    def inner():\n{body}")
    assert oversized([module], tmp_path) == {("m.py", "f"): 62, ("m.py", "f.inner"): 61}


# --- every module's tests ------------------------------------------------------------------------
# A module of chalicelib/ or mfawatch/ is tested in tests/<tier>/test_<module>.py (or
# test_<package>_<module>.py). Where its tests live in a file named otherwise, that file is named
# here, so a reader finds them; modules with no logic of their own (names, paths, exception
# classes) are listed apart.
TESTED_ELSEWHERE: dict[str, str] = {
    "mfawatch/athena/backtest.py": "tests/integration/test_athena_moto_server.py",
    "mfawatch/athena/local.py": "tests/functional/test_athena_duckdb.py",
    "mfawatch/athena/sql.py": "tests/unit/test_athena.py",
    "mfawatch/cli/org.py": "tests/functional/test_audit.py",
    "mfawatch/cli/replay.py": "tests/unit/test_readers_replay.py",
    "mfawatch/patterns/describe.py": "tests/unit/test_cli_rules.py",
    "mfawatch/replay/output.py": "tests/unit/test_readers_replay.py",
    "mfawatch/replay/readers.py": "tests/unit/test_readers_replay.py",
    "mfawatch/replay/runner.py": "tests/unit/test_readers_replay.py",
    "mfawatch/rules/build.py": "tests/unit/test_rules.py",
    **{
        str(path.relative_to(ROOT)): "tests/unit/test_templates.py"
        for path in sorted((ROOT / "mfawatch" / "deploy" / "templates").glob("[!_]*.py"))
    },
    # chalicelib: modules without a test file of their own name (the pipeline's steps are tested
    # through the service that runs them).
    "chalicelib/aws/sns.py": "tests/functional/test_handlers.py",
    "chalicelib/pipeline/admit.py": "tests/unit/test_state_machine_defects.py",
    "chalicelib/pipeline/events.py": "tests/unit/test_state_machine_defects.py",
    "chalicelib/pipeline/incident.py": "tests/unit/test_state_machine_defects.py",
    "chalicelib/pipeline/parts.py": "tests/unit/test_service.py",
    "chalicelib/pipeline/save.py": "tests/unit/test_state_machine_defects.py",
}
WITHOUT_LOGIC = {
    "chalicelib/core/constants.py",
    "chalicelib/core/errors.py",
    "mfawatch/errors.py",
    "mfawatch/paths.py",
}
TESTED_MODULES = [path for path in SIZED if path.name not in ("__init__.py", "__main__.py")]
TEST_FILES = {path.name for path in (ROOT / "tests").glob("*/test_*.py")}


def _named_tests(path: Path) -> set[str]:
    return {f"test_{path.stem}.py", f"test_{path.parent.name}_{path.stem}.py"} & TEST_FILES


def test_every_module_has_a_test_file_named_after_it_or_names_where_its_tests_are() -> None:
    untested = [
        str(path.relative_to(ROOT))
        for path in TESTED_MODULES
        if not _named_tests(path)
        and str(path.relative_to(ROOT)) not in TESTED_ELSEWHERE.keys() | WITHOUT_LOGIC
    ]
    assert untested == [], "add tests/<tier>/test_<module>.py, or name the file in TESTED_ELSEWHERE"


def test_the_test_index_names_existing_files_and_no_module_twice() -> None:
    for module, test_file in TESTED_ELSEWHERE.items():
        assert (ROOT / test_file).is_file(), test_file
        assert not _named_tests(ROOT / module), f"{module}: remove it from TESTED_ELSEWHERE"
    for module in WITHOUT_LOGIC:
        functions = [
            node.name for node in _tree(ROOT / module).body if isinstance(node, ast.FunctionDef)
        ]
        assert functions == [], f"{module} has functions {functions}: it needs tests"


def test_stage_config_errors_name_the_file(tmp_path: Path) -> None:
    from chalicelib.core.errors import ConfigError

    path = tmp_path / "config.json"
    path.write_text("{not json")
    with pytest.raises(ConfigError, match=f"{path}: Expecting property name"):
        load_stage_config("dev", path)
    path.write_text('{"app_name": "mfawatch", "stages": {"dev": {}}}')
    with pytest.raises(ConfigError, match=f"{path}: no stage 'qa'; have dev"):
        load_stage_config("qa", path)


def test_stage_environment_merges_as_chalice_does() -> None:
    # Global, then stage, then the stage's function entry (chalice/config.py, _chain_merge).
    config = {
        "app_name": "a",
        "environment_variables": {"A": "global", "B": "global"},
        "stages": {
            "s": {
                "environment_variables": {"B": "stage", "C": "stage"},
                "lambda_functions": {"f": {"environment_variables": {"C": "function"}}},
            }
        },
    }
    stage = StageConfig.from_config(config, "s")
    assert stage.environment() == {"A": "global", "B": "stage", "C": "stage"}
    assert stage.environment("f") == {"A": "global", "B": "stage", "C": "function"}


def test_tests_read_their_own_stages_never_the_checkouts_chalice_dir() -> None:
    # A user edits and deploys .chalice/config.json (placeholder accounts replaced, outputs from
    # the resources stack): no test may see that. tests/conftest.py points the toolkit at
    # tests/stage/, and chalice package / chalice.test.Client get a project folder built from it.
    from tests.conftest import STAGE_DIR

    assert CHALICE_DIR == STAGE_DIR
    assert CHALICE_CONFIG.parent != ROOT / ".chalice"
    assert load_stage_config("dev").environment()["MFAWATCH_TABLE_NAME"]


#: The one test that reads the checkout's .chalice/: to prove that a deploy leaves it unchanged.
CHECKOUT_CHALICE_GUARD = "tests/integration/test_cli_deploy.py"


def test_no_test_copies_or_reads_the_checkouts_chalice_files() -> None:
    """A deploy rewrites .chalice/config.json (docs/deploy.md): a test that copies it from the
    checkout (``ROOT / ".chalice"``) fails in a clone that deployed a stage."""
    pattern = re.compile(r"\b(?:REPO_)?ROOT\s*/\s*[\"']\.chalice[\"']")
    readers = sorted(
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "tests").rglob("*.py")
        if path.name != Path(__file__).name and pattern.search(path.read_text(encoding="utf-8"))
    )
    assert readers == [CHECKOUT_CHALICE_GUARD]


def test_the_sdks_endpoint_variables_never_reach_the_tests() -> None:
    """A shell that tried a deploy on moto_server still exports AWS_ENDPOINT_URL: the tests drop
    it (and the per-service forms), and keep the rest."""
    environ = {
        "AWS_ENDPOINT_URL": "http://127.0.0.1:5000",
        "AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:5001",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URLS": "not the SDK's",
    }
    assert drop_endpoint_overrides(environ) == ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB"]
    assert environ == {"AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URLS": "not the SDK's"}
    assert not [name for name in os.environ if name.startswith("AWS_ENDPOINT_URL")]
