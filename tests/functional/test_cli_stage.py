"""Route (a), step 2: `deploy-config` writes the resources stack's outputs into the stage config.

The stack is deploy/resources.yaml created through moto's CloudFormation (moto's default account
123456789012), so the outputs are the real template's; mismatches use a minimal stack with the
same output keys and literal values.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from click.testing import CliRunner, Result
from moto import mock_aws

from mfawatch.cli import main
from mfawatch.cli.stage import make_deploy_config_command
from mfawatch.deploy.templates import (
    RESOURCES_TEMPLATE,
    STACK_OUTPUTS_ELSEWHERE,
    STACK_OUTPUTS_IN_CONFIG,
    load_resources_template,
)
from mfawatch.paths import CHALICE_CONFIG

ACCOUNT = "123456789012"  # moto's default account
ENV = "environment_variables"


@pytest.fixture
def session(aws_credentials: None) -> Iterator[boto3.Session]:
    with mock_aws():
        yield boto3.Session(region_name="us-east-1")


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    """A copy of the committed .chalice/config.json (placeholder account 111122223333)."""
    path = tmp_path / ".chalice" / "config.json"
    path.parent.mkdir()
    path.write_text(CHALICE_CONFIG.read_text(encoding="utf-8"), encoding="utf-8")
    return path


def _create_resources_stack(session: boto3.Session, stage: str) -> None:
    session.client("cloudformation").create_stack(
        StackName=f"mfawatch-{stage}-resources",
        TemplateBody=RESOURCES_TEMPLATE.read_text(encoding="utf-8"),
        Parameters=[{"ParameterKey": "Stage", "ParameterValue": stage}],
    )


def _create_literal_stack(session: boto3.Session, name: str, outputs: dict[str, str]) -> None:
    template = {
        "Resources": {"Placeholder": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    session.client("cloudformation").create_stack(StackName=name, TemplateBody=json.dumps(template))


def _run(session: boto3.Session, config_path: Path, *args: str) -> Result:
    command = make_deploy_config_command(session_factory=lambda: session)
    return CliRunner().invoke(command, [*args, "--config", str(config_path)])


def _stage_env(config_path: Path, stage: str) -> dict[str, Any]:
    return dict(json.loads(config_path.read_text())["stages"][stage][ENV])


def test_every_resources_output_is_written_or_used_elsewhere() -> None:
    outputs = set(load_resources_template()["Outputs"])
    assert outputs == set(STACK_OUTPUTS_IN_CONFIG) | set(STACK_OUTPUTS_ELSEWHERE)


def test_dry_run_shows_old_and_new_then_write_changes_only_those_fields(
    session: boto3.Session, config_path: Path
) -> None:
    _create_resources_stack(session, "dev")
    before_text = config_path.read_text()
    result = _run(session, config_path, "--stage", "dev")
    assert result.exit_code == 0, result.output
    assert config_path.read_text() == before_text, "a dry run writes nothing"
    where = "stages.dev.environment_variables"
    alerts = "arn:aws:sns:us-east-1:{}:mfawatch-dev-alerts"
    pager = "arn:aws:sns:us-east-1:{}:mfawatch-dev-pager"
    canary = "arn:aws:sns:us-east-1:{}:mfawatch-dev-canary"
    old, new = "111122223333", ACCOUNT
    assert result.stdout.splitlines() == [
        f"{where}.MFAWATCH_TOPIC_ARN: {alerts.format(old)} -> {alerts.format(new)}",
        f"{where}.MFAWATCH_CANARY_TOPIC_ARN: {canary.format(old)} -> {canary.format(new)}",
        f"{where}.MFAWATCH_OUTPUTS.alerts.topic_arn: {alerts.format(old)} -> {alerts.format(new)}",
        f"{where}.MFAWATCH_OUTPUTS.pager.topic_arn: {pager.format(old)} -> {pager.format(new)}",
    ]
    assert "add --write" in result.stderr
    # The committed allow-list names the placeholder accounts, not this one.
    assert f"account {ACCOUNT} is not in MFAWATCH_ALLOWED_ACCOUNTS" in result.stderr

    result = _run(session, config_path, "--stage", "dev", "--write")
    assert result.exit_code == 0, result.output
    assert "the policy follows from it: mfawatch policy --stage dev --write" in result.stderr
    text = config_path.read_text()
    after = json.loads(text)
    assert text == json.dumps(after, indent=2) + "\n", "2-space JSON, trailing newline"
    before = json.loads(before_text)
    env = after["stages"]["dev"][ENV]
    assert env["MFAWATCH_TOPIC_ARN"] == alerts.format(new)
    assert env["MFAWATCH_TABLE_NAME"] == "mfawatch-dev-state"
    assert env["MFAWATCH_CANARY_TOPIC_ARN"] == canary.format(new)
    routes = json.loads(env["MFAWATCH_OUTPUTS"])
    assert routes == {
        "alerts": {"topic_arn": alerts.format(new)},
        "pager": {
            "topic_arn": pager.format(new),
            "min_severity": "HIGH",
            "kinds": ["alert", "escalation", "storm"],
        },
    }
    # Everything else is as it was: other keys, the other stage, key order.
    for changed in ("MFAWATCH_TOPIC_ARN", "MFAWATCH_CANARY_TOPIC_ARN", "MFAWATCH_OUTPUTS"):
        env.pop(changed)
        before["stages"]["dev"][ENV].pop(changed)
    assert after == before
    assert list(after) == list(before)

    again = _run(session, config_path, "--stage", "dev", "--write")
    assert again.exit_code == 0 and again.stdout == ""
    assert "already matches stack mfawatch-dev-resources" in again.stderr
    # The policy generated from the written config names the stack's account.
    policy = CliRunner().invoke(main, ["policy", "--stage", "dev", "--config", str(config_path)])
    assert policy.exit_code == 0, policy.output
    assert f"arn:aws:sns:us-east-1:{ACCOUNT}:mfawatch-dev-pager" in policy.stdout


def test_a_new_stage_is_created_with_its_policy_file_and_default_routes(
    session: boto3.Session, config_path: Path
) -> None:
    _create_resources_stack(session, "qa-use1")
    result = _run(session, config_path, "--stage", "qa-use1", "--write")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == (
        "stages.qa-use1: (unset) -> new stage ({'iam_policy_file': 'policy-qa-use1.json'})"
    )
    stage = json.loads(config_path.read_text())["stages"]["qa-use1"]
    assert stage["iam_policy_file"] == "policy-qa-use1.json"
    assert json.loads(stage[ENV]["MFAWATCH_OUTPUTS"])["pager"] == {
        "topic_arn": f"arn:aws:sns:us-east-1:{ACCOUNT}:mfawatch-qa-use1-pager",
        "min_severity": "HIGH",
        "kinds": ["alert", "escalation", "storm"],
    }
    assert stage[ENV]["MFAWATCH_TABLE_NAME"] == "mfawatch-qa-use1-state"
    assert stage[ENV]["MFAWATCH_CANARY_TOPIC_ARN"] == (
        f"arn:aws:sns:us-east-1:{ACCOUNT}:mfawatch-qa-use1-canary"
    )


@pytest.mark.parametrize(
    ("account", "region", "shown"),
    [
        ("444455556666", "us-east-1", "in account 444455556666, region us-east-1"),
        (ACCOUNT, "eu-west-1", f"in account {ACCOUNT}, region eu-west-1"),
    ],
)
def test_outputs_from_another_account_or_region_are_refused(
    session: boto3.Session, config_path: Path, account: str, region: str, shown: str
) -> None:
    arn = f"arn:aws:{{}}:{region}:{account}:{{}}"
    _create_literal_stack(
        session,
        "mfawatch-dev-resources",
        {
            "StateTableName": "mfawatch-dev-state",
            "AlertsTopicArn": arn.format("sns", "mfawatch-dev-alerts"),
            "PagerTopicArn": arn.format("sns", "mfawatch-dev-pager"),
            "CanaryTopicArn": arn.format("sns", "mfawatch-dev-canary"),
        },
    )
    before = config_path.read_text()
    result = _run(session, config_path, "--stage", "dev", "--write")
    assert result.exit_code == 1
    alerts = arn.format("sns", "mfawatch-dev-alerts")
    assert (
        f"stack mfawatch-dev-resources output AlertsTopicArn {alerts} is {shown}, but the caller "
        f"is account {ACCOUNT} in us-east-1"
    ) in result.output
    assert config_path.read_text() == before


def test_another_stages_stack_a_missing_stack_and_a_long_stage_are_clear_errors(
    session: boto3.Session, config_path: Path
) -> None:
    _create_resources_stack(session, "dev")
    result = _run(session, config_path, "--stage", "prod", "--stack", "mfawatch-dev-resources")
    assert result.exit_code == 1
    assert "output StateTableName is mfawatch-dev-state, not stage prod's mfawatch-prod-state" in (
        result.output
    )
    result = _run(session, config_path, "--stage", "prod")
    assert result.exit_code == 1
    assert "cannot read stack mfawatch-prod-resources" in result.output
    assert "does not exist" in result.output
    result = _run(session, config_path, "--stage", "prod-use1-blue")
    assert result.exit_code == 1
    assert "stage 'prod-use1-blue' is 14 characters; the limit is 13" in result.output


def test_the_command_is_registered_on_the_cli() -> None:
    result = CliRunner().invoke(main, ["deploy-config", "--help"])
    assert result.exit_code == 0 and "--stack" in result.output and "--write" in result.output
