"""``mfawatch suppressions check|list``: the suppressions in suppressions/.

Thin: the toolchain is :mod:`mfawatch.rules.suppressions`; ``rules build`` compiles them into
``chalicelib/suppressions.json`` with the rules.
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

import click

from mfawatch.cli.options import SUPPRESSIONS_DIR_OPTION, exit_on_errors
from mfawatch.rules.suppressions import check_suppressions, rule_ids, today_utc

TODAY_OPTION = click.option(
    "--today",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="Check as of this date (default: today, UTC).",
)


@click.group()
def suppressions() -> None:
    """Check the suppressions in suppressions/ (docs/suppressions.md)."""


@suppressions.command("check")
@SUPPRESSIONS_DIR_OPTION
@TODAY_OPTION
def suppressions_check(suppressions_dir: Path, today: datetime | None) -> None:
    """Validate every suppression; exit 1 on an invalid or expired one, warn 14 days ahead.

    \b
    Example:
      mfawatch suppressions check              # make lint runs it
    """
    day = today_utc(today.date() if today else None)
    result = check_suppressions(suppressions_dir, rule_ids(), day)
    for error in result.errors:
        click.echo(f"error: {error}")
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    exit_on_errors([error.source for error in result.errors], result.files, "file(s)")
    click.echo(f"{result.files} suppression(s) valid on {day} in {suppressions_dir}")


@suppressions.command("list")
@SUPPRESSIONS_DIR_OPTION
def suppressions_list(suppressions_dir: Path) -> None:
    """One line per suppression: id, expiry, owner, critical or not, reason.

    \b
    Example:
      mfawatch suppressions list
    """
    result = check_suppressions(suppressions_dir, rule_ids())
    for error in result.errors:
        click.echo(f"error: {error}", err=True)
    for s in result.suppressions:
        critical = "critical" if s.allow_critical else "-"
        click.echo(f"{s.id:<32} {s.expires} {s.owner:<24} {critical:<8} {s.reason}")
    if result.errors:
        sys.exit(1)


COMMANDS = [suppressions]
