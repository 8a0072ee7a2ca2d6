"""Commands on one stage's config, policy and templates: ``policy``, ``check-stage``,
``deploy-config`` and ``deploy-template invoke-config|merge``.

Thin click commands over :mod:`mfawatch.deploy.templates` and :mod:`mfawatch.deploy.policy`.
The handlers come from the Chalice app itself (:mod:`mfawatch.deploy.handlers`), so a template
covers exactly the functions ``chalice deploy``/``chalice package`` create.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from chalicelib.core.errors import MfawatchError
from chalicelib.core.rules import load_bundle
from mfawatch.cli.options import (
    CONFIG_OPTION,
    STAGE_OPTION,
    default_session,
    handler_names,
    path_option,
)
from mfawatch.deploy.policy import policy_json, stage_policy
from mfawatch.deploy.stacks import ResourcesStack, caller_account
from mfawatch.deploy.templates import (
    RESOURCE_PREFIX,
    RESOURCES_TEMPLATE,
    StackOutputs,
    StageConfig,
    StageNames,
    check_stage_name,
    config_text,
    invoke_config_template,
    load_resources_template,
    load_stage_config,
    merge_template,
    read_config_document,
    stage_config_update,
)

if TYPE_CHECKING:
    import boto3

OUTPUT_OPTION = click.option(
    "--output",
    "-o",
    default="-",
    show_default=True,
    help="File to write (JSON; parent folders are created); '-' prints to stdout.",
)


def checked_stage(app_name: str, stage: str, handlers: Sequence[str] | None = None) -> None:
    """Fail with a clear message when AWS would reject a name Chalice builds from ``stage``.

    ``handlers`` default to the rule handlers of the bundle (the longest ones; the scheduled
    handlers are shorter).
    """
    if handlers is None:
        handlers = [rule.handler_name for rule in load_bundle()]
    try:
        check_stage_name(app_name, stage, handlers)
    except MfawatchError as exc:
        raise click.ClickException(str(exc)) from exc


def _stage_config(stage: str, config_path: Path, handlers: Sequence[str]) -> StageConfig:
    try:
        stage_config = load_stage_config(stage, config_path)
    except MfawatchError as exc:
        raise click.ClickException(str(exc)) from exc
    checked_stage(stage_config.app_name, stage, handlers)
    return stage_config


def _write(template: dict[str, Any], output: str) -> None:
    text = json.dumps(template, indent=2) + "\n"
    if output == "-":
        click.echo(text, nl=False)
        return
    target = Path(output)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    click.echo(f"wrote {target}", err=True)


def _generate(build: Callable[[], dict[str, Any]], output: str) -> None:
    try:
        template = build()
    except MfawatchError as exc:
        raise click.ClickException(str(exc)) from exc
    _write(template, output)


@click.group("deploy-template")
def deploy_template() -> None:
    """Generate the CloudFormation templates of docs/deploy.md for a stage."""


@deploy_template.command("invoke-config")
@STAGE_OPTION
@OUTPUT_OPTION
@CONFIG_OPTION
def invoke_config(stage: str, output: str, config_path: Path) -> None:
    """Route (a): EventInvokeConfig (retries, event age, on-failure queue) per function.

    \b
    Example:
      mfawatch deploy-template invoke-config --stage dev -o out/deploy/dev/invoke-config.json
    """
    handlers = handler_names()
    stage_config = _stage_config(stage, config_path, handlers)
    _generate(
        lambda: invoke_config_template(
            stage_config.app_name,
            stage,
            handlers,
            consumer_concurrency=stage_config.consumer_concurrency(),
        ),
        output,
    )


@deploy_template.command("merge")
@STAGE_OPTION
@OUTPUT_OPTION
@CONFIG_OPTION
@path_option(
    "--resources",
    "resources_path",
    exists=True,
    default=RESOURCES_TEMPLATE,
    help_text="The resources template whose resources the merge adds.",
)
def merge(stage: str, output: str, config_path: Path, resources_path: Path) -> None:
    """Route (b): the template for `chalice package --merge-template` (one stack).

    \b
    Example:
      mfawatch deploy-template merge --stage dev -o out/deploy/dev/merge.json
    """
    handlers = handler_names()
    stage_config = _stage_config(stage, config_path, handlers)
    _generate(
        lambda: merge_template(stage_config, handlers, load_resources_template(resources_path)),
        output,
    )


@click.command("check-stage")
@STAGE_OPTION
@click.option(
    "--app-name",
    default=RESOURCE_PREFIX,
    show_default=True,
    help="The Chalice app name (app_name in .chalice/config.json).",
)
def check_stage(stage: str, app_name: str) -> None:
    """Exit 1 when AWS would reject a name built from the stage (length, characters).

    The stage need not be in .chalice/config.json yet: `make deploy-resources` runs this first.

    \b
    Example:
      mfawatch check-stage --stage prod-use1
    """
    checked_stage(app_name, stage)
    click.echo(f"stage {stage!r} is a valid stage name", err=True)


def _read_stack(session: boto3.Session, stack: str, region: str | None) -> StackOutputs:
    """The resources stack's outputs, with the caller's account and the Region."""
    region_name = region or session.region_name
    if not region_name:
        raise click.ClickException("no region: pass --region or set AWS_DEFAULT_REGION")
    client = session.client("cloudformation", region_name=region_name)
    outputs = ResourcesStack(client).outputs(stack)
    account = caller_account(session.client("sts", region_name=region_name))
    return StackOutputs(stack, outputs, account, region_name)


def make_deploy_config_command(
    session_factory: Callable[[], boto3.Session] = default_session,
) -> click.Command:
    """The ``deploy-config`` command, with the boto3 session factory injected (tests: moto's)."""

    @click.command("deploy-config")
    @STAGE_OPTION
    @click.option(
        "--stack",
        default=None,
        help="The resources stack (default: mfawatch-<stage>-resources, as make deploy-resources).",
    )
    @click.option("--region", default=None, help="Its region (default: the session's region).")
    @click.option("--write", is_flag=True, help="Write the changes (default: only show them).")
    @CONFIG_OPTION
    def deploy_config(
        *, stage: str, stack: str | None, region: str | None, write: bool, config_path: Path
    ) -> None:
        """Route (a), step 2: put the resources stack's outputs into the stage's config.

        Reads the stack's outputs, checks that their account and region are the caller's, and
        sets MFAWATCH_TOPIC_ARN, MFAWATCH_TABLE_NAME and the stage topics in MFAWATCH_OUTPUTS
        of the stage in .chalice/config.json (created if missing). Prints every change as
        old -> new; everything else in the file is kept.

        \b
        Example:
          mfawatch deploy-config --stage dev --region us-east-1          # show the changes
          mfawatch deploy-config --stage dev --region us-east-1 --write  # write them
        """
        try:
            text, config = read_config_document(config_path)
        except MfawatchError as exc:
            raise click.ClickException(str(exc)) from exc
        checked_stage(str(config.get("app_name") or RESOURCE_PREFIX), stage)
        stack_name = stack or StageNames(RESOURCE_PREFIX, stage).resources_stack
        try:
            resources = _read_stack(session_factory(), stack_name, region)
            update = stage_config_update(config, stage, resources)
        except MfawatchError as exc:
            raise click.ClickException(str(exc)) from exc
        for warning in update.warnings:
            click.echo(f"warning: {warning}", err=True)
        if not update.changes:
            click.echo(f"{config_path}: stage {stage} already matches stack {stack_name}", err=True)
            return
        for change in update.changes:
            click.echo(str(change))
        if not write:
            click.echo(f"dry run: {config_path} unchanged; add --write to apply", err=True)
            return
        config_path.write_text(config_text(update.config, text), encoding="utf-8")
        click.echo(
            f"wrote {config_path}; the policy follows from it: mfawatch policy --stage {stage} "
            "--write (make deploy-config and mfawatch deploy run it)",
            err=True,
        )

    return deploy_config


@click.command()
@STAGE_OPTION
@click.option(
    "--write", is_flag=True, help="Write .chalice/policy-<stage>.json instead of printing."
)
@CONFIG_OPTION
def policy(stage: str, write: bool, config_path: Path) -> None:
    """Print (or write) the least-privilege IAM policy for a stage (beside the config file).

    \b
    Example:
      mfawatch policy --stage dev            # print it
      mfawatch policy --stage dev --write    # .chalice/policy-dev.json
    """
    try:
        stage_config = load_stage_config(stage, config_path)
    except MfawatchError as exc:
        raise click.ClickException(str(exc)) from exc
    checked_stage(stage_config.app_name, stage)
    try:
        text = policy_json(stage_policy(stage_config))
    except MfawatchError as exc:
        raise click.ClickException(str(exc)) from exc
    if write:
        target = config_path.parent / f"policy-{stage}.json"
        target.write_text(text, encoding="utf-8")
        click.echo(f"wrote {target}")
    else:
        click.echo(text, nl=False)


COMMANDS: list[click.Command] = [
    policy,
    deploy_template,
    check_stage,
    make_deploy_config_command(),
]
