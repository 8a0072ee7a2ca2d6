"""``python -m mfawatch deploy-template ...``: write the generated deploy templates.

Thin click commands over :mod:`mfawatch.deploy`. The lead registers :data:`COMMANDS` on the
main group in ``mfawatch/cli.py``. The handlers come from the Chalice app itself (``app.py``),
so a template covers exactly the functions ``chalice deploy``/``chalice package`` create.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from chalicelib.errors import MfawatchError
from chalicelib.rules import load_bundle

from .deploy import (
    RESOURCE_PREFIX,
    RESOURCES_TEMPLATE,
    StageConfig,
    check_stage_name,
    invoke_config_template,
    load_resources_template,
    load_stage_config,
    merge_template,
)
from .paths import CHALICE_CONFIG, REPO_ROOT


def app_handler_names() -> list[str]:
    """The Lambda handlers the Chalice app in ``app.py`` registers (one function each).

    Event sources (``on_cw_event``, ``schedule``, ...) and pure ``lambda_function`` handlers.
    A REST or WebSocket API would add functions this deployment does not configure, so it is an
    error rather than a silent gap.
    """
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    import app as app_module  # the deployed wiring; imports boto3 but calls nothing

    chalice_app = app_module.app
    if getattr(chalice_app, "routes", None) or getattr(chalice_app, "websocket_handlers", None):
        raise click.ClickException("app.py defines an API; deploy templates cover events only")
    names = [source.name for source in chalice_app.event_sources]
    names += [function.name for function in chalice_app.pure_lambda_functions]
    return sorted(names)


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


_stage_option = click.option("--stage", required=True, help="Stage name in .chalice/config.json.")
_output_option = click.option(
    "--output",
    "-o",
    default="-",
    show_default=True,
    help="File to write (JSON; parent folders are created); '-' prints to stdout.",
)
CONFIG_OPTION = click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=CHALICE_CONFIG,
    show_default=True,
    help="The Chalice config to read.",
)


@click.group("deploy-template")
def deploy_template() -> None:
    """Generate the CloudFormation templates of docs/deploy.md for a stage."""


@deploy_template.command("invoke-config")
@_stage_option
@_output_option
@CONFIG_OPTION
def invoke_config(stage: str, output: str, config_path: Path) -> None:
    """Route (a): EventInvokeConfig (retries, event age, on-failure queue) per function."""
    handlers = app_handler_names()
    stage_config = _stage_config(stage, config_path, handlers)
    _generate(lambda: invoke_config_template(stage_config.app_name, stage, handlers), output)


@deploy_template.command("merge")
@_stage_option
@_output_option
@CONFIG_OPTION
@click.option(
    "--resources",
    "resources_path",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=RESOURCES_TEMPLATE,
    show_default=True,
    help="The resources template whose resources the merge adds.",
)
def merge(stage: str, output: str, config_path: Path, resources_path: Path) -> None:
    """Route (b): the template for `chalice package --merge-template` (one stack)."""
    handlers = app_handler_names()
    stage_config = _stage_config(stage, config_path, handlers)
    _generate(
        lambda: merge_template(stage_config, handlers, load_resources_template(resources_path)),
        output,
    )


@click.command("check-stage")
@_stage_option
@click.option(
    "--app-name",
    default=RESOURCE_PREFIX,
    show_default=True,
    help="The Chalice app name (app_name in .chalice/config.json).",
)
def check_stage(stage: str, app_name: str) -> None:
    """Exit 1 when AWS would reject a name built from the stage (length, characters).

    The stage need not be in .chalice/config.json yet: `make deploy-resources` runs this first.
    """
    checked_stage(app_name, stage)
    click.echo(f"stage {stage!r} is a valid stage name", err=True)


COMMANDS: list[click.Command] = [deploy_template, check_stage]
"""What ``mfawatch/cli.py`` adds to its main group: ``main.add_command(command)`` each."""
