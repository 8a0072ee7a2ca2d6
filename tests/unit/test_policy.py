"""The stages' IAM policies: generated, committed, least privilege (exactly what the code calls,
on the stage's resources), and refused for a stage without its topic or table."""

from __future__ import annotations

import json
import re

import pytest

from mfawatch.deploy.policy import policy_json, stage_policy
from mfawatch.deploy.templates import StageConfig, load_stage_config
from mfawatch.paths import CHALICE_CONFIG, CHALICE_DIR
from tests.conftest import ROOT
from tests.reference import LAMBDA_ACTIONS

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
    store_source = (ROOT / "chalicelib" / "aws" / "dynamo.py").read_text()
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
    from chalicelib.core.errors import ConfigError

    def stage(environment: dict[str, str]) -> StageConfig:
        config = {"app_name": "mfawatch", "stages": {"x": {"environment_variables": environment}}}
        return StageConfig.from_config(config, "x")

    with pytest.raises(ConfigError, match="MFAWATCH_TOPIC_ARN is not set"):
        stage_policy(stage({}))
    with pytest.raises(ConfigError, match="not a full ARN"):
        stage_policy(stage({"MFAWATCH_TOPIC_ARN": "arn:aws:sns"}))
    with pytest.raises(ConfigError, match="MFAWATCH_TABLE_NAME is not set"):
        stage_policy(stage({"MFAWATCH_TOPIC_ARN": "arn:aws:sns:us-east-1:1:t"}))


def test_policy_paths_exist() -> None:
    for stage in CONFIG["stages"].values():
        assert (CHALICE_DIR / stage["iam_policy_file"]).is_file()
