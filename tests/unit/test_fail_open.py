"""Fail-open floods, stage-wide: DynamoDB down, 120 failed MFA sign-ins in two minutes, Lambda's
asynchronous invocations on a virtual clock (:mod:`tests.support.lambda_async`).

Each execution environment publishes at most one marked copy a minute
(``FAIL_OPEN_PER_ENVIRONMENT``), so the raw publishes are bounded by the environments running,
and only the functions' reserved concurrency bounds those. The cap is the stage's own
(tests/stage/config.json, as ``.chalice/config.json``): the same numbers Chalice deploys.
"""

from __future__ import annotations

from collections import Counter

import pytest

from chalicelib.core.rules import load_bundle
from chalicelib.pipeline.fail_open import FAIL_OPEN_PER_ENVIRONMENT, FAIL_OPEN_PER_MINUTE
from mfawatch.deploy.templates import PARKED_HANDLER, load_stage_config
from tests.support.lambda_async import SCHEDULER, CappedLambda, Result, failed_mfa_flood
from tests.support.simulation import IAM_FAILURE, Scenario, settings, violations

RULES = load_bundle()
HANDLER = RULES.get(IAM_FAILURE).handler_name
#: DynamoDB fails every request for the first 15 minutes.
OUTAGE = (0.0, 900.0)
#: A marked copy of a HIGH alert goes to both outputs of the simulated stage (alerts, pager).
DESTINATIONS = 2
FLOOD = Scenario("fail-open flood", failed_mfa_flood(120), settings())


def _stage_caps() -> tuple[int, int]:
    """(a rule function's reserved concurrency, the consumer's) as the dev stage deploys them."""
    stage = load_stage_config("dev")
    return stage.reserved_concurrency(HANDLER), stage.consumer_concurrency()


def _run(cap: int | None, consumer_cap: int | None, max_event_age: float = 3600.0) -> Result:
    return CappedLambda(
        RULES,
        FLOOD,
        cap=cap,
        consumer_cap=consumer_cap,
        outage=OUTAGE,
        max_event_age=max_event_age,
    ).run()


def _per_minute(result: Result) -> Counter[int]:
    return Counter(int(p.at // 60) for p in result.fail_open_publishes())


def test_dynamodb_down_the_raw_publishes_stay_within_the_stage_cap_and_no_event_is_lost() -> None:
    cap, consumer_cap = _stage_caps()
    result = _run(cap, consumer_cap)
    # The caps held, and were reached: events were throttled.
    assert result.environments[HANDLER] == cap
    assert result.environments[PARKED_HANDLER] == consumer_cap
    assert result.environments[SCHEDULER] == 1
    assert result.throttles[HANDLER] > 0
    # Per function and minute: its environments, one copy each, to each output.
    for (function, minute), publishes in result.fail_opens_per_minute().items():
        limit = {HANDLER: cap, PARKED_HANDLER: consumer_cap, SCHEDULER: 1}[function]
        assert publishes <= limit * FAIL_OPEN_PER_ENVIRONMENT * DESTINATIONS, (function, minute)
    # For the whole stage, whatever the minute.
    stage_limit = (cap + consumer_cap + 1) * FAIL_OPEN_PER_ENVIRONMENT * DESTINATIONS
    assert max(_per_minute(result).values()) <= stage_limit
    # The copies still carry at most 10 ids a minute of event time (two minutes of events).
    copies = result.fail_open_publishes()
    assert {p.notification.count for p in copies} == {0}
    assert len({p.notification.id for p in copies}) <= 2 * FAIL_OPEN_PER_MINUTE
    # Throttled events are retried, parked ones replayed: once DynamoDB answers, every event is
    # counted exactly once and none is left in the dead-letter queue.
    assert result.dead_letters == []
    assert violations(result.counted_outcome()) == []


@pytest.mark.slow
def test_without_the_cap_the_same_outage_floods() -> None:
    cap, consumer_cap = _stage_caps()
    capped = _run(cap, consumer_cap)
    uncapped = _run(None, None)
    assert uncapped.environments[HANDLER] > cap
    stage_limit = (cap + consumer_cap + 1) * FAIL_OPEN_PER_ENVIRONMENT * DESTINATIONS
    assert max(_per_minute(uncapped).values()) > stage_limit
    assert len(uncapped.fail_open_publishes()) > 2 * len(capped.fail_open_publishes())
    assert violations(uncapped.counted_outcome()) == []


@pytest.mark.slow
@pytest.mark.parametrize("max_event_age", [60.0, 3600.0])
def test_throttled_events_past_their_maximum_age_reach_the_consumer_not_the_void(
    max_event_age: float,
) -> None:
    # An operator may lower the maximum event age to its minimum (60 s): the events the cap
    # throttles for longer go to the on-failure destination (EventAgeExceeded), whose consumer
    # counts them once DynamoDB answers.
    cap, consumer_cap = _stage_caps()
    result = _run(cap, consumer_cap, max_event_age=max_event_age)
    if max_event_age == 60.0:
        assert result.expired, "some events outlived the maximum event age"
    assert result.dead_letters == []
    assert violations(result.counted_outcome()) == []
