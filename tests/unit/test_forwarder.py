"""The member-account template: same patterns as rules/, least privilege, regions, cfn-lint."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from chalicelib.core.rules import RuleSet
from mfawatch.cli.org import COMMANDS, forwarder_template
from mfawatch.deploy.templates import cfn_logical_id, load_resources_template
from mfawatch.errors import ForwarderConfigError
from mfawatch.org.forwarder import (
    AUDIT_ROLE_NAME,
    custom_bus_merge_template,
    expected_rules,
    forwarding_rule_name,
    is_global_service_rule,
    member_template,
    parse_central_bus_arn,
    parse_regions,
)
from tests.support.forwarder import (
    CENTRAL,
    CUSTOM_BUS_ARN,
    DEFAULT_BUS_ARN,
    DEPLOY,
    MANY_REGIONS,
    resources_of_type,
)


def _forwarding_rules(template: dict[str, Any]) -> dict[str, Any]:
    """The forwarding rules (pattern rules), without the scheduled heartbeat."""
    return {
        logical: resource
        for logical, resource in resources_of_type(template, "AWS::Events::Rule").items()
        if "EventPattern" in resource["Properties"]
    }


def _template(rules: RuleSet, arn: str = DEFAULT_BUS_ARN, **kwargs: Any) -> dict[str, Any]:
    return member_template(rules, parse_central_bus_arn(arn), **kwargs).template


# --- patterns -----------------------------------------------------------------------------------


def test_every_rule_forwards_with_exactly_its_deployed_pattern(rules: RuleSet) -> None:
    template = _template(rules)
    forwarded = {
        r["Properties"]["Name"]: r["Properties"]["EventPattern"]
        for r in _forwarding_rules(template).values()
    }
    assert forwarded == {forwarding_rule_name(rule): dict(rule.event_pattern) for rule in rules}
    # JSON round trip: what CloudFormation receives is the bundle's pattern, byte for byte.
    for rule in rules:
        text = json.dumps(forwarded[forwarding_rule_name(rule)], sort_keys=True)
        assert text == json.dumps(rule.event_pattern, sort_keys=True)


def test_forwarding_rules_target_the_central_bus_with_the_forwarder_role(rules: RuleSet) -> None:
    for resource in _forwarding_rules(_template(rules)).values():
        props = resource["Properties"]
        assert props["EventBusName"] == "default"
        assert props["State"] in ("ENABLED", "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS")
        (target,) = props["Targets"]
        assert target["Arn"] == DEFAULT_BUS_ARN
        assert target["RoleArn"] == {"Fn::GetAtt": ["ForwarderRole", "Arn"]}


def test_read_only_events_are_forwarded_only_by_rules_in_the_state_that_receives_them(
    rules: RuleSet,
) -> None:
    # aws login's AuthorizeOAuth2Access is readOnly: EventBridge gives read-only management
    # events only to rules in ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS.
    states = {
        r["Properties"]["Name"]: r["Properties"]["State"]
        for r in _forwarding_rules(_template(rules)).values()
    }
    assert {name for name, state in states.items() if state != "ENABLED"} == {
        "mfawatch-sign-in-success"
    }
    assert states["mfawatch-sign-in-success"] == "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS"
    central = custom_bus_merge_template(rules)["Resources"]
    event = central["OnSignInSuccess"]["Properties"]["Events"]["OnSignInSuccessEvent"]
    assert event["Properties"]["State"] == "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS"
    other = central["OnIamConsoleMfaFailure"]["Properties"]["Events"]["OnIamConsoleMfaFailureEvent"]
    assert "State" not in other["Properties"]


def test_forwarder_role_may_only_put_events_on_the_central_bus(rules: RuleSet) -> None:
    role = _template(rules, CUSTOM_BUS_ARN)["Resources"]["ForwarderRole"]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "events.amazonaws.com"}
    assert trust["Action"] == "sts:AssumeRole"
    (policy,) = role["Policies"]
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert statement == {
        "Effect": "Allow",
        "Action": "events:PutEvents",
        "Resource": CUSTOM_BUS_ARN,
    }
    # IAM names are account-wide and a StackSet deploys one stack per Region.
    assert role["RoleName"] == {"Fn::Sub": "mfawatch-forwarder-${AWS::Region}"}


def test_audit_role_is_read_only_trusts_the_central_account_and_is_created_once(
    rules: RuleSet,
) -> None:
    template = _template(rules)
    audit = template["Resources"]["AuditRole"]
    assert audit["Condition"] == "IsHomeRegion"
    assert template["Conditions"]["IsHomeRegion"] == {
        "Fn::Equals": [{"Ref": "AWS::Region"}, "us-east-1"]
    }
    props = audit["Properties"]
    assert props["RoleName"] == AUDIT_ROLE_NAME
    (trust,) = props["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"]["AWS"] == {"Fn::Sub": f"arn:${{AWS::Partition}}:iam::{CENTRAL}:root"}
    actions = {s["Action"] for p in props["Policies"] for s in p["PolicyDocument"]["Statement"]}
    assert actions == {"events:ListRules", "events:ListTargetsByRule"}


def test_no_audit_role_when_its_name_is_empty(rules: RuleSet) -> None:
    assert "AuditRole" not in _template(rules, audit_role_name=None)["Resources"]


# --- regions ------------------------------------------------------------------------------------


def test_global_service_rules_only_in_us_east_1(rules: RuleSet) -> None:
    template = _template(rules, regions=["us-east-1", "eu-west-1"])
    global_ids = {cfn_logical_id(r.id) for r in rules if is_global_service_rule(r)}
    assert global_ids, "mfa-device-removed (source aws.iam) is a global-service rule"
    for logical_id, resource in _forwarding_rules(template).items():
        expected = (
            "ForwardGlobalServiceEvents"
            if logical_id.removeprefix("Forward") in global_ids
            else "ForwardSignIns"
        )
        assert resource["Condition"] == expected
    assert {"Condition": "IsGlobalServiceRegion"} in template["Conditions"][
        "ForwardGlobalServiceEvents"
    ]["Fn::And"]


def test_regions_become_a_condition_so_extra_stack_instances_create_no_rule(
    rules: RuleSet,
) -> None:
    template = _template(rules, regions=["us-east-1", "eu-north-1"])
    assert template["Conditions"]["InForwardedRegion"] == {
        "Fn::Or": [
            {"Fn::Equals": [{"Ref": "AWS::Region"}, "us-east-1"]},
            {"Fn::Equals": [{"Ref": "AWS::Region"}, "eu-north-1"]},
        ]
    }
    # Every instance keeps at least one resource even when every condition is false.
    assert "Condition" not in template["Resources"]["Placeholder"]


def test_more_than_ten_regions_nest_fn_or_in_groups_of_ten(rules: RuleSet) -> None:
    condition = _template(rules, regions=MANY_REGIONS)["Conditions"]["InForwardedRegion"]
    groups = condition["Fn::Or"]
    assert [len(g["Fn::Or"]) for g in groups] == [10, 2]
    flat = [eq["Fn::Equals"][1] for g in groups for eq in g["Fn::Or"]]
    assert flat == MANY_REGIONS


def test_without_us_east_1_the_iam_rule_is_left_out_with_a_warning(rules: RuleSet) -> None:
    result = member_template(
        rules, parse_central_bus_arn(CUSTOM_BUS_ARN), ["eu-west-1"], home_region="eu-west-1"
    )
    names = {r["Properties"]["Name"] for r in _forwarding_rules(result.template).values()}
    assert "mfawatch-mfa-device-removed" not in names
    assert len(names) == len(rules) - sum(is_global_service_rule(r) for r in rules)
    assert any("us-east-1 is not in --regions" in w for w in result.warnings)


def test_default_bus_central_location_forwards_nothing_but_a_custom_bus_does(
    rules: RuleSet,
) -> None:
    default = _template(rules, DEFAULT_BUS_ARN)
    assert default["Conditions"]["IsCentralBusLocation"] == {
        "Fn::And": [
            {"Fn::Equals": [{"Ref": "AWS::AccountId"}, CENTRAL]},
            {"Fn::Equals": [{"Ref": "AWS::Region"}, "us-east-1"]},
        ]
    }
    central = parse_central_bus_arn(DEFAULT_BUS_ARN)
    assert expected_rules(rules, "us-east-1", CENTRAL, central) == []
    # Route (b): the central account's own default bus forwards to its custom bus.
    custom = _template(rules, CUSTOM_BUS_ARN)
    assert "IsCentralBusLocation" not in custom.get("Conditions", {})
    assert len(
        expected_rules(rules, "eu-west-1", CENTRAL, parse_central_bus_arn(CUSTOM_BUS_ARN))
    ) == (len(rules) - sum(is_global_service_rule(r) for r in rules))


def test_home_region_must_be_listed(rules: RuleSet) -> None:
    with pytest.raises(ForwarderConfigError, match="--home-region"):
        member_template(rules, parse_central_bus_arn(DEFAULT_BUS_ARN), ["eu-west-1"])


def test_parse_regions_accepts_commas_and_repeats_and_names_bad_values() -> None:
    assert parse_regions(["us-east-1,eu-north-1", " eu-north-1 ", "ap-southeast-2"]) == (
        "us-east-1",
        "eu-north-1",
        "ap-southeast-2",
    )
    assert parse_regions(["us-gov-west-1"]) == ("us-gov-west-1",)
    with pytest.raises(ForwarderConfigError, match=r"--regions: 'US-EAST-1'"):
        parse_regions(["US-EAST-1"])


# --- ARN validation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:events:us-east-1:111122223333:rule/default",
        "arn:aws:events:us-east-1:1111:event-bus/default",
        "arn:aws:sqs:us-east-1:111122223333:event-bus/default",
        "arn:aws:events:Virginia:111122223333:event-bus/default",
        "arn:aws:events:us-east-1:111122223333:event-bus/",
        "arn:aws-xx:events:us-east-1:111122223333:event-bus/default",
        "default",
    ],
)
def test_invalid_central_bus_arn_is_rejected_naming_the_option(arn: str) -> None:
    with pytest.raises(ForwarderConfigError, match="--central-bus-arn"):
        parse_central_bus_arn(arn)


def test_central_bus_arn_parts() -> None:
    bus = parse_central_bus_arn("arn:aws-us-gov:events:us-gov-west-1:111122223333:event-bus/a.b/c")
    assert (bus.partition, bus.region, bus.account_id, bus.name) == (
        "aws-us-gov",
        "us-gov-west-1",
        "111122223333",
        "a.b/c",
    )
    assert not bus.is_default_bus


# --- CLI ----------------------------------------------------------------------------------------


def test_cli_prints_yaml_and_json_that_parse_to_the_same_template(rules: RuleSet) -> None:
    runner = CliRunner()
    args = ["--central-bus-arn", CUSTOM_BUS_ARN, "--regions", "us-east-1,eu-west-1"]
    as_yaml = runner.invoke(forwarder_template, args)
    as_json = runner.invoke(forwarder_template, [*args, "--format", "json"])
    assert as_yaml.exit_code == 0, as_yaml.output
    assert as_json.exit_code == 0, as_json.output
    expected = _template(rules, CUSTOM_BUS_ARN, regions=["us-east-1", "eu-west-1"])
    assert yaml.safe_load(as_yaml.stdout) == expected
    assert json.loads(as_json.stdout) == expected


def test_cli_bad_arn_is_a_usage_error_naming_the_option() -> None:
    result = CliRunner().invoke(forwarder_template, ["--central-bus-arn", "arn:aws:sns:x"])
    assert result.exit_code == 2
    assert "--central-bus-arn" in result.output
    assert "Traceback" not in result.output


def test_cli_warns_on_stderr_when_us_east_1_is_left_out() -> None:
    result = CliRunner().invoke(
        forwarder_template,
        [
            "--central-bus-arn",
            CUSTOM_BUS_ARN,
            "--regions",
            "eu-west-1",
            "--home-region",
            "eu-west-1",
        ],
    )
    assert result.exit_code == 0
    assert "warning: us-east-1 is not in --regions" in result.stderr
    assert "warning" not in result.stdout


def test_commands_are_exported_for_the_cli_group() -> None:
    assert [c.name for c in COMMANDS] == ["forwarder-template", "audit"]


# --- route (b) merge template -------------------------------------------------------------------


def test_committed_merge_template_is_current(rules: RuleSet) -> None:
    committed = load_resources_template(DEPLOY / "merge-custom-bus.yaml")
    assert committed == custom_bus_merge_template(rules), (
        "deploy/merge-custom-bus.yaml is stale: regenerate it (command in its header)"
    )


# --- central templates --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["central-bus-policy.yaml", "central-custom-bus.yaml"])
def test_central_bus_policy_allows_put_events_for_the_organization_only(name: str) -> None:
    template = load_resources_template(DEPLOY / name)
    (policy,) = resources_of_type(template, "AWS::Events::EventBusPolicy").values()
    statement = policy["Properties"]["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Action"] == "events:PutEvents"
    assert statement["Principal"] == "*"
    assert statement["Condition"] == {
        "StringEquals": {"aws:PrincipalOrgID": {"Ref": "OrganizationId"}}
    }
    assert "Principal" not in policy["Properties"]  # no second, unconditioned grant
    assert template["Parameters"]["OrganizationId"]["AllowedPattern"] == "^o-[a-z0-9]{10,32}$"


def test_member_template_sends_a_heartbeat_to_the_central_bus(rules: RuleSet) -> None:
    from chalicelib.core.constants import HEARTBEAT_PATTERN, HEARTBEAT_RULE_NAME, HEARTBEAT_SCHEDULE
    from mfawatch.patterns.engine import compile_pattern

    heartbeat = _template(rules)["Resources"]["Heartbeat"]
    props = heartbeat["Properties"]
    assert props["Name"] == HEARTBEAT_RULE_NAME
    assert props["ScheduleExpression"] == HEARTBEAT_SCHEDULE
    (target,) = props["Targets"]
    assert target["Arn"] == DEFAULT_BUS_ARN and target["RoleArn"] == {
        "Fn::GetAtt": ["ForwarderRole", "Arn"]
    }
    # What that scheduled rule emits in a member account is what the central app matches.
    scheduled = {
        "version": "0",
        "id": "x",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "444455556666",
        "time": "2026-11-02T09:00:00Z",
        "region": "eu-west-1",
        "resources": [f"arn:aws:events:eu-west-1:444455556666:rule/{HEARTBEAT_RULE_NAME}"],
        "detail": {},
    }
    assert compile_pattern(HEARTBEAT_PATTERN).matches(scheduled)
    scheduled["resources"] = ["arn:aws:events:eu-west-1:444455556666:rule/other"]
    assert not compile_pattern(HEARTBEAT_PATTERN).matches(scheduled)
