"""Issue 18, defects 7-12: what DynamoDB documents and the state must survive whatever the input,
the clock or the configuration: late index entries, lazy TTL, a scheduler short of time, items
and keys of bounded size, settings that fit together. Each test failed on the code before its fix.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator

import pytest

from chalicelib.core.config import Threshold, settings_from_env
from chalicelib.core.errors import ConfigError, StateStoreError
from chalicelib.core.notifications import KIND_ALERT, KIND_STORM, KIND_SUMMARY
from chalicelib.core.state import MAX_KEY_BYTES, IndexLag, MemoryStore
from chalicelib.pipeline.rates import storm_key
from chalicelib.pipeline.service import AlertService, MemoryPublisher
from mfawatch.deploy.handlers import app_handler_names
from mfawatch.deploy.templates import load_stage_config
from tests.support.simulation import (
    IAM_FAILURE,
    RULES,
    Scenario,
    Simulation,
    at,
    iam_failure,
    settings,
    violations,
)

DAY = 24 * 3600.0


@pytest.fixture(autouse=True)
def _quiet() -> Iterator[None]:
    logging.disable(logging.CRITICAL)
    yield
    logging.disable(logging.NOTSET)


def _run_minutes(service: AlertService, store: MemoryStore, start: float, end: float) -> None:
    clock = start
    while clock <= end:
        service.tick(at(clock))
        clock += 60.0


# --- defect 11: keys built from event fields ---------------------------------------------------


def test_a_3000_character_user_name_still_alerts_and_every_key_fits_dynamodb() -> None:
    # MemoryStore refuses keys over 2048 bytes as DynamoDB does (ValidationException): on the
    # code before the fix every write failed and the event was parked without an alert.
    store = MemoryStore()
    publisher = MemoryPublisher(settings())
    service = AlertService(RULES, publisher, store, settings())
    name = "a" * 3000
    for i in range(3):
        arrival = iam_failure(f"long-{i}", 10.0 * i, user=name)
        service.handle(arrival.rule_id, arrival.envelope, at(arrival.at))
    _run_minutes(service, store, 60.0, 1800.0)
    kinds = Counter(n.kind for n in publisher.sent)
    assert kinds == {KIND_ALERT: 1, KIND_SUMMARY: 1}
    assert publisher.sent[0].principal == name, "the alert names the principal in full"
    assert max(len(key.encode()) for key in store.items()) < MAX_KEY_BYTES // 2


# --- defect 8: lazy TTL --------------------------------------------------------------------------


def test_a_second_storm_days_later_does_not_recount_the_first_storms_held_records() -> None:
    # DynamoDB deletes expired items "typically within a few days"; MemoryStore never does here.
    config = settings(topic_rate=Threshold(2, 5), principal_rate=Threshold(100, 5))
    store = MemoryStore()
    publisher = MemoryPublisher(config)
    service = AlertService(RULES, publisher, store, config)

    def storm(start: float, size: int, tag: str) -> list[int]:
        first = len(publisher.sent)
        for i in range(size):
            arrival = iam_failure(f"{tag}-{i}", start + 30.0 * i, f"{tag}{i}", f"192.0.2.{i + 1}")
            _run_minutes(service, store, arrival.at - 29.0, arrival.at)
            service.handle(arrival.rule_id, arrival.envelope, at(arrival.at))
        _run_minutes(service, store, start + 30.0 * size, start + 30.0 * size + 4 * 3600)
        return [n.count for n in publisher.sent[first:] if n.kind in (KIND_ALERT, KIND_STORM)]

    assert sum(storm(0.0, 30, "one")) == 30
    # Two days on, TTL has deleted the storm item (its expiry passed) but not yet the held
    # records: some expired (still returned by queries), some not.
    later = 2 * DAY + 900.0
    store.sweep(later, keys=[storm_key(IAM_FAILURE)])
    second = storm(later, 5, "two")
    assert sum(second) == 5, second


# --- defect 12: settings that fit together -------------------------------------------------------

STAGE_ENV = {"MFAWATCH_TOPIC_ARN": "arn:aws:sns:us-east-1:111122223333:mfawatch-dev-alerts"}


@pytest.mark.parametrize(
    ("environment", "named"),
    [
        ({"MFAWATCH_LAMBDA_TIMEOUT": "120"}, ["MFAWATCH_LAMBDA_TIMEOUT", "lease"]),
        ({"MFAWATCH_LAMBDA_TIMEOUT": "90"}, ["MFAWATCH_LAMBDA_TIMEOUT", "lease"]),
        (
            {"MFAWATCH_LAMBDA_TIMEOUT": "60", "MFAWATCH_SETTLE_SECONDS": "30"},
            ["MFAWATCH_SETTLE_SECONDS", "MFAWATCH_LAMBDA_TIMEOUT"],
        ),
        ({"MFAWATCH_LAMBDA_TIMEOUT": "1000"}, ["MFAWATCH_LAMBDA_TIMEOUT", "900"]),
        ({"MFAWATCH_CONCURRENCY": "1"}, ["MFAWATCH_CONCURRENCY", "from 2", "reserved_concurrency"]),
        ({"MFAWATCH_CONCURRENCY": "1001"}, ["MFAWATCH_CONCURRENCY", "to 1000"]),
        ({"MFAWATCH_CONCURRENCY": "five"}, ["MFAWATCH_CONCURRENCY", "whole number"]),
    ],
)
def test_timing_settings_that_do_not_fit_are_refused_at_init_naming_them(
    environment: dict[str, str], named: list[str]
) -> None:
    with pytest.raises(ConfigError) as refused:
        settings_from_env({**STAGE_ENV, **environment})
    assert all(name in str(refused.value) for name in named), str(refused.value)


def test_every_stage_and_function_timeout_fits_the_lease_and_settle_delay() -> None:
    # The timeout Lambda enforces is lambda_timeout in .chalice/config.json; the functions learn
    # it from MFAWATCH_LAMBDA_TIMEOUT in the same file: the two must agree, and fit.
    for stage in ("dev", "prod"):
        config = load_stage_config(stage)
        for handler in [None, *(r.handler_name for r in RULES), "send_due_summaries"]:
            timeout = float(config.lookup(handler or "", "lambda_timeout", 3))
            environment = config.environment(handler)
            assert float(environment["MFAWATCH_LAMBDA_TIMEOUT"]) == timeout, (stage, handler)
            assert settings_from_env(environment).lambda_timeout_seconds == timeout


def test_every_function_is_capped_at_the_stage_concurrency_it_is_told() -> None:
    # Lambda enforces reserved_concurrency from .chalice/config.json; the functions learn it from
    # MFAWATCH_CONCURRENCY (checked at init) and the consumer's event source takes it as its
    # maximum concurrency: they must agree. The scheduler alone runs one environment.
    for stage in ("dev", "prod"):
        config = load_stage_config(stage)
        for handler in app_handler_names():
            settings = settings_from_env(config.environment(handler))
            expected = 1 if handler == "send_due_summaries" else settings.concurrency
            assert config.reserved_concurrency(handler) == expected, (stage, handler)
        assert config.consumer_concurrency() == settings.concurrency


# --- defect 7: late group index entries ----------------------------------------------------------


def _late(event_id: str, lag: float) -> IndexLag:
    """Index lag: ``lag`` seconds for the claim of ``event_id``, none for anything else."""

    def index_lag(key: str, at: float) -> float:
        return lag if key.endswith(f"#{event_id}") else 0.0

    return index_lag


@pytest.mark.parametrize("lag", [200.0, 800.0])
def test_a_repeat_whose_index_entry_shows_up_late_is_still_summarized(lag: float) -> None:
    # The last repeat is processed just before its window ends (900 s); the look at 1020 s cuts
    # at 930 s, but the repeat's group index entry shows up only later (on main: 2 of 3 counted).
    scenario = Scenario(
        "index-lag",
        (iam_failure("lag-0", 0.0), iam_failure("lag-1", 10.0), iam_failure("lag-2", 893.0)),
        settings(),
    )
    outcome = Simulation(scenario, index_lag=_late("lag-2", lag)).run()
    assert violations(outcome) == []
    counted = [(n.kind, n.count) for n in outcome.notifications()]
    assert sum(count for _, count in counted) == 3, counted
    assert Counter(kind for kind, _ in counted)[KIND_ALERT] == 1


@pytest.mark.parametrize("lag", [120.0, 600.0])
def test_a_held_alert_whose_index_entry_shows_up_late_is_still_in_a_digest(lag: float) -> None:
    config = settings(topic_rate=Threshold(2, 5), principal_rate=Threshold(100, 5))
    arrivals = tuple(
        iam_failure(f"hold-{i}", 20.0 * i, user=f"h{i}", ip=f"192.0.2.{i + 1}") for i in range(16)
    )
    # The storm opens at 42 s; its first digest (due at 342 s, run at 360 s) cuts at 270 s. The
    # claim of the alert held at 262 s shows up in the index only after that run.
    outcome = Simulation(
        Scenario("storm-lag", arrivals, config), index_lag=_late("hold-13", lag)
    ).run()
    assert violations(outcome) == []
    digests = [n for n in outcome.notifications() if n.kind == KIND_STORM]
    assert sum(n.count for n in digests) == 14


# --- defect 10: items bounded over time ----------------------------------------------------------


def test_huge_attacker_controlled_fields_keep_every_item_under_dynamodb_s_400_kb() -> None:
    # The simulated store refuses items over 400 KB as DynamoDB does; a 300 KB user agent and a
    # 3,000-character user name still give the alert, the summary and exact counts.
    arrivals = []
    for i in range(3):
        arrival = iam_failure(f"big-{i}", 10.0 * i, user="b" * 3000)
        arrival.envelope["detail"]["userAgent"] = "x" * 300_000
        arrivals.append(arrival)
    outcome = Simulation(Scenario("huge", tuple(arrivals), settings())).run()
    assert violations(outcome) == []
    assert [n.kind for n in outcome.notifications()] == [KIND_ALERT, KIND_SUMMARY]
    with pytest.raises(StateStoreError, match="Item size has exceeded"):
        MemoryStore(check_sizes=True).put("k", {"ua": "x" * 500_000}, 0.0)
