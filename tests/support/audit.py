"""The Organization audit's test estate: accounts, the central bus, the member template's rules
deployed as CloudFormation would (its Conditions evaluated), and a member's client through the
audit role (used by the unit, functional and integration tests of the audit and the forwarder;
the moto session fixture ``aws`` is in tests/functional/conftest.py)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import boto3

from mfawatch.org.audit import AssumeRoleClients
from mfawatch.org.forwarder import parse_central_bus_arn

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


def member_client(session: boto3.Session, account: str, region: str) -> Any:
    """An EventBridge client in ``account`` and ``region`` through the audit role, as the audit."""
    return AssumeRoleClients(session, "mfawatch-audit")(account, region)
