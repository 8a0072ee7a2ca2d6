"""The audit compares each member rule's EventPattern with the bundle's (moto, through the role).

A StackSet not updated after `rules build` leaves stale patterns; a pattern edited in the console
forwards other events. Both are findings; the same pattern with its keys in another order is not.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
from click.testing import CliRunner

from chalicelib.core.rules import Rule, RuleSet
from mfawatch.cli.org import make_audit_command
from mfawatch.org.audit import OK, PARTIAL, PATTERN_DIFFERS, AssumeRoleClients, run_audit
from mfawatch.org.forwarder import expected_rules, forwarding_rule_name, member_template
from tests.support.audit import (  # the moto estate those tests build
    BUS_ARN,
    CENTRAL_BUS,
    MEMBER,
    deploy_member_rules,
    member_client,
)

REGION = "us-east-1"


def _reordered(value: Any) -> Any:
    """The same JSON with every object's keys in reverse order."""
    if isinstance(value, dict):
        return {key: _reordered(value[key]) for key in reversed(list(value))}
    if isinstance(value, list):
        return [_reordered(item) for item in value]
    return value


def _deploy(session: boto3.Session, rules: RuleSet) -> Any:
    client = member_client(session, MEMBER, REGION)
    deploy_member_rules(client, member_template(rules, CENTRAL_BUS).template, REGION, MEMBER)
    return client


def _put_pattern(client: Any, rule: Rule, pattern: Any) -> None:
    text = json.dumps(pattern, indent=1)  # whitespace differs from the template's too
    # PutRule keeps no omitted value: the state the template gives the rule, again.
    state = rule.eventbridge_state
    client.put_rule(Name=forwarding_rule_name(rule), EventPattern=text, State=state)


def _audit(session: boto3.Session, rules: RuleSet) -> dict[str, tuple[str, str]]:
    report = run_audit(
        rules, CENTRAL_BUS, [MEMBER], [REGION], AssumeRoleClients(session, "mfawatch-audit")
    )
    (cell,) = report.cells
    return {r.rule_id: (r.status, r.detail) for r in cell.rules}


def test_identical_patterns_in_another_key_order_are_ok(
    aws: boto3.Session,
    rules: RuleSet,
) -> None:
    client = _deploy(aws, rules)
    for rule in expected_rules(rules, REGION):
        _put_pattern(client, rule, _reordered(rule.event_pattern))
    assert {status for status, _ in _audit(aws, rules).values()} == {OK}


def _change_one(session: boto3.Session, rules: RuleSet, rule_id: str, change: Any) -> str:
    """Deploy every rule, change one rule's pattern with ``change``; that rule's finding detail
    (every other rule stays ``ok``)."""
    client = _deploy(session, rules)
    pattern = json.loads(json.dumps(rules.get(rule_id).event_pattern))
    change(pattern)
    _put_pattern(client, rules.get(rule_id), pattern)
    found = _audit(session, rules)
    assert {status for other, (status, _) in found.items() if other != rule_id} == {OK}
    status, detail = found[rule_id]
    assert status == PATTERN_DIFFERS
    return detail


def test_a_stale_pattern_is_a_finding_naming_the_field(
    aws: boto3.Session,
    rules: RuleSet,
) -> None:
    def older_version(pattern: dict[str, Any]) -> None:  # an older rule matched more
        del pattern["detail"]["additionalEventData"]

    assert _change_one(aws, rules, "iam-console-mfa-failure", older_version) == (
        "EventPattern differs from the rules bundle at detail.additionalEventData (missing)"
    )


def test_an_edited_pattern_is_a_finding_and_fails_the_command(
    aws: boto3.Session,
    rules: RuleSet,
) -> None:
    def edited_in_the_console(pattern: dict[str, Any]) -> None:
        pattern["detail"]["sourceIPAddress"] = ["203.0.113.7"]
        pattern["source"] = ["aws.signin", "aws.sts"]

    rule = rules.get("root-console-failure")
    assert _change_one(aws, rules, rule.id, edited_in_the_console) == (
        "EventPattern differs from the rules bundle at detail.sourceIPAddress (not in the "
        "bundle), source"
    )

    command = make_audit_command(session_factory=lambda: aws)
    result = CliRunner().invoke(
        command, ["--central-bus-arn", BUS_ARN, "--accounts", MEMBER, "--regions", REGION]
    )
    assert result.exit_code == 1, result.output
    assert f"{MEMBER}  {REGION}" in result.stdout and PARTIAL in result.stdout
    assert (
        f"{forwarding_rule_name(rule)}: pattern-differs (EventPattern differs from the rules "
        "bundle at detail.sourceIPAddress (not in the bundle), source)"
    ) in result.stdout
