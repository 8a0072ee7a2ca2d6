"""Benchmark: the deterministic simulation at full size (tests/support/simulation.py).

For each scenario of issue 18 (alert, summary, repeat burst with escalation, MFA fatigue success,
Identity Center attribution, storm with digests; larger bursts and storms than the CI size in
tests/unit/test_simulation.py):

  (a) a fault at every store and publish call, one run per (call, kind): ``error`` (nothing
      applied), ``lost-reply`` (applied, the reply lost), ``kill`` (a BaseException: the process
      dies); Lambda retries, the parked events re-run by the consumer, the scheduler until
      nothing is due; then every invariant;
  (b) the same with every ``group`` index entry showing up 150 s after its write;
  (c) a 400 s outage (every call fails): parked events, re-run after it;
  (d) every arrival order within the retry horizon (a seeded sample for long scenarios): the
      same notifications (kinds, titles, counts) as in event order;
  (e) a write re-sent by botocore at every call (applied twice, the caller sees the second
      answer): it must cost no Lambda retry;
  (f) seeded random pairs of faults (two calls, random kinds) per scenario;
  (g) for the stuck leader, the scheduler's run that hands its window to a stand-in and one
      more run of the stuck event side by side, interleaved call by call: every order with one
      switch (either makes n calls, for every n, then the other runs to its end).

Prints, per scenario and in total: fault points enumerated, runs, permutations, runs that break
an invariant (with the first few), and CPU/wall time.

Usage: .venv/bin/python bench/bench_simulation.py [--size full|ci] [--sample 200] [--scenario NAME]
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support import simulation as sim  # noqa: E402

LAG = 150.0


def show(label: str, report: sim.Report, unit: str) -> None:
    broken = len(report.failures)
    print(f"  {label:<34} {report.runs:>6} {unit:<13} {broken:>5} broken  {report.seconds:7.2f} s")
    for name, problems in list(report.failures.items())[:3]:
        print(f"      {name}: {'; '.join(problems)[:160]}")


def scenario_figures(scenario: sim.Scenario, sample: int, pairs_per_scenario: int) -> Counter[str]:
    """(a)-(f) for one scenario, printed; its figures to add to the totals."""
    print(f"\n== {scenario.name}: {len(scenario.arrivals)} events")
    faults = sim.enumerate_faults(scenario)
    show("(a) fault at every call", faults, "runs")
    lagged = sim.enumerate_faults(scenario, index_lag=sim.lag_everything(LAG))
    show(f"(b) same, index entries {LAG:g} s late", lagged, "runs")
    started = time.perf_counter()
    outage = sim.outage_run(scenario)
    problems = sim.violations(outage)
    print(
        f"  {'(c) 400 s outage':<34} {len(outage.parked):>6} {'parked':<13} "
        f"{int(bool(problems)):>5} broken  {time.perf_counter() - started:7.2f} s"
    )
    for problem in problems[:3]:
        print(f"      {problem[:160]}")
    orders = sim.enumerate_orders(scenario, sample=sample)
    show("(d) arrival orders", orders, "permutations")
    resent = sim.enumerate_faults(scenario, kinds=(sim.RESENT,))
    show("(e) a write re-sent at every call", resent, "runs")
    pairs = sim.random_fault_sets(scenario, pairs_per_scenario)
    show("(f) two faults, random", pairs, "runs")
    reports = (faults, lagged, orders, resent, pairs)
    return Counter(
        {
            "fault points": faults.fault_points,
            "runs": sum(r.runs for r in reports) + 1,
            "permutations": orders.permutations,
            "broken": sum(len(r.failures) for r in reports) + bool(problems),
        }
    )


def side_by_side_figures() -> Counter[str]:
    """(g) for the stuck leader, printed; its figures to add to the totals."""
    stuck, minute, rerun = sim.stuck_leader()
    print(f"\n== {stuck.name}: the stand-in's run and a re-run of {rerun.event_id} together")
    together = sim.enumerate_side_by_side(stuck, minute, rerun)
    show("(g) side by side, one switch", together, "interleavings")
    return Counter({"runs": together.runs, "broken": len(together.failures)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=("ci", "full"), default="full")
    parser.add_argument("--sample", type=int, default=200, help="arrival orders per scenario")
    parser.add_argument("--scenario", action="append", help="only these scenarios")
    parser.add_argument("--pairs", type=int, default=300, help="runs with two random faults")
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)  # thousands of injected failures are logged otherwise
    wall, cpu = time.perf_counter(), time.process_time()
    totals: Counter[str] = Counter(
        dict.fromkeys(("fault points", "runs", "permutations", "broken"), 0)
    )
    for scenario in sim.scenarios(args.size):
        if not args.scenario or scenario.name in args.scenario:
            totals.update(scenario_figures(scenario, args.sample, args.pairs))
    if not args.scenario or sim.stuck_leader()[0].name in args.scenario:
        totals.update(side_by_side_figures())
    print(
        f"\ntotal: {totals['fault points']} fault points x 3 kinds x 2 (with and without "
        f"index lag) + 1 re-sent, {args.pairs} random fault pairs per scenario, "
        f"{totals['permutations']} arrival orders, {totals['runs']} runs, "
        f"{totals['broken']} breaking an invariant; CPU {time.process_time() - cpu:.1f} s, "
        f"wall {time.perf_counter() - wall:.1f} s"
    )


if __name__ == "__main__":
    main()
