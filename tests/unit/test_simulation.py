"""Deterministic simulation (tests/support/simulation.py): a fault and, separately, a process kill
at every store and publish call of each scenario, and every arrival order within the retry
horizon; the invariants decide (every accepted event counted once, nothing published twice but
the documented ambiguous cases, no escalation or fatigue success lost).

CI size here; ``bench/bench_simulation.py`` runs the full size and prints the figures. The
enumerations are marked ``enumeration``: ``make test`` runs them, ``make quick`` leaves them out.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from tests.support.simulation import (
    FAULT_KINDS,
    RESENT,
    FaultPlan,
    Interleaving,
    Report,
    Scenario,
    SimulatedStore,
    Simulation,
    campaign_scenarios,
    enumerate_faults,
    enumerate_orders,
    enumerate_side_by_side,
    fault_runs,
    lag_everything,
    outage_run,
    random_fault_sets,
    scenarios,
    stuck_leader,
    violations,
)

SCENARIOS = {scenario.name: scenario for scenario in (*scenarios("ci"), *campaign_scenarios())}

# No module fixture: make test spreads these tests over its workers one by one.
pytestmark = pytest.mark.spread


@pytest.fixture(autouse=True)
def _quiet() -> Iterator[None]:
    # Thousands of injected failures are logged by the service; the invariants are the output.
    logging.disable(logging.CRITICAL)
    yield
    logging.disable(logging.NOTSET)


def _params() -> list[pytest.ParameterSet]:
    return [pytest.param(scenario, id=name) for name, scenario in SCENARIOS.items()]


def _assert_holds(report: Report) -> None:
    lines = [f"{label}: {'; '.join(problems)}" for label, problems in report.failures.items()]
    assert lines == [], f"{len(lines)} of {report.runs} runs break an invariant:\n" + "\n".join(
        lines[:20]
    )


@pytest.mark.enumeration
@pytest.mark.parametrize("scenario", _params())
def test_a_fault_or_kill_at_every_call_breaks_no_invariant(scenario: Scenario) -> None:
    report = enumerate_faults(scenario)
    assert report.fault_points > 10
    _assert_holds(report)


@pytest.mark.enumeration
@pytest.mark.parametrize("scenario", _params())
def test_every_arrival_order_gives_the_same_notifications(scenario: Scenario) -> None:
    report = enumerate_orders(scenario, sample=30)
    assert report.permutations >= 1
    _assert_holds(report)


#: Late index entries: every group entry shows up this long after its write (settle 90 s, Lambda
#: timeout 30 s: anything over 60 s used to be lost).
LAG = 150.0
LAGGED = ("summary", "repeat-burst-escalation", "storm-digests", "suppressed")


@pytest.mark.enumeration
@pytest.mark.parametrize("scenario", [p for p in _params() if p.id in LAGGED])
def test_a_fault_at_every_call_with_late_index_entries_breaks_no_invariant(
    scenario: Scenario,
) -> None:
    _assert_holds(enumerate_faults(scenario, index_lag=lag_everything(LAG)))


@pytest.mark.parametrize("scenario", _params())
def test_events_parked_by_an_outage_are_counted_once_the_consumer_reruns_them(
    scenario: Scenario,
) -> None:
    outcome = outage_run(scenario)
    assert outcome.parked, "the outage outlasts Lambda's three attempts"
    assert violations(outcome) == []


@pytest.mark.enumeration
@pytest.mark.parametrize("scenario", _params())
def test_a_write_resent_by_botocore_at_every_call_costs_no_retry(scenario: Scenario) -> None:
    _assert_holds(enumerate_faults(scenario, kinds=(RESENT,)))


@pytest.mark.enumeration
@pytest.mark.parametrize("scenario", _params())
def test_two_faults_at_random_calls_break_no_invariant(scenario: Scenario) -> None:
    report = random_fault_sets(scenario, runs=60)
    assert report.runs == 60
    _assert_holds(report)


@pytest.mark.enumeration
@pytest.mark.parametrize("scenario", [p for p in _params() if p.id == "summary"])
def test_a_fork_of_the_run_without_faults_gives_what_a_run_from_the_start_gives(
    scenario: Scenario,
) -> None:
    """The enumerations start each run with faults from a snapshot of the run without faults
    (Forks), and share one run between kinds with the same effect: each outcome is the one a
    run from the start gives (calls, publishes, deliveries, parked, lost, failed attempts).
    Checked at every call, with each kind in turn."""
    kinds = (*FAULT_KINDS, RESENT)
    outcomes = list(fault_runs(scenario, kinds))
    assert len(outcomes) == len(kinds) * len(Simulation(scenario).run().calls)
    for fault, outcome in outcomes:
        if fault.kind == kinds[fault.at % len(kinds)]:
            assert outcome == Simulation(scenario, fault).run(), fault


def test_an_interleaving_makes_the_calls_in_the_order_it_is_given() -> None:
    plan = FaultPlan()
    store = SimulatedStore(plan)

    def reads(key: str) -> None:
        for _ in range(3):
            store.get(key, 0.0)

    interleaving = Interleaving(plan)
    outcomes = interleaving.run((lambda: reads("a"), lambda: reads("b")), (1, 0, 0, 1))
    assert outcomes == ["ok", "ok"]
    assert interleaving.steps == [
        (1, "get b"),
        (0, "get a"),
        (0, "get a"),
        (1, "get b"),
        (0, "get a"),  # the order is used up: the rest finish one after the other
        (1, "get b"),
    ]


def test_a_stand_in_and_a_rerun_of_its_stuck_event_side_by_side_count_the_window_once() -> None:
    # The scheduler hands a stuck leader's window to a stand-in while the failed-events
    # consumer (or a late Lambda retry) runs the stuck event once more: every interleaving with
    # one switch. Before, the stuck event decided itself beside its stand-in (the alert and the
    # summary twice) or counted itself as a repeat of its stand-in's window (5 of 4 counted).
    scenario, minute, stuck = stuck_leader()
    report = enumerate_side_by_side(scenario, minute, stuck)
    assert report.fault_points > 20  # calls of either the other can run beside
    _assert_holds(report)


FULL = {scenario.name: scenario for scenario in scenarios("full")}


def test_every_arrival_order_of_six_failures_and_a_success_gives_the_same_escalation() -> None:
    """One CRITICAL per order, and with its trailing corrections it counts all six failures
    (before: "after 3" to "after 6" by arrival order, nothing after)."""
    report = enumerate_orders(FULL["fatigue-success"], sample=40)
    assert report.permutations == 40
    _assert_holds(report)


def test_the_suppressed_scenario_alerts_only_the_near_miss_and_counts_the_rest() -> None:
    """What the invariants above hold for the suppressed scenario, without faults: bob's alert
    goes out, alice's three failures only in LOW digests naming the suppression."""
    outcome = Simulation(SCENARIOS["suppressed"]).run()
    sent = outcome.notifications()
    assert [(n.kind, n.principal) for n in sent if n.kind != "storm"] == [("alert", "bob")]
    digests = [n for n in sent if n.kind == "storm"]
    assert {n.severity for n in digests} == {"LOW"}
    assert sum(n.count for n in digests) == 3
    assert all("suppressed by pentest (secops@example.com," in n.summary for n in digests)
    assert violations(outcome) == []
