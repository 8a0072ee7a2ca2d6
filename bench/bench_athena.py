"""Benchmark: the Athena backtest's split (candidates found by SQL, replayed here) against a full
file replay, on a generated mixed archive (default 800,000 records; bench_replay.py's generator:
about 1% sign-in events among ordinary API calls).

Measures, on this machine:
  (a) full replay: `python -m mfawatch replay --output jsonl DIR` (subprocess, whole pipeline);
  (b) candidate extraction: the backtest query (`athena-sql`), transpiled to DuckDB by sqlglot,
      run over the same .json.gz files, its rows written as UNLOAD writes them (gzip JSON lines);
      Athena runs this step in the cloud, in parallel, next to the trail;
  (c) replay of the candidates only: the result rows rebuilt into records and replayed in-process.
Then checks that (c) printed exactly the notifications of (a) and reports the candidate ratio.

Usage: .venv/bin/python bench/bench_athena.py [--dir DIR] [--records N] [--files N]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_replay import build, timed_run  # noqa: E402
from chalicelib.core.rules import load_bundle  # noqa: E402
from mfawatch.athena.local import create_view, unload_locally  # noqa: E402
from mfawatch.athena.sql import backtest_select, candidate_events  # noqa: E402
from mfawatch.replay.archive import TimeRange  # noqa: E402
from mfawatch.replay.output import notification_document  # noqa: E402
from mfawatch.replay.readers import ReadStats  # noqa: E402
from mfawatch.replay.runner import replay_timed  # noqa: E402

SINCE, UNTIL = "2026-11-01", "2026-11-04"
REPLAY = [sys.executable, "-m", "mfawatch", "replay", "--output", "jsonl", "--no-progress"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, help="where to build the archive (default: temp)")
    parser.add_argument("--records", type=int, default=800_000)
    parser.add_argument("--files", type=int, default=400)
    args = parser.parse_args()
    import duckdb

    temp = tempfile.TemporaryDirectory(prefix="mfawatch-bench-athena-")
    archive = args.dir or Path(temp.name) / "archive"
    try:
        started = time.perf_counter()
        files = build(archive, args.records, args.files)
        size = sum(p.stat().st_size for p in files)
        print(
            f"built {len(files)} files, {args.records:,} records, {size / 1e6:.1f} MB gzip in "
            f"{time.perf_counter() - started:.1f} s; cores: {os.cpu_count()}"
        )

        # The same replay command bench_replay.py times, limited to the backtest's range.
        full_s, out, _ = timed_run([*REPLAY, "--since", SINCE, "--until", UNTIL, str(archive)])
        full_lines = [json.loads(line) for line in out.splitlines()]

        rules = load_bundle()
        time_range = TimeRange(
            datetime.fromisoformat(SINCE).replace(tzinfo=UTC),
            datetime.fromisoformat(UNTIL).replace(tzinfo=UTC),
        )
        select = backtest_select(rules, "trail", time_range)
        result = Path(temp.name) / "result" / "part-0.json.gz"
        start = time.perf_counter()
        connection = duckdb.connect()
        create_view(connection, "trail", files)
        rows = unload_locally(connection, select, result)
        extract_s = time.perf_counter() - start

        start = time.perf_counter()
        stats = ReadStats()
        events = candidate_events([(str(result), result.read_bytes())], stats, time_range)
        read_s = time.perf_counter() - start
        replayed = replay_timed(events, rules, stats)
        lines = [
            json.loads(json.dumps(notification_document(n, t), sort_keys=True))
            for n, t in zip(replayed.notifications, replayed.sent_at, strict=True)
        ]
        replay_s = time.perf_counter() - start

        n = args.records
        print(f"{'step':<58} {'seconds':>8} {'records/s':>11}")
        for label, seconds, count in (
            ("(a) full replay (mfawatch replay, all records)", full_s, n),
            ("(b) candidate extraction (DuckDB, transpiled athena-sql)", extract_s, n),
            ("(c) replay of the candidates only", replay_s, rows),
            ("    of which: rows read back and rebuilt into records", read_s, rows),
            ("    of which: decisions (the same work (a) does for them)", replay_s - read_s, rows),
        ):
            print(f"{label:<58} {seconds:>8.2f} {count / seconds:>11,.0f}")
        print(
            f"candidates: {rows:,} of {n:,} records = {rows / n:.3%}; "
            f"{len(full_lines)} notifications from (a), {len(lines)} from (c), "
            f"identical: {lines == full_lines}; problems: {len(stats.problems)}"
        )
        print(
            f"(c) / (a) = {replay_s / full_s:.3f}: the laptop's share once Athena has found the "
            "candidates; (b) + (c) / (a) = "
            f"{(extract_s + replay_s) / full_s:.2f} when the extraction also runs here"
        )
        if lines != full_lines:
            raise SystemExit("the candidates' replay differs from the full replay")
    finally:
        temp.cleanup()


if __name__ == "__main__":
    main()
