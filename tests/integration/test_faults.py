"""The delivery promise under load and faults (issue 10), the short version of
``bench/bench_faults.py``: concurrent Lambda-like environments against moto_server, faults
injected through botocore event hooks, everything counted at the wire (SQS queues subscribed to
the outputs' SNS topics, a ``before-send.dynamodb`` request counter).

Each scenario runs once per session (fixed seeds); the tests assert invariants, never timings.
Sizes: 36 failed-MFA events of 3 users from 8 IPs within 5 minutes, 30% delivered twice,
successes and Identity Center sign-ins, 3 environments; two scenarios: 10% DynamoDB errors past
botocore's retries (the bench's own), and SNS failures with crashes between outputs. Left to the
bench: "no faults" (every check below holds in both faulty scenarios, and the functional tests
cover the fault-free path) and throttling (botocore's backoff sleeps in real time). The full size
and every scenario on its own: ``bench/bench_faults.py`` (issue 15: the harness took 122 s of
``make test`` at 120 events and five scenarios). DynamoDB and SNS faults are not combined in one
scenario: a fail-open marked copy is published once, best effort, so a crash or SNS failure
during it leaves it on some outputs only (its alert, deduplicated, still reaches every output).

Events that fail three attempts are parked on the failed-events queue as Lambda's on-failure
destination does, and the consumer of parked events replays them through SQS (issue 18): the
counts are exact only because it does.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from bench.bench_faults import (
    CI_SIZE,
    Result,
    Scenario,
    requests_per_delivery_type,
    run_scenario,
)
from bench.bench_faults import SCENARIOS as BENCH_SCENARIOS

pytestmark = pytest.mark.integration

FAULTS = next(s for s in BENCH_SCENARIOS if s.name == "10% DynamoDB errors")
SCENARIOS = (FAULTS, Scenario("SNS failures and crashes", sns_errors=0.10, crash_every=7))


def scenarios() -> pytest.MarkDecorator:
    """Parametrize over the scenarios (ids: their names)."""
    return pytest.mark.parametrize("scenario", [pytest.param(s, id=s.name) for s in SCENARIOS])


def assert_counted_exactly_once(result: Result) -> None:
    """Per rule, the counts of every alert, summary and storm digest received add up to the
    distinct events accepted: a shortfall is an event never counted, an excess one counted
    twice. (A shortfall under concurrent DynamoDB faults, about one run in eight, was a stuck
    leader's window handed to a stand-in whose claim was never written: docs/design.md.)"""
    counted, distinct = result.counted(), result.distinct
    assert counted == distinct, f"counted {counted} != accepted {distinct}"


BUDGET = {
    # Issue 18 asks for 7; 8 since the campaign detectors (issue 16): an alert (a new incident,
    # i.e. a new principal and IP in the window) adds its member to its source IP's campaign
    # item with one idempotent ADD, whose returned members decide the escalation. Repeats,
    # duplicates, context steps and successes cost nothing more. Why no write of the alert can
    # carry it (claim, incident, principal, campaign and topic each need their own request; the
    # outbox and one confirmation per output follow): docs/design.md, "Campaigns", "Cost".
    "alert": 8,
    "repeat": 4,
    "duplicate": 1,
    "context step": 2,
    "success, no recent failures": 2,
}


@pytest.fixture(scope="module")
def results(moto_server: str) -> Iterator[dict[str, Result]]:
    chalicelib = logging.getLogger("chalicelib")
    level = chalicelib.level
    chalicelib.setLevel(logging.CRITICAL)  # thousands of injected failures, each logged
    try:
        yield {s.name: run_scenario(moto_server, s, CI_SIZE) for s in SCENARIOS}
    finally:
        chalicelib.setLevel(level)


@scenarios()
def test_the_harness_ran_the_scenario(results: dict[str, Result], scenario: Scenario) -> None:
    result = results[scenario.name]
    assert result.unexpected == []
    assert sum(result.invocations.values()) >= result.deliveries
    kinds = result.kinds()
    assert kinds["alert"] >= 1
    assert len(result.expected_brute_force) >= 3
    assert result.expected_fatigue and result.quiet_successes
    injected = " ".join(result.faults)
    if scenario.dynamodb_errors:
        assert "InternalServerError" in injected
    if scenario.throttling:
        assert "HTTP 400 ThrottlingException" in injected
    if scenario.sns_errors:
        # Which output a random SNS fault hits depends on the threads' timing: at CI size one
        # output may see none, so the check is that SNS faults were injected at all.
        assert "SNS error on" in injected
    if scenario.crash_every:
        assert "crash before the first output" in injected and "crash between" in injected
        assert result.invocations["Crash"] > 0
    assert kinds["storm"] >= 1, "the load exceeds the topic's rate limit"


def test_every_parked_event_is_replayed_by_the_consumer_through_sqs(
    results: dict[str, Result],
) -> None:
    # Issue 18: before the consumer, events that failed three attempts stayed on the
    # failed-events queue and were never counted (25-26 of 300 at the size).
    result = results[FAULTS.name]
    assert result.dead_lettered, "the faults park events (three failed attempts)"
    assert result.replayed == result.dead_lettered
    assert result.left_parked == 0
    assert_counted_exactly_once(result)


@scenarios()
def test_no_notification_reaches_an_output_twice(
    results: dict[str, Result], scenario: Scenario
) -> None:
    # Except what the guarantee allows and the harness saw happen: an id whose confirmation on
    # that output failed every attempt at the wire is published again by the retry, same id.
    assert results[scenario.name].twice() == {"alerts": {}, "pager": {}}


@scenarios()
def test_every_event_is_counted_exactly_once(
    results: dict[str, Result], scenario: Scenario
) -> None:
    result = results[scenario.name]
    # The pager gets the same alerts and digests (the counted rules are HIGH), no summaries.
    pager = result.on("pager")
    assert {r.kind for r in pager} <= {"alert", "escalation", "storm"}
    assert all(r.document["severity"] in ("HIGH", "CRITICAL") for r in pager)
    on_alerts = {r.id for r in result.on("alerts") if r.kind in ("alert", "storm")}
    assert {r.id for r in pager if r.kind != "escalation"} == on_alerts
    assert_counted_exactly_once(result)


@scenarios()
def test_no_escalation_is_lost(results: dict[str, Result], scenario: Scenario) -> None:
    result = results[scenario.name]
    for output in ("alerts", "pager"):
        escalations = result.escalations(output)
        assert escalations["lost"] == 0, (output, escalations)
        assert escalations["fatigue_lost"] == 0, (output, escalations)


@scenarios()
def test_no_fatigue_escalation_for_a_success_without_failures(
    results: dict[str, Result], scenario: Scenario
) -> None:
    assert results[scenario.name].escalations("alerts")["fatigue_unexpected"] == 0


@pytest.mark.parametrize(
    "scenario",
    # DynamoDB failing after botocore's retries may fail open (nothing decided): that scenario's
    # marked copies are counted by the bench and bounded by tests/unit/test_fail_open.py.
    [pytest.param(s, id=s.name) for s in SCENARIOS if not (s.dynamodb_errors or s.throttling)],
)
def test_no_fail_open_unless_dynamodb_fails(results: dict[str, Result], scenario: Scenario) -> None:
    result = results[scenario.name]
    assert result.fail_opens() == 0
    assert result.state_store_errors == 0


def test_dynamodb_requests_per_delivery_within_budget(moto_server: str) -> None:
    counts = requests_per_delivery_type(moto_server)
    assert set(counts) == set(BUDGET)
    assert {k: v for k, v in counts.items() if v > BUDGET[k]} == {}
