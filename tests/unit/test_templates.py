"""Deploy templates: names, logical ids, invoke configs, the merge template, IAM statements."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from chalice.utils import to_cfn_resource_name
from click.testing import CliRunner

from chalicelib.aws.dynamo import ATTRIBUTE_DEFINITIONS, GLOBAL_SECONDARY_INDEXES
from chalicelib.core.constants import PIPELINE_HEARTBEAT_HANDLER
from chalicelib.core.errors import ConfigError
from chalicelib.core.rules import RuleSet
from mfawatch.cli.stage import COMMANDS, deploy_template
from mfawatch.deploy.handlers import app_handler_names
from mfawatch.deploy.templates import (
    EVENT_RULE_NAME_MAX,
    MAX_EVENT_AGE_SECONDS,
    MAX_RETRY_ATTEMPTS,
    PARKED_HANDLER,
    STAGE_NAME_PATTERN,
    StackOutputs,
    StageConfig,
    StageNames,
    bind_parameter,
    cfn_logical_id,
    check_stage_name,
    environment_overrides,
    invoke_config_template,
    load_cfn_yaml,
    load_resources_template,
    merge_template,
    reference_created_resources,
    role_logical_id,
    stage_config_update,
    stage_name_limit,
    stage_policy_statements,
)
from mfawatch.paths import REPO_ROOT
from tests.reference import iam_statements

DEV = StageNames("mfawatch", "dev")
TOPIC = "arn:aws:sns:us-east-1:111122223333:mfawatch-dev-alerts"
PAGER = "arn:aws:sns:eu-west-1:444455556666:mfawatch-dev-pager"
HANDLERS = ["on_root_console_failure", "on_iam_console_mfa_failure", "send_due_summaries"]
#: The reserved concurrency of every function of the test config (the consumer's event source
#: takes it as its maximum concurrency).
CONCURRENCY = 4


def _config(**stage: Any) -> dict[str, Any]:
    return {
        "version": "2.0",
        "app_name": "mfawatch",
        "autogen_policy": False,
        "reserved_concurrency": CONCURRENCY,
        "environment_variables": {"LOG_LEVEL": "INFO"},
        "stages": {"dev": {"environment_variables": {"MFAWATCH_TOPIC_ARN": TOPIC}, **stage}},
    }


# --- names and logical ids -------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "on_iam_console_mfa_failure",
        "send_due_summaries",
        "on_x_role",
        "default-role",
        "a__b--c",
        "already_CamelCase_x9",
    ],
)
def test_logical_ids_are_the_ones_chalice_generates(name: str) -> None:
    assert cfn_logical_id(name) == to_cfn_resource_name(name)


def test_every_rule_handler_gets_chalices_logical_id(rules: RuleSet) -> None:
    for rule in rules:
        assert cfn_logical_id(rule.handler_name) == to_cfn_resource_name(rule.handler_name)


def test_role_is_per_function_without_autogen_and_shared_with_it() -> None:
    assert role_logical_id("on_root_console_failure", False) == "OnRootConsoleFailureRole"
    assert role_logical_id("on_root_console_failure", True) == "DefaultRole"


def test_function_names_follow_chalice_and_reject_names_lambda_would_refuse() -> None:
    assert DEV.function("send_due_summaries") == "mfawatch-dev-send_due_summaries"
    with pytest.raises(ConfigError, match="limit is 64"):
        StageNames("mfawatch", "a-very-long-stage-name-x").function(
            "on_root_console_success_without_mfa"
        )


def _chalice_rule_names(stage: str) -> list[str]:
    """The EventBridge rule names Chalice's own deployer builds for our app and ``stage``."""
    from chalice.config import Config
    from chalice.deploy.appgraph import ApplicationGraphBuilder
    from chalice.deploy.models import CloudWatchEvent, ScheduledEvent

    import app as app_module  # importable: app_handler_names() put the project on sys.path

    config = Config.create(
        chalice_stage=stage,
        app_name="mfawatch",
        chalice_app=app_module.app,
        project_dir=str(REPO_ROOT),
    )
    application = ApplicationGraphBuilder().build(config, stage)
    return [
        resource.rule_name
        for resource in application.resources
        if isinstance(resource, (CloudWatchEvent, ScheduledEvent))
    ]


def test_stage_limit_is_where_chalices_longest_rule_name_reaches_64(rules: RuleSet) -> None:
    handlers = app_handler_names()
    limit, longest = stage_name_limit("mfawatch", handlers)
    assert (limit, longest) == (13, "on_root_console_success_without_mfa")
    assert longest in {rule.handler_name for rule in rules}  # derived from the rules
    assert max(map(len, _chalice_rule_names("s" * limit))) == EVENT_RULE_NAME_MAX
    assert max(map(len, _chalice_rule_names("s" * (limit + 1)))) == EVENT_RULE_NAME_MAX + 1
    check_stage_name("mfawatch", "s" * limit, handlers)
    with pytest.raises(ConfigError) as error:
        check_stage_name("mfawatch", "prod-use1-blue", handlers)
    assert str(error.value).startswith(
        "stage 'prod-use1-blue' is 14 characters; the limit is 13: Chalice names the EventBridge "
        "rule of handler on_root_console_success_without_mfa "
        "mfawatch-prod-use1-blue-on_root_console_success_without_mfa-event (65 characters)"
    )


def test_a_longer_rule_lowers_the_stage_limit() -> None:
    assert stage_name_limit("mfawatch", ["on_x"]) == (64 - len("mfawatch--on_x-event"), "on_x")
    assert stage_name_limit("app", ["on_" + "x" * 40])[0] == 64 - len("app--on_-event") - 40


@pytest.mark.parametrize("stage", ["a b", "-dev", "dev.1", "dév", ""])
def test_stage_names_with_characters_aws_refuses_are_rejected(stage: str) -> None:
    with pytest.raises(ConfigError, match="use letters, digits, '-' and '_'"):
        check_stage_name("mfawatch", stage, HANDLERS)


def test_resources_template_stage_constraint_is_the_computed_limit(
    resources: dict[str, Any], rules: RuleSet
) -> None:
    limit, _ = stage_name_limit("mfawatch", [rule.handler_name for rule in rules])
    parameter = resources["Parameters"]["Stage"]
    prefix = STAGE_NAME_PATTERN.removesuffix("*")
    assert parameter["AllowedPattern"] == f"^{prefix}{{0,{limit - 1}}}$"
    assert parameter["ConstraintDescription"].startswith(f"1-{limit} letters")
    docs = (REPO_ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    assert f"Stage names are at most {limit} characters" in docs
    assert f"1-{limit} letters" in docs


def test_check_stage_command_needs_no_config() -> None:
    from mfawatch.cli import main

    result = CliRunner().invoke(main, ["check-stage", "--stage", "prod-use1-blue"])
    assert result.exit_code == 1
    assert "stage 'prod-use1-blue' is 14 characters; the limit is 13" in result.output
    result = CliRunner().invoke(main, ["check-stage", "--stage", "prod-use1"])
    assert result.exit_code == 0 and "'prod-use1' is a valid stage name" in result.output


@pytest.mark.parametrize(
    "command",
    [
        ["policy", "--write"],
        ["deploy-template", "invoke-config"],
        ["deploy-template", "merge"],
    ],
)
def test_commands_taking_a_configured_stage_check_its_length(
    tmp_path: Path, command: list[str]
) -> None:
    from mfawatch.cli import main

    config = _config()
    config["stages"]["prod-use1-blue"] = config["stages"].pop("dev")
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    result = CliRunner().invoke(
        main, [*command, "--stage", "prod-use1-blue", "--config", str(path)]
    )
    assert result.exit_code == 1
    assert "stage 'prod-use1-blue' is 14 characters; the limit is 13" in result.output
    assert not list(tmp_path.glob("policy-*.json"))


def test_fixed_resource_names_per_stage() -> None:
    names = StageNames("mfawatch", "prod-euw1")
    assert names.table == "mfawatch-prod-euw1-state"
    assert names.alerts_topic == "mfawatch-prod-euw1-alerts"
    assert names.pager_topic == "mfawatch-prod-euw1-pager"
    assert names.failed_events_queue == "mfawatch-prod-euw1-failed-events"
    assert names.key_alias == "alias/mfawatch-prod-euw1"


# --- route (a): invoke configs ---------------------------------------------------------------


def test_invoke_config_has_one_config_per_function_with_retries_age_and_queue() -> None:
    template = invoke_config_template("mfawatch", "dev", HANDLERS, consumer_concurrency=CONCURRENCY)
    configs = {
        logical: resource
        for logical, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Lambda::EventInvokeConfig"
    }
    assert set(configs) == {
        "OnRootConsoleFailureInvokeConfig",
        "OnIamConsoleMfaFailureInvokeConfig",
        "SendDueSummariesInvokeConfig",
    }
    by_function = {c["Properties"]["FunctionName"]: c for c in configs.values()}
    assert set(by_function) == {f"mfawatch-dev-{h}" for h in HANDLERS}
    for config in configs.values():
        assert config["Type"] == "AWS::Lambda::EventInvokeConfig"
        props = config["Properties"]
        assert props["Qualifier"] == "$LATEST"
        assert props["MaximumRetryAttempts"] == MAX_RETRY_ATTEMPTS == 2
        assert 60 <= props["MaximumEventAgeInSeconds"] == MAX_EVENT_AGE_SECONDS <= 21600
        assert props["DestinationConfig"] == {
            "OnFailure": {"Destination": {"Fn::ImportValue": "mfawatch-dev-FailedEventsQueueArn"}}
        }


def test_invoke_config_import_matches_an_export_of_the_resources_stack() -> None:
    outputs = load_resources_template()["Outputs"]
    export = outputs["FailedEventsQueueArn"]["Export"]["Name"]
    assert bind_parameter(export, "Stage", "dev") == DEV.export("FailedEventsQueueArn")


def test_invoke_config_without_handlers_is_an_error() -> None:
    with pytest.raises(ConfigError, match="no Lambda handlers"):
        invoke_config_template("mfawatch", "dev", [], consumer_concurrency=CONCURRENCY)


def test_handlers_whose_logical_ids_collide_are_an_error() -> None:
    with pytest.raises(ConfigError, match="share id"):
        invoke_config_template(
            "mfawatch", "dev", ["on_a_b", "on_a__b"], consumer_concurrency=CONCURRENCY
        )


# --- environment rewriting -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (TOPIC, {"Ref": "AlertsTopic"}),
        (PAGER, {"Ref": "PagerTopic"}),
        ("mfawatch-dev-state", {"Ref": "StateTable"}),
        (
            "arn:aws:dynamodb:us-east-1:111122223333:table/mfawatch-dev-state",
            {"Fn::GetAtt": ["StateTable", "Arn"]},
        ),
        (
            "arn:aws:sqs:us-east-1:111122223333:mfawatch-dev-failed-events",
            {"Fn::GetAtt": ["FailedEventsQueue", "Arn"]},
        ),
        (
            "https://sqs.us-east-1.amazonaws.com/111122223333/mfawatch-dev-failed-events",
            {"Ref": "FailedEventsQueue"},
        ),
        ("alias/mfawatch-dev", {"Ref": "KeyAlias"}),
        ("mfawatch-dev-alerts", {"Fn::GetAtt": ["AlertsTopic", "TopicName"]}),
    ],
)
def test_a_value_naming_one_stage_resource_becomes_a_reference(value: str, expected: Any) -> None:
    assert reference_created_resources(value, DEV) == expected


@pytest.mark.parametrize(
    "value",
    [
        "mfawatch-dev-alerts-old",
        "arn:aws:sns:us-east-1:111122223333:mfawatch-prod-alerts",
        "mfawatch-devx-state",
        '{"111122223333": "security-tooling"}',
        "",
    ],
)
def test_values_naming_no_stage_resource_are_left_alone(value: str) -> None:
    assert reference_created_resources(value, DEV) == value


def test_a_routing_map_of_topic_arns_becomes_a_sub_with_literal_dollars_escaped() -> None:
    value = json.dumps({"alerts": TOPIC, "pager": PAGER, "note": "${not-a-var}"})
    rewritten = reference_created_resources(value, DEV)
    assert rewritten == {
        "Fn::Sub": json.dumps(
            {"alerts": "${AlertsTopic}", "pager": "${PagerTopic}", "note": "${!not-a-var}"}
        )
    }


def test_environment_overrides_only_the_variables_that_name_stage_resources() -> None:
    env = {"MFAWATCH_TOPIC_ARN": TOPIC, "MFAWATCH_ACCOUNT_NAMES": "{}", "T": "mfawatch-dev-state"}
    assert environment_overrides(env, DEV) == {
        "MFAWATCH_TOPIC_ARN": {"Ref": "AlertsTopic"},
        "T": {"Ref": "StateTable"},
    }


def test_environment_merges_global_stage_and_function_levels_like_chalice() -> None:
    config = _config(
        lambda_functions={"send_due_summaries": {"environment_variables": {"LOG_LEVEL": "DEBUG"}}}
    )
    stage = StageConfig.from_config(config, "dev")
    assert stage.environment("on_root_console_failure") == {
        "LOG_LEVEL": "INFO",
        "MFAWATCH_TOPIC_ARN": TOPIC,
    }
    assert stage.environment("send_due_summaries")["LOG_LEVEL"] == "DEBUG"


def test_stage_config_names_missing_stages() -> None:
    with pytest.raises(ConfigError, match="no stage 'qa'; have dev"):
        StageConfig.from_config(_config(), "qa")


# --- route (b): the merge template -----------------------------------------------------------


@pytest.fixture(scope="module")
def resources() -> dict[str, Any]:
    return load_resources_template()


def _merge(config: dict[str, Any], resources: dict[str, Any]) -> dict[str, Any]:
    return merge_template(StageConfig.from_config(config, "dev"), HANDLERS, resources)


def test_merge_adds_the_stage_resources_with_the_stage_bound(resources: dict[str, Any]) -> None:
    merged = _merge(_config(), resources)["Resources"]
    assert merged["StateTable"]["Properties"]["TableName"] == "mfawatch-dev-state"
    assert merged["AlertsTopic"]["Properties"]["TopicName"] == "mfawatch-dev-alerts"
    assert merged["KeyAlias"]["Properties"]["AliasName"] == "alias/mfawatch-dev"
    text = json.dumps(merged)
    assert '{"Ref": "Stage"}' not in text
    assert "${Stage}" not in text


def test_merge_gives_every_function_a_name_an_invoke_config_and_its_environment(
    resources: dict[str, Any],
) -> None:
    config = _config()
    config["stages"]["dev"]["environment_variables"]["MFAWATCH_TABLE"] = "mfawatch-dev-state"
    merged = _merge(config, resources)["Resources"]
    for handler in HANDLERS:
        logical = to_cfn_resource_name(handler)
        props = merged[logical]["Properties"]
        assert "Type" not in merged[logical]  # merged into Chalice's function, not a new one
        assert props["FunctionName"] == f"mfawatch-dev-{handler}"
        assert props["Environment"]["Variables"] == {
            "MFAWATCH_TOPIC_ARN": {"Ref": "AlertsTopic"},
            "MFAWATCH_TABLE": {"Ref": "StateTable"},
        }
        invoke = merged[f"{logical}InvokeConfig"]["Properties"]
        assert invoke["FunctionName"] == {"Ref": logical}
        assert invoke["DestinationConfig"]["OnFailure"]["Destination"] == {
            "Fn::GetAtt": ["FailedEventsQueue", "Arn"]
        }


def _role_statements(merged: dict[str, Any], role: str) -> dict[str, dict[str, Any]]:
    policies = merged["Resources"][role]["Properties"]["Policies"]
    assert len(policies) == 1
    return {s["Sid"]: s for s in policies[0]["PolicyDocument"]["Statement"]}


def test_merge_replaces_each_role_policy_with_least_privilege_on_created_resources(
    resources: dict[str, Any],
) -> None:
    merged = _merge(_config(), resources)
    statements = _role_statements(merged, "SendDueSummariesRole")
    assert statements["PublishAlerts"]["Action"] == ["sns:Publish"]
    assert statements["PublishAlerts"]["Resource"] == [
        {"Ref": "AlertsTopic"},
        {"Ref": "PagerTopic"},
    ]
    assert statements["UseStateTable"]["Action"] == [
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:Query",
    ]
    assert statements["UseStateTable"]["Resource"] == [
        {"Fn::GetAtt": ["StateTable", "Arn"]},
        {"Fn::Sub": "${StateTable.Arn}/index/due"},
        {"Fn::Sub": "${StateTable.Arn}/index/group"},
    ]
    assert statements["RecordFailedInvocations"]["Action"] == ["sqs:SendMessage"]
    assert statements["UseStageKey"]["Action"] == ["kms:GenerateDataKey", "kms:Decrypt"]
    assert statements["UseStageKey"]["Resource"] == [{"Fn::GetAtt": ["Key", "Arn"]}]
    logs = [r["Fn::Sub"] for r in statements["WriteOwnLogs"]["Resource"]]
    assert logs == [
        "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:"
        "/aws/lambda/mfawatch-dev-send_due_summaries",
        "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:"
        "/aws/lambda/mfawatch-dev-send_due_summaries:log-stream:*",
    ]


def test_merge_with_autogen_policy_replaces_the_shared_role_with_every_log_group(
    resources: dict[str, Any],
) -> None:
    config = _config()
    config["autogen_policy"] = True
    merged = _merge(config, resources)
    assert not any(key.endswith("Role") and key != "DefaultRole" for key in merged["Resources"])
    logs = _role_statements(merged, "DefaultRole")["WriteOwnLogs"]["Resource"]
    assert len(logs) == 2 * len(HANDLERS)


def test_merge_refuses_functions_without_a_chalice_managed_role(
    resources: dict[str, Any],
) -> None:
    with pytest.raises(ConfigError, match="manage_iam_role is false"):
        _merge(_config(manage_iam_role=False, iam_role_arn="arn:aws:iam::1:role/x"), resources)


def test_merge_refuses_resources_with_parameters_it_cannot_bind(
    resources: dict[str, Any],
) -> None:
    extra = dict(resources, Parameters={"Stage": {}, "Other": {}})
    with pytest.raises(ConfigError, match="Other"):
        _merge(_config(), extra)


def test_bind_parameter_replaces_refs_and_sub_variables_only() -> None:
    node = {
        "A": {"Ref": "Stage"},
        "B": {"Fn::Sub": "x-${Stage}"},
        "C": {"Fn::Sub": "arn:${AWS::Partition}:${Stage}"},
        "D": [{"Ref": "Other"}],
    }
    assert bind_parameter(node, "Stage", "dev") == {
        "A": "dev",
        "B": "x-dev",
        "C": {"Fn::Sub": "arn:${AWS::Partition}:dev"},
        "D": [{"Ref": "Other"}],
    }


# --- resources.yaml --------------------------------------------------------------------------


def test_resources_template_declares_what_the_app_relies_on(resources: dict[str, Any]) -> None:
    res = resources["Resources"]
    table = res["StateTable"]["Properties"]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    # The same table create_state_table builds for tests and benchmarks (one definition).
    assert table["AttributeDefinitions"] == ATTRIBUTE_DEFINITIONS
    assert table["GlobalSecondaryIndexes"] == GLOBAL_SECONDARY_INDEXES
    assert [i["IndexName"] for i in table["GlobalSecondaryIndexes"]] == ["due", "group"]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert table["SSESpecification"]["KMSMasterKeyId"] == {"Fn::GetAtt": ["Key", "Arn"]}
    for topic in ("AlertsTopic", "PagerTopic"):
        assert res[topic]["Properties"]["KmsMasterKeyId"] == {"Fn::GetAtt": ["Key", "Arn"]}
    queue = res["FailedEventsQueue"]["Properties"]
    assert queue["MessageRetentionPeriod"] == 14 * 24 * 3600
    assert queue["SqsManagedSseEnabled"] is True
    assert res["Key"]["Properties"]["EnableKeyRotation"] is True


def test_key_policy_lets_the_account_administer_and_iam_grant_use(
    resources: dict[str, Any],
) -> None:
    statements = [s for _, kind, s in iam_statements(resources) if kind == "AWS::KMS::Key"]
    assert len(statements) == 3
    root = statements[0]
    assert root["Principal"] == {
        "AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}
    }
    assert {
        "kms:PutKeyPolicy",
        "kms:ScheduleKeyDeletion",
        "kms:GenerateDataKey",
        "kms:Decrypt",
    } <= set(root["Action"])
    assert not any("*" in action for action in root["Action"])


def test_load_cfn_yaml_turns_short_tags_into_json_intrinsics() -> None:
    template = load_cfn_yaml(
        "Resources:\n  A:\n    Type: X\n    Properties:\n"
        "      R: !Ref B\n      G: !GetAtt B.Arn\n      S: !Sub 'a-${B}'\n"
        "      J: !Join ['', [a, !Ref B]]\n"
    )
    assert template["Resources"]["A"]["Properties"] == {
        "R": {"Ref": "B"},
        "G": {"Fn::GetAtt": ["B", "Arn"]},
        "S": {"Fn::Sub": "a-${B}"},
        "J": {"Fn::Join": ["", ["a", {"Ref": "B"}]]},
    }


def test_load_cfn_yaml_rejects_what_is_not_a_template() -> None:
    with pytest.raises(ConfigError, match="no Resources"):
        load_cfn_yaml("just: text\n", "x.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_cfn_yaml("a: [\n", "x.yaml")


# --- literal statements for the chalice deploy route -----------------------------------------


def test_stage_policy_statements_name_only_the_stage_resources() -> None:
    statements = {
        s["Sid"]: s
        for s in stage_policy_statements("aws", "eu-west-1", "111122223333", "mfawatch", "dev")
    }
    assert statements["PublishAlerts"]["Resource"] == [
        "arn:aws:sns:eu-west-1:111122223333:mfawatch-dev-alerts",
        "arn:aws:sns:eu-west-1:111122223333:mfawatch-dev-pager",
    ]
    assert statements["UseStateTable"]["Resource"] == [
        "arn:aws:dynamodb:eu-west-1:111122223333:table/mfawatch-dev-state",
        "arn:aws:dynamodb:eu-west-1:111122223333:table/mfawatch-dev-state/index/due",
        "arn:aws:dynamodb:eu-west-1:111122223333:table/mfawatch-dev-state/index/group",
    ]
    assert statements["RecordFailedInvocations"]["Resource"] == [
        "arn:aws:sqs:eu-west-1:111122223333:mfawatch-dev-failed-events"
    ]
    key = statements["UseStageKey"]
    assert key["Resource"] == ["arn:aws:kms:eu-west-1:111122223333:key/*"]
    assert key["Condition"] == {
        "ForAnyValue:StringEquals": {"kms:ResourceAliases": ["alias/mfawatch-dev"]}
    }
    for statement in statements.values():
        assert not any("*" in action for action in statement["Action"])
        assert "*" not in statement["Resource"]


# --- the heartbeat's canary -------------------------------------------------------------------


def test_the_canary_topic_uses_the_stage_key_and_only_the_heartbeat_publishes_to_it(
    resources: dict[str, Any],
) -> None:
    res = bind_parameter(resources["Resources"], "Stage", "dev")
    canary = res["CanaryTopic"]
    assert canary["Type"] == "AWS::SNS::Topic"
    # The key of the alert topics, so that a broken key fails the canary as it fails alerts.
    assert canary["Properties"] == {
        "TopicName": "mfawatch-dev-canary",
        "KmsMasterKeyId": {"Fn::GetAtt": ["Key", "Arn"]},
    }
    # Nobody is subscribed: a message every 15 minutes must page no one.
    assert not [r for r in res.values() if r["Type"] == "AWS::SNS::Subscription"]
    assert resources["Outputs"]["CanaryTopicArn"]["Value"] == {"Ref": "CanaryTopic"}
    # The key policy lets IAM policies grant its use (the root statement), which the roles do.
    (root, *_) = [s for _, kind, s in iam_statements(resources) if kind == "AWS::KMS::Key"]
    assert {"kms:GenerateDataKey", "kms:Decrypt"} <= set(root["Action"])

    # Route (b): the heartbeat's role alone may publish to it, and to nothing else with that
    # statement; it uses the stage key like every role.
    config = _config()
    config["stages"]["dev"]["environment_variables"]["MFAWATCH_CANARY_TOPIC_ARN"] = (
        "arn:aws:sns:us-east-1:111122223333:mfawatch-dev-canary"
    )
    handlers = [*ALL_HANDLERS, PIPELINE_HEARTBEAT_HANDLER]
    merged = merge_template(StageConfig.from_config(config, "dev"), handlers, resources)
    heartbeat = _role_statements(merged, "HeartbeatRole")
    assert heartbeat["PublishCanary"] == {
        "Sid": "PublishCanary",
        "Effect": "Allow",
        "Action": ["sns:Publish"],
        "Resource": [{"Ref": "CanaryTopic"}],
    }
    assert heartbeat["UseStageKey"]["Resource"] == [{"Fn::GetAtt": ["Key", "Arn"]}]
    assert set(heartbeat["UseStageKey"]["Action"]) == {"kms:GenerateDataKey", "kms:Decrypt"}
    for role in ("SendDueSummariesRole", "ConsumeParkedEventsRole", "OnRootConsoleFailureRole"):
        assert "PublishCanary" not in _role_statements(merged, role), role
        assert {"Ref": "CanaryTopic"} not in _role_statements(merged, role)["PublishAlerts"][
            "Resource"
        ]
    # The functions find the created topic (the literal ARN becomes a reference).
    variables = merged["Resources"]["Heartbeat"]["Properties"]["Environment"]["Variables"]
    assert variables["MFAWATCH_CANARY_TOPIC_ARN"] == {"Ref": "CanaryTopic"}

    # Route (a): the stage-wide policy file, the canary topic alone in its statement.
    statements = {
        s["Sid"]: s
        for s in stage_policy_statements("aws", "eu-west-1", "111122223333", "mfawatch", "dev")
    }
    assert statements["PublishCanary"]["Action"] == ["sns:Publish"]
    assert statements["PublishCanary"]["Resource"] == [
        "arn:aws:sns:eu-west-1:111122223333:mfawatch-dev-canary"
    ]


def test_a_stage_without_reserved_concurrency_gets_no_consumer_template() -> None:
    config = _config()
    del config["reserved_concurrency"]
    with pytest.raises(ConfigError, match="consume_parked_events's reserved_concurrency is None"):
        StageConfig.from_config(config, "dev").consumer_concurrency()
    config["stages"]["dev"]["lambda_functions"] = {PARKED_HANDLER: {"reserved_concurrency": 1}}
    with pytest.raises(ConfigError, match="maximum concurrency must be at least 2"):
        StageConfig.from_config(config, "dev").consumer_concurrency()


# --- commands and architecture ---------------------------------------------------------------


def test_commands_export_the_deploy_commands() -> None:
    assert [command.name for command in COMMANDS] == [
        "policy",
        "deploy-template",
        "check-stage",
        "deploy-config",
    ]


def test_app_handlers_include_every_rule_handler(rules: RuleSet) -> None:
    assert {rule.handler_name for rule in rules} <= set(app_handler_names())


def test_invoke_config_command_prints_a_config_per_app_handler() -> None:
    result = CliRunner().invoke(deploy_template, ["invoke-config", "--stage", "dev"])
    assert result.exit_code == 0, result.output
    template = json.loads(result.stdout)
    functions = {
        c["Properties"]["FunctionName"]
        for c in template["Resources"].values()
        if c["Type"] == "AWS::Lambda::EventInvokeConfig"
    }
    asynchronous = set(app_handler_names()) - {PARKED_HANDLER}
    assert functions == {f"mfawatch-dev-{handler}" for handler in asynchronous}
    (source,) = [
        c["Properties"]
        for c in template["Resources"].values()
        if c["Type"] == "AWS::Lambda::EventSourceMapping"
    ]
    assert source["FunctionName"] == f"mfawatch-dev-{PARKED_HANDLER}"


def test_merge_command_writes_the_file(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "merge.json"
    result = CliRunner().invoke(deploy_template, ["merge", "--stage", "dev", "-o", str(target)])
    assert result.exit_code == 0, result.output
    merged = json.loads(target.read_text())
    assert "StateTable" in merged["Resources"]


def test_commands_name_an_unknown_stage() -> None:
    result = CliRunner().invoke(deploy_template, ["merge", "--stage", "nope"])
    assert result.exit_code != 0
    assert "no stage 'nope'" in result.output


def test_heartbeat_alarm_watches_the_pipeline_heartbeat_once_per_interval() -> None:
    # YAML cannot import the constants; the alarm counts one heartbeat per period, the one the
    # scheduled heartbeat counts once its state write and its canary publish both succeeded.
    from chalicelib.core.constants import HEARTBEAT_INTERVAL_SECONDS
    from chalicelib.pipeline.heartbeats import PIPELINE_HEARTBEATS

    alarm = load_resources_template()["Resources"]["HeartbeatAlarm"]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("mfawatch", PIPELINE_HEARTBEATS)
    # The rolled-up dimension every EMF metric carries (observability.EmfMetrics).
    assert alarm["Dimensions"] == [{"Name": "Service", "Value": "mfawatch"}]
    assert alarm["Period"] == HEARTBEAT_INTERVAL_SECONDS
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("LessThanThreshold", 1)
    assert alarm["TreatMissingData"] == "breaching"
    assert alarm["AlarmActions"] == [{"Ref": "PagerTopic"}]


def test_docs_policy_table_lists_exactly_the_generated_statements(
    resources: dict[str, Any],
) -> None:
    """docs/deploy.md's route (b) table: one row per statement, with exactly its actions."""
    docs = (REPO_ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    table = docs.split("| statement | actions | resource |", 1)[1].split("\n\n", 1)[0]
    documented = {
        row[0]: sorted(re.findall(r"`([a-z0-9-]+:[A-Za-z0-9]+)`", row[1]))
        for row in (
            [cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in table.strip().splitlines()[1:]
        )
    }
    handlers = [*ALL_HANDLERS, PIPELINE_HEARTBEAT_HANDLER]
    merged = merge_template(StageConfig.from_config(_config(), "dev"), handlers, resources)
    role_statements = [s for _, kind, s in iam_statements(merged) if not kind]  # role patches
    route_b = {s["Sid"]: sorted(s["Action"]) for s in role_statements}
    route_a = {
        s["Sid"]: sorted(s["Action"])
        for s in stage_policy_statements("aws", "us-east-1", "111122223333", "mfawatch", "dev")
    }
    assert documented == route_b == route_a


EU_WEST = ("444455556666", "eu-west-1")  # the caller's account and Region
STACK_OUTPUTS = {
    "StateTableName": "mfawatch-dev-state",
    "AlertsTopicArn": "arn:aws:sns:eu-west-1:444455556666:mfawatch-dev-alerts",
    "PagerTopicArn": "arn:aws:sns:eu-west-1:444455556666:mfawatch-dev-pager",
    "CanaryTopicArn": "arn:aws:sns:eu-west-1:444455556666:mfawatch-dev-canary",
    "KeyArn": "arn:aws:kms:eu-west-1:444455556666:key/1234",
}


def test_config_update_keeps_other_outputs_and_warns_about_foreign_ones() -> None:
    config = _config()
    chat = "arn:aws:sns:us-east-1:111122223333:team-chat"
    routes = {"alerts": {"topic_arn": TOPIC}, "chat": {"topic_arn": chat, "format": "chat"}}
    config["stages"]["dev"]["environment_variables"]["MFAWATCH_OUTPUTS"] = json.dumps(routes)
    stack = StackOutputs("mfawatch-dev-resources", STACK_OUTPUTS, "444455556666", "eu-west-1")
    update = stage_config_update(config, "dev", stack)
    written = json.loads(
        update.config["stages"]["dev"]["environment_variables"]["MFAWATCH_OUTPUTS"]
    )
    assert written == {
        "alerts": {"topic_arn": STACK_OUTPUTS["AlertsTopicArn"]},
        "chat": {"topic_arn": chat, "format": "chat"},
    }
    assert update.warnings == (
        f"MFAWATCH_OUTPUTS.chat: topic {chat} is not a topic of this stack and is in account "
        "111122223333, region us-east-1 (left as it is)",
    )
    assert config["stages"]["dev"]["environment_variables"]["MFAWATCH_TOPIC_ARN"] == TOPIC


def test_config_update_names_a_malformed_outputs_setting_and_a_foreign_kms_key() -> None:
    config = _config()
    config["stages"]["dev"]["environment_variables"]["MFAWATCH_OUTPUTS"] = '{"alerts": {}}'
    with pytest.raises(ConfigError, match=re.escape("MFAWATCH_OUTPUTS.alerts.topic_arn must be")):
        stage_config_update(config, "dev", StackOutputs("s", STACK_OUTPUTS, *EU_WEST))
    foreign = STACK_OUTPUTS | {"KeyArn": "arn:aws:kms:us-east-1:444455556666:key/1234"}
    with pytest.raises(
        ConfigError, match=r"output KeyArn \S+ is in account 444455556666, region us-east-1"
    ):
        stage_config_update(_config(), "dev", StackOutputs("s", foreign, *EU_WEST))
    with pytest.raises(ConfigError, match="stack s has no output PagerTopicArn"):
        no_pager = {**STACK_OUTPUTS, "PagerTopicArn": ""}
        stage_config_update(_config(), "dev", StackOutputs("s", no_pager, "1", "eu-west-1"))


def test_a_stack_without_outputs_is_named_with_the_moto_server_that_gives_them() -> None:
    """Plain moto_server leaves a change set's stack without outputs: the error says what to run."""
    with pytest.raises(ConfigError) as raised:
        stage_config_update(_config(), "dev", StackOutputs("s", {}, *EU_WEST))
    assert str(raised.value).startswith("stack s has no outputs at all:")
    assert "start tests/atomic_moto_server.py (docs/deploy.md, 'Try it on moto_server')" in str(
        raised.value
    )


# --- the parked-event consumer and the alarms (issue 18) --------------------------------------

ALL_HANDLERS = [*HANDLERS, PARKED_HANDLER]


def _alarms(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        logical: resource["Properties"]
        for logical, resource in template["Resources"].items()
        if resource.get("Type") == "AWS::CloudWatch::Alarm"
    }


def test_key_policy_lets_this_stages_alarms_and_eventbridge_publish_to_the_topics(
    resources: dict[str, Any],
) -> None:
    by_sid = {s["Sid"]: s for _, kind, s in iam_statements(resources) if kind == "AWS::KMS::Key"}
    cloudwatch = by_sid["CloudWatchAlarmsPublishToEncryptedTopics"]
    assert cloudwatch["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert cloudwatch["Action"] == ["kms:Decrypt", "kms:GenerateDataKey*"]
    condition = bind_parameter(cloudwatch["Condition"], "Stage", "dev")
    assert condition["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    assert condition["ArnLike"]["aws:SourceArn"] == {
        "Fn::Sub": "arn:${AWS::Partition}:cloudwatch:${AWS::Region}:${AWS::AccountId}"
        ":alarm:mfawatch-dev-*"
    }
    events = by_sid["EventBridgePublishesToEncryptedTopics"]
    assert events["Principal"] == {"Service": "events.amazonaws.com"}
    assert events["Action"] == ["kms:Decrypt", "kms:GenerateDataKey*"]


def test_every_alarm_of_both_routes_pages_and_is_covered_by_the_key_policy(
    resources: dict[str, Any],
) -> None:
    bound = {"Resources": bind_parameter(resources["Resources"], "Stage", "dev")}
    invoke = invoke_config_template(
        "mfawatch", "dev", ALL_HANDLERS, consumer_concurrency=CONCURRENCY
    )
    merged = merge_template(StageConfig.from_config(_config(), "dev"), ALL_HANDLERS, resources)
    pager_import = {"Fn::ImportValue": "mfawatch-dev-PagerTopicArn"}
    for template, pager in ((bound, {"Ref": "PagerTopic"}), (invoke, pager_import)):
        alarms = _alarms(template)
        assert alarms
        for logical, alarm in alarms.items():
            assert alarm["AlarmActions"] == [pager], logical
            assert alarm["AlarmName"].startswith("mfawatch-dev-"), logical
    merged_alarms = _alarms(merged)
    assert set(_alarms(bound)) <= set(merged_alarms)
    assert {a["AlarmActions"][0]["Ref"] for a in merged_alarms.values()} == {"PagerTopic"}
    names = {a["AlarmName"] for a in merged_alarms.values()}
    assert {
        "mfawatch-dev-heartbeat",
        "mfawatch-dev-failed-events-waiting",
        "mfawatch-dev-dead-letters",
        "mfawatch-dev-publish-errors",
        "mfawatch-dev-scheduler-errors",
        "mfawatch-dev-parked-items",
        "mfawatch-dev-on_root_console_failure-errors",
        "mfawatch-dev-on_root_console_failure-throttles",
        "mfawatch-dev-on_root_console_failure-failed-invocations",
        "mfawatch-dev-consume_parked_events-errors",
    } <= names
    # The consumer has no EventBridge rule, so no FailedInvocations alarm.
    assert "mfawatch-dev-consume_parked_events-failed-invocations" not in names


def test_function_alarms_name_the_function_and_rule_each_route_creates(
    resources: dict[str, Any],
) -> None:
    invoke = _alarms(
        invoke_config_template("mfawatch", "dev", ALL_HANDLERS, consumer_concurrency=CONCURRENCY)
    )
    errors = invoke["OnRootConsoleFailureErrorsAlarm"]
    assert (errors["Namespace"], errors["MetricName"]) == ("AWS/Lambda", "Errors")
    assert errors["Dimensions"] == [
        {"Name": "FunctionName", "Value": "mfawatch-dev-on_root_console_failure"}
    ]
    failed = invoke["OnRootConsoleFailureFailedInvocationsAlarm"]
    assert (failed["Namespace"], failed["MetricName"]) == ("AWS/Events", "FailedInvocations")
    assert failed["Dimensions"] == [
        {"Name": "RuleName", "Value": "mfawatch-dev-on_root_console_failure-event"}
    ]
    merged = merge_template(StageConfig.from_config(_config(), "dev"), ALL_HANDLERS, resources)
    failed = _alarms(merged)["OnRootConsoleFailureFailedInvocationsAlarm"]
    assert failed["Dimensions"] == [
        {"Name": "RuleName", "Value": {"Ref": "OnRootConsoleFailureOnRootConsoleFailureEvent"}}
    ]


def test_both_routes_wire_the_consumer_to_the_failed_events_queue_with_partial_batches(
    resources: dict[str, Any],
) -> None:
    invoke = invoke_config_template(
        "mfawatch", "dev", ALL_HANDLERS, consumer_concurrency=CONCURRENCY
    )["Resources"]
    (source,) = [
        r["Properties"]
        for r in invoke.values()
        if r.get("Type") == "AWS::Lambda::EventSourceMapping"
    ]
    assert source["FunctionName"] == "mfawatch-dev-consume_parked_events"
    assert source["EventSourceArn"] == {
        "Fn::Sub": "arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:"
        "mfawatch-dev-failed-events"
    }
    assert source["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    # Never more consumer instances than its reserved concurrency: never throttled.
    assert source["ScalingConfig"] == {"MaximumConcurrency": CONCURRENCY}
    assert "ConsumeParkedEventsInvokeConfig" not in invoke
    merged = merge_template(StageConfig.from_config(_config(), "dev"), ALL_HANDLERS, resources)
    # Route (b): an SQS event merged into Chalice's SAM function (Chalice cannot write it).
    events = merged["Resources"]["ConsumeParkedEvents"]["Properties"]["Events"]
    assert events == {
        "ConsumeParkedEventsSource": {
            "Type": "SQS",
            "Properties": {
                "Queue": {"Fn::GetAtt": ["FailedEventsQueue", "Arn"]},
                "BatchSize": 10,
                "Enabled": True,
                "FunctionResponseTypes": ["ReportBatchItemFailures"],
                "ScalingConfig": {"MaximumConcurrency": CONCURRENCY},
            },
        }
    }
    assert "ConsumeParkedEventsInvokeConfig" not in merged["Resources"]
    # Only the consumer's role may read the queue.
    consumer = _role_statements(merged, "ConsumeParkedEventsRole")["ConsumeParkedEvents"]
    assert consumer["Action"] == [
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
        "sqs:ChangeMessageVisibility",
    ]
    assert consumer["Resource"] == [{"Fn::GetAtt": ["FailedEventsQueue", "Arn"]}]
    assert "ConsumeParkedEvents" not in _role_statements(merged, "SendDueSummariesRole")


def test_failed_events_queue_redrives_to_a_final_dead_letter_queue(
    resources: dict[str, Any],
) -> None:
    res = resources["Resources"]
    queue = res["FailedEventsQueue"]["Properties"]
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["FinalDeadLetterQueue", "Arn"]},
        "maxReceiveCount": 10,
    }
    # At least the functions' timeout (Lambda refuses an event source otherwise).
    assert queue["VisibilityTimeout"] >= 30
    dead = res["FinalDeadLetterQueue"]["Properties"]
    assert dead["MessageRetentionPeriod"] == 14 * 24 * 3600
    assert bind_parameter(dead["QueueName"], "Stage", "dev") == DEV.dead_letter_queue


def test_route_b_puts_the_rule_of_read_only_events_in_the_state_that_receives_them(
    resources: dict[str, Any],
) -> None:
    # `aws login` (AuthorizeOAuth2Access) is a read-only management event: chalice package leaves
    # the rule ENABLED, which never receives it.
    handlers = [*HANDLERS, "on_sign_in_success"]
    merged = merge_template(StageConfig.from_config(_config(), "dev"), handlers, resources)
    success = merged["Resources"]["OnSignInSuccess"]["Properties"]
    assert success["Events"] == {
        "OnSignInSuccessEvent": {
            "Properties": {"State": "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS"}
        }
    }
    assert "Events" not in merged["Resources"]["OnIamConsoleMfaFailure"]["Properties"]
