"""The Lambda zip carries what Lambda runs and nothing else, and its plain template lints clean.

The probe imports ``app.py`` from the unzipped ``deployment.zip`` as the Python runtime does,
resolves every function's ``Handler`` (``module.attribute``) from the packaged template with
``getattr``, then compares the chalicelib modules it imported with those in the zip: a module
that no handler imports is shipped unused, and one imported from outside the zip (the offline
toolkit ``mfawatch/``, which is never deployed) would fail in Lambda.
"""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

import pytest

from tests.support.tools import cfn_lint, run_offline, shared_chalice_package

pytestmark = pytest.mark.slow

PROBE = """
import importlib, json, sys
root, handlers = sys.argv[1], json.loads(sys.argv[2])
sys.path.insert(0, root)
resolved = []
for handler in handlers:
    module, _, attribute = handler.rpartition(".")
    if callable(getattr(importlib.import_module(module), attribute, None)):
        resolved.append(handler)
loaded = {
    name: getattr(module, "__file__", None) or ""
    for name, module in sys.modules.items()
    if name.split(".")[0] in ("app", "chalicelib", "mfawatch")
}
print(json.dumps({"resolved": resolved, "loaded": loaded}))
"""


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_chalice_package(tmp_path_factory)


@pytest.fixture(scope="module")
def probed(package: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    task = tmp_path_factory.mktemp("task")
    with zipfile.ZipFile(package / "deployment.zip") as archive:
        archive.extractall(task)
        names = archive.namelist()
    template = json.loads((package / "sam.json").read_text())
    handlers = sorted(
        resource["Properties"]["Handler"]
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::Serverless::Function"
    )
    result = run_offline(
        sys.executable,
        "-c",
        PROBE,
        str(task),
        json.dumps(handlers),
        cwd=task,
        env={"PYTHONPATH": ""},
    )
    assert result.returncode == 0, result.stderr
    report: dict[str, object] = json.loads(result.stdout)
    return {"task": task, "names": names, "handlers": handlers, **report}


# Lambda resolves ``app.<name>`` with getattr on the module (Runtime.HandlerNotFound otherwise).
def test_every_template_handler_resolves_in_the_unzipped_package(
    probed: dict[str, object],
) -> None:
    handlers = probed["handlers"]
    assert isinstance(handlers, list)
    assert len(handlers) > 1
    assert probed["resolved"] == handlers


def test_every_chalicelib_module_in_the_zip_is_imported_by_the_handlers(
    probed: dict[str, object],
) -> None:
    names = probed["names"]
    loaded = probed["loaded"]
    assert isinstance(names, list) and isinstance(loaded, dict)
    shipped = {
        name.removesuffix(".py").replace("/", ".").removesuffix(".__init__")
        for name in names
        if name.startswith("chalicelib/") and name.endswith(".py")
    }
    imported = {name for name in loaded if name.startswith("chalicelib")}
    assert sorted(shipped - imported) == [], "shipped but never imported by a handler"
    assert sorted(imported - shipped) == [], "imported but not in the zip"
    outside = {
        name: path for name, path in loaded.items() if not path.startswith(str(probed["task"]))
    }
    assert outside == {}, "imported from outside the zip (mfawatch is never deployed)"


def test_plain_package_template_lints_clean(package: Path) -> None:
    result = cfn_lint(package / "sam.json")
    assert result.returncode == 0, result.stdout + result.stderr
