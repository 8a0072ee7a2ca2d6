"""The campaign step of the decision path: counts a failed sign-in for its source IP's campaign
and escalates a completed one once (the decisions are in :mod:`chalicelib.core.campaigns`)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime

from ..core.campaigns import (
    CAMPAIGN_START,
    DUE_KEYS,
    ITEM_GRACE,
    MAX_MEMBERS,
    MEMBERS,
    RULE_ID,
    SHOWN_MEMBERS,
    SUMMARIZED,
    SUMMARY_AT,
    Campaign,
    CampaignSpec,
    SprayWindow,
    campaign_key,
    campaign_member,
    campaign_span,
    entries_to_keep,
    incident_marks_member,
    marker_key,
    member_entry,
    member_subject,
    parse_entries,
    spec_of,
    spray_window,
)
from ..core.documents import OWNER, Outbox
from ..core.notifications import Notification, campaign_for, campaign_summary_for, suppressed_clause
from ..core.records import (
    SignInRecord,
)
from ..core.rules import Rule
from ..core.state import (
    DUE_AT,
    EXPIRES_AT,
    Absent,
    Compare,
    ConditionFailed,
    Item,
    Missing,
    due_mark,
    key_part,
    key_parts,
)
from .parts import Parts


class CampaignStep:
    """Counts a failed sign-in for its source IP's campaign; escalates a completed one once."""

    def __init__(self, parts: Parts) -> None:
        self.rules, self.store, self.delivery = parts.rules, parts.store, parts.delivery
        self.settings, self.admission = parts.settings, parts.admission

    def observe(
        self,
        rule: Rule,
        record: SignInRecord,
        now: float,
        notes: tuple[str, ...] = (),
        incident_opened: bool = False,
    ) -> list[Notification]:
        """Count ``record`` (idempotent per eventID) and deliver its campaign's escalation if it
        completes one. ``incident_opened``: the caller's conditional write just opened an
        incident for this event; when the rule's incident key names the member and the IP, that
        write is the member's marker and step 1 is skipped (:func:`incident_marks_member`).
        Raises :class:`errors.StateStoreError` (the caller's retry redoes it)."""
        found = campaign_member(record)
        if found is None:
            return []
        campaign, member = found
        spec = spec_of(campaign, self.settings)
        if spec is None:
            return []
        t = record.event_time.timestamp()
        window = spec.threshold.seconds
        expires = max(t, now) + window
        marked = incident_opened and incident_marks_member(rule.dedup_key, campaign)
        if not marked and not self._first_in_window(
            campaign, record, member, t=t, expires=expires, now=now
        ):
            return []  # this member is counted in the window already
        key = campaign_key(campaign, record.source_ip)
        item, live = self._add_member(key, record, member, now, expires=expires, window=window)
        found_window = spray_window(
            live,
            (t, key_part(member)),
            spec.threshold.count,
            window,
            escalated_until=float(item.get("escalated_until", 0.0)),
            escalated_by_me=item.get("escalated_by") == record.event_id,
        )
        if not found_window.escalate:
            return []
        suppressed = self._suppressed(campaign, rule, record.source_ip, found_window.members, now)
        escalation = replace(_escalation(rule, record, spec, found_window, suppressed), notes=notes)
        # The trailing summary: once the window is over and its writes have settled.
        summary_at = found_window.until + self.settings.settle_seconds
        return self.delivery.escalate_once(
            key,
            item,
            escalation,
            event_id=record.event_id,
            start=found_window.start,
            until=found_window.until,
            now=now,
            extra={
                SUMMARY_AT: summary_at,
                CAMPAIGN_START: found_window.start,
                RULE_ID: rule.id,
                "region": record.region[:64],
            },
            finish=due_mark(summary_at),
        )

    def _add_member(
        self,
        key: str,
        record: SignInRecord,
        member: str,
        now: float,
        *,
        expires: float,
        window: float,
    ) -> tuple[Item, list[tuple[float, str]]]:
        """Add the member's entry to its IP's campaign item (bounded); the item and its entries
        still in the window before this one."""
        t = record.event_time.timestamp()
        item = self.store.update(
            key,
            now,
            # Kept past a summary due at the end of any window this entry can be in.
            set_values={
                EXPIRES_AT: expires + window + self.settings.settle_seconds + ITEM_GRACE,
                "source_ip": record.source_ip[:256],
            },
            add={MEMBERS: frozenset({member_entry(t, member)})},
        )
        entries = parse_entries(item.get(MEMBERS, ()))
        # Lazy TTL within the item: entries older than the window before this one are ignored.
        live = [e for e in entries if e[0] > t - window - window]
        if len(entries) > MAX_MEMBERS:
            self.store.update(
                key, now, set_values={MEMBERS: frozenset(entries_to_keep(entries, t, window))}
            )
        return item, live

    def due(self, key: str, item: Item, now: float, force: bool) -> list[Notification]:
        """The scheduler's turn on a campaign item: deliver an escalation its deciding event did
        not, then, once the campaign's window is over, decide and deliver its trailing summary
        (a conditional mark with the outbox, as the escalation)."""
        outbox = Outbox.from_item(item)
        summary_at = float(item.get(SUMMARY_AT) or 0.0)
        waiting = bool(summary_at) and not item.get(SUMMARIZED)
        if outbox.pending():
            finish = due_mark(summary_at) if waiting else None
            return self.delivery.deliver_leased(
                key, outbox, now, finish=finish, finish_remove=() if waiting else DUE_KEYS
            )
        if waiting and (now >= summary_at or force):
            return self._summarize(key, item, outbox, summary_at, now)
        with contextlib.suppress(ConditionFailed):
            self.store.update(
                key,
                now,
                set_values=due_mark(summary_at) if waiting else None,
                remove=() if waiting else DUE_KEYS,
                condition=Compare(DUE_AT, "=", item[DUE_AT]),
            )
        return []

    def _summarize(
        self, key: str, item: Item, outbox: Outbox, summary_at: float, now: float
    ) -> list[Notification]:
        campaign = Campaign(key_parts(key)[0])
        spec = spec_of(campaign, self.settings)
        noun = spec.noun if spec else "principals"
        start = float(item.get(CAMPAIGN_START) or 0.0)
        end = summary_at - self.settings.settle_seconds
        window = spec.threshold.seconds if spec else 0.0
        inside = campaign_span(parse_entries(item.get(MEMBERS, ())), start, end, window)
        members = tuple(dict.fromkeys(m for _, m in inside))
        rule = self.rules.get(str(item.get(RULE_ID, "")))
        source_ip = str(item.get("source_ip", ""))
        summary = campaign_summary_for(
            rule,
            campaign=campaign.value,
            noun=noun,
            source_ip=source_ip,
            escalated_by=str(item.get("escalated_by", "")),
            shown=members[:SHOWN_MEMBERS],
            members=len(members),
            failures=len(inside),
            first=datetime.fromtimestamp(inside[0][0] if inside else start, UTC),
            last=datetime.fromtimestamp(inside[-1][0] if inside else start, UTC),
            region=str(item.get("region", "")),
            suppressed=self._suppressed(campaign, rule, source_ip, members, now),
        )
        decided = self.admission.decide_apart(summary, now)
        with_summary = outbox.with_entries(decided.entries)
        try:
            self.delivery.save_leased(
                key,
                with_summary,
                now,
                set_values={SUMMARIZED: True},
                condition=Missing(SUMMARIZED),
            )
        except ConditionFailed:
            return []  # another scheduler run decided it
        return self.delivery.deliver(key, with_summary, now)

    def _suppressed(
        self, campaign: Campaign, rule: Rule, source_ip: str, members: Iterable[str], now: float
    ) -> str:
        """Which members' own alerts a suppression holds (their events are still counted in
        the campaign): ``N suppressed by <id> (owner, reason)``, or empty."""
        suppressions = self.admission.suppressions
        subjects = (member_subject(campaign, m, source_ip) for m in members)
        counts = suppressions.tally(subjects, rule.id, rule.severity, now)
        return suppressed_clause(counts, suppressions.label)

    def _first_in_window(
        self,
        campaign: Campaign,
        record: SignInRecord,
        member: str,
        *,
        t: float,
        expires: float,
        now: float,
    ) -> bool:
        """Create the (campaign, IP, member) marker: True when it is new, or ours (this event
        created it and its retry goes on). Lazy TTL: an expired marker counts as absent."""
        marker = marker_key(campaign, record.source_ip, member)
        try:
            self.store.put(
                marker, {"t": t, OWNER: record.event_id, EXPIRES_AT: expires}, now, Absent()
            )
        except ConditionFailed as failed:
            current = failed.current or {}
            return bool(current.get(OWNER)) and current.get(OWNER) == record.event_id
        return True


def _escalation(
    rule: Rule, record: SignInRecord, spec: CampaignSpec, found: SprayWindow, suppressed: str
) -> Notification:
    """The escalation of a completed campaign window."""
    return campaign_for(
        rule,
        record,
        campaign=spec.campaign.value,
        severity=spec.severity,
        noun=spec.noun,
        shown=found.members[:SHOWN_MEMBERS],
        members=len(found.members),
        failures=found.failures,
        minutes=spec.threshold.minutes,
        suppressed=suppressed,
    )
