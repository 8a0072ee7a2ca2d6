"""Both deploy routes lint clean and stay least-privilege, checked on the real artifacts.

Route (a): deploy/resources.yaml and the generated invoke-config template.
Route (b): `chalice package --merge-template` run offline (a region, no credentials), then the
merged sam.json. cfn-lint is the pinned one beside this Python.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mfawatch.deploy.handlers import app_handler_names
from mfawatch.deploy.templates import (
    CONSUME_ACTIONS,
    PARKED_HANDLER,
    StageConfig,
    function_logical_id,
    invoke_config_template,
    load_resources_template,
    load_stage_config,
    merge_template,
)
from tests.conftest import ROOT
from tests.reference import LAMBDA_ACTIONS, iam_statements
from tests.support.tools import cfn_lint, chalice_package

pytestmark = pytest.mark.slow

STAGE = "dev"
RESOURCES = ROOT / "deploy" / "resources.yaml"


def _write(path: Path, template: dict[str, Any]) -> Path:
    path.write_text(json.dumps(template, indent=2), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def stage_config() -> StageConfig:
    return load_stage_config(STAGE)


@pytest.fixture(scope="module")
def invoke_config(tmp_path_factory: pytest.TempPathFactory, stage_config: StageConfig) -> Path:
    template = invoke_config_template(
        stage_config.app_name,
        STAGE,
        app_handler_names(),
        consumer_concurrency=stage_config.consumer_concurrency(),
    )
    return _write(tmp_path_factory.mktemp("invoke") / "invoke-config.json", template)


@pytest.fixture(scope="module")
def merged_package(tmp_path_factory: pytest.TempPathFactory, stage_config: StageConfig) -> Path:
    work = tmp_path_factory.mktemp("merged")
    merge = _write(
        work / "merge.json",
        merge_template(stage_config, app_handler_names(), load_resources_template()),
    )
    return chalice_package(work / "package", "--merge-template", str(merge)) / "sam.json"


def _load(path: Path) -> dict[str, Any]:
    if path.suffix == ".yaml":
        return load_resources_template(path)
    document: dict[str, Any] = json.loads(path.read_text())
    return document


# --- cfn-lint --------------------------------------------------------------------------------


def test_resources_template_lints_clean() -> None:
    result = cfn_lint(RESOURCES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_invoke_config_template_lints_clean(invoke_config: Path) -> None:
    result = cfn_lint(invoke_config)
    assert result.returncode == 0, result.stdout + result.stderr


def test_merged_package_lints_clean(merged_package: Path) -> None:
    result = cfn_lint(merged_package)
    assert result.returncode == 0, result.stdout + result.stderr


def test_cfn_lint_does_reject_a_broken_invoke_config(tmp_path: Path, invoke_config: Path) -> None:
    # The lint tests above mean something only if cfn-lint checks these resource properties.
    template = _load(invoke_config)
    first = next(iter(template["Resources"].values()))
    first["Properties"]["MaximumRetryAttempts"] = 5  # Lambda allows 0-2
    result = cfn_lint(_write(tmp_path / "broken.json", template))
    assert result.returncode != 0
    assert "5 is greater than the maximum of 2" in result.stdout, result.stdout


# --- route (b) structure ---------------------------------------------------------------------


def _functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        logical: resource
        for logical, resource in template["Resources"].items()
        if resource.get("Type") == "AWS::Serverless::Function"
    }


def test_merge_creates_no_partial_resources(merged_package: Path) -> None:
    # A merge key that misses Chalice's logical id would leave a resource without a Type.
    template = _load(merged_package)
    assert [k for k, v in template["Resources"].items() if "Type" not in v] == []


def test_every_packaged_function_gets_an_event_invoke_config(merged_package: Path) -> None:
    template = _load(merged_package)
    functions = _functions(template)
    assert set(functions) == {function_logical_id(h) for h in app_handler_names()}
    configured = {
        resource["Properties"]["FunctionName"]["Ref"]: resource["Properties"]
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::Lambda::EventInvokeConfig"
    }
    # The consumer is invoked synchronously by its SQS event source: no invoke config.
    consumer = function_logical_id(PARKED_HANDLER)
    assert set(configured) == set(functions) - {consumer}
    # Its SQS event, merged into the SAM function Chalice packaged (which cfn-lint expands).
    (source,) = functions[consumer]["Properties"]["Events"].values()
    assert source["Type"] == "SQS"
    assert source["Properties"]["Queue"] == {"Fn::GetAtt": ["FailedEventsQueue", "Arn"]}
    assert source["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    for props in configured.values():
        assert props["Qualifier"] == "$LATEST"
        assert props["MaximumRetryAttempts"] == 2
        assert props["DestinationConfig"]["OnFailure"]["Destination"] == {
            "Fn::GetAtt": ["FailedEventsQueue", "Arn"]
        }


def test_packaged_functions_reference_the_created_resources(merged_package: Path) -> None:
    template = _load(merged_package)
    for logical, function in _functions(template).items():
        props = function["Properties"]
        variables = props["Environment"]["Variables"]
        assert variables["MFAWATCH_TOPIC_ARN"] == {"Ref": "AlertsTopic"}, logical
        if "MFAWATCH_TABLE_NAME" in variables:
            assert variables["MFAWATCH_TABLE_NAME"] == {"Ref": "StateTable"}, logical
        assert props["FunctionName"].startswith(f"mfawatch-{STAGE}-")
        role = props["Role"]["Fn::GetAtt"][0]
        policies = template["Resources"][role]["Properties"]["Policies"]
        assert len(policies) == 1, f"{role}: Chalice's policy was not replaced"
        actions = {a for s in policies[0]["PolicyDocument"]["Statement"] for a in s["Action"]}
        consumes = logical == function_logical_id(PARKED_HANDLER)
        assert actions == (LAMBDA_ACTIONS if consumes else LAMBDA_ACTIONS - set(CONSUME_ACTIONS))


def test_merged_topics_are_encrypted_and_the_table_expires_items(merged_package: Path) -> None:
    resources = _load(merged_package)["Resources"]
    topics = [r for r in resources.values() if r["Type"] == "AWS::SNS::Topic"]
    assert sorted(t["Properties"]["TopicName"] for t in topics) == [
        f"mfawatch-{STAGE}-{name}" for name in ("alerts", "canary", "pager")
    ]
    for topic in topics:
        assert topic["Properties"]["KmsMasterKeyId"] == {"Fn::GetAtt": ["Key", "Arn"]}
    # The heartbeat publishes its canary to the created topic; the consumer never runs more
    # instances than its reserved concurrency (so its SQS event source is never throttled).
    heartbeat = resources[function_logical_id("heartbeat")]["Properties"]
    variables = heartbeat["Environment"]["Variables"]
    assert variables["MFAWATCH_CANARY_TOPIC_ARN"] == {"Ref": "CanaryTopic"}
    consumer = resources[function_logical_id(PARKED_HANDLER)]["Properties"]
    (source,) = consumer["Events"].values()
    assert source["Properties"]["ScalingConfig"] == {
        "MaximumConcurrency": consumer["ReservedConcurrentExecutions"]
    }
    (table,) = [r for r in resources.values() if r["Type"] == "AWS::DynamoDB::Table"]
    assert table["Properties"]["TableName"] == f"mfawatch-{STAGE}-state"
    assert table["Properties"]["TimeToLiveSpecification"] == {
        "AttributeName": "expires_at",
        "Enabled": True,
    }


# --- least privilege across every template ---------------------------------------------------


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _templates(invoke_config: Path, merged_package: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    yield "deploy/resources.yaml", _load(RESOURCES)
    yield "invoke-config", _load(invoke_config)
    yield "merged package", _load(merged_package)


def test_no_statement_uses_a_wildcard_action_or_resource_star(
    invoke_config: Path, merged_package: Path
) -> None:
    checked = 0
    for name, template in _templates(invoke_config, merged_package):
        for logical, kind, statement in iam_statements(template):
            checked += 1
            where = f"{name}: {logical} {statement.get('Sid', '')}"
            for action in _as_list(statement.get("Action", [])):
                if kind == "AWS::KMS::Key" and "Service" in statement.get("Principal", {}):
                    # What AWS documents for services publishing to an SSE-KMS topic (Amazon
                    # SNS Developer Guide, sns-key-management): exactly GenerateDataKey*.
                    assert action in ("kms:Decrypt", "kms:GenerateDataKey*"), where
                    continue
                assert "*" not in action, f"{where}: wildcard action {action}"
            assert "NotAction" not in statement, where
            if kind == "AWS::KMS::Key":
                # The one exception: a key policy's Resource must be "*" ("this key"); AWS
                # accepts nothing narrower there (AWS KMS Developer Guide, key-policy-overview).
                assert statement["Resource"] == "*", where
                continue
            for resource in _as_list(statement.get("Resource", [])):
                assert resource != "*", f"{where}: Resource '*'"
    assert checked >= 6  # key policy + five statements per function role, at least


def test_every_alarm_of_every_template_pages_through_the_pager_topic(
    invoke_config: Path, merged_package: Path
) -> None:
    """The alarms' one action is the pager topic, in both routes' real artifacts."""
    pager = {
        "deploy/resources.yaml": {"Ref": "PagerTopic"},
        "invoke-config": {"Fn::ImportValue": f"mfawatch-{STAGE}-PagerTopicArn"},
        "merged package": {"Ref": "PagerTopic"},
    }
    counted = {}
    for name, template in _templates(invoke_config, merged_package):
        alarms = [
            r["Properties"]
            for r in template["Resources"].values()
            if r.get("Type") == "AWS::CloudWatch::Alarm"
        ]
        counted[name] = len(alarms)
        for alarm in alarms:
            assert alarm["AlarmActions"] == [pager[name]], (name, alarm["AlarmName"])
    functions = len(app_handler_names())
    # resources.yaml: heartbeat, 2 queues, 4 app metrics; per function Errors and Throttles;
    # per EventBridge rule (every function but the consumer) FailedInvocations.
    assert counted == {
        "deploy/resources.yaml": 7,
        "invoke-config": 3 * functions - 1,
        "merged package": 7 + 3 * functions - 1,
    }
