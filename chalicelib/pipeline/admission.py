"""Admission: each notification's destinations and whether it is held, decided once.

A notification becomes an :class:`documents.OutboxEntry` before anything is published: its
destinations and its decision (admitted or held) are saved with the item that decided it (an
event claim, a storm, a heartbeat), and publishing (:mod:`chalicelib.pipeline.delivery`) never
asks again. A notification is held by a suppression, or by a rate limit
(:mod:`chalicelib.pipeline.rates`): its held record is counted in the rule's storm digest
(:mod:`chalicelib.pipeline.storms`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..core.decisions import held_growth
from ..core.documents import (
    HELD_RETENTION,
    MAX_STORED_LIST,
    Held,
    OutboxEntry,
    held_attribute,
    held_of,
)
from ..core.notifications import (
    KIND_ALERT,
    KIND_ESCALATION,
    KIND_SUMMARY,
    Notification,
    is_campaign,
    is_fatigue_correction,
)
from ..core.state import (
    EXPIRES_AT,
    Absent,
    Compare,
    ConditionFailed,
    Item,
    KeyKind,
    group_mark,
    make_key,
)
from ..core.suppressions import Suppression, Suppressions
from .rates import RateLimits, storm_key

logger = logging.getLogger(__name__)

#: Where a notification goes (the publisher's routing: :meth:`delivery.Publisher.destinations`).
Destinations = Callable[[Notification], list[str]]


def held_record(notification: Notification, suppressed_by: str = "") -> Held:
    """What a storm digest counts of a held notification (``suppressed_by``: the suppression
    that held it, if one did)."""
    escalation = notification.kind == KIND_ESCALATION
    return Held(
        kind=notification.kind,
        count=0 if escalation else notification.count,
        event_ids=() if escalation else notification.event_ids,
        principal=notification.principal,
        source_ip=notification.source_ip,
        account=notification.account,
        region=notification.region,
        principal_type=notification.principal_type,
        first=notification.first_seen.timestamp(),
        last=notification.last_seen.timestamp(),
        suppressed_by=suppressed_by,
    )


def rate_limited(notification: Notification) -> bool:
    """Alerts, summaries and escalations share the rate limits; a CRITICAL escalation (an MFA
    fatigue success: the account is probably compromised) always goes out, and so does its
    correction (:func:`notifications.is_fatigue_correction`)."""
    return notification.kind in (KIND_ALERT, KIND_SUMMARY) or (
        notification.kind == KIND_ESCALATION
        and notification.severity != "CRITICAL"
        and not is_fatigue_correction(notification)
    )


def in_storm_group(held: list[Held], rule_id: str, now: float) -> Item:
    """Attributes that put an item carrying ``held`` in its rule's storm group."""
    return {"held": held_attribute(held), **group_mark(storm_key(rule_id), now)}


@dataclass(frozen=True)
class Decided:
    """Notifications of one item with their admission decided: what to save before publishing."""

    entries: list[OutboxEntry]
    held: list[Held]

    @property
    def publishes(self) -> bool:
        return any(not e.held for e in self.entries)

    def held_attributes(self, rule_id: str, now: float) -> Item:
        """Attributes that put the deciding item in its rule's storm group (held alerts)."""
        return in_storm_group(self.held, rule_id, now) if self.held else {}


class Admission:
    """Decides, once per notification, its destinations and whether a suppression or a rate
    limit holds it; records what it holds apart from its deciding item when need be. Counts
    with ``rates`` and writes held records to the same store."""

    def __init__(
        self, rates: RateLimits, destinations: Destinations, suppressions: Suppressions
    ) -> None:
        self.rates = rates
        self.store, self.metrics = rates.store, rates.metrics
        self.destinations = destinations
        self.suppressions = suppressions

    def decide(
        self,
        notifications: Sequence[Notification],
        now: float,
        principal_admitted: bool = True,
    ) -> Decided:
        """Decide each notification's destinations and whether a rate limit holds it.

        ``principal_admitted`` is the principal counter's answer for the alert or summary among
        them (counted by the caller in a write it makes anyway). Escalations count against the
        topic only: they come once per burst and principal.

        A notification a suppression covers is held here, the one place suppressions apply,
        before the topic's rate limit (it takes no slot there; the caller has counted it against
        its principal already): its held record names the suppression, and the rule's digest,
        scheduled here, counts it ("N suppressed by <id> (owner, reason)").
        """
        entries: list[OutboxEntry] = []
        held: list[Held] = []
        for notification in notifications:
            hold = False
            suppression = self.suppression_of(notification, now)
            if suppression is not None:
                hold = True
                self.rates.schedule_digest(notification.rule.id, now)
                self.metrics.count("Suppressed", Rule=notification.rule.id)
                logger.info(
                    "suppressed by %s (counted in the digest)",
                    suppression.id,
                    extra={"rule": notification.rule.id, "notification": notification.id},
                )
                held.append(held_record(notification, suppression.id))
            elif rate_limited(notification):
                principal_ok = principal_admitted or notification.kind == KIND_ESCALATION
                if principal_ok:
                    admitted, _ = self.rates.topic_admits(notification.rule.id, now)
                    hold = not admitted
                else:
                    hold = True
                    self.rates.schedule_digest(notification.rule.id, now)
            if hold and suppression is None and is_campaign(notification):
                # Counted against the topic, never held: a campaign is the storm's explanation.
                # (A suppression still holds one: it covers the campaign's source on purpose.)
                hold = False
            if hold and suppression is None:
                held.append(held_record(notification))
                self.metrics.count("Held", Rule=notification.rule.id)
                logger.info(
                    "held by rate limit (a storm digest follows)",
                    extra={"rule": notification.rule.id, "notification": notification.id},
                )
            entries.append(self._entry(notification, hold))
        return Decided(entries, held)

    def suppression_of(self, notification: Notification, now: float) -> Suppression | None:
        """The suppression that silences ``notification`` at ``now``: alerts, summaries and
        escalations only (digests and heartbeat notices are never suppressed)."""
        if notification.kind not in (KIND_ALERT, KIND_SUMMARY, KIND_ESCALATION):
            return None
        # A correction is silenced exactly when the CRITICAL escalation it corrects is.
        severity = "CRITICAL" if is_fatigue_correction(notification) else notification.severity
        return self.suppressions.matching(notification, notification.rule.id, severity, now)

    def _entry(self, notification: Notification, held: bool) -> OutboxEntry:
        return OutboxEntry(
            id=notification.id,
            notification=notification.to_state(),
            destinations=tuple(self.destinations(notification)),
            held=held,
        )

    # --- held records apart from their deciding item ---------------------------------------------

    def decide_apart(
        self, notification: Notification, now: float, principal_admitted: bool = True
    ) -> Decided:
        """Decide a notification whose deciding item cannot carry its held record (a repeat's
        claim, a window's later summary): a held one is recorded on an item of its own in the
        rule's storm group. That record, once written, is the decision: a retry after a failed
        save finds it and holds again, instead of admitting what the storm already counts. A
        retry that rebuilt the notification over more events (a summary re-made after a
        scheduler crash) records the difference: a held record's count only grows."""
        key = make_key(KeyKind.HELD, notification.id)
        existing = self.store.get(key, now)
        if existing is not None:
            self._grow_held(notification, existing, held_record(notification), now)
            return Decided([self._entry(notification, held=True)], [])
        decided = self.decide([notification], now, principal_admitted)
        if decided.held:
            (held,) = decided.held
            try:
                self.store.put(
                    key,
                    {**_held_item(held, notification.rule.id, now), **_recorded(held)},
                    now,
                    condition=Absent(),
                )
            except ConditionFailed as failed:
                if failed.current is not None:  # recorded meanwhile: grow it if need be
                    self._grow_held(notification, failed.current, held, now)
        return Decided(decided.entries, [])

    def _grow_held(
        self, notification: Notification, recorded: Item, held: Held, now: float
    ) -> None:
        """Record what ``held`` adds to the held record of ``notification`` (and its growths so
        far).

        Each growth is an item of its own in the storm group, keyed by the count it grows from,
        so it is written once whoever retries; the held record keeps the count reached
        (``count``).
        Timeline: growth item written -> ``count`` moved on; a crash between the two leaves the
        growth item, which the next attempt adopts instead of writing another.
        """
        key = make_key(KeyKind.HELD, notification.id)
        rule_id = notification.rule.id
        current: Item | None = recorded
        while current is not None:
            count = int(current.get("count", sum(h.count for h in held_of(current))))
            ids = current.get("ids") or [e for h in held_of(current) for e in h.event_ids]
            growth = held_growth(count, ids, held)
            if growth is None:
                return
            self.rates.schedule_digest(rule_id, now)  # the storm that counts it may have ended
            try:
                self.store.put(
                    make_key(KeyKind.HELD, notification.id, str(count)),
                    _held_item(growth, rule_id, now),
                    now,
                    condition=Absent(),
                )
            except ConditionFailed as failed:
                if failed.current is None:
                    continue
                (growth,) = held_of(failed.current)  # an earlier attempt grew it from here
            try:
                current = self.store.update(
                    key,
                    now,
                    set_values={
                        "count": count + growth.count,
                        "ids": [*ids, *growth.event_ids][:MAX_STORED_LIST],
                    },
                    condition=Compare("count", "=", count, or_missing=True),
                )
            except ConditionFailed as failed:
                current = failed.current  # grown meanwhile by another look


def _held_item(held: Held, rule_id: str, now: float) -> Item:
    """An item of its own in the rule's storm group for one held record (or growth)."""
    return {**in_storm_group([held], rule_id, now), EXPIRES_AT: now + HELD_RETENTION}


def _recorded(held: Held) -> Item:
    """What a held record says it counts so far (its growths add to it)."""
    return {"count": held.count, "ids": list(held.event_ids)}
