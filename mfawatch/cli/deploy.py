"""``mfawatch deploy`` and ``mfawatch destroy``: thin click commands over
:mod:`mfawatch.deploy.deployer`.

The boto3 session is injected (:func:`make_commands`), so tests hand in a session bound to
moto_server; the defaults build the user's session, which honours ``AWS_PROFILE``,
``AWS_DEFAULT_REGION`` and ``AWS_ENDPOINT_URL`` as the AWS CLI does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from chalicelib.core.errors import MfawatchError
from mfawatch.cli.options import PROJECT_DIR_OPTION, STAGE_OPTION, default_session, handler_names
from mfawatch.deploy.chalice_app import ChaliceCommand, Project, environ_for_chalice
from mfawatch.deploy.deployer import (
    ROUTE_MERGED,
    ROUTE_STACKS,
    ROUTES,
    Deployer,
    Outcome,
    Step,
    plan_deploy,
    plan_destroy,
    summary,
)

if TYPE_CHECKING:
    import boto3


_region = click.option(
    "--region",
    default=None,
    help="AWS Region to deploy to (default: the session's, e.g. AWS_DEFAULT_REGION).",
)
_route = click.option(
    "--route",
    type=click.Choice(ROUTES),
    default=ROUTE_STACKS,
    show_default=True,
    help="stacks: resources stack + chalice deploy + invoke-config stack (route a); merged: one "
    "stack from chalice package (route b, needs --bucket).",
)
_plan_only = click.option("--plan", "plan_only", is_flag=True, help="Print the steps and stop.")


def _deployer(
    session_factory: Callable[[], boto3.Session],
    project_dir: Path,
    stage: str,
    region: str | None,
    *,
    bucket: str | None = None,
    force: bool = False,
) -> Deployer:
    session = session_factory()
    region_name = region or session.region_name
    if not region_name:
        raise click.UsageError("no Region: pass --region or set AWS_DEFAULT_REGION")
    project = Project(project_dir)

    def client(service: str) -> Any:
        # A runtime service name; boto3-stubs overload literal names only.
        return session.client(service, region_name=region_name)  # type: ignore[call-overload]

    return Deployer(
        project,
        stage,
        region_name,
        handler_names(),
        client,
        chalice=ChaliceCommand(project, region_name, environ_for_chalice()),
        echo=lambda line: click.echo(line, err=True),
        clock=time.monotonic,
        sleep=time.sleep,
        bucket=bucket,
        force=force,
    )


def _plan(make: Callable[[], tuple[Step, ...]], plan_only: bool) -> tuple[Step, ...]:
    """The plan, or () after printing it with --plan."""
    try:
        plan = make()
    except MfawatchError as exc:
        raise click.UsageError(str(exc)) from exc
    if plan_only:
        for step in plan:
            click.echo(f"{step.name}: {step.does}")
        return ()
    return plan


def _run(deployer: Deployer, plan: tuple[Step, ...], action: str) -> list[Outcome]:
    try:
        return deployer.run(plan, action)
    except MfawatchError as exc:
        raise click.ClickException(str(exc)) from exc


def make_commands(
    session_factory: Callable[[], boto3.Session] = default_session,
) -> list[click.Command]:
    """``deploy`` and ``destroy`` with the boto3 session factory injected."""
    return [deploy_command(session_factory), destroy_command(session_factory)]


def deploy_command(session_factory: Callable[[], boto3.Session]) -> click.Command:
    """``deploy`` with the boto3 session factory injected."""

    @click.command("deploy")
    @STAGE_OPTION
    @_region
    @_route
    @click.option("--bucket", help="S3 bucket for the deployment package (--route merged).")
    @PROJECT_DIR_OPTION
    @click.option("--no-selftest", is_flag=True, help="Skip the last step (self-test).")
    @click.option(
        "--force",
        is_flag=True,
        help="Run chalice deploy even when nothing changed since the last deploy from this folder.",
    )
    @_plan_only
    def deploy(
        *,
        stage: str,
        region: str | None,
        route: str,
        bucket: str | None,
        project_dir: Path,
        no_selftest: bool,
        force: bool,
        plan_only: bool,
    ) -> None:
        """Deploy a stage in one idempotent command (boto3 and Chalice; no AWS CLI).

        Route stacks: the resources stack (change set, events as progress), its outputs into
        the stage config and policy, chalice deploy, the invoke-config stack, the self-test.
        A second run reports "no changes". A failure names the step, AWS's error and what to do.

        \b
        Example:
          mfawatch deploy --stage dev --region us-east-1   # after mfawatch init --stage dev
          mfawatch deploy --stage prod --route merged --bucket my-artifacts
        """
        if route == ROUTE_MERGED and not bucket:
            raise click.UsageError("--route merged needs --bucket (an S3 bucket for the package)")
        plan = _plan(lambda: plan_deploy(route, stage, selftest=not no_selftest), plan_only)
        if not plan:
            return
        deployer = _deployer(
            session_factory, project_dir, stage, region, bucket=bucket, force=force
        )
        start = time.monotonic()
        outcomes = _run(deployer, plan, "deploy")
        click.echo(f"{summary(outcomes, 'deploy')} in {time.monotonic() - start:.1f} s")

    return deploy


def destroy_command(session_factory: Callable[[], boto3.Session]) -> click.Command:
    """``destroy`` with the boto3 session factory injected."""

    @click.command("destroy")
    @STAGE_OPTION
    @_region
    @_route
    @PROJECT_DIR_OPTION
    @click.option(
        "--delete-data",
        is_flag=True,
        help="Also delete the resources stack: the table (alert state), the key, the topics and "
        "the failed-events queue.",
    )
    @_plan_only
    def destroy(
        *,
        stage: str,
        region: str | None,
        route: str,
        project_dir: Path,
        delete_data: bool,
        plan_only: bool,
    ) -> None:
        """Remove what deploy created, in reverse order; keeps the data unless --delete-data.

        Without --delete-data the resources stack stays (table, key, topics, queue): a later
        deploy uses them again.

        \b
        Example:
          mfawatch destroy --stage dev --region us-east-1
          mfawatch destroy --stage dev --region us-east-1 --delete-data
        """
        plan = _plan(lambda: plan_destroy(route, stage, delete_data=delete_data), plan_only)
        if not plan:
            return
        deployer = _deployer(session_factory, project_dir, stage, region)
        outcomes = _run(deployer, plan, "destroy")
        if not delete_data and route == ROUTE_STACKS:
            click.echo(
                f"kept stack {deployer.names.resources_stack} (table, key, topics, queue): "
                "add --delete-data to delete it",
                err=True,
            )
        click.echo(summary(outcomes, "destroy"))

    return destroy


COMMANDS: list[click.Command] = make_commands()
