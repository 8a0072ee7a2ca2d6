"""``mfawatch init --stage S``: write or update a stage of ``.chalice/config.json``.

From flags, or prompts for what is missing: the account the stage deploys to and its Region, the
accounts expected to send sign-in events and their names, the outputs (alerts, and the pager
with its minimum severity) and optional e-mail subscriptions. The result is checked the way the
functions and ``mfawatch deploy`` will read it (:func:`chalicelib.config.settings_from_env`, the
stage-name limit, the policy generator), and the change is shown as a diff before it is written.

A new stage starts as a copy of an existing one (``--like``, default ``dev``), so settings that
are not asked for (thresholds, memory, the scheduler's reserved concurrency) come from the file
itself rather than from a second copy of them here.

:func:`stage_init` is pure; the command reads and writes the file and asks the questions.
"""

from __future__ import annotations

import copy
import difflib
import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from chalicelib.config import (
    ENV_ACCOUNT_NAMES,
    ENV_ALLOWED_ACCOUNTS,
    ENV_OUTPUTS,
    ENV_TABLE_NAME,
    ENV_TOPIC_ARN,
    parse_outputs,
    settings_from_env,
)
from chalicelib.errors import ConfigError, MfawatchError
from chalicelib.rules import SEVERITIES
from mfawatch.cli.stage import PROJECT_DIR_OPTION
from mfawatch.deploy.deployer import Project
from mfawatch.deploy.policy import stage_policy
from mfawatch.deploy.templates import (
    DEFAULT_ROUTES,
    OUTPUT_ALERTS_TOPIC,
    OUTPUT_PAGER_TOPIC,
    SUBSCRIPTIONS_KEY,
    StageConfig,
    StageNames,
    arn_parts,
    check_stage_name,
    config_text,
    read_config_document,
)

# The example accounts of AWS's documentation, which the shipped config uses as placeholders.
PLACEHOLDER_ACCOUNTS = frozenset({"111122223333", "444455556666", "123456789012"})
REGION_PATTERN = r"[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d"
EMAIL_PATTERN = r"[^@\s]+@[^@\s]+\.[^@\s]+"


@dataclass(frozen=True)
class InitAnswers:
    """What ``init`` asks for; every field validated by :func:`stage_init`."""

    stage: str
    region: str
    deploy_account: str
    accounts: Mapping[str, str]
    """Account id -> name (may be empty) of every account expected to send events."""
    pager_min_severity: str | None = "HIGH"
    """None: no pager output."""
    alert_emails: Sequence[str] = ()
    pager_emails: Sequence[str] = ()
    like: str = "dev"


@dataclass(frozen=True)
class InitResult:
    config: dict[str, Any]
    warnings: tuple[str, ...]


def partition_of(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def parse_account(text: str) -> tuple[str, str]:
    """``ID`` or ``ID=NAME`` -> (id, name); :class:`ConfigError` naming the value."""
    account, _, name = text.partition("=")
    account = account.strip()
    if not re.fullmatch(r"\d{12}", account):
        raise ConfigError(f"--account {text!r}: an account is 12 digits, optionally =NAME")
    return account, name.strip()


def stage_init(config: Mapping[str, Any], answers: InitAnswers) -> InitResult:
    """Pure: ``config`` with stage ``answers.stage`` written from the answers, checked.

    An existing stage keeps every setting that is not asked for (thresholds, other outputs);
    a new stage starts as a copy of ``answers.like`` when it exists.
    """
    app_name = config.get("app_name")
    if not isinstance(app_name, str) or not app_name:
        raise ConfigError("app_name is not set: is this a Chalice project's .chalice/config.json?")
    stage = answers.stage
    if not re.fullmatch(REGION_PATTERN, answers.region):
        raise ConfigError(f"--region {answers.region!r} is not an AWS Region (e.g. us-east-1)")
    if not re.fullmatch(r"\d{12}", answers.deploy_account):
        raise ConfigError(f"--deploy-account {answers.deploy_account!r}: 12 digits expected")
    if not answers.accounts:
        raise ConfigError("give at least one --account (the accounts whose sign-ins to watch)")
    severity = answers.pager_min_severity
    if severity is not None and severity not in SEVERITIES:
        raise ConfigError(f"--pager-min-severity must be one of {', '.join(SEVERITIES)}")
    for email in (*answers.alert_emails, *answers.pager_emails):
        if not re.fullmatch(EMAIL_PATTERN, email):
            raise ConfigError(f"e-mail {email!r} is not an e-mail address")
    if answers.pager_emails and severity is None:
        raise ConfigError("--pager-email needs the pager output (drop --no-pager)")

    updated: dict[str, Any] = copy.deepcopy(dict(config))
    stages = updated.setdefault("stages", {})
    if isinstance(stages.get(stage), dict):
        entry = stages[stage]
    else:
        template = stages.get(answers.like)
        entry = copy.deepcopy(template) if isinstance(template, dict) else {}
        stages[stage] = entry
    entry["iam_policy_file"] = f"policy-{stage}.json"
    env = entry.setdefault("environment_variables", {})
    names = StageNames(app_name, stage)
    arn = f"arn:{partition_of(answers.region)}:sns:{answers.region}:{answers.deploy_account}:"
    topics = {
        OUTPUT_ALERTS_TOPIC: arn + names.alerts_topic,
        OUTPUT_PAGER_TOPIC: arn + names.pager_topic,
    }
    env[ENV_TOPIC_ARN] = topics[OUTPUT_ALERTS_TOPIC]
    env[ENV_TABLE_NAME] = names.table
    env[ENV_ALLOWED_ACCOUNTS] = ",".join(answers.accounts)
    env[ENV_ACCOUNT_NAMES] = json.dumps({a: n for a, n in answers.accounts.items() if n})

    # Outputs: alerts and pager on this stage's topics; other outputs (a chat topic) are kept.
    raw_outputs = str(env.get(ENV_OUTPUTS) or "").strip()
    if raw_outputs:
        parse_outputs(raw_outputs)  # names the output and field that is wrong
    outputs = json.loads(raw_outputs or "{}")
    for name, (output_key, route) in DEFAULT_ROUTES.items():
        spec = dict(route, **{k: v for k, v in (outputs.get(name) or {}).items()})
        spec["topic_arn"] = topics[output_key]
        outputs[name] = {"topic_arn": spec.pop("topic_arn"), **spec}
    if severity is None:
        outputs.pop("pager", None)
    else:
        outputs["pager"]["min_severity"] = severity
    env[ENV_OUTPUTS] = json.dumps(outputs)

    subscriptions = {"alerts": list(answers.alert_emails), "pager": list(answers.pager_emails)}
    subscriptions = {k: v for k, v in subscriptions.items() if v}
    if subscriptions:
        entry[SUBSCRIPTIONS_KEY] = subscriptions
    else:
        entry.pop(SUBSCRIPTIONS_KEY, None)

    # What deploy and the functions will check, checked now.
    stage_config = StageConfig.from_config(updated, stage)
    settings_from_env(stage_config.environment())
    stage_config.subscriptions()
    stage_policy(stage_config)
    warnings = []
    placeholders = sorted({answers.deploy_account, *answers.accounts} & PLACEHOLDER_ACCOUNTS)
    if placeholders:
        warnings.append(
            f"account(s) {', '.join(placeholders)} are AWS's documentation examples: "
            "use your own account ids"
        )
    if answers.deploy_account not in answers.accounts:
        warnings.append(
            f"the deploy account {answers.deploy_account} is not among --account: its own "
            "sign-ins will carry a note that it is outside the list"
        )
    return InitResult(updated, tuple(warnings))


def config_diff(old: str, new: str, path: Path) -> list[str]:
    return list(
        difflib.unified_diff(
            old.splitlines(), new.splitlines(), f"{path} (before)", f"{path} (after)", lineterm=""
        )
    )


def _prompt_missing(
    region: str | None,
    deploy_account: str | None,
    accounts: Sequence[str],
    existing: Mapping[str, str],
    interactive: bool,
) -> tuple[str, str, list[str]]:
    """Ask for what the flags leave out (an existing stage's values are the defaults, read
    with the functions' own parser; a stage they would reject gives no defaults)."""
    try:
        settings = settings_from_env(existing)
        _, old_region, old_account = arn_parts(settings.topic_arn, ENV_TOPIC_ARN)
    except ConfigError:
        settings, old_region, old_account = None, None, None
    missing = []
    if region is None:
        region = old_region
    if deploy_account is None:
        deploy_account = old_account
    if not accounts and settings is not None and settings.allowed_accounts:
        names = settings.account_names
        accounts = [
            f"{a}={names[a]}" if names.get(a) else a for a in sorted(settings.allowed_accounts)
        ]
    if not interactive:
        if region is None:
            missing.append("--region")
        if deploy_account is None and not accounts:
            missing.append("--deploy-account or --account")
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
        first = parse_account(accounts[0])[0] if accounts else None
        if interactive:
            deploy_account = str(click.prompt("Account the stage deploys to", default=first))
        else:
            deploy_account = first
    assert deploy_account is not None
    return region, deploy_account, list(accounts)


@click.command("init")
@click.option("--stage", required=True, help="The stage to write (created if missing).")
@click.option("--region", default=None, help="AWS Region the stage deploys to.")
@click.option(
    "--deploy-account",
    default=None,
    help="Account the stage deploys to (default: first --account).",
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
    try:
        old_text, config = read_config_document(project.config_path)
    except MfawatchError as exc:
        raise click.ClickException(f"{exc}: run init in a Chalice project (--project-dir)") from exc
    existing_stage = (config.get("stages") or {}).get(stage) or {}
    interactive = not no_input and (prompt or sys.stdin.isatty())
    region, deploy_account, account_list = _prompt_missing(
        region,
        deploy_account,
        accounts,
        existing_stage.get("environment_variables") or {},
        interactive,
    )
    try:
        check_stage_name(str(config.get("app_name") or ""), stage, _handlers())
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
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    new_text = config_text(result.config, old_text)
    diff = config_diff(old_text, new_text, project.config_path)
    if not diff:
        click.echo(f"{project.config_path}: stage {stage} already says this; nothing to write")
        return
    for line in diff:
        click.echo(line)
    if dry_run:
        click.echo(f"dry run: {project.config_path} unchanged", err=True)
        return
    project.config_path.write_text(new_text, encoding="utf-8")
    click.echo(
        f"wrote {project.config_path}; next: mfawatch deploy --stage {stage} --region {region}",
        err=True,
    )


def _handlers() -> list[str]:
    from mfawatch.cli.stage import app_handler_names

    return app_handler_names()


COMMANDS: list[click.Command] = [init]
"""What ``mfawatch/cli/__init__.py`` adds to its main group."""
