"""What the commands share: options, parameter types and small argument helpers, written once.

Every command module of :mod:`mfawatch.cli` takes its common options from here; this module
imports no command module, so the command modules never import each other or the root group.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from chalicelib.core.errors import MfawatchError
from chalicelib.core.records import parse_time
from chalicelib.core.rules import BUNDLE_PATH, RuleSet
from chalicelib.core.suppressions import BUNDLE_PATH as SUPPRESSIONS_BUNDLE
from mfawatch.paths import CHALICE_CONFIG, REPO_ROOT, RULES_DIR, SUPPRESSIONS_DIR

if TYPE_CHECKING:
    import boto3


class IsoTime(click.ParamType[datetime, Any]):
    """An ISO-8601 time or date (``2026-11-02``, ``2026-11-02T09:00Z``); naive means UTC."""

    name = "ISO-8601 time"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            return parse_time(str(value))
        except ValueError:
            self.fail(f"{value!r} is not an ISO-8601 time (e.g. 2026-11-02T09:00:00Z)", param, ctx)


FC = TypeVar("FC", bound=Callable[..., Any])


def path_option(
    *names: str, default: Path, help_text: str, folder: bool = False, exists: bool = False
) -> Callable[[FC], FC]:
    """An option naming a file (or, with ``folder``, a folder), its default shown."""
    kind = click.Path(path_type=Path, file_okay=not folder, dir_okay=folder, exists=exists)
    return click.option(*names, type=kind, default=default, show_default=True, help=help_text)


RULES_BUNDLE_OPTION = path_option(
    "--rules-bundle",
    default=BUNDLE_PATH,
    help_text="Compiled rules (what the Lambda package carries; make rules rebuilds it).",
)
RULES_DIR_OPTION = path_option(
    "--rules-dir",
    folder=True,
    default=RULES_DIR,
    help_text="Folder of rule files (YAML or JSON, one rule each).",
)
SUPPRESSIONS_BUNDLE_OPTION = path_option(
    "--suppressions-bundle",
    default=SUPPRESSIONS_BUNDLE,
    help_text="Compiled suppressions (make rules rebuilds it).",
)
SUPPRESSIONS_DIR_OPTION = path_option(
    "--suppressions-dir",
    folder=True,
    default=SUPPRESSIONS_DIR,
    help_text="Folder of suppression files (YAML, one suppression each).",
)
STAGE_OPTION = click.option("--stage", required=True, help="Stage name in .chalice/config.json.")
CONFIG_OPTION = path_option(
    "--config", "config_path", default=CHALICE_CONFIG, help_text="The Chalice config to read."
)
PROJECT_DIR_OPTION = path_option(
    "--project-dir",
    folder=True,
    exists=True,
    default=REPO_ROOT,
    help_text="The Chalice project (app.py, .chalice/config.json); tests pass a copy.",
)


def with_options(*options: Callable[[FC], FC]) -> Callable[[FC], FC]:
    """One decorator for ``options`` in the order written, as if stacked above the command (the
    first one is the first in ``--help``): a command's options can then be listed once, beside
    the other module-level options, and the command factory stays short."""

    def decorate(function: FC) -> FC:
        for option in reversed(options):
            function = option(function)
        return function

    return decorate


def select_rules(rules: RuleSet, rule_ids: Sequence[str]) -> RuleSet:
    """The rules named by ``--rule`` (all without one); an unknown id is a ``--rule`` error."""
    if not rule_ids:
        return rules
    unknown = [rule_id for rule_id in rule_ids if rule_id not in rules.ids]
    if unknown:
        raise click.BadParameter(
            f"no rule {', '.join(map(repr, unknown))}; known: {', '.join(rules.ids)}",
            param_hint="--rule",
        )
    return RuleSet([rules.get(rule_id) for rule_id in dict.fromkeys(rule_ids)])


def exit_on_errors(sources: Sequence[object], total: int, files: str) -> None:
    """With errors (``sources``: the file of each), say how many in how many of ``total``
    ``files`` on stderr and exit 1."""
    if sources:
        click.echo(f"{len(sources)} error(s) in {len(set(sources))} of {total} {files}", err=True)
        sys.exit(1)


def split_list(value: str | None) -> list[str]:
    """``a,b, c`` -> ``["a", "b", "c"]`` (empty parts dropped)."""
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def default_session() -> boto3.Session:
    """The user's boto3 session (``AWS_PROFILE``, ``AWS_DEFAULT_REGION``, ... as the AWS CLI).

    The commands that call AWS take a session factory defaulting to this; tests pass moto's.
    """
    import boto3  # only the commands that call AWS need it

    return boto3.Session()


def handler_names() -> list[str]:
    """The app's Lambda handlers (:func:`mfawatch.deploy.handlers.app_handler_names`); an app
    the templates cannot cover is a usage error of the command, not a traceback."""
    from mfawatch.deploy.handlers import app_handler_names  # imports app.py: only when needed

    try:
        return app_handler_names()
    except MfawatchError as exc:
        raise click.ClickException(str(exc)) from exc
