"""The deploy's concurrency preflight (:mod:`mfawatch.deploy.concurrency`): figures from a stubbed
Lambda client, the stage's reservations as Chalice resolves them, and the error a user reads."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.stub import Stubber

from chalicelib.core.errors import ConfigError
from mfawatch.deploy.concurrency import (
    ConcurrencyShortfall,
    LambdaConcurrency,
    check_concurrency,
    planned_reservations,
)
from mfawatch.deploy.deployer import ROUTE_STACKS, Deployer, StepError, plan_deploy
from mfawatch.deploy.templates import StageConfig
from tests.stubs import stubbed
from tests.support.chalice import FakeChalice, fake_deployer, project_copy

CONFIG = ".chalice/config.json"
# 14 functions at the app-wide 5 and the scheduler at 1: the 71 of a stage.
HANDLERS = [f"on_rule_{i:02d}" for i in range(14)] + ["send_due_summaries"]
STAGE_CONFIG = StageConfig.from_config(
    {
        "app_name": "mfawatch",
        "reserved_concurrency": 5,
        "stages": {
            "dev": {"lambda_functions": {"send_due_summaries": {"reserved_concurrency": 1}}}
        },
    },
    "dev",
)
PLANNED = planned_reservations(STAGE_CONFIG, HANDLERS)


@pytest.fixture
def lambda_stub() -> Iterator[tuple[Any, Stubber]]:
    with stubbed("lambda") as pair:
        yield pair


def _account(stubber: Stubber, limit: int, unreserved: int) -> None:
    stubber.add_response(
        "get_account_settings",
        {
            "AccountLimit": {
                "ConcurrentExecutions": limit,
                "UnreservedConcurrentExecutions": unreserved,
            }
        },
    )


def _reserved(stubber: Stubber, current: dict[str, int]) -> None:
    """GetFunctionConcurrency for each planned function, in order: ``current``'s value, or no
    function at all."""
    for name in PLANNED:
        if name in current:
            stubber.add_response(
                "get_function_concurrency",
                {"ReservedConcurrentExecutions": current[name]},
                {"FunctionName": name},
            )
        else:
            stubber.add_client_error(
                "get_function_concurrency",
                "ResourceNotFoundException",
                f"Function not found: {name}",
                404,
                expected_params={"FunctionName": name},
            )


def test_the_stage_reserves_71_as_chalice_resolves_function_stage_and_app_settings() -> None:
    assert len(PLANNED) == 15
    assert PLANNED["mfawatch-dev-send_due_summaries"] == 1
    assert PLANNED["mfawatch-dev-on_rule_00"] == 5
    assert sum(PLANNED.values()) == 71
    unset = StageConfig.from_config({"app_name": "mfawatch", "stages": {"dev": {}}}, "dev")
    assert planned_reservations(unset, HANDLERS) == {}


def test_a_new_stage_that_fits_passes_and_needs_all_71(lambda_stub: tuple[Any, Stubber]) -> None:
    client, stubber = lambda_stub
    _account(stubber, 1000, 171)
    _reserved(stubber, {})
    account, plan = check_concurrency(LambdaConcurrency(client), PLANNED, "dev", CONFIG)
    assert (account.limit, account.unreserved, plan.needed) == (1000, 171, 71)


def test_a_new_account_is_refused_with_the_figures_and_both_ways_out(
    lambda_stub: tuple[Any, Stubber],
) -> None:
    client, stubber = lambda_stub
    _account(stubber, 150, 150)  # 50 above Lambda's 100; a new account's quota can be lower
    _reserved(stubber, {})
    with pytest.raises(ConcurrencyShortfall) as raised:
        check_concurrency(LambdaConcurrency(client), PLANNED, "dev", CONFIG)
    assert isinstance(raised.value, ConfigError)
    assert raised.value.error == (
        ".chalice/config.json, stage 'dev': its functions reserve 71 concurrent executions, "
        "71 more than they reserve now, but only 50 are available: the account's limit in this "
        "Region is 150, 150 of it unreserved, and Lambda keeps 100 unreserved (21 short)"
    )
    fix = raised.value.fix
    assert "Service Quotas, AWS Lambda, 'Concurrent executions' (L-B99A9384)" in fix
    assert "--quota-code L-B99A9384 --desired-value 171" in fix
    assert "lower `reserved_concurrency` and `MFAWATCH_CONCURRENCY` together" in fix
    assert "of .chalice/config.json" in fix
    assert "lowers the fail-open bound" in fix and "docs/outputs.md" in fix


def test_a_redeploy_counts_only_what_it_adds_to_the_reservations_in_place(
    lambda_stub: tuple[Any, Stubber],
) -> None:
    """The stage's 71 are already reserved, so the account shows only 100 unreserved: a redeploy
    of the same figures needs nothing, and raising one function by 1 is one short."""
    client, stubber = lambda_stub
    _account(stubber, 171, 100)
    _reserved(stubber, dict(PLANNED))
    _, plan = check_concurrency(LambdaConcurrency(client), PLANNED, "dev", CONFIG)
    assert plan.needed == 0

    _account(stubber, 171, 100)
    _reserved(stubber, {**PLANNED, "mfawatch-dev-on_rule_00": 4})
    with pytest.raises(ConcurrencyShortfall, match=r"1 more than they reserve now.*\(1 short\)"):
        check_concurrency(LambdaConcurrency(client), PLANNED, "dev", CONFIG)


def test_a_lowered_reservation_does_not_pay_for_a_raised_one(
    lambda_stub: tuple[Any, Stubber],
) -> None:
    """Chalice updates one function at a time: the raise may come before the release."""
    client, stubber = lambda_stub
    _account(stubber, 200, 100)
    _reserved(stubber, {**PLANNED, "mfawatch-dev-on_rule_00": 4, "mfawatch-dev-on_rule_01": 9})
    with pytest.raises(ConcurrencyShortfall, match=r"\(1 short\)"):
        check_concurrency(LambdaConcurrency(client), PLANNED, "dev", CONFIG)


def _deployer(tmp_path: Path, clients: dict[str, Any]) -> Deployer:
    project = project_copy(tmp_path)
    return fake_deployer(project, FakeChalice(project, ["send_due_summaries"]), clients)


def test_deploy_stops_at_the_preflight_before_any_stack_is_touched(
    tmp_path: Path, lambda_stub: tuple[Any, Stubber]
) -> None:
    client, stubber = lambda_stub
    _account(stubber, 10, 10)  # a new account; the scheduler alone reserves 1
    stubber.add_response("get_function_concurrency", {})
    with stubbed("cloudformation") as (cloudformation, _):  # no response queued: no call allowed
        deployer = _deployer(tmp_path, {"lambda": client, "cloudformation": cloudformation})
        with pytest.raises(StepError) as raised:
            deployer.run(plan_deploy(ROUTE_STACKS, "dev"))
    assert raised.value.step == "concurrency"
    assert "only 0 are available" in raised.value.error
    assert "L-B99A9384" in raised.value.fix


def test_deploy_goes_on_with_a_warning_when_the_figures_cannot_be_read(
    tmp_path: Path, lambda_stub: tuple[Any, Stubber], capsys: pytest.CaptureFixture[str]
) -> None:
    """Lambda still refuses what does not fit: a missing read permission is no reason to stop."""
    client, stubber = lambda_stub
    stubber.add_client_error("get_account_settings", "AccessDeniedException", "not allowed", 403)
    deployer = _deployer(tmp_path, {"lambda": client})
    [outcome] = deployer.run(plan_deploy(ROUTE_STACKS, "dev")[1:2])
    assert (outcome.step.name, outcome.changed) == ("concurrency", False)
    assert "warning: cannot check the account's concurrency (AccessDeniedException" in (
        capsys.readouterr().out
    )


def test_an_endpoint_that_answers_html_is_named_in_one_line(
    tmp_path: Path, lambda_stub: tuple[Any, Stubber], capsys: pytest.CaptureFixture[str]
) -> None:
    """moto_server answers a call it lacks with its HTML 404 page, which botocore makes the
    message: the warning says so on one line instead of printing the page."""
    client, stubber = lambda_stub
    page = "<!doctype html>\n<html lang=en>\n<title>404 Not Found</title>\n<h1>Not Found</h1>\n"
    stubber.add_client_error("get_account_settings", "404", page, 404)
    deployer = _deployer(tmp_path, {"lambda": client})
    [outcome] = deployer.run(plan_deploy(ROUTE_STACKS, "dev")[1:2])
    assert (outcome.step.name, outcome.changed) == ("concurrency", False)
    [warning] = [line for line in capsys.readouterr().out.splitlines() if "warning" in line]
    assert warning == (
        "  warning: cannot check the account's concurrency (404: the endpoint answered with an "
        "HTML page, not an AWS error: a proxy, or an AWS_ENDPOINT_URL that lacks this call?)"
    )
