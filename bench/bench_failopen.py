"""Benchmark: marked copies published while DynamoDB is down, with and without reserved concurrency.

Drives failed MFA sign-ins (one a second, each user from an address of its own) through the model
of Lambda's asynchronous invocations in tests/support/lambda_async.py: each function runs at most
its cap of execution environments, throttled events are retried (1 s doubling to 5 minutes) until
the maximum event age and then parked, the parked-event consumer runs at most its maximum
concurrency, the scheduler alone. DynamoDB fails every call for the outage; an invocation then
holds its environment for 15 s (botocore's retries), otherwise 0.3 s.

Prints, per cap: environments started (rule function, consumer), throttled invocations, raw
marked-copy publishes (all outputs), the most in one minute on the pager output, distinct copy
ids, events parked (retries exhausted / maximum event age), dead letters, and the invariants
(every event counted exactly once once DynamoDB answers).

Usage: .venv/bin/python bench/bench_failopen.py [--events 120] [--outage 900] [--max-event-age 3600]
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# First: tests/conftest.py points mfawatch.paths at the tests' own stages (tests/stage/, the same
# caps as .chalice/config.json), and asserts that nothing imported mfawatch.paths before it.
import tests.conftest  # noqa: E402, F401

# isort: split
from chalicelib.core.rules import load_bundle  # noqa: E402
from mfawatch.deploy.templates import PARKED_HANDLER, load_stage_config  # noqa: E402
from tests.support.lambda_async import CappedLambda, failed_mfa_flood  # noqa: E402
from tests.support.simulation import IAM_FAILURE, Scenario, settings, violations  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=120)
    parser.add_argument("--outage", type=float, default=900.0, help="seconds DynamoDB is down")
    parser.add_argument("--max-event-age", type=float, default=3600.0)
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)  # every failed call logs; the figures are the output

    rules = load_bundle()
    handler = rules.get(IAM_FAILURE).handler_name
    stage = load_stage_config("dev").reserved_concurrency(handler)
    scenario = Scenario("flood", failed_mfa_flood(args.events), settings())
    print(
        f"{args.events} failed MFA sign-ins in {args.events} s, DynamoDB down for "
        f"{args.outage:g} s, maximum event age {args.max_event_age:g} s; the stage's cap is {stage}"
    )
    header = (
        f"{'cap':>6} {'envs':>9} {'throttled':>9} {'publishes':>9} {'pager/min':>9} "
        f"{'ids':>4} {'parked':>9} {'dead':>4}  invariants"
    )
    print(header)
    for cap in (None, 10, stage, 2):
        result = CappedLambda(
            rules,
            scenario,
            cap=cap,
            consumer_cap=cap,
            outage=(0.0, args.outage),
            max_event_age=args.max_event_age,
        ).run()
        copies = result.fail_open_publishes()
        pager = Counter(int(p.at // 60) for p in copies if p.destination == "pager")
        envs = f"{result.environments[handler]}+{result.environments[PARKED_HANDLER]}"
        parked = f"{len(result.exhausted)}/{len(result.expired)}"
        broken = violations(result.counted_outcome())
        print(
            f"{cap if cap else 'none':>6} {envs:>9} {result.throttles[handler]:>9} "
            f"{len(copies):>9} {max(pager.values(), default=0):>9} "
            f"{len({p.notification.id for p in copies}):>4} {parked:>9} "
            f"{len(result.dead_letters):>4}  {'hold' if not broken else '; '.join(broken)[:80]}"
        )


if __name__ == "__main__":
    main()
