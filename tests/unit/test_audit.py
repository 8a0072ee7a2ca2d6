"""Coverage audit, pure: assessing observed rules, and the template's Region conditions.

The audit against moto (several accounts through assumed roles) is tests/functional/test_audit.py.
"""

from __future__ import annotations

import json

from chalicelib.core.rules import RuleSet
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
from tests.support.audit import (
    BUS_ARN,
    CENTRAL,
    MEMBER,
    stack_resources,
)

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


def test_a_rule_of_read_only_events_that_is_only_enabled_is_a_finding(rules: RuleSet) -> None:
    success = rules.get("sign-in-success")
    name = forwarding_rule_name(success)
    pattern = json.dumps(success.event_pattern)

    def observed(state: str) -> dict[str, ObservedRule]:
        return {name: ObservedRule(name, state, (BUS_ARN,), pattern)}

    (plain,) = assess_rules([success], observed("ENABLED"), BUS_ARN)
    assert (plain.status, plain.detail) == (
        "read-only-excluded",
        "state ENABLED, needs ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS",
    )
    (right,) = assess_rules(
        [success], observed("ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS"), BUS_ARN
    )
    assert right.status == OK


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
