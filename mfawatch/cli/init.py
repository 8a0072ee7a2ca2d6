"""``mfawatch init --stage S``: write or update a stage of ``.chalice/config.json``.

Thin over :mod:`mfawatch.deploy.init` (the pure :func:`~mfawatch.deploy.init.stage_init`): this
module reads and writes the file, asks for what the flags leave out and shows the diff.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from chalicelib.core.config import ENV_TOPIC_ARN, settings_from_env
from chalicelib.core.errors import ConfigError, MfawatchError
from chalicelib.core.rules import SEVERITIES
from mfawatch.cli.options import PROJECT_DIR_OPTION, handler_names
from mfawatch.deploy.chalice_app import Project
from mfawatch.deploy.init import (
    InitAnswers,
    InitResult,
    config_diff,
    parse_account,
    stage_init,
)
from mfawatch.deploy.templates import (
    arn_parts,
    check_stage_name,
    config_text,
    read_config_document,
)


def _existing_defaults(existing: Mapping[str, str]) -> tuple[str | None, str | None, list[str]]:
    """(region, deploy account, accounts) of an existing stage, read with the functions' own
    parser; a stage it would reject gives no defaults."""
    try:
        settings = settings_from_env(existing)
        _, region, account = arn_parts(settings.topic_arn, ENV_TOPIC_ARN)
    except ConfigError:
        return None, None, []
    names = settings.account_names
    accounts = [f"{a}={names[a]}" if names.get(a) else a for a in sorted(settings.allowed_accounts)]
    return region, account, accounts


def _prompt_missing(
    region: str | None,
    deploy_account: str | None,
    accounts: Sequence[str],
    existing: Mapping[str, str],
    interactive: bool,
) -> tuple[str, str, list[str]]:
    """Ask for what the flags leave out (an existing stage's values are the defaults); without a
    terminal, fail naming the flags instead of asking.

    The deploy account defaults to the first ``--account``, as ``--help`` says; an existing
    stage's deploy account is kept when no ``--account`` is given or it is among them, so that
    ``--account`` on the shipped ``dev`` does not leave its documentation account in the ARNs.
    """
    old_region, old_account, old_accounts = _existing_defaults(existing)
    region = old_region if region is None else region
    given = [_account_id(a) for a in accounts]
    if deploy_account is None and (not given or old_account in given):
        deploy_account = old_account
    accounts = list(accounts) or old_accounts
    if not interactive:
        missing = [] if region is not None else ["--region"]
        if not accounts:
            missing.append("--account")
        if missing:
            raise click.UsageError(
                f"{', '.join(missing)} needed (or run in a terminal to be asked)"
            )
    if region is None:
        region = str(click.prompt("AWS Region of the stage", default="us-east-1"))
    if not accounts:
        text = click.prompt("Accounts to watch, ID or ID=NAME, comma-separated")
        accounts = [a.strip() for a in str(text).split(",") if a.strip()]
    if deploy_account is None:
        first = _account_id(accounts[0]) if accounts else None
        if interactive:
            deploy_account = str(click.prompt("Account the stage deploys to", default=first))
        else:
            deploy_account = first
    assert deploy_account is not None
    return region, deploy_account, list(accounts)


def _account_id(text: str) -> str:
    """The ID of ``ID`` or ``ID=NAME`` (the value is checked later, with the other answers)."""
    return text.partition("=")[0].strip()


def _read_config(project: Project) -> tuple[str, dict[str, Any]]:
    try:
        return read_config_document(project.config_path)
    except MfawatchError as exc:
        raise click.ClickException(f"{exc}: run init in a Chalice project (--project-dir)") from exc


def _write_config(
    path: Path, old_text: str, result: InitResult, *, stage: str, dry_run: bool
) -> bool:
    """Show the warnings and the diff, then write the config (unless ``dry_run``)."""
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    new_text = config_text(result.config, old_text)
    diff = config_diff(old_text, new_text, path)
    if not diff:
        click.echo(f"{path}: stage {stage} already says this; nothing to write")
        return False
    for line in diff:
        click.echo(line)
    if dry_run:
        click.echo(f"dry run: {path} unchanged", err=True)
        return False
    path.write_text(new_text, encoding="utf-8")
    return True


@click.command("init")
@click.option("--stage", required=True, help="The stage to write (created if missing).")
@click.option("--region", default=None, help="AWS Region the stage deploys to.")
@click.option(
    "--deploy-account",
    default=None,
    help="Account the stage deploys to (default: the stage's current one if among --account, "
    "else the first --account).",
)
@click.option(
    "--account",
    "accounts",
    multiple=True,
    help="An account whose sign-ins to watch, ID or ID=NAME (repeatable).",
)
@click.option(
    "--pager-min-severity",
    type=click.Choice(SEVERITIES),
    default="HIGH",
    show_default=True,
    help="Lowest severity sent to the pager output.",
)
@click.option("--no-pager", is_flag=True, help="No pager output (alerts topic only).")
@click.option("--email", "alert_emails", multiple=True, help="Subscribe this address to alerts.")
@click.option("--pager-email", "pager_emails", multiple=True, help="Subscribe it to the pager.")
@click.option("--like", default="dev", show_default=True, help="A new stage copies this stage.")
@PROJECT_DIR_OPTION
@click.option("--dry-run", is_flag=True, help="Show the diff, write nothing.")
@click.option(
    "--no-input", is_flag=True, help="Never prompt: fail naming the missing flags instead."
)
@click.option("--prompt", is_flag=True, help="Ask even when stdin is not a terminal.")
def init(
    *,
    stage: str,
    region: str | None,
    deploy_account: str | None,
    accounts: tuple[str, ...],
    pager_min_severity: str,
    no_pager: bool,
    alert_emails: tuple[str, ...],
    pager_emails: tuple[str, ...],
    like: str,
    project_dir: Path,
    dry_run: bool,
    no_input: bool,
    prompt: bool,
) -> None:
    """Write or update a stage of .chalice/config.json for `mfawatch deploy`, showing a diff.

    Sets the stage's topic and table names, the accounts to watch and their names, the outputs
    (alerts; pager for --pager-min-severity and above) and e-mail subscriptions that deploy
    creates. Asks for what is missing when run in a terminal.

    \b
    Example:
      mfawatch init --stage dev --region us-east-1 \\
        --account 210987654321=security --account 345678901234=prod \\
        --email secops@example.com
    """
    project = Project(project_dir)
    old_text, config = _read_config(project)
    existing = ((config.get("stages") or {}).get(stage) or {}).get("environment_variables")
    interactive = not no_input and (prompt or sys.stdin.isatty())
    region, deploy_account, account_list = _prompt_missing(
        region, deploy_account, accounts, existing or {}, interactive
    )
    try:
        check_stage_name(str(config.get("app_name") or ""), stage, handler_names())
        parsed = dict(parse_account(a) for a in account_list)
        answers = InitAnswers(
            stage=stage,
            region=region,
            deploy_account=deploy_account,
            accounts=parsed,
            pager_min_severity=None if no_pager else pager_min_severity,
            alert_emails=alert_emails,
            pager_emails=pager_emails,
            like=like,
        )
        result = stage_init(config, answers)
    except MfawatchError as exc:
        raise click.ClickException(f"{project.config_path}: stage {stage}: {exc}") from exc
    if _write_config(project.config_path, old_text, result, stage=stage, dry_run=dry_run):
        click.echo(
            f"wrote {project.config_path}; next: mfawatch deploy --stage {stage} --region {region}",
            err=True,
        )


COMMANDS: list[click.Command] = [init]
