"""Suppressions at run time: the compiled ``chalicelib/suppressions.json`` and pure matching.

``suppressions/*.yaml`` is the source of truth, one suppression per file, each with an owner, a
reason and a mandatory expiry. :mod:`mfawatch.rules.suppressions` validates them and compiles them
into ``chalicelib/suppressions.json`` (as ``rules/`` compiles into ``rules.json``; a test
fails when the copy is stale). No YAML, jsonschema or clock here: every decision takes ``now``.

A suppression is applied at one point, where a notification would be admitted
(:meth:`chalicelib.pipeline.admission.Admission.decide`): what it matches is held like a
rate-limited notification, with the suppression's id on the held record, so it is still counted
(the digest says "N suppressed by <id> (owner, reason)") but never sent as an alert.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any, Protocol

from .errors import RuleError
from .rules import ById, Rule, bundle_entries, bundle_text

BUNDLE_PATH = Path(__file__).parent.parent / "suppressions.json"
BUNDLE_FORMAT = 1
#: The furthest ``expires`` may lie after the day a suppression is validated or built.
MAX_DAYS = 90
#: ``mfawatch suppressions check`` warns this many days before a suppression expires.
WARN_DAYS = 14
#: The scheduler sends one LOW notice this many days before a suppression expires.
NOTICE_DAYS = 7

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class Subject(Protocol):
    """What a suppression matches on: a sign-in record or a notification about one."""

    @property
    def principal(self) -> str: ...

    @property
    def account(self) -> str: ...

    @property
    def source_ip(self) -> str: ...


@dataclass(frozen=True)
class Seen:
    """A subject known only by its fields (a summarized repeat, a campaign's member)."""

    principal: str
    account: str
    source_ip: str


@dataclass(frozen=True)
class SuppressionMatch:
    """What a suppression covers. Every field given must match (one of its values); a field
    left out matches anything. At least one field is given (the schema requires it)."""

    rules: tuple[str, ...] = ()
    principals: tuple[str, ...] = ()
    accounts: tuple[str, ...] = ()
    source_cidrs: tuple[IPNetwork, ...] = ()

    def covers(self, subject: Subject, rule_id: str) -> bool:
        """Whether the subject (of rule ``rule_id``) is within every field given."""
        if self.rules and rule_id not in self.rules:
            return False
        if self.principals and subject.principal not in self.principals:
            return False
        if self.accounts and subject.account not in self.accounts:
            return False
        return not self.source_cidrs or _in_any(subject.source_ip, self.source_cidrs)


def _in_any(source_ip: str, networks: Sequence[IPNetwork]) -> bool:
    # CloudTrail's sourceIPAddress can be a service name ("AWS Internal") or empty: no match.
    try:
        address = ipaddress.ip_address(source_ip.strip())
    except ValueError:
        return False
    return any(address in network for network in networks)


@dataclass(frozen=True)
class Suppression:
    """One suppression, as deployed."""

    id: str
    reason: str
    owner: str
    expires: date
    """The first day it no longer applies (00:00 UTC)."""
    match: SuppressionMatch
    allow_critical: bool = False
    """CRITICAL notifications are suppressed only when this says so."""

    @property
    def expires_at(self) -> float:
        """The moment it stops applying: 00:00 UTC on ``expires``."""
        return datetime.combine(self.expires, time(), UTC).timestamp()

    def active(self, now: float) -> bool:
        return now < self.expires_at

    def applies(self, subject: Subject, rule_id: str, severity: str, now: float) -> bool:
        """Whether it suppresses a notification of ``severity`` about ``subject`` at ``now``."""
        if not self.active(now):
            return False
        if severity == "CRITICAL" and not self.allow_critical:
            return False
        return self.match.covers(subject, rule_id)

    @property
    def label(self) -> str:
        """How notifications name it: ``id (owner, reason)``."""
        return f"{self.id} ({self.owner}, {self.reason})"

    def to_json(self) -> dict[str, Any]:
        """The bundle form (what ``suppressions.json`` holds)."""
        match: dict[str, Any] = {}
        if self.match.rules:
            match["rules"] = list(self.match.rules)
        if self.match.principals:
            match["principals"] = list(self.match.principals)
        if self.match.accounts:
            match["accounts"] = list(self.match.accounts)
        if self.match.source_cidrs:
            match["source_cidrs"] = [str(n) for n in self.match.source_cidrs]
        return {
            "id": self.id,
            "reason": self.reason,
            "owner": self.owner,
            "expires": self.expires.isoformat(),
            "allow_critical": self.allow_critical,
            "match": match,
        }


def suppression_from_mapping(data: Mapping[str, Any], source: str) -> Suppression:
    """Build a :class:`Suppression` from a schema-valid mapping, checking what the schema
    cannot (the date, each CIDR); errors name the source and the field."""
    try:
        expires = date.fromisoformat(str(data["expires"]))
    except ValueError as exc:
        raise RuleError(source, "$.expires", f"not an ISO date (YYYY-MM-DD): {exc}") from exc
    raw = data.get("match") or {}
    networks: list[IPNetwork] = []
    for index, value in enumerate(raw.get("source_cidrs") or ()):
        try:
            networks.append(ipaddress.ip_network(str(value), strict=True))
        except ValueError as exc:
            raise RuleError(source, f"$.match.source_cidrs[{index}]", str(exc)) from exc
    return Suppression(
        id=str(data["id"]),
        reason=str(data["reason"]),
        owner=str(data["owner"]),
        expires=expires,
        allow_critical=bool(data.get("allow_critical", False)),
        match=SuppressionMatch(
            rules=tuple(str(v) for v in raw.get("rules") or ()),
            principals=tuple(str(v) for v in raw.get("principals") or ()),
            accounts=tuple(str(v) for v in raw.get("accounts") or ()),
            source_cidrs=tuple(networks),
        ),
    )


class Suppressions(ById[Suppression]):
    """The deployed suppressions, in id order."""

    source = "suppressions"
    duplicate = "duplicate suppression id"

    def __init__(self, suppressions: Sequence[Suppression] = ()) -> None:
        super().__init__(sorted(suppressions, key=lambda s: s.id))

    def matching(
        self, subject: Subject, rule_id: str, severity: str, now: float
    ) -> Suppression | None:
        """The suppression (the first by id) that silences a notification of ``severity`` about
        ``subject`` for rule ``rule_id`` at ``now``; None when none does."""
        for suppression in self._items:
            if suppression.applies(subject, rule_id, severity, now):
                return suppression
        return None

    def tally(
        self, subjects: Iterable[Subject], rule_id: str, severity: str, now: float
    ) -> dict[str, int]:
        """How many of ``subjects`` (events of rule ``rule_id``) each suppression covers at
        ``now``, by id: what a summary over them says is suppressed."""
        counts: dict[str, int] = {}
        for subject in subjects:
            found = self.matching(subject, rule_id, severity, now)
            if found is not None:
                counts[found.id] = counts.get(found.id, 0) + 1
        return counts

    def label(self, suppression_id: str) -> str:
        """``id (owner, reason)``; the bare id for one this deployment no longer has."""
        found = self._by_id.get(suppression_id)
        return found.label if found is not None else suppression_id

    def due_notices(self, now: float) -> list[Suppression]:
        """The suppressions within :data:`NOTICE_DAYS` of expiring (and not expired)."""
        return [s for s in self._items if 0 < s.expires_at - now <= NOTICE_DAYS * 86400.0]


#: The built-in rule that expiry notices name (no CloudTrail pattern: the scheduler sends them).
SUPPRESSION_RULE = Rule(
    id="suppression",
    title="Suppression {principal} expires soon",
    description=(
        "A suppression in suppressions/ stops applying on its expiry date, and what it matches "
        "alerts again from then. The scheduler says so once, a week ahead."
    ),
    severity="LOW",
    runbook=(
        "Still needed? Set a new expires (at most 90 days ahead) in suppressions/<id>.yaml, "
        "make rules, deploy.",
        "No longer needed? Remove the file, make rules, deploy.",
    ),
    event_pattern={},
    mode="notice",
)


def bundle_json(suppressions: Sequence[Suppression]) -> str:
    """The compiled suppressions' exact text (:func:`rules.bundle_text`)."""
    return bundle_text(suppressions, BUNDLE_FORMAT, "suppressions")


def load_suppressions(path: Path = BUNDLE_PATH) -> Suppressions:
    """Load the compiled suppressions that ship in the Lambda package."""
    entries = bundle_entries(path, BUNDLE_FORMAT, "suppressions")
    return Suppressions([suppression_from_mapping(item, where) for item, where in entries])
