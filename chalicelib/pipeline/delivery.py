"""Delivery: publishing an outbox output by output, each success recorded as it happens.

A notification's destinations and admission (admitted or held) are decided once, before anything
is published (:mod:`chalicelib.pipeline.admission`), and saved as an :class:`documents.OutboxEntry`
with the item that decided it (an event claim, a storm, a heartbeat). Publishing then goes output
by output, and each output's success is recorded as it happens (one atomic ``ADD`` to the item's
``delivered`` set). So a retry, whether after an SNS error, a crash or a timeout between two
outputs, publishes only to the outputs that did not confirm, and never asks the rate limiter
again. An escalation (a burst's, a campaign's) is decided and saved on the item that counts it,
then delivered under that item's lease (:meth:`Delivery.escalate_once`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from ..core.config import Settings
from ..core.documents import Outbox, OutboxEntry, delivery_mark
from ..core.errors import ConfigError, PublishError, StateStoreError, UnknownReferenceError
from ..core.notifications import Notification
from ..core.notifications import notification_from_state as rebuild
from ..core.rules import RuleSet
from ..core.state import (
    DUE_AT,
    DUE_PK,
    AnyOf,
    Compare,
    Condition,
    ConditionFailed,
    Item,
    StateStore,
    due_mark,
)
from .admission import Admission
from .observability import Metrics

logger = logging.getLogger(__name__)

#: How often an output's confirmation is written before the invocation gives up (and its retry
#: publishes to that output again).
CONFIRM_ATTEMPTS = 3
#: The attribute of an escalation item (a principal's, a campaign's) that says until when an
#: invocation delivers its outbox.
LEASE = "lease_until"


class Publisher(Protocol):
    """Where notifications go. ``publish`` raises :class:`errors.PublishError` on failure."""

    def destinations(self, notification: Notification) -> list[str]: ...

    def publish(self, notification: Notification, destination: str) -> None: ...


class Delivery:
    """Per-output publishing of outbox entries, and escalations delivered under a lease."""

    def __init__(
        self,
        store: StateStore,
        publisher: Publisher,
        settings: Settings,
        metrics: Metrics,
        *,
        known: RuleSet,
        admission: Admission,
    ) -> None:
        self.store = store
        self.publisher = publisher
        self.settings = settings
        self.metrics = metrics
        self._known = known
        self.admission = admission

    def escalate_once(
        self,
        key: str,
        item: Mapping[str, Any],
        escalation: Notification,
        *,
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
        remove = () if finish else (DUE_PK, DUE_AT)
        if item.get("escalated_by") == event_id and any(
            e.id == escalation.id for e in kept.entries
        ):
            # Decided by an earlier attempt: deliver what is left, unless the scheduler is.
            return self.deliver_leased(key, kept, now, finish=finish, finish_remove=remove)
        decided = self.admission.decide_apart(escalation, now)
        outbox = kept.with_entries(decided.entries)
        try:
            self.save_leased(
                key,
                outbox,
                now,
                set_values={"escalated_until": until, "escalated_by": event_id, **(extra or {})},
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
            return self.deliver(key, outbox, now, finish=finish, finish_remove=remove)
        except PublishError as exc:
            # The item stays due: the scheduler publishes what did not confirm.
            logger.error("escalation %s not delivered yet: %s", escalation.id, exc)
            return []

    def save_leased(
        self,
        key: str,
        outbox: Outbox,
        now: float,
        *,
        set_values: Item,
        condition: Condition,
    ) -> None:
        """Save a decided ``outbox`` on an escalation item (a principal's, a campaign's) with
        ``set_values``, in one write under ``condition`` (:class:`state.ConditionFailed` when it
        fails): the item is leased to this invocation, which delivers it next, and due when the
        lease runs out, so the scheduler delivers what this invocation does not."""
        lease_until = now + self.settings.lease_seconds
        self.store.update(
            key,
            now,
            set_values={
                **set_values,
                LEASE: lease_until,
                **outbox.to_item(),
                **due_mark(lease_until),
            },
            remove=[] if outbox.delivered else ["delivered"],
            condition=condition,
        )

    def deliver_leased(
        self,
        key: str,
        outbox: Outbox,
        now: float,
        *,
        finish: Mapping[str, Any] | None = None,
        finish_remove: Sequence[str] = (DUE_PK, DUE_AT),
    ) -> list[Notification]:
        """Deliver what is pending of an escalation item's outbox, taking the item's lease
        first (one conditional write): the deciding event's retry and the scheduler's
        redelivery may both find it pending, and only one publishes. A failed output gives the
        lease back (:meth:`deliver`)."""
        if not outbox.pending():
            return self.deliver(key, outbox, now, finish=finish, finish_remove=finish_remove)
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
            return self.deliver(key, outbox, now, finish=finish, finish_remove=finish_remove)
        except PublishError as exc:
            logger.error("escalation outbox of %s not delivered yet: %s", key, exc)
            return []

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
        *,
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
            self.store.update(key, now, set_values={LEASE: now, **due_mark(now + retry)})
            raise PublishError("; ".join(errors))
        if not pending and (finish or finish_remove):
            self.store.update(key, now, set_values=dict(finish or {}), remove=list(finish_remove))
        for notification in sent.values():
            self.metrics.count("Notifications", Kind=notification.kind)
        return list(sent.values())
