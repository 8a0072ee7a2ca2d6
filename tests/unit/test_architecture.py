"""House rules that keep the design honest: a pure core, least privilege, a small package."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from mfawatch.deploy.policy import policy_json, stage_policy
from mfawatch.deploy.templates import StageConfig, load_stage_config
from mfawatch.paths import CHALICE_CONFIG, CHALICE_DIR
from tests.conftest import ROOT
from tests.reference import LAMBDA_ACTIONS

# The pure core: every Lambda module but the AWS edges, and the toolkit's parsing, patterns and
# templates. No AWS SDK, no framework, no command-line library.
AWS_EDGES = {"dynamo.py", "sns.py"}
PURE = [
    *(
        f"chalicelib/{path.name}"
        for path in sorted((ROOT / "chalicelib").glob("*.py"))
        if path.name not in AWS_EDGES
    ),
    "mfawatch/patterns/engine.py",
    "mfawatch/replay/readers.py",
    "mfawatch/replay/runner.py",
    "mfawatch/deploy/policy.py",
    "mfawatch/org/forwarder.py",
    "mfawatch/deploy/templates.py",
    "mfawatch/patterns/requirements.py",
    "mfawatch/athena/sql.py",
]
FORBIDDEN = {"boto3", "botocore", "chalice", "click"}


def _top_level_imports(path: Path) -> set[str]:
    """The top-level packages a module imports by absolute name (relative imports stay inside)."""
    imported: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported.add(node.module.split(".")[0])
    return imported


@pytest.mark.parametrize("module", PURE)
def test_core_module_imports_no_aws_sdk_or_framework(module: str) -> None:
    imported = _top_level_imports(ROOT / module)
    assert not imported & FORBIDDEN, f"{module} imports {imported & FORBIDDEN}"


LAMBDA_MODULES = [ROOT / "app.py", *sorted((ROOT / "chalicelib").glob("*.py"))]


@pytest.mark.parametrize("path", LAMBDA_MODULES, ids=lambda p: p.name)
def test_lambda_code_never_imports_the_offline_toolkit(path: Path) -> None:
    # mfawatch/ is never deployed, and click, YAML and jsonschema are not in the Lambda runtime.
    imported = _top_level_imports(path)
    assert not imported & {"mfawatch", "click", "yaml", "jsonschema"}, path.name


CONFIG = json.loads(CHALICE_CONFIG.read_text())


@pytest.mark.parametrize("stage", sorted(CONFIG["stages"]))
def test_committed_policy_is_the_generated_least_privilege_policy(stage: str) -> None:
    path = CHALICE_DIR / CONFIG["stages"][stage]["iam_policy_file"]
    expected = policy_json(stage_policy(load_stage_config(stage)))
    assert path.read_text() == expected, f"run: python -m mfawatch policy --stage {stage} --write"


@pytest.mark.parametrize("stage", sorted(CONFIG["stages"]))
def test_policy_allows_only_what_the_code_calls_on_the_stage_resources(stage: str) -> None:
    policy = json.loads((CHALICE_DIR / CONFIG["stages"][stage]["iam_policy_file"]).read_text())
    env = CONFIG["stages"][stage]["environment_variables"]
    by_sid = {s["Sid"]: s for s in policy["Statement"]}
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        assert not [a for a in statement["Action"] if "*" in a]
        assert "*" not in statement["Resource"]
    # The DynamoDB actions are exactly the operations the store calls, read from its source.
    store_source = (ROOT / "chalicelib" / "dynamo.py").read_text()
    called = {
        "dynamodb:" + "".join(part.title() for part in operation.split("_"))
        for operation in re.findall(r'_call\(\s*"(\w+)"', store_source)
    }
    assert called == {a for a in LAMBDA_ACTIONS if a.startswith("dynamodb:")}
    assert {a for s in policy["Statement"] for a in s["Action"]} == LAMBDA_ACTIONS
    assert env["MFAWATCH_TOPIC_ARN"] in by_sid["PublishAlerts"]["Resource"]
    assert [r.split(":", 5)[5] for r in by_sid["UseStateTable"]["Resource"]] == [
        f"table/{env['MFAWATCH_TABLE_NAME']}",
        f"table/{env['MFAWATCH_TABLE_NAME']}/index/due",
        f"table/{env['MFAWATCH_TABLE_NAME']}/index/group",
    ]
    assert all(f"/aws/lambda/mfawatch-{stage}-" in r for r in by_sid["WriteOwnLogs"]["Resource"])
    # The one wildcard: a key id is unknown before the stack exists and IAM takes no alias ARN
    # as a Resource, so key/* is narrowed to the stage key by its alias.
    key = by_sid["UseStageKey"]
    assert [r.rsplit(":", 1)[1] for r in key["Resource"]] == ["key/*"]
    assert key["Condition"] == {
        "ForAnyValue:StringEquals": {"kms:ResourceAliases": [f"alias/mfawatch-{stage}"]}
    }


def test_autogen_policy_off_and_requirements_carry_no_boto3() -> None:
    assert CONFIG["autogen_policy"] is False
    lines = (ROOT / "requirements.txt").read_text().lower().splitlines()
    packages = [line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()]
    assert not [p for p in packages if p.startswith(("boto3", "botocore"))]


def test_stage_without_topic_is_rejected() -> None:
    from chalicelib.errors import ConfigError

    def stage(environment: dict[str, str]) -> StageConfig:
        config = {"app_name": "mfawatch", "stages": {"x": {"environment_variables": environment}}}
        return StageConfig.from_config(config, "x")

    with pytest.raises(ConfigError, match="MFAWATCH_TOPIC_ARN is not set"):
        stage_policy(stage({}))
    with pytest.raises(ConfigError, match="not a full ARN"):
        stage_policy(stage({"MFAWATCH_TOPIC_ARN": "arn:aws:sns"}))
    with pytest.raises(ConfigError, match="MFAWATCH_TABLE_NAME is not set"):
        stage_policy(stage({"MFAWATCH_TOPIC_ARN": "arn:aws:sns:us-east-1:1:t"}))


def test_stage_config_errors_name_the_file(tmp_path: Path) -> None:
    from chalicelib.errors import ConfigError

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


def test_policy_paths_exist() -> None:
    for stage in CONFIG["stages"].values():
        assert (CHALICE_DIR / stage["iam_policy_file"]).is_file()


def test_tests_read_their_own_stages_never_the_checkouts_chalice_dir() -> None:
    # A user edits and deploys .chalice/config.json (placeholder accounts replaced, outputs from
    # the resources stack): no test may see that. tests/conftest.py points the toolkit at
    # tests/stage/, and chalice package / chalice.test.Client get a project folder built from it.
    from tests.conftest import STAGE_DIR

    assert CHALICE_DIR == STAGE_DIR
    assert CHALICE_CONFIG.parent != ROOT / ".chalice"
    assert load_stage_config("dev").environment()["MFAWATCH_TABLE_NAME"]
