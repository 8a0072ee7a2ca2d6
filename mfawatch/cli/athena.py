"""The Athena backtest commands: ``athena-ddl``, ``athena-sql`` and ``replay --athena``'s events.

``COMMANDS`` lists the click commands; the CLI group adds each. See docs/replay.md, "Backtest a
whole Organization with Athena".
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import click

from chalicelib.rules import BUNDLE_PATH, RuleSet, load_bundle
from mfawatch.athena.client import AthenaQueries, QueryStatus, result_files, run_backtest
from mfawatch.athena.sql import backtest_select, candidate_events, create_table_ddl
from mfawatch.errors import AthenaError
from mfawatch.replay.archive import TimeRange
from mfawatch.replay.readers import ReadStats
from mfawatch.replay.runner import TimedEvent

DEFAULT_TABLE = "cloudtrail_mfawatch"


class _Time(click.ParamType[datetime, Any]):
    """The replay command's ISO-8601 time (imported when used: the CLI module imports us)."""

    name = "ISO-8601 time"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> datetime:
        from mfawatch.cli import IsoTime

        return IsoTime().convert(value, param, ctx)


def split_list(value: str | None) -> list[str]:
    """``a,b, c`` -> ``["a", "b", "c"]`` (empty parts dropped)."""
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def _fail(exc: AthenaError) -> click.ClickException:
    return click.ClickException(str(exc))


@click.command("athena-ddl")
@click.option("--bucket", required=True, help="The trail's S3 bucket.")
@click.option("--prefix", default="", help="The trail's key prefix (before AWSLogs/).")
@click.option("--org-id", help="For an Organization trail: the o-... folder under AWSLogs/.")
@click.option("--table", default=DEFAULT_TABLE, show_default=True, help="[database.]table")
@click.option("--regions", required=True, help="Comma-separated regions the trail logs.")
@click.option(
    "--accounts",
    help="Comma-separated accounts (enum projection). Without: injected projection, and every "
    "query must name its accounts.",
)
@click.option(
    "--first-day", default="2020/01/01", show_default=True, help="First day of the projection."
)
def athena_ddl(
    bucket: str,
    prefix: str,
    org_id: str | None,
    table: str,
    regions: str,
    accounts: str | None,
    first_day: str,
) -> None:
    """Print the CREATE TABLE for a trail (AWS's CloudTrail table, partition projection).

    \b
    Example:
      mfawatch athena-ddl --bucket my-trail-bucket --regions us-east-1,eu-west-1
    """
    try:
        click.echo(
            create_table_ddl(
                table,
                bucket,
                prefix,
                org_id=org_id,
                regions=split_list(regions),
                accounts=split_list(accounts),
                first_day=first_day,
            ),
            nl=False,
        )
    except AthenaError as exc:
        raise _fail(exc) from exc


@click.command("athena-sql")
@click.option("--table", default=DEFAULT_TABLE, show_default=True, help="[database.]table")
@click.option("--since", type=_Time(), required=True, help="First event time (UTC, inclusive).")
@click.option("--until", type=_Time(), required=True, help="Last event time (UTC, exclusive).")
@click.option("--rule", "rule_ids", multiple=True, help="Only this rule (repeatable).")
@click.option("--accounts", help="Comma-separated accounts (default: all the table has).")
@click.option("--regions", help="Comma-separated regions (default: all the table has).")
@click.option(
    "--rules-bundle",
    type=click.Path(path_type=Path, dir_okay=False),
    default=BUNDLE_PATH,
    show_default=True,
)
def athena_sql(
    table: str,
    since: datetime,
    until: datetime,
    rule_ids: tuple[str, ...],
    accounts: str | None,
    regions: str | None,
    rules_bundle: Path,
) -> None:
    """Print the query a backtest runs (Athena's dialect), generated from the rule patterns.

    The date partitions reach an hour past the range: log files are delivered after their
    events (``replay --athena --lateness`` changes it).

    \b
    Example:
      mfawatch athena-sql --since 2026-11-01 --until 2026-11-02 --rule iam-console-mfa-failure
    """
    from mfawatch.cli import _select_rules

    rules = _select_rules(load_bundle(rules_bundle), rule_ids)
    try:
        click.echo(
            backtest_select(
                rules,
                table,
                _time_range(since, until),
                accounts=split_list(accounts),
                regions=split_list(regions),
            )
        )
    except AthenaError as exc:
        raise _fail(exc) from exc


def _time_range(since: datetime | None, until: datetime | None) -> TimeRange:
    if since is not None and until is not None and until <= since:
        raise click.BadParameter("--until must be after --since", param_hint="--until")
    return TimeRange(since, until)


COMMANDS = (athena_ddl, athena_sql)


class AthenaProgress:
    """One line on stderr: query state, data scanned, elapsed time."""

    def __init__(self, show: bool) -> None:
        self._show = show

    def __call__(self, status: QueryStatus) -> None:
        if self._show:
            click.echo(
                f"\r  athena {status.state:<9} scanned {_size(status.scanned_bytes):>10}, "
                f"{status.elapsed_seconds:6.1f} s   ",
                err=True,
                nl=False,
            )

    def clear(self) -> None:
        if self._show:
            click.echo("\r" + " " * 60 + "\r", err=True, nl=False)


def _size(count: int) -> str:
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
    output: str | None,
    workgroup: str | None,
    time_range: TimeRange,
    accounts: Sequence[str],
    regions: Sequence[str],
    lateness: timedelta,
    stats: ReadStats,
    show_progress: bool,
    clients: Callable[[], tuple[Any, Any]] | None = None,
    run_id: str | None = None,
) -> list[TimedEvent]:
    """Run the backtest query on Athena and return its candidates in event-time order.

    Prints the query id, the bytes scanned and their cost on stderr. ``clients`` makes the
    (Athena, S3) boto3 clients; ``run_id`` names the results folder (default: time and random).
    """
    if not output:
        raise click.BadParameter("--athena needs --athena-output s3://...", param_hint="--athena")
    select = backtest_select(
        rules, table, time_range, accounts=accounts, regions=regions, lateness=lateness
    )
    athena_client, s3_client = (clients or _boto3_clients)()
    from mfawatch.replay.s3archive import S3Archive

    progress = AthenaProgress(show_progress)
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
    click.echo(
        f"athena: query {status.query_id} {status.state} in {status.elapsed_seconds:.1f} s, "
        f"scanned {_size(status.scanned_bytes)} ({status.scanned_bytes:,} bytes), "
        f"cost ${status.cost_usd:.4f} at $5 per TB; results in {backtest.destination}",
        err=True,
    )
    return candidate_events(
        result_files(S3Archive(s3_client), backtest.destination, stats), stats, time_range
    )


def _boto3_clients() -> tuple[Any, Any]:
    import boto3

    return boto3.client("athena"), boto3.client("s3")
