"""The Athena backtest commands: ``athena-ddl`` and ``athena-sql`` (``replay --athena`` is in
:mod:`mfawatch.cli.replay`, its Athena side in :mod:`mfawatch.athena.backtest`).

Thin over :mod:`mfawatch.athena.sql`. See docs/replay.md, "Backtest a whole Organization with
Athena".
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click

from chalicelib.core.rules import load_bundle
from mfawatch.athena.sql import backtest_select, create_table_ddl
from mfawatch.cli.options import RULES_BUNDLE_OPTION, IsoTime, select_rules, split_list
from mfawatch.errors import AthenaError
from mfawatch.replay.archive import TimeRange

DEFAULT_TABLE = "cloudtrail_mfawatch"


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
    *,
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
@click.option("--since", type=IsoTime(), required=True, help="First event time (UTC, inclusive).")
@click.option("--until", type=IsoTime(), required=True, help="Last event time (UTC, exclusive).")
@click.option("--rule", "rule_ids", multiple=True, help="Only this rule (repeatable).")
@click.option("--accounts", help="Comma-separated accounts (default: all the table has).")
@click.option("--regions", help="Comma-separated regions (default: all the table has).")
@RULES_BUNDLE_OPTION
def athena_sql(
    *,
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
    rules = select_rules(load_bundle(rules_bundle), rule_ids)
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


COMMANDS: list[click.Command] = [athena_ddl, athena_sql]
