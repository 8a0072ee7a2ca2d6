"""Benchmark: an MFA brute-force storm through AlertService, exactly as Lambda would see it.

Builds (deterministically) a storm of failed-MFA ConsoleLogin events: thousands of attempts
across hundreds of IAM users and source IPs within a few minutes, about 20% of them delivered
twice (EventBridge / Lambda at-least-once delivery), and feeds them in processing-time order to
the production service with a one-minute scheduler tick, then flushes at the end. Default stage
settings (15-minute windows, 20/5m per topic, 5/5m per principal, brute force 10/5m).

  (a) MemoryStore (replay's store): notifications by kind, store calls per delivery, CPU time
      per delivery (time.process_time), wall time;
  (b) DynamoStateStore against moto_server on 127.0.0.1 (started here) for a smaller storm:
      DynamoDB calls per delivery, wall time per delivery (moto is far slower than DynamoDB,
      so read the calls, not the milliseconds).

Usage: .venv/bin/python bench/bench_storm.py [--events 5000] [--dynamo-events 500]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chalicelib.core.config import Settings
from chalicelib.core.records import envelope_of
from chalicelib.core.rules import load_bundle
from chalicelib.core.state import MemoryStore, StateStore
from chalicelib.pipeline.service import AlertService, MemoryPublisher
from mfawatch.paths import REPO_ROOT as ROOT

RULE = "iam-console-mfa-failure"
BASE = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
TEMPLATE = json.loads(
    (ROOT / "tests" / "events" / "iam-consolelogin-failure-mfa-yes.json").read_text()
)


def storm(events: int, users: int, ips: int, minutes: float, dup_rate: float, *, seed: int) -> Any:
    """``(processing time, envelope)`` deliveries in processing order, and distinct events."""
    rng = random.Random(seed)
    deliveries: list[tuple[float, dict[str, Any]]] = []
    for i in range(events):
        record = json.loads(json.dumps(TEMPLATE))
        t = BASE.timestamp() + rng.uniform(0, minutes * 60)
        record["eventID"] = f"storm-{seed}-{i:06d}"
        record["eventTime"] = datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        record["userIdentity"]["userName"] = f"user-{rng.randrange(users):04d}"
        ip = rng.randrange(ips)
        record["sourceIPAddress"] = f"198.51.{ip // 250}.{ip % 250}"
        envelope = envelope_of(record)
        deliveries.append((t + rng.uniform(0, 5), envelope))  # CloudTrail -> EventBridge lag
        if rng.random() < dup_rate:
            deliveries.append((t + rng.uniform(5, 120), envelope))  # a redelivery
    deliveries.sort(key=lambda d: d[0])
    return deliveries


def run(store: StateStore, deliveries: list[tuple[float, dict[str, Any]]]) -> dict[str, Any]:
    publisher = MemoryPublisher()
    service = AlertService(load_bundle(), publisher, store, Settings())
    clock = BASE.timestamp()
    ticks = 0
    wall, cpu = time.perf_counter(), time.process_time()
    for now, envelope in deliveries:
        while clock + 60 <= now:
            clock += 60
            service.tick(datetime.fromtimestamp(clock, UTC))
            ticks += 1
        service.handle(RULE, envelope, datetime.fromtimestamp(now, UTC))
    handle_calls = store.calls
    handle_cpu, handle_wall = time.process_time() - cpu, time.perf_counter() - wall
    # The scheduled handler keeps running every minute after the attack, until nothing is due
    # (windows close, storms end), as it would in Lambda; then replay's end-of-input flush.
    while store.due(float("inf"), clock) and clock < deliveries[-1][0] + 4 * 3600:
        clock += 60
        service.tick(datetime.fromtimestamp(clock, UTC))
        ticks += 1
    end = datetime.fromtimestamp(clock, UTC)
    service.flush(end)
    return {
        "kinds": Counter(n.kind for n in publisher.sent),
        "counted": sum(n.count for n in publisher.sent if n.kind in ("alert", "summary", "storm")),
        "calls": store.calls,
        "handle_calls": handle_calls,
        "cpu": time.process_time() - cpu,
        "handle_cpu": handle_cpu,
        "wall": time.perf_counter() - wall,
        "handle_wall": handle_wall,
        "ticks": ticks,
    }


def report(title: str, deliveries: list[Any], result: dict[str, Any], per: str) -> None:
    n = len(deliveries)
    distinct = len({e["detail"]["eventID"] for _, e in deliveries})
    users = len({e["detail"]["userIdentity"]["userName"] for _, e in deliveries})
    ips = len({e["detail"]["sourceIPAddress"] for _, e in deliveries})
    span = (deliveries[-1][0] - deliveries[0][0]) / 60
    kinds = result["kinds"]
    print(f"\n== {title}")
    print(
        f"deliveries {n} ({distinct} distinct events, {n - distinct} duplicate deliveries), "
        f"{users} users, {ips} source IPs, over {span:.1f} minutes"
    )
    print(
        "notifications sent: "
        + ", ".join(f"{k} {kinds.get(k, 0)}" for k in ("alert", "summary", "storm", "escalation"))
        + f" (total {sum(kinds.values())})"
    )
    print(
        f"events accounted for (alert+summary+storm counts): {result['counted']} of {distinct}"
        + ("  OK" if result["counted"] == distinct else "  MISMATCH")
    )
    print(
        f"{per} calls per delivery: {result['handle_calls'] / n:.2f} while handling, "
        f"{result['calls'] / n:.2f} including {result['ticks']} scheduler ticks and the flush"
    )
    print(
        f"CPU time per delivery: {1e3 * result['handle_cpu'] / n:.3f} ms while handling "
        f"({1e3 * result['cpu'] / n:.3f} ms with ticks and flush)"
    )
    print(
        f"wall time: {result['wall']:.2f} s total, {1e3 * result['handle_wall'] / n:.2f} ms "
        "per delivery while handling"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def dynamo_run(deliveries: list[Any]) -> dict[str, Any]:
    import boto3
    from botocore.config import Config

    from chalicelib.aws.dynamo import DynamoStateStore, create_state_table

    port = free_port()
    env = dict(os.environ, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                with urllib.request.urlopen(f"{url}/moto-api/", timeout=1):
                    break
            except OSError:
                time.sleep(0.1)
        client = boto3.client(
            "dynamodb",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(retries={"max_attempts": 2, "mode": "standard"}),
        )
        create_state_table(client, "bench-storm")
        return run(DynamoStateStore(client, "bench-storm"), deliveries)
    finally:
        server.terminate()
        server.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--ips", type=int, default=400)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--duplicates", type=float, default=0.2)
    parser.add_argument("--dynamo-events", type=int, default=500)
    args = parser.parse_args()
    print(f"os.cpu_count() = {os.cpu_count()}, Python {sys.version.split()[0]}")
    print(
        "settings: 15-minute incident windows, topic 20/5m, principal 5/5m, brute force 10/5m, "
        "scheduler tick every 60 s until nothing is due, then flush"
    )
    big = storm(args.events, args.users, args.ips, args.minutes, args.duplicates, seed=1)
    report("(a) MemoryStore", big, run(MemoryStore(), big), "store")
    if args.dynamo_events:
        small = storm(
            args.dynamo_events,
            max(args.users // 10, 10),
            max(args.ips // 10, 10),
            args.minutes,
            args.duplicates,
            seed=2,
        )
        report(
            "(b) DynamoStateStore on moto_server 127.0.0.1",
            small,
            dynamo_run(small),
            "DynamoDB",
        )


if __name__ == "__main__":
    main()
