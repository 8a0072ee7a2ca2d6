"""``replay --athena``: run the backtest query on Athena and read back its candidate records.

The query comes from :mod:`mfawatch.athena.sql`, the Athena and S3 edges from
:mod:`mfawatch.athena.client` and :mod:`mfawatch.replay.s3archive`; the candidates then go
through the same replay as files do. What the user sees (a progress line, the query id, the bytes
scanned and their cost) is written through ``write``, which the command points at stderr.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from chalicelib.core.rules import RuleSet
from mfawatch.athena.client import AthenaQueries, QueryStatus, result_files, run_backtest
from mfawatch.athena.sql import backtest_select, candidate_events
from mfawatch.replay.archive import TimeRange
from mfawatch.replay.readers import ReadStats
from mfawatch.replay.runner import TimedEvent

#: Writes text as is (no newline added): the command passes a writer to stderr.
Write = Callable[[str], None]


class AthenaProgress:
    """One line on stderr: query state, data scanned, elapsed time."""

    def __init__(self, show: bool, write: Write) -> None:
        self._show = show
        self._write = write

    def __call__(self, status: QueryStatus) -> None:
        if self._show:
            self._write(
                f"\r  athena {status.state:<9} scanned {size_text(status.scanned_bytes):>10}, "
                f"{status.elapsed_seconds:6.1f} s   "
            )

    def clear(self) -> None:
        if self._show:
            self._write("\r" + " " * 60 + "\r")


def size_text(count: int) -> str:
    """A byte count for people: ``512 B``, ``1.5 KB``, ... ``2.00 TB``."""
    size = float(count)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024:
            return f"{size:.1f} {unit}" if unit != "B" else f"{count} B"
        size /= 1024
    return f"{size:.2f} TB"


def athena_events(
    rules: RuleSet,
    table: str,
    *,
    output: str,
    workgroup: str | None,
    time_range: TimeRange,
    accounts: Sequence[str],
    regions: Sequence[str],
    lateness: timedelta,
    stats: ReadStats,
    show_progress: bool,
    write: Write,
    clients: Callable[[], tuple[Any, Any]] | None = None,
    run_id: str | None = None,
) -> list[TimedEvent]:
    """Run the backtest query on Athena and return its candidates in event-time order.

    Writes the query id, the bytes scanned and their cost. ``output`` is the s3:// prefix for
    Athena's results; ``clients`` makes the (Athena, S3) boto3 clients; ``run_id`` names the
    results folder (default: time and random).
    """
    select = backtest_select(
        rules, table, time_range, accounts=accounts, regions=regions, lateness=lateness
    )
    athena_client, s3_client = (clients or _boto3_clients)()
    from mfawatch.replay.s3archive import S3Archive

    progress = AthenaProgress(show_progress, write)
    run_id = run_id or f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{uuid.uuid4().hex[:8]}"
    try:
        backtest = run_backtest(
            AthenaQueries(athena_client),
            select,
            output=output,
            run_id=run_id,
            workgroup=workgroup,
            progress=progress,
        )
    finally:
        progress.clear()
    status = backtest.status
    write(
        f"athena: query {status.query_id} {status.state} in {status.elapsed_seconds:.1f} s, "
        f"scanned {size_text(status.scanned_bytes)} ({status.scanned_bytes:,} bytes), "
        f"cost ${status.cost_usd:.4f} at $5 per TB; results in {backtest.destination}\n"
    )
    return candidate_events(
        result_files(S3Archive(s3_client), backtest.destination, stats), stats, time_range
    )


def _boto3_clients() -> tuple[Any, Any]:
    import boto3  # only a backtest on Athena calls AWS

    return boto3.client("athena"), boto3.client("s3")
