"""Coverage audit: does every account x Region forward the mfawatch rules to the central bus?

Read-only. For each account and Region it lists the forwarding rules that
:func:`mfawatch.org.forwarder.member_template` creates (``mfawatch-<rule id>`` on the default bus)
and checks that each exists, is enabled in the state its rule needs (``ENABLED``, or
``ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS`` for read-only events, else a
``read-only-excluded`` finding), targets the central bus ARN and has the bundle's
``EventPattern``. Patterns are compared as canonical JSON (sorted keys, no whitespace): the
template's YAML and CloudFormation may reorder keys, which changes nothing, while a stale pattern
(a StackSet not updated after ``rules build``) or one edited in the console forwards the wrong
events and is a ``pattern-differs`` finding naming the fields that differ.

The AWS edge is injected: :func:`run_audit` takes ``events_client_for(account, region)``, so tests
drive it with moto and the CLI with :class:`AssumeRoleClients`, which assumes the read-only role
that the member template creates in every account (``mfawatch-audit`` by default) and caches one
session per account. Permissions, all read-only:

* caller (central account): ``sts:AssumeRole`` on ``arn:aws:iam::*:role/mfawatch-audit``, and
  ``organizations:ListAccounts`` for ``--organization`` (management or delegated admin account);
* audit role in each member: ``events:ListRules`` (``*``: no resource-level restriction) and
  ``events:ListTargetsByRule`` on ``arn:aws:events:*:<account>:rule/mfawatch-*``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.core.constants import RULE_STATE_ENABLED, RULE_STATE_WITH_READ_ONLY
from chalicelib.core.render import clean_text
from chalicelib.core.rules import Rule
from mfawatch.errors import AuditError
from mfawatch.org.forwarder import (
    RULE_NAME_PREFIX,
    CentralBus,
    expected_rules,
    forwarding_rule_name,
)

if TYPE_CHECKING:
    import boto3
    from mypy_boto3_events import EventBridgeClient

logger = logging.getLogger(__name__)

# Per-rule outcomes.
OK: Final = "ok"
MISSING: Final = "missing"
DISABLED: Final = "disabled"
#: Enabled, but in a state that leaves out the read-only management events the rule matches.
READ_ONLY_EXCLUDED: Final = "read-only-excluded"
WRONG_TARGET: Final = "wrong-target"
PATTERN_DIFFERS: Final = "pattern-differs"
# Per-cell (account x Region) outcomes, plus OK.
PARTIAL: Final = "partial"
NOT_COVERED: Final = "not-covered"
ERROR: Final = "error"
NOT_REQUIRED: Final = "not-required"

EventsClientFactory = Callable[[str, str], "EventBridgeClient"]
"""``(account_id, region) -> events client`` for that account and Region."""


@dataclass(frozen=True)
class ObservedRule:
    """A forwarding rule as EventBridge reports it."""

    name: str
    state: str
    target_arns: tuple[str, ...]
    event_pattern: str | None = None
    """The rule's ``EventPattern`` as EventBridge returns it (a JSON string), if any."""


@dataclass(frozen=True)
class RuleCoverage:
    rule_id: str
    rule_name: str
    status: str
    detail: str = ""


@dataclass(frozen=True)
class CellCoverage:
    """One account x Region."""

    account: str
    region: str
    status: str
    rules: tuple[RuleCoverage, ...] = ()
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status in (OK, NOT_REQUIRED)

    def to_json(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "region": self.region,
            "status": self.status,
            "error": self.error,
            "rules": [
                {"rule": r.rule_id, "name": r.rule_name, "status": r.status, "detail": r.detail}
                for r in self.rules
            ],
        }


@dataclass(frozen=True)
class AuditReport:
    central_bus_arn: str
    cells: tuple[CellCoverage, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return all(cell.ok for cell in self.cells)

    def missing_regions(self) -> dict[str, list[str]]:
        """Per account, the Regions with no forwarding rule at all (or not readable)."""
        missing: dict[str, list[str]] = {}
        for cell in self.cells:
            if cell.status in (NOT_COVERED, ERROR):
                missing.setdefault(cell.account, []).append(cell.region)
        return missing

    def to_json(self) -> dict[str, Any]:
        return {
            "central_bus_arn": self.central_bus_arn,
            "ok": self.ok,
            "missing_regions": self.missing_regions(),
            "cells": [cell.to_json() for cell in self.cells],
        }


def assess_rules(
    expected: Sequence[Rule], observed: Mapping[str, ObservedRule], central_bus_arn: str
) -> tuple[RuleCoverage, ...]:
    """Pure: compare the expected forwarding rules with what one account x Region has."""
    results: list[RuleCoverage] = []
    for rule in expected:
        name = forwarding_rule_name(rule)
        found = observed.get(name)
        if found is None:
            results.append(RuleCoverage(rule.id, name, MISSING, "no such rule on the default bus"))
        elif found.state not in (RULE_STATE_ENABLED, RULE_STATE_WITH_READ_ONLY):
            results.append(RuleCoverage(rule.id, name, DISABLED, f"state {found.state}"))
        elif found.state != rule.eventbridge_state:
            # Enabled, but without the read-only management events this rule is about.
            detail = f"state {found.state}, needs {rule.eventbridge_state}"
            results.append(RuleCoverage(rule.id, name, READ_ONLY_EXCLUDED, detail))
        elif central_bus_arn not in found.target_arns:
            targets = ", ".join(found.target_arns) or "none"
            results.append(
                RuleCoverage(rule.id, name, WRONG_TARGET, f"targets {targets}, not the central bus")
            )
        else:
            difference = pattern_difference(found.event_pattern, rule.event_pattern)
            if difference:
                results.append(RuleCoverage(rule.id, name, PATTERN_DIFFERS, difference))
            else:
                results.append(RuleCoverage(rule.id, name, OK))
    return tuple(results)


def canonical_json(value: Any) -> str:
    """``value`` as canonical JSON: sorted keys, no whitespace (key order does not matter)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


_DETAIL_MAX = 300


def pattern_difference(deployed: str | None, expected: Mapping[str, Any]) -> str:
    """Pure: "" when the deployed ``EventPattern`` equals the bundle's, else what differs."""
    if not deployed:
        return "the rule has no EventPattern"
    try:
        observed = json.loads(deployed)
    except json.JSONDecodeError:
        return "its EventPattern is not JSON"
    if canonical_json(observed) == canonical_json(expected):
        return ""
    paths = _differing_paths(observed, expected, "")
    shown = ", ".join(paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
    detail = f"EventPattern differs from the rules bundle at {shown}"
    return detail if len(detail) <= _DETAIL_MAX else detail[: _DETAIL_MAX - 3] + "..."


def _differing_paths(observed: Any, expected: Any, path: str) -> list[str]:
    if isinstance(observed, Mapping) and isinstance(expected, Mapping):
        paths: list[str] = []
        for key in sorted(set(observed) | set(expected), key=str):
            where = f"{path}.{key}" if path else str(key)
            if key not in expected:
                paths.append(f"{where} (not in the bundle)")
            elif key not in observed:
                paths.append(f"{where} (missing)")
            else:
                paths += _differing_paths(observed[key], expected[key], where)
        return paths
    if canonical_json(observed) == canonical_json(expected):
        return []
    return [path or "the whole pattern"]


def cell_status(rules: Sequence[RuleCoverage]) -> str:
    """Pure: ``ok`` when all rules forward, ``not-covered`` when none exists, else ``partial``."""
    if not rules:
        return NOT_REQUIRED
    if all(r.status == OK for r in rules):
        return OK
    if all(r.status == MISSING for r in rules):
        return NOT_COVERED
    return PARTIAL


class ForwardingRuleReader:
    """Lists the ``mfawatch-*`` rules on the default bus, with state and targets."""

    def __init__(self, client: EventBridgeClient) -> None:
        self._client = client

    def rules(self) -> dict[str, ObservedRule]:
        found: dict[str, ObservedRule] = {}
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"NamePrefix": RULE_NAME_PREFIX, "EventBusName": "default"}
            if token:
                kwargs["NextToken"] = token
            page = self._client.list_rules(**kwargs)
            for item in page.get("Rules", []):
                name = item.get("Name", "")
                found[name] = ObservedRule(
                    name=name,
                    state=item.get("State", ""),
                    target_arns=self._targets(name),
                    event_pattern=item.get("EventPattern"),
                )
            token = page.get("NextToken")
            if not token:
                return found

    def _targets(self, rule_name: str) -> tuple[str, ...]:
        arns: list[str] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Rule": rule_name, "EventBusName": "default"}
            if token:
                kwargs["NextToken"] = token
            page = self._client.list_targets_by_rule(**kwargs)
            arns.extend(t.get("Arn", "") for t in page.get("Targets", []))
            token = page.get("NextToken")
            if not token:
                return tuple(arns)


def run_audit(
    rules: Sequence[Rule],
    central: CentralBus,
    accounts: Iterable[str],
    regions: Sequence[str],
    events_client_for: EventsClientFactory,
) -> AuditReport:
    """Audit every account x Region; an account that cannot be read is an ``error`` cell."""
    cells: list[CellCoverage] = []
    for account in accounts:
        for region in regions:
            expected = expected_rules(rules, region, account, central)
            if not expected:
                cells.append(CellCoverage(account, region, NOT_REQUIRED))
                continue
            try:
                observed = ForwardingRuleReader(events_client_for(account, region)).rules()
            except (ClientError, BotoCoreError, AuditError) as exc:
                logger.warning("audit of account %s in %s failed: %s", account, region, exc)
                cells.append(CellCoverage(account, region, ERROR, error=str(exc)))
                continue
            coverage = assess_rules(expected, observed, central.arn)
            cells.append(CellCoverage(account, region, cell_status(coverage), coverage))
    return AuditReport(central_bus_arn=central.arn, cells=tuple(cells))


def organization_accounts(organizations_client: Any) -> list[str]:
    """ACTIVE account ids of the Organization (``organizations:ListAccounts``), sorted."""
    accounts: list[str] = []
    token: str | None = None
    while True:
        kwargs: dict[str, Any] = {"NextToken": token} if token else {}
        page = organizations_client.list_accounts(**kwargs)
        accounts.extend(
            str(a["Id"]) for a in page.get("Accounts", []) if a.get("Status", "ACTIVE") == "ACTIVE"
        )
        token = page.get("NextToken")
        if not token:
            return sorted(accounts)


class AssumeRoleClients:
    """``events_client_for`` that assumes ``role_name`` in each account (one session each).

    The caller's own account is read with the caller's credentials, not through the role.
    """

    def __init__(
        self,
        base_session: boto3.Session,
        role_name: str,
        session_name: str = "mfawatch-audit",
    ) -> None:
        self._base = base_session
        self._role_name = role_name
        self._session_name = session_name
        self._sessions: dict[str, boto3.Session] = {}
        identity = base_session.client("sts").get_caller_identity()
        self.caller_account = str(identity["Account"])
        self._partition = str(identity["Arn"]).split(":")[1]

    def role_arn(self, account: str) -> str:
        return f"arn:{self._partition}:iam::{account}:role/{self._role_name}"

    def _session(self, account: str) -> boto3.Session:
        if account == self.caller_account:
            return self._base
        if account not in self._sessions:
            import boto3

            try:
                response = self._base.client("sts").assume_role(
                    RoleArn=self.role_arn(account), RoleSessionName=self._session_name
                )
            except (ClientError, BotoCoreError) as exc:
                raise AuditError(f"cannot assume {self.role_arn(account)}: {exc}") from exc
            credentials = response["Credentials"]
            self._sessions[account] = boto3.Session(
                aws_access_key_id=credentials["AccessKeyId"],
                aws_secret_access_key=credentials["SecretAccessKey"],
                aws_session_token=credentials["SessionToken"],
            )
        return self._sessions[account]

    def __call__(self, account: str, region: str) -> EventBridgeClient:
        return self._session(account).client("events", region_name=region)


def render_table(report: AuditReport) -> str:
    """The audit as ``audit --output table`` prints it: a line per cell, its findings, totals."""
    header = f"{'ACCOUNT':<13} {'REGION':<15} {'STATUS':<13} DETAIL"
    lines = [header]
    for cell in report.cells:
        if cell.error:
            detail = cell.error
        elif cell.status == NOT_REQUIRED:
            detail = "central bus location: the central rules see these events directly"
        else:
            good = sum(1 for r in cell.rules if r.status == OK)
            detail = f"{good}/{len(cell.rules)} rules forward to the central bus"
        lines.append(f"{cell.account:<13} {cell.region:<15} {cell.status:<13} {detail}")
        for rule in cell.rules:
            if rule.status != OK:
                finding = f"{rule.rule_name}: {rule.status}"
                if rule.detail:
                    finding += f" ({clean_text(rule.detail, 300)})"
                lines.append(f"{'':<13} {'':<15} {'':<13}   {finding}")
    missing = report.missing_regions()
    lines.append("")
    if missing:
        for account, regions in missing.items():
            lines.append(f"missing regions for {account}: {', '.join(regions)}")
    cells_ok = sum(1 for cell in report.cells if cell.ok)
    lines.append(
        f"{cells_ok}/{len(report.cells)} account x region cells covered; "
        f"central bus {report.central_bus_arn}"
    )
    return "\n".join(lines)
