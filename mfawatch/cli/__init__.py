"""Command line: ``mfawatch`` (and ``python -m mfawatch``). Thin commands over the toolkit's
pipelines and the same code the Lambda runs.

One module per command group, each exporting ``COMMANDS`` (its click commands):

=============  ==================================================================
``replay``     ``replay`` (files, folders, S3, stdin, Athena)
``rules``      ``rules build|validate|test|list``, ``test-pattern``
``athena``     ``athena-ddl``, ``athena-sql``
``stage``      ``policy``, ``check-stage``, ``deploy-config``, ``deploy-template``
``init``       ``init``
``deploy``     ``deploy``, ``destroy``
``selftest``   ``selftest``
``redrive``    ``redrive``
``org``        ``forwarder-template``, ``audit``
=============  ==================================================================

Shared options live in :mod:`mfawatch.cli.options`. The command modules import only that, never
this module or each other. Results go to stdout (a table, or JSON lines for pipes); totals,
problems and logs go to stderr.
"""

from __future__ import annotations

import sys

import click

from chalicelib.core.errors import MfawatchError
from mfawatch.cli import (
    athena,
    deploy,
    init,
    org,
    redrive,
    replay,
    rules,
    selftest,
    stage,
    suppressions,
)


@click.group()
def main() -> None:
    """mfawatch: failed-MFA sign-in alerting for AWS, offline tools."""


def run() -> None:
    """Entry point that turns our errors into a clean exit instead of a traceback."""
    try:
        main(standalone_mode=True)
    except MfawatchError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)


# A new command group: a module here exporting COMMANDS, added to this tuple.
for _group in (replay, rules, stage, org, init, deploy, athena, selftest, redrive, suppressions):
    for _command in _group.COMMANDS:
        main.add_command(_command)
