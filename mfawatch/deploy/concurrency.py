"""The deploy's concurrency preflight: will Lambda accept the stage's reserved concurrency?

Lambda refuses a reservation that would leave the account's unreserved concurrency below 100
("You can reserve up to the Unreserved account concurrency value that is shown, minus 100", AWS
Lambda Developer Guide, configuration-concurrency), and new accounts start with a reduced
concurrency quota (Lambda quotas page). Without this check ``chalice deploy`` fails half-way,
after some functions exist, with ``InvalidParameterValueException``; with it ``mfawatch deploy``
stops before creating anything.

:func:`concurrency_shortfall` decides in pure code; :class:`LambdaConcurrency` reads the figures
with the Lambda client it is given (``GetAccountSettings``, ``GetFunctionConcurrency``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.errors import ConfigError
from mfawatch.deploy.stacks import StackError, aws_error
from mfawatch.deploy.templates import StageConfig

MIN_UNRESERVED = 100
"""What Lambda keeps unreserved for the functions without a reservation."""
QUOTA_CODE = "L-B99A9384"
"""Service Quotas, AWS Lambda, "Concurrent executions"."""
OUTPUTS_DOC = "docs/outputs.md, 'Fail-open copies: how many'"


@dataclass(frozen=True)
class AccountConcurrency:
    """``GetAccountSettings``' ``AccountLimit``: the Region's quota, what nothing reserves."""

    limit: int
    unreserved: int


@dataclass(frozen=True)
class ReservationPlan:
    """The stage's reservations, by function name: from the config, and as deployed now (0:
    no reservation or no function)."""

    planned: Mapping[str, int]
    current: Mapping[str, int]

    @property
    def needed(self) -> int:
        """What the deploy takes from the unreserved pool. Only increases count: Chalice updates
        the functions one at a time, so a lowered reservation may be released only after a raised
        one has been refused."""
        return sum(max(0, n - self.current.get(f, 0)) for f, n in self.planned.items())


class ConcurrencyShortfall(StackError, ConfigError):
    """The account cannot give the stage its reserved concurrency: a configuration error (the
    stage asks too much, or the quota is too low), reported as a deploy step's ``error`` and
    ``fix`` like the stacks' errors."""


def planned_reservations(stage_config: StageConfig, handlers: Sequence[str]) -> dict[str, int]:
    """Function name -> ``reserved_concurrency`` as Chalice resolves it (function, stage,
    app-wide), for the functions that have one."""
    planned = {}
    for handler in handlers:
        value = stage_config.lookup(handler, "reserved_concurrency", None)
        if value is not None:
            planned[stage_config.names.function(handler)] = int(value)
    return planned


def concurrency_shortfall(
    account: AccountConcurrency, plan: ReservationPlan, stage: str, config_path: str
) -> ConcurrencyShortfall | None:
    """None when the reservations fit; else the error to raise, with the figures and both ways
    out."""
    available = account.unreserved - MIN_UNRESERVED
    short = plan.needed - available
    if short <= 0:
        return None
    total = sum(plan.planned.values())
    error = (
        f"{config_path}, stage {stage!r}: its functions reserve {total} concurrent executions, "
        f"{plan.needed} more than they reserve now, but only {max(available, 0)} are available: "
        f"the account's limit in this Region is {account.limit}, {account.unreserved} of it "
        f"unreserved, and Lambda keeps {MIN_UNRESERVED} unreserved ({short} short)"
    )
    fix = (
        f"either raise the quota: Service Quotas, AWS Lambda, 'Concurrent executions' "
        f"({QUOTA_CODE}), to at least {account.limit + short} (`aws service-quotas "
        f"request-service-quota-increase --service-code lambda --quota-code {QUOTA_CODE} "
        f"--desired-value {account.limit + short}`; new accounts start low and AWS raises them "
        f"on request or with use); or lower `reserved_concurrency` and `MFAWATCH_CONCURRENCY` "
        f"together in the stage of {config_path}: each function then runs fewer copies at once, "
        f"which also lowers the fail-open bound (marked copies a DynamoDB outage can publish, "
        f"{OUTPUTS_DOC}) and throttles more events under a burst (retried, then parked)"
    )
    return ConcurrencyShortfall(error, fix)


class LambdaConcurrency:
    """Reads the account's concurrency and the functions' reservations (Lambda API)."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def account(self) -> AccountConcurrency:
        limit = self._client.get_account_settings()["AccountLimit"]
        return AccountConcurrency(
            int(limit["ConcurrentExecutions"]), int(limit["UnreservedConcurrentExecutions"])
        )

    def reserved(self, function_name: str) -> int:
        """The function's reservation; 0 when it has none or does not exist yet."""
        try:
            answer = self._client.get_function_concurrency(FunctionName=function_name)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return 0
            raise
        return int(answer.get("ReservedConcurrentExecutions") or 0)

    def plan(self, planned: Mapping[str, int]) -> ReservationPlan:
        return ReservationPlan(dict(planned), {f: self.reserved(f) for f in planned})


def check_concurrency(
    reader: LambdaConcurrency, planned: Mapping[str, int], stage: str, config_path: str
) -> tuple[AccountConcurrency, ReservationPlan]:
    """Raise :class:`ConcurrencyShortfall` unless the account can take the reservations."""
    account = reader.account()
    plan = reader.plan(planned)
    shortfall = concurrency_shortfall(account, plan, stage, config_path)
    if shortfall is not None:
        raise shortfall
    return account, plan


def preflight(
    stage_config: StageConfig,
    handlers: Sequence[str],
    lambda_client: Any,
    echo: Callable[[str], None],
    config_path: str = ".chalice/config.json",
) -> tuple[bool, str]:
    """``mfawatch deploy``'s ``concurrency`` step: (False, what was found), or
    :class:`ConcurrencyShortfall`. Figures that cannot be read are a warning, not a stop: Lambda
    itself still refuses what does not fit."""
    planned = planned_reservations(stage_config, handlers)
    if not planned:
        return False, "no reserved concurrency configured"
    try:
        account, plan = check_concurrency(
            LambdaConcurrency(lambda_client), planned, stage_config.stage, config_path
        )
    except (ClientError, BotoCoreError) as exc:
        echo(f"  warning: cannot check the account's concurrency ({aws_error(exc)})")
        return False, "not checked (lambda:GetAccountSettings, lambda:GetFunctionConcurrency)"
    return False, (
        f"{plan.needed} more reserved of {account.unreserved - MIN_UNRESERVED} available "
        f"(account limit {account.limit}, {account.unreserved} unreserved)"
    )
