"""Route (a)'s rule-state step (:mod:`mfawatch.deploy.rule_states`) against moto's EventBridge:
the rule as ``chalice deploy`` writes it, then the state set, with every other field and the
target left as they were; a second pass writes nothing, and a later ``chalice deploy`` (which
resets the state) is undone by the next."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from chalicelib import constants as c
from chalicelib.rules import load_bundle
from mfawatch.deploy.rule_states import EventRules, rule_states
from mfawatch.deploy.stacks import StackError
from mfawatch.deploy.templates import StageNames

NAMES = StageNames("mfawatch", "dev")
RULE = "mfawatch-dev-on_sign_in_success-event"
PATTERN = json.dumps(
    {"source": ["aws.signin"], "detail-type": ["AWS Console Sign In via CloudTrail"]}
)
FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:mfawatch-dev-on_sign_in_success"


@pytest.fixture
def events(aws_credentials: None) -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("events", region_name="us-east-1")


def chalice_deploys(events: Any) -> None:
    """What Chalice's ``get_or_create_rule_arn`` and ``connect_rule_to_lambda`` call."""
    events.put_rule(Name=RULE, EventPattern=PATTERN, Description="sign-in-success")
    events.put_targets(Rule=RULE, Targets=[{"Id": "1", "Arn": FUNCTION_ARN}])


def described(events: Any) -> dict[str, Any]:
    rule = dict(events.describe_rule(Name=RULE))
    rule.pop("ResponseMetadata")
    return rule


def targets(events: Any) -> list[dict[str, Any]]:
    return list(events.list_targets_by_rule(Rule=RULE)["Targets"])


def test_the_bundle_names_the_sign_in_success_rule_and_only_deployed_handlers() -> None:
    handlers = [rule.handler_name for rule in load_bundle()]
    assert rule_states(load_bundle(), NAMES, handlers) == {RULE: c.RULE_STATE_WITH_READ_ONLY}
    assert rule_states(load_bundle(), NAMES, ["heartbeat"]) == {}


def test_the_state_is_set_after_each_chalice_deploy_and_nothing_else_changes(events: Any) -> None:
    chalice_deploys(events)
    before, attached = described(events), targets(events)
    assert before["State"] == c.RULE_STATE_ENABLED
    rules = EventRules(events)

    assert rules.set_state(RULE, c.RULE_STATE_WITH_READ_ONLY) is True
    after = described(events)
    assert after == {**before, "State": c.RULE_STATE_WITH_READ_ONLY}
    assert targets(events) == attached

    assert rules.set_state(RULE, c.RULE_STATE_WITH_READ_ONLY) is False  # a second deploy
    assert described(events) == after

    chalice_deploys(events)  # `mfawatch deploy --force`, or a plain `chalice deploy`
    assert described(events)["State"] == c.RULE_STATE_ENABLED
    assert rules.set_state(RULE, c.RULE_STATE_WITH_READ_ONLY) is True
    assert described(events) == after
    assert targets(events) == attached


def test_put_rule_is_given_every_field_describe_rule_returned() -> None:
    """PutRule keeps no omitted value: a role, a custom bus and a schedule must go back too."""
    client = boto3.client(
        "events", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    kept = {
        "EventPattern": PATTERN,
        "Description": "d",
        "RoleArn": "arn:aws:iam::123456789012:role/r",
    }
    with Stubber(client) as stubber:
        stubber.add_response(
            "describe_rule",
            {**kept, "Name": RULE, "Arn": "arn", "State": "ENABLED", "EventBusName": "bus"},
            {"Name": RULE},
        )
        stubber.add_response(
            "put_rule",
            {"RuleArn": "arn"},
            {**kept, "Name": RULE, "State": c.RULE_STATE_WITH_READ_ONLY, "EventBusName": "bus"},
        )
        assert EventRules(client).set_state(RULE, c.RULE_STATE_WITH_READ_ONLY) is True
        stubber.assert_no_pending_responses()


def test_a_missing_rule_is_an_error_that_names_it(events: Any) -> None:
    with pytest.raises(StackError) as raised:
        EventRules(events).set_state(RULE, c.RULE_STATE_WITH_READ_ONLY)
    assert raised.value.error == (
        f"EventBridge rule {RULE} does not exist, so it cannot be set to "
        "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS"
    )
    assert "mfawatch deploy --force" in raised.value.fix
