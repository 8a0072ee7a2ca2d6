"""``mfawatch redrive --stage S``: the final dead-letter queue back to the failed-events queue.

Thin over :mod:`mfawatch.deploy.redrive` (what a dead letter holds, the two queues, the move).
One JSON line per record on stdout, the summary on stderr.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from chalicelib.core.errors import MfawatchError
from mfawatch.cli.options import CONFIG_OPTION, STAGE_OPTION, default_session
from mfawatch.deploy.redrive import ParkedQueues, redrive
from mfawatch.deploy.templates import load_stage_config

if TYPE_CHECKING:
    import boto3


def make_redrive_command(
    session_factory: Callable[[], boto3.Session] = default_session,
) -> click.Command:
    """The ``redrive`` command, with the boto3 session factory injected (tests: moto's)."""

    @click.command("redrive")
    @STAGE_OPTION
    @click.option("--region", default=None, help="The stage's region (default: the session's).")
    @click.option("--max", "limit", default=1000, show_default=True, help="Move at most N.")
    @click.option("--dry-run", is_flag=True, help="List the dead letters without moving them.")
    @CONFIG_OPTION
    def redrive_command(
        stage: str, region: str | None, limit: int, dry_run: bool, config_path: Path
    ) -> None:
        """Send the final dead-letter queue back to the failed-events queue (the consumer
        replays it). One JSON line per record on stdout; see docs/alarms.md.

        \b
        Example:
          mfawatch redrive --stage dev --dry-run
        """
        try:
            names = load_stage_config(stage, config_path).names
            session = session_factory()
            client = session.client("sqs", region_name=region or session.region_name)
            queues = ParkedQueues(client, names.failed_events_queue, names.dead_letter_queue)
            count = moved = 0
            for letter, was_moved in redrive(queues, limit, dry_run):
                click.echo(letter.to_json(was_moved))
                count += 1
                moved += was_moved
        except MfawatchError as exc:
            raise click.ClickException(str(exc)) from exc
        verb = "would move" if dry_run else "moved"
        click.echo(
            f"{names.dead_letter_queue}: {count} dead letters, {verb} "
            f"{count if dry_run else moved} to {names.failed_events_queue}",
            err=True,
        )

    return redrive_command


COMMANDS: list[click.Command] = [make_redrive_command()]
