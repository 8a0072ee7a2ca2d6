"""Organization commands: ``forwarder-template`` and ``audit``, thin over :mod:`mfawatch.org`.

See docs/organization.md.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click
from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.core.errors import MfawatchError
from chalicelib.core.rules import load_bundle
from mfawatch.cli.options import RULES_BUNDLE_OPTION, default_session, with_options
from mfawatch.errors import ForwarderConfigError
from mfawatch.org.audit import AssumeRoleClients, organization_accounts, render_table, run_audit
from mfawatch.org.forwarder import (
    AUDIT_ROLE_NAME,
    GLOBAL_SERVICE_REGION,
    dump_template,
    member_template,
    parse_central_bus_arn,
    parse_regions,
)

if TYPE_CHECKING:
    import boto3

SessionFactory = Callable[[], "boto3.Session"]


_BUS_OPTION = click.option(
    "--central-bus-arn",
    required=True,
    help="ARN of the central event bus "
    "(e.g. arn:aws:events:us-east-1:111122223333:event-bus/default).",
)
_REGIONS_HELP = "Regions, comma-separated or repeated (e.g. --regions us-east-1,eu-north-1)."


@click.command("forwarder-template")
@_BUS_OPTION
@click.option(
    "--regions",
    multiple=True,
    help=_REGIONS_HELP + " Forwarding rules are created only in these Regions, whatever Regions "
    "the StackSet deploys to; default: every Region it deploys to.",
)
@click.option(
    "--home-region",
    default=GLOBAL_SERVICE_REGION,
    show_default=True,
    help="Region whose stack creates the account-wide audit role.",
)
@click.option(
    "--audit-role-name",
    default=AUDIT_ROLE_NAME,
    show_default=True,
    help="Name of the read-only role for `audit`; empty: no audit role.",
)
@click.option(
    "--format", "fmt", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True
)
@RULES_BUNDLE_OPTION
def forwarder_template(
    *,
    central_bus_arn: str,
    regions: tuple[str, ...],
    home_region: str,
    audit_role_name: str,
    fmt: str,
    rules_bundle: Path,
) -> None:
    """Print the member-account CloudFormation template for a service-managed StackSet.

    \b
    Example:
      mfawatch forwarder-template \\
        --central-bus-arn arn:aws:events:us-east-1:210987654321:event-bus/mfawatch \\
        --regions us-east-1,eu-west-1 > forwarder.yaml
    """
    try:
        central = parse_central_bus_arn(central_bus_arn)
        region_list = parse_regions(regions)
        (home,) = parse_regions([home_region], option="--home-region") or (GLOBAL_SERVICE_REGION,)
        result = member_template(
            load_bundle(rules_bundle),
            central,
            region_list,
            home_region=home,
            audit_role_name=audit_role_name or None,
        )
    except MfawatchError as exc:
        raise click.UsageError(str(exc)) from exc
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(dump_template(result.template, fmt), nl=False)


_AUDIT_OPTIONS = (
    _BUS_OPTION,
    click.option("--regions", multiple=True, required=True, help=_REGIONS_HELP),
    click.option(
        "--accounts",
        multiple=True,
        help="Account ids, comma-separated or repeated (default: the caller's account).",
    ),
    click.option(
        "--organization",
        is_flag=True,
        help="Every ACTIVE account of the Organization (organizations:ListAccounts).",
    ),
    click.option(
        "--role-name",
        default=AUDIT_ROLE_NAME,
        show_default=True,
        help="Read-only role assumed in each account other than the caller's.",
    ),
    click.option(
        "--output", type=click.Choice(["table", "json"]), default="table", show_default=True
    ),
    RULES_BUNDLE_OPTION,
)


def _account_ids(accounts: tuple[str, ...], organization: bool) -> list[str]:
    """The ``--accounts`` values, comma-separated or repeated, checked."""
    account_list = [a.strip() for v in accounts for a in v.split(",") if a.strip()]
    bad = [a for a in account_list if not (a.isdigit() and len(a) == 12)]
    if bad:
        raise ForwarderConfigError(f"--accounts: not 12-digit account ids: {', '.join(bad)}")
    if account_list and organization:
        raise ForwarderConfigError("--accounts and --organization are exclusive")
    return account_list


def make_audit_command(session_factory: SessionFactory = default_session) -> click.Command:
    """The ``audit`` command, with the boto3 session factory injected (tests pass moto's)."""

    @click.command("audit")
    @with_options(*_AUDIT_OPTIONS)
    def audit(
        *,
        central_bus_arn: str,
        regions: tuple[str, ...],
        accounts: tuple[str, ...],
        organization: bool,
        role_name: str,
        output: str,
        rules_bundle: Path,
    ) -> None:
        """Check that every account x Region forwards the rules to the central bus (read-only).

        Exits 1 when any forwarding rule is missing, disabled or targets another bus, or when an
        account cannot be read.

        \b
        Example:
          mfawatch audit --organization \\
            --central-bus-arn arn:aws:events:us-east-1:210987654321:event-bus/mfawatch \\
            --regions us-east-1,eu-west-1
        """
        try:
            central = parse_central_bus_arn(central_bus_arn)
            region_list = parse_regions(regions)
            account_list = _account_ids(accounts, organization)
            rules = load_bundle(rules_bundle)
        except MfawatchError as exc:
            raise click.UsageError(str(exc)) from exc
        session = session_factory()
        try:
            clients = AssumeRoleClients(session, role_name)
            if organization:
                account_list = organization_accounts(session.client("organizations"))
        except (ClientError, BotoCoreError) as exc:
            raise click.ClickException(f"cannot start the audit: {exc}") from exc
        report = run_audit(
            rules, central, account_list or [clients.caller_account], region_list, clients
        )
        if output == "json":
            click.echo(json.dumps(report.to_json(), indent=2, sort_keys=True))
        else:
            click.echo(render_table(report))
        if not report.ok:
            raise click.exceptions.Exit(1)

    return audit


audit_command = make_audit_command()

COMMANDS: list[click.Command] = [forwarder_template, audit_command]
