"""Delivery: rate limits decided once per notification, then publishing output by output.

A notification becomes an :class:`documents.OutboxEntry` before anything is published: its
destinations and its rate-limit decision (admitted or held) are saved with the item that decided
it (an event claim, a storm, a heartbeat). Publishing then goes output by output, and each
output's success is recorded as it happens (one atomic ``ADD`` to the item's ``delivered`` set).
So a retry, whether after an SNS error, a crash or a timeout between two outputs, publishes only to
the outputs that did not confirm, and never asks the rate limiter again.

Rate limits (``Settings.principal_rate``, ``Settings.topic_rate``) are fixed-window counters: one
atomic add on a tiny item, so concurrent invocations never conflict. When the topic's window is
full the rule enters storm mode (see :mod:`chalicelib.core.decisions`): its held notifications are
counted in the storm's digest (:mod:`chalicelib.pipeline.scheduler`), which is scheduled here.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..core.config import Settings
from ..core.decisions import held_growth, rate_slot
from ..core.documents import (
    HELD_RETENTION,
    MAX_STORED_LIST,
    Held,
    Outbox,
    OutboxEntry,
    counter_attribute,
    delivery_mark,
    held_attribute,
    held_of,
    storm_attribute,
)
from ..core.errors import ConfigError, PublishError, StateStoreError, UnknownReferenceError
from ..core.notifications import (
    KIND_ALERT,
    KIND_ESCALATION,
    KIND_SUMMARY,
    Notification,
    is_campaign,
    is_fatigue_correction,
)
from ..core.notifications import notification_from_state as rebuild
from ..core.rules import RuleSet
from ..core.state import (
    DUE_AT,
    DUE_PK,
    EXPIRES_AT,
    Absent,
    AnyOf,
    Compare,
    ConditionFailed,
    Item,
    KeyKind,
    Missing,
    StateStore,
    due_mark,
    group_mark,
    make_key,
)
from ..core.suppressions import Suppression, Suppressions
from .observability import Metrics

logger = logging.getLogger(__name__)

RATE_KEY = make_key(KeyKind.RATE, "topic")
#: How often an output's confirmation is written before the invocation gives up (and its retry
#: publishes to that output again).
CONFIRM_ATTEMPTS = 3


class Publisher(Protocol):
    """Where notifications go. ``publish`` raises :class:`errors.PublishError` on failure."""

    def destinations(self, notification: Notification) -> list[str]: ...

    def publish(self, notification: Notification, destination: str) -> None: ...


def storm_key(rule_id: str) -> str:
    return make_key(KeyKind.STORM, rule_id)


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


@dataclass(frozen=True)
class Decided:
    """Notifications of one item with their admission decided: what to save before publishing."""

    entries: list[OutboxEntry]
    held: list[Held]

    @property
    def publishes(self) -> bool:
        return any(not e.held for e in self.entries)

    def held_attributes(self, rule_id: str, now: float) -> dict[str, Any]:
        """Attributes that put the deciding item in its rule's storm group (held alerts)."""
        if not self.held:
            return {}
        return {"held": held_attribute(self.held), **group_mark(storm_key(rule_id), now)}


class Delivery:
    """Admission (once per notification) and per-output publishing of outbox entries."""

    def __init__(
        self,
        store: StateStore,
        publisher: Publisher,
        settings: Settings,
        metrics: Metrics,
        known: RuleSet,
        suppressions: Suppressions | None = None,
    ) -> None:
        self.store = store
        self.publisher = publisher
        self.settings = settings
        self.metrics = metrics
        self._known = known
        self.suppressions = suppressions if suppressions is not None else Suppressions()

    # --- admission -------------------------------------------------------------------------------

    def principal_counter(self, now: float) -> tuple[dict[str, int], list[str]]:
        """The ``add``/``remove`` that count one notification against its principal's window."""
        period = self.settings.principal_rate.seconds
        slot = rate_slot(now, period)
        # Remove the counters of every window since the item's previous write could have been
        # (events.py keeps the item this long after a failure), not only the one before last:
        # a skipped window would otherwise keep its counter as long as the principal fails.
        s = self.settings
        life = max(s.brute_force.seconds, s.fatigue_success.seconds)
        stale = range(2, math.ceil(life / period) + 3)
        return {counter_attribute(slot): 1}, [counter_attribute(slot - k) for k in stale]

    def principal_admits(self, principal_item: Mapping[str, Any], now: float) -> bool:
        """Whether the count an add just returned is within the principal's limit."""
        rate = self.settings.principal_rate
        count = int(principal_item.get(counter_attribute(rate_slot(now, rate.seconds)), 0))
        return count <= rate.count

    def count_principal(self, principal_key: str, now: float, expires_at: float) -> bool:
        """Count a notification against its principal (one atomic add); True when admitted."""
        add, remove = self.principal_counter(now)
        item = self.store.update(
            principal_key,
            now,
            set_values={EXPIRES_AT: expires_at},
            add=add,
            remove=remove,
        )
        return self.principal_admits(item, now)

    def topic_admits(self, rule_id: str, now: float) -> tuple[bool, bool]:
        """Take a slot of the topic's window unless the rule is in storm mode.

        Returns (admitted, opened_storm). One atomic add; a rule in storm mode is told by the
        failed condition (no slot taken). A full window opens storm mode for the rule, its digest
        scheduled first.
        """
        rate = self.settings.topic_rate
        slot = rate_slot(now, rate.seconds)
        storm = storm_attribute(rule_id)
        try:
            item = self.store.update(
                RATE_KEY,
                now,
                set_values={EXPIRES_AT: now + 30 * 24 * 3600.0},
                add={counter_attribute(slot): 1},
                remove=[counter_attribute(slot - 2)],
                condition=_storm_over(storm, now),
            )
        except ConditionFailed:
            return False, False  # storm mode: hold without taking a slot
        if int(item.get(counter_attribute(slot), 0)) <= rate.count:
            return True, False
        # The digest is scheduled before the rule is marked stormy: a retry after a fault between
        # the two writes finds the window still full and marks it again, while a rule marked
        # stormy always has its digest due (holds in storm mode schedule nothing themselves).
        self.schedule_digest(rule_id, now)
        # Storm mode lasts past the first digest (due in one period), which extends or ends it.
        until = now + rate.seconds + self.settings.settle_seconds
        self.store.update(RATE_KEY, now, set_values={storm: until})
        logger.warning("rule %s enters storm mode: topic rate %s reached", rule_id, rate)
        self.metrics.count("StormsOpened", Rule=rule_id)
        return False, True

    def schedule_digest(self, rule_id: str, now: float) -> None:
        """Make sure the rule's storm digest is due (one conditional write; a no-op if it is)."""
        with contextlib.suppress(ConditionFailed):
            self.store.update(
                storm_key(rule_id),
                now,
                set_values={
                    "opened_at": now,
                    EXPIRES_AT: now + 2 * 24 * 3600.0,
                    **due_mark(now + self.settings.topic_rate.seconds),
                },
                condition=Missing(DUE_AT),
            )

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
                self.schedule_digest(notification.rule.id, now)
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
                    admitted, _ = self.topic_admits(notification.rule.id, now)
                    hold = not admitted
                else:
                    hold = True
                    self.schedule_digest(notification.rule.id, now)
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
            destinations=tuple(self.publisher.destinations(notification)),
            held=held,
        )

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
                    {**self._held_item(held, notification.rule.id, now), **_recorded(held)},
                    now,
                    condition=Absent(),
                )
            except ConditionFailed as failed:
                if failed.current is not None:  # recorded meanwhile: grow it if need be
                    self._grow_held(notification, failed.current, held, now)
        return Decided(decided.entries, [])

    def escalate_once(
        self,
        key: str,
        item: Mapping[str, Any],
        escalation: Notification,
        event_id: str,
        start: float,
        until: float,
        now: float,
        extra: Mapping[str, Any] | None = None,
        finish: Mapping[str, Any] | None = None,
    ) -> list[Notification]:
        """Escalate once per burst or campaign, on the item (``key``) that counts it: the mark
        (``escalated_until``, ``escalated_by``) and the escalation's outbox are one conditional
        write, and the item stays due until delivered, so the scheduler finishes what the
        deciding event did not. The condition: no mark, one that ends by ``start``, or this
        event's (its retry decides the same again and delivers what is left). ``item`` is the
        item as the caller's last write returned it; ``extra`` is written with the mark;
        ``finish`` (a later due time) with the last confirmation instead of leaving the due
        index."""
        kept = Outbox.from_item(item)
        if item.get("escalated_by") == event_id and any(
            e.id == escalation.id for e in kept.entries
        ):
            # Decided by an earlier attempt: deliver what is left, unless the scheduler is.
            remove = () if finish else (DUE_PK, DUE_AT)
            return self.deliver_leased(key, kept, now, finish, remove)
        else:
            decided = self.decide_apart(escalation, now)
            outbox = kept.with_entries(decided.entries)
            try:
                self.store.update(
                    key,
                    now,
                    set_values={
                        "escalated_until": until,
                        "escalated_by": event_id,
                        # Held while this invocation delivers (deliver_leased).
                        LEASE: now + self.settings.lease_seconds,
                        **(extra or {}),
                        **outbox.to_item(),
                        **due_mark(now + self.settings.lease_seconds),
                    },
                    remove=[] if outbox.delivered else ["delivered"],
                    condition=AnyOf(
                        (
                            Compare("escalated_until", "<=", start, or_missing=True),
                            Compare("escalated_by", "=", event_id),
                        )
                    ),
                )
            except ConditionFailed:
                return []  # another event of the burst or campaign escalated it
        try:
            return self.deliver(key, outbox, now, finish, () if finish else (DUE_PK, DUE_AT))
        except PublishError as exc:
            # The item stays due: the scheduler publishes what did not confirm.
            logger.error("escalation %s not delivered yet: %s", escalation.id, exc)
            return []

    def deliver_leased(
        self,
        key: str,
        outbox: Outbox,
        now: float,
        finish: Mapping[str, Any] | None = None,
        finish_remove: Sequence[str] = (DUE_PK, DUE_AT),
    ) -> list[Notification]:
        """Deliver what is pending of an escalation item's outbox, taking the item's lease
        first (one conditional write): the deciding event's retry and the scheduler's
        redelivery may both find it pending, and only one publishes. A failed output gives the
        lease back (:meth:`deliver`)."""
        if not outbox.pending():
            return self.deliver(key, outbox, now, finish, finish_remove)
        try:
            self.store.update(
                key,
                now,
                set_values={LEASE: now + self.settings.lease_seconds},
                condition=Compare(LEASE, "<=", now, or_missing=True),
            )
        except ConditionFailed:
            return []  # someone delivers it now; if they die, the lease runs out
        try:
            return self.deliver(key, outbox, now, finish, finish_remove)
        except PublishError as exc:
            logger.error("escalation outbox of %s not delivered yet: %s", key, exc)
            return []

    def _held_item(self, held: Held, rule_id: str, now: float) -> Item:
        return {
            "held": held_attribute([held]),
            EXPIRES_AT: now + HELD_RETENTION,
            **group_mark(storm_key(rule_id), now),
        }

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
            self.schedule_digest(rule_id, now)  # the storm that counts it may have ended
            try:
                self.store.put(
                    make_key(KeyKind.HELD, notification.id, str(count)),
                    self._held_item(growth, rule_id, now),
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

    # --- publishing ------------------------------------------------------------------------------

    def notification(self, entry: OutboxEntry) -> Notification:
        """Rebuild a saved notification; a rule this version does not know is reported."""
        try:
            return rebuild(entry.notification, self._known)
        except KeyError as exc:
            raise UnknownReferenceError(f"outbox entry {entry.id}: {exc}") from exc

    def _confirm(
        self,
        key: str,
        now: float,
        mark: str,
        finish: dict[str, Any] | None,
        remove: list[str],
    ) -> None:
        """Record one output's success. It is an idempotent ``ADD`` to a set, so it is tried again
        (after the client's own retries) before giving up: giving up means the retry publishes
        to that output a second time."""
        for attempt in range(CONFIRM_ATTEMPTS):
            try:
                self.store.update(
                    key, now, add={"delivered": frozenset({mark})}, set_values=finish, remove=remove
                )
                return
            except StateStoreError:
                if attempt == CONFIRM_ATTEMPTS - 1:
                    raise
                logger.warning("recording %s on %s failed; trying again", mark, key)

    def deliver(
        self,
        key: str,
        outbox: Outbox,
        now: float,
        finish: Mapping[str, Any] | None = None,
        finish_remove: Sequence[str] = (DUE_PK, DUE_AT),
        retry_after: float | None = None,
    ) -> list[Notification]:
        """Publish every pending (entry, output) of ``key``'s outbox, recording each success.

        The last confirmation also writes ``finish`` and removes ``finish_remove`` (the item is
        settled). If an output fails, the item stays due in ``retry_after`` seconds (the scheduler
        redelivers) and :class:`errors.PublishError` is raised so that Lambda retries too.
        """
        pending = outbox.pending()
        sent: dict[str, Notification] = {}
        errors: list[str] = []
        for index, (entry, destination) in enumerate(pending):
            notification = self.notification(entry)
            try:
                self.settings.output(destination)
                self.publisher.publish(notification, destination)
            except ConfigError as exc:
                raise UnknownReferenceError(f"outbox entry {entry.id}: {exc}") from exc
            except PublishError as exc:
                self.metrics.count("PublishErrors", Destination=destination)
                logger.error(
                    "publish failed: %s",
                    exc,
                    extra={
                        "rule": notification.rule.id,
                        "notification": notification.id,
                        "destination": destination,
                        "dedup_key": notification.dedup_key,
                    },
                )
                errors.append(f"{destination}: {exc}")
                continue
            last = index == len(pending) - 1 and not errors
            self._confirm(
                key,
                now,
                delivery_mark(entry.id, destination),
                dict(finish or {}) if last else None,
                list(finish_remove) if last else [],
            )
            if entry.id not in sent:
                sent[entry.id] = notification
        if errors:
            retry = self.settings.lease_seconds if retry_after is None else retry_after
            self.store.update(key, now, set_values={"lease_until": now, **due_mark(now + retry)})
            raise PublishError("; ".join(errors))
        if not pending and (finish or finish_remove):
            self.store.update(key, now, set_values=dict(finish or {}), remove=list(finish_remove))
        for notification in sent.values():
            self.metrics.count("Notifications", Kind=notification.kind)
        return list(sent.values())


#: The attribute of an escalation item (a principal's, a campaign's) that says until when an
#: invocation delivers its outbox.
LEASE = "lease_until"


def _recorded(held: Held) -> Item:
    """What a held record says it counts so far (its growths add to it)."""
    return {"count": held.count, "ids": list(held.event_ids)}


def _storm_over(attribute: str, now: float) -> Compare:
    return Compare(attribute, "<=", now, or_missing=True)
