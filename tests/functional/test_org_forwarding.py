"""Member account -> central bus -> SQS, with the forwarding rules of the generated template (moto).

The member's rules are created from ``forwarder-template``'s output (name, pattern, state, target
ARN as written; the conditions evaluated for the stack instance's account and Region), on the
member's default bus, targeting the central custom bus in another account. Moto delivers
bus-to-bus across accounts and Regions (``events_backends[account][region].put_events``), so the
events travel the real path: member rule -> central bus -> central catch-all rule -> SQS.

What moto does not emulate: the forwarder role is not assumed or checked, the central bus policy
(aws:PrincipalOrgID) is not enforced, and the re-put event carries the *central* account and
Region in its envelope where EventBridge keeps the member's; so these tests compare ``detail``
payloads, and the account/region of forwarded events is covered by the alert tests.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from chalicelib.core.records import as_envelope
from chalicelib.core.rules import RuleSet
from mfawatch.org.audit import AssumeRoleClients
from mfawatch.org.forwarder import member_template, parse_central_bus_arn
from mfawatch.patterns.engine import compile_pattern
from tests.conftest import EVENTS, load_event
from tests.support.audit import deploy_member_rules, stack_resources
from tests.support.wire import receive_all

CENTRAL = "123456789012"  # moto's default account (see tests/unit/test_audit.py)
MEMBER = "222233334444"
BUS_NAME = "mfawatch-central"
BUS_ARN = f"arn:aws:events:us-east-1:{CENTRAL}:event-bus/{BUS_NAME}"


def _noise() -> list[dict[str, Any]]:
    """Management and data events no rule selects: what must never leave the member account."""
    base = load_event("iam-checkmfa")
    get_object = {
        **base,
        "eventSource": "s3.amazonaws.com",
        "eventName": "GetObject",
        "eventType": "AwsApiCall",
        "eventID": "7f0e1c52-0000-4000-8000-00000000s3go",
        "requestParameters": {"bucketName": "reports", "key": "q3.pdf"},
        "responseElements": None,
    }
    describe = {
        **base,
        "eventSource": "ec2.amazonaws.com",
        "eventName": "DescribeInstances",
        "eventType": "AwsApiCall",
        "eventID": "7f0e1c52-0000-4000-8000-0000000ec2di",
        "responseElements": None,
    }
    return [as_envelope(get_object), as_envelope(describe)]


def member_style_events() -> list[dict[str, Any]]:
    """Every fixture as the envelope a member bus would carry, plus plain noise."""
    fixtures = [as_envelope(load_event(path.stem)) for path in sorted(EVENTS.glob("*.json"))]
    return fixtures + _noise()


def _key(detail: dict[str, Any]) -> str:
    return json.dumps(detail, sort_keys=True)


@pytest.fixture
def org(aws_credentials: None) -> Iterator[dict[str, Any]]:
    with mock_aws():
        session = boto3.Session(region_name="us-east-1")
        events = session.client("events")
        sqs = session.client("sqs")
        bus_arn = events.create_event_bus(Name=BUS_NAME)["EventBusArn"]
        assert bus_arn == BUS_ARN
        queue_url = sqs.create_queue(QueueName="central-catch-all")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        # The central side of the test: everything that reaches the bus lands in SQS.
        events.put_rule(
            Name="catch-all", EventBusName=BUS_NAME, EventPattern=json.dumps({"version": ["0"]})
        )
        events.put_targets(
            Rule="catch-all", EventBusName=BUS_NAME, Targets=[{"Id": "q", "Arn": queue_arn}]
        )
        yield {
            "clients": AssumeRoleClients(session, "mfawatch-audit"),
            "sqs": sqs,
            "queue_url": queue_url,
        }


def _drain(org: dict[str, Any]) -> Counter[str]:
    return Counter(_key(body["detail"]) for body in receive_all(org["sqs"], org["queue_url"]))


def _put(client: Any, envelopes: list[dict[str, Any]]) -> None:
    for envelope in envelopes:
        response = client.put_events(
            Entries=[
                {
                    "Source": envelope["source"],
                    "DetailType": envelope["detail-type"],
                    "Detail": json.dumps(envelope["detail"]),
                }
            ]
        )
        assert response["FailedEntryCount"] == 0, response


def _forward(org: dict[str, Any], rules: RuleSet, region: str) -> tuple[Counter[str], Counter[str]]:
    """Deploy the member stack for ``region``, put every event; (received, expected) by detail."""
    template = member_template(
        rules, parse_central_bus_arn(BUS_ARN), ["us-east-1", "eu-west-1"]
    ).template
    member = org["clients"](MEMBER, region)
    assert deploy_member_rules(member, template, region, MEMBER) > 0
    envelopes = member_style_events()
    _put(member, envelopes)
    deployed = [
        compile_pattern(resource["Properties"]["EventPattern"])
        for resource in stack_resources(template, region, MEMBER, "AWS::Events::Rule")
        if "EventPattern" in resource["Properties"]  # not the scheduled heartbeat
    ]
    expected: Counter[str] = Counter()
    for envelope in envelopes:
        # One forwarded copy per matching rule: EventBridge delivers per rule, not per event.
        hits = sum(pattern.matches(envelope) for pattern in deployed)
        if hits:
            expected[_key(envelope["detail"])] += hits
    return _drain(org), expected


def test_exactly_the_selected_events_reach_the_central_queue(
    org: dict[str, Any], rules: RuleSet
) -> None:
    received, expected = _forward(org, rules, "us-east-1")
    assert received == expected
    forwarded = {json.loads(k)["eventName"] for k in received}
    # EnableMFADevice is a takeover-chain step (rule mfa-takeover-steps) since issue 16.
    assert {
        "ConsoleLogin",
        "DeactivateMFADevice",
        "CredentialVerification",
        "EnableMFADevice",
    } <= forwarded
    for noise in ("GetObject", "DescribeInstances", "CheckMfa"):
        assert noise not in forwarded
    # Every deployed rule's own positive fixture made it across, e.g. a failed MFA sign-in.
    failed_mfa = as_envelope(load_event("iam-consolelogin-failure-mfa-yes"))
    assert received[_key(failed_mfa["detail"])] >= 1


def test_another_region_forwards_sign_ins_cross_region_but_no_iam_events(
    org: dict[str, Any], rules: RuleSet
) -> None:
    received, expected = _forward(org, rules, "eu-west-1")
    assert received == expected
    names = {json.loads(k)["eventName"] for k in received}
    assert "ConsoleLogin" in names
    # IAM API calls reach EventBridge in us-east-1 only; the stack has no IAM rule elsewhere.
    assert not names & {"DeactivateMFADevice", "DeleteVirtualMFADevice"}


def test_a_region_outside_the_list_forwards_nothing(org: dict[str, Any], rules: RuleSet) -> None:
    template = member_template(rules, parse_central_bus_arn(BUS_ARN), ["us-east-1"]).template
    member = org["clients"](MEMBER, "ap-southeast-2")
    assert deploy_member_rules(member, template, "ap-southeast-2", MEMBER) == 0
    _put(member, member_style_events())
    assert _drain(org) == Counter()
