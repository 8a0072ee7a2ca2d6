"""Decisions become notifications: what will be published, before any rendering or I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .records import SignInRecord
from .rules import Rule

KIND_ALERT = "alert"
KIND_SUMMARY = "summary"
KIND_STORM = "storm"
KIND_ESCALATION = "escalation"
KINDS = (KIND_ALERT, KIND_SUMMARY, KIND_STORM, KIND_ESCALATION)


@dataclass(frozen=True)
class Notification:
    """One message to publish. Text fields are raw (attacker-controlled); renderers sanitize."""

    kind: str
    rule: Rule
    severity: str
    title: str
    dedup_key: str
    account: str
    region: str
    principal: str
    principal_type: str
    source_ip: str
    event_ids: tuple[str, ...]
    count: int
    first_seen: datetime
    last_seen: datetime
    record: SignInRecord | None = None
    """The event that triggered it (alerts and escalations)."""
    summary: str = ""
    """For summaries, digests and escalations: one sentence on what the notification covers."""
    notes: tuple[str, ...] = field(default=())
    """Operational remarks shown in the message, e.g. ``dedup unavailable``."""

    @property
    def rule_id(self) -> str:
        return self.rule.id

    def to_json(self) -> dict[str, Any]:
        """The stable JSON view used by ``replay --output jsonl`` (raw, unsanitized values)."""
        return {
            "kind": self.kind,
            "rule": self.rule.id,
            "severity": self.severity,
            "title": self.title,
            "dedup_key": self.dedup_key,
            "account": self.account,
            "region": self.region,
            "principal": self.principal,
            "principal_type": self.principal_type,
            "source_ip": self.source_ip,
            "event_ids": list(self.event_ids),
            "count": self.count,
            "first_seen": _iso(self.first_seen),
            "last_seen": _iso(self.last_seen),
            "summary": self.summary,
            "notes": list(self.notes),
        }


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def alert_for(rule: Rule, record: SignInRecord, notes: tuple[str, ...] = ()) -> Notification:
    """The leading alert of an incident: one event, rendered in full."""
    return Notification(
        kind=KIND_ALERT,
        rule=rule,
        severity=rule.severity,
        title=rule.render_title(record),
        dedup_key=rule.dedup_key_of(record),
        account=record.account,
        region=record.region,
        principal=record.principal,
        principal_type=record.principal_type,
        source_ip=record.source_ip,
        event_ids=(record.event_id,),
        count=1,
        first_seen=record.event_time,
        last_seen=record.event_time,
        record=record,
        notes=notes,
    )
