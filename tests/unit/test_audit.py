"""Coverage audit, pure: assessing observed rules, and the template's Region conditions.

The audit against moto (several accounts through assumed roles) is tests/functional/test_audit.py.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from chalicelib.rules import RuleSet
from mfawatch.org.audit import (
    DISABLED,
    MISSING,
    NOT_COVERED,
    NOT_REQUIRED,
    OK,
    PARTIAL,
    WRONG_TARGET,
    ObservedRule,
    assess_rules,
    cell_status,
    pattern_difference,
)
from mfawatch.org.forwarder import (
    expected_rules,
    forwarding_rule_name,
    member_template,
    parse_central_bus_arn,
)

# moto's default account: MOTO_ACCOUNT_ID would pin *every* request (assumed roles included) to one
# account, so the caller stays in the default account and members are reached by AssumeRole.
CENTRAL = "123456789012"
MEMBER = "222233334444"
OTHER = "333344445555"
BUS_ARN = f"arn:aws:events:us-east-1:{CENTRAL}:event-bus/mfawatch-central"
CENTRAL_BUS = parse_central_bus_arn(BUS_ARN)


# --- a tiny evaluator of the template's Conditions, so tests deploy what CloudFormation would ---


def evaluate_condition(node: Any, conditions: Mapping[str, Any], region: str, account: str) -> bool:
    """Evaluate a CloudFormation condition (Fn::Equals/Or/And/Not, Condition, Ref pseudo-params)."""

    def value(item: Any) -> Any:
        if isinstance(item, dict) and "Ref" in item:
            return {"AWS::Region": region, "AWS::AccountId": account}[item["Ref"]]
        return item

    (op, arg), *_ = node.items()
    if op == "Condition":
        return evaluate_condition(conditions[arg], conditions, region, account)
    if op == "Fn::Equals":
        return bool(value(arg[0]) == value(arg[1]))
    if op == "Fn::Not":
        return not evaluate_condition(arg[0], conditions, region, account)
    if op == "Fn::And":
        return all(evaluate_condition(a, conditions, region, account) for a in arg)
    if op == "Fn::Or":
        return any(evaluate_condition(a, conditions, region, account) for a in arg)
    raise AssertionError(f"unexpected intrinsic {op}")


def stack_resources(
    template: Mapping[str, Any], region: str, account: str, kind: str
) -> list[dict[str, Any]]:
    """The resources of ``kind`` that a stack instance in ``account``/``region`` would create."""
    conditions = template.get("Conditions", {})
    return [
        resource
        for resource in template["Resources"].values()
        if resource["Type"] == kind
        and (
            "Condition" not in resource
            or evaluate_condition({"Condition": resource["Condition"]}, conditions, region, account)
        )
    ]


def deploy_member_rules(client: Any, template: Mapping[str, Any], region: str, account: str) -> int:
    """Create the template's forwarding rules (pattern and targets as written) with boto3."""
    rules = [
        resource
        for resource in stack_resources(template, region, account, "AWS::Events::Rule")
        if "EventPattern" in resource["Properties"]  # the scheduled heartbeat is not forwarding
    ]
    for resource in rules:
        props = resource["Properties"]
        client.put_rule(
            Name=props["Name"],
            EventPattern=json.dumps(props["EventPattern"]),
            State=props["State"],
            EventBusName=props["EventBusName"],
        )
        client.put_targets(
            Rule=props["Name"],
            EventBusName=props["EventBusName"],
            Targets=[
                {
                    "Id": t["Id"],
                    "Arn": t["Arn"],
                    "RoleArn": f"arn:aws:iam::{account}:role/mfawatch/mfawatch-forwarder-{region}",
                }
                for t in props["Targets"]
            ],
        )
    return len(rules)


# --- pure assessment ----------------------------------------------------------------------------


def test_assess_rules_names_each_kind_of_gap(rules: RuleSet) -> None:
    a, b, c, d = list(rules)[:4]
    observed = {
        forwarding_rule_name(a): ObservedRule(
            forwarding_rule_name(a), "ENABLED", (BUS_ARN,), json.dumps(a.event_pattern)
        ),
        forwarding_rule_name(b): ObservedRule(forwarding_rule_name(b), "DISABLED", (BUS_ARN,)),
        forwarding_rule_name(c): ObservedRule(
            forwarding_rule_name(c), "ENABLED", ("arn:aws:sqs:us-east-1:1:q",)
        ),
    }
    result = assess_rules([a, b, c, d], observed, BUS_ARN)
    assert [(r.rule_id, r.status) for r in result] == [
        (a.id, OK),
        (b.id, DISABLED),
        (c.id, WRONG_TARGET),
        (d.id, MISSING),
    ]
    assert "arn:aws:sqs:us-east-1:1:q" in result[2].detail
    assert cell_status(result) == PARTIAL
    assert cell_status(result[:1]) == OK
    assert cell_status(result[3:]) == NOT_COVERED
    assert cell_status(()) == NOT_REQUIRED


def test_pattern_difference_compares_canonical_json_and_names_paths() -> None:
    expected = {"source": ["aws.signin"], "detail": {"eventName": ["ConsoleLogin"], "x": [1]}}
    assert pattern_difference('{"detail":{"x":[1],"eventName":["ConsoleLogin"]},'
                              '"source":["aws.signin"]}', expected) == ""  # fmt: skip
    assert pattern_difference(None, expected) == "the rule has no EventPattern"
    assert pattern_difference("{", expected) == "its EventPattern is not JSON"
    assert pattern_difference('{"source": ["aws.signin"]}', expected) == (
        "EventPattern differs from the rules bundle at detail (missing)"
    )
    assert pattern_difference('["aws.signin"]', expected) == (
        "EventPattern differs from the rules bundle at the whole pattern"
    )
    many = {f"k{i}": [i] for i in range(9)}
    assert pattern_difference(json.dumps(many), {}) == (
        "EventPattern differs from the rules bundle at k0 (not in the bundle), k1 (not in the "
        "bundle), k2 (not in the bundle), k3 (not in the bundle), k4 (not in the bundle) and 4 "
        "more"
    )
    # Array order is kept: EventBridge stores the pattern as written.
    assert pattern_difference('{"source": ["b", "a"]}', {"source": ["a", "b"]}) == (
        "EventPattern differs from the rules bundle at source"
    )


def test_template_conditions_match_the_audit_expectation(rules: RuleSet) -> None:
    """What a stack instance creates is exactly what the audit expects there."""
    regions = ["us-east-1", "eu-west-1", "ap-southeast-2"]
    for central_arn in (BUS_ARN, f"arn:aws:events:us-east-1:{CENTRAL}:event-bus/default"):
        central = parse_central_bus_arn(central_arn)
        template = member_template(rules, central, regions).template
        for account in (CENTRAL, MEMBER):
            for region in [*regions, "sa-east-1"]:
                created = {
                    r["Properties"]["Name"]
                    for r in stack_resources(template, region, account, "AWS::Events::Rule")
                    if "EventPattern" in r["Properties"]  # the heartbeat is checked centrally
                }
                expected = (
                    {
                        forwarding_rule_name(r)
                        for r in expected_rules(rules, region, account, central)
                    }
                    if region in regions
                    else set()
                )
                assert created == expected, (central_arn, account, region)
