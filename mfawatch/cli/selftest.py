"""``mfawatch selftest --stage STAGE [--publish]``: does each deployed function run?

Thin over :mod:`mfawatch.deploy.selftest`, which invokes the functions and classifies their
answers; this command finds the function names and prints the report.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from chalicelib.core.errors import MfawatchError
from mfawatch.cli.options import PROJECT_DIR_OPTION, STAGE_OPTION, handler_names
from mfawatch.deploy.selftest import deployed_function_names, render_report, run_selftest


@click.command("selftest")
@STAGE_OPTION
@click.option("--publish", is_flag=True, help="Also send one LOW notification to every output.")
@click.option("--region", default=None, help="AWS Region of the stage (default: the SDK's).")
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of a table.")
@PROJECT_DIR_OPTION
def selftest(
    stage: str, publish: bool, region: str | None, as_json: bool, project_dir: Path
) -> None:
    """Invoke every deployed function with the self-test event; exit 1 if one fails.

    One line per function: ok, did not start (init error), raised (type, message, request id),
    answered something else (first 200 bytes), or no such function; then a hint per kind.

    \b
    Example:
      mfawatch selftest --stage dev --region us-east-1
      mfawatch selftest --stage dev --publish      # also one LOW notification per output
    """
    import boto3  # the toolkit's AWS edge: only this command needs it

    chalice_dir = project_dir / ".chalice"
    try:
        functions = deployed_function_names(
            stage, handler_names(), chalice_dir / "config.json", chalice_dir / "deployed"
        )
    except MfawatchError as exc:
        raise click.ClickException(f"{exc}: run mfawatch init --stage {stage} first") from exc
    reports = run_selftest(boto3.client("lambda", region_name=region), functions, publish)
    if as_json:
        for report in reports:
            click.echo(json.dumps(report.to_json()))
    else:
        for line in render_report(reports):
            click.echo(line)
    failed = [r.function for r in reports if not r.ok]
    click.echo(
        f"{len(reports) - len(failed)}/{len(reports)} functions answered the self-test",
        err=True,
    )
    if failed:
        raise SystemExit(1)


COMMANDS: list[click.Command] = [selftest]
