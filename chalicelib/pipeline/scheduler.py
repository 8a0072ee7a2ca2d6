"""The scheduler (the per-minute handler; replay runs it at virtual times): what falls due.

Due items, each handled on its own (a failure is logged, counted as ``SchedulerErrors`` and retried
at the next run; the other items proceed):

* an event claim whose delivery did not finish (lease ran out): deliver what no output confirmed;
* a success escalated for MFA fatigue, once Lambda's retries are over and after each failure
  processed later: correct its count (:meth:`events.EventHandler.fatigue_look`);
* a leading event whose window ended: merge its window's repeats into a summary (a "look"); a
  look that finds repeats still settling looks again, and a repeat processed after the window
  ended asks for a look itself, so late repeats make another batch instead of being lost;
* a rule's storm: merge its held notifications into a digest, keep or end storm mode;
* a heartbeat that is overdue: report the account x Region missing, once.

Stored state that names a rule or output this deployment does not know (renamed, removed) is
reported (``Parked`` metric, an error log naming the item) and taken out of the due index instead
of failing every run. Expired items still in the index (TTL deletion lags) are taken out too.

``settle`` (``Settings.settle_seconds``) is how long a written item may take to become visible to
a look: longer than the Lambda timeout (a write in flight lands within it) plus the index's
propagation. A look merges what was written up to ``now - settle``.

Windows are summarized in :mod:`.looks`, storms digested in :mod:`.storms`; late index entries
are caught by the band of :mod:`.scheduled`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from ..core.constants import HEARTBEAT_OVERDUE_SECONDS
from ..core.decisions import heartbeat_overdue, rate_slot
from ..core.documents import (
    OWNER,
    VERSION,
    ClaimStatus,
    EventClaim,
    Heartbeat,
    Outbox,
    ended_storms,
    stale_counters,
)
from ..core.errors import MfawatchError, PublishError, UnknownReferenceError
from ..core.notifications import (
    Notification,
    heartbeat_notice,
)
from ..core.rules import HEARTBEAT_RULE
from ..core.state import (
    DUE_AT,
    DUE_PK,
    EXPIRES_AT,
    AllOf,
    Compare,
    ConditionFailed,
    Item,
    KeyKind,
    due_mark,
    key_kind,
)
from .events import EventHandler
from .looks import Looks
from .notices import ExpiryNotices
from .parts import Parts
from .rates import RATE_KEY
from .scheduled import settle
from .storms import Storms

logger = logging.getLogger(__name__)

#: How many forced runs ``flush`` makes at most (closing may hold summaries into storms).
FLUSH_ROUNDS = 8


#: Seconds a run keeps in hand when it stops taking due keys (at most a third of the time it had
#: at its start): one key's work is a few requests, each bounded by the clients' timeouts
#: (app.CLIENT_CONFIG), so it finishes before Lambda's.
SCHEDULER_RESERVE_SECONDS = 10.0

Remaining = Callable[[], float]
"""Seconds left before the invocation's deadline (Lambda: the context's
``get_remaining_time_in_millis() / 1000``)."""


class Scheduler:
    """Runs what is due, the earliest due first, until the invocation's time is nearly up."""

    def __init__(self, parts: Parts) -> None:
        self.rules, self.store, self.delivery = parts.rules, parts.store, parts.delivery
        self.settings, self.metrics = parts.settings, parts.metrics
        self.admission = parts.admission
        self.looks, self.storms = Looks(parts), Storms(parts)
        self.notices = ExpiryNotices(parts)

    _tidied: int | None = None
    """The rate window whose tidy this execution environment has done."""
    events: EventHandler | None = None
    """The event handler, which finishes what an event's own invocations could not: a leading
    event still undecided after its lease (set by :class:`service.AlertService`)."""

    def tick(
        self, now: datetime, force: bool = False, remaining: Remaining | None = None
    ) -> list[Notification]:
        """Send what is due. ``force`` (end of a replay) closes every window and storm now.

        Keys are taken earliest due first. With ``remaining``, the run stops taking keys when
        fewer than :data:`SCHEDULER_RESERVE_SECONDS` (or a third of the time it started with)
        are left: what it did not reach stays due for the next run (a minute later), with the
        oldest work first again. A big backlog (a password spray over thousands of IPs) is worked
        off over several runs instead of the function timing out in the middle of every run on
        the same keys.

        Raises :class:`errors.PublishError` after trying everything if an output failed.
        """
        clock = now.timestamp()
        errors: list[str] = []
        reserve = min(SCHEDULER_RESERVE_SECONDS, remaining() / 3) if remaining else 0.0
        sent = self._housekeeping(clock, errors)
        keys = self.store.due(math.inf if force else clock, clock)
        for done, key in enumerate(keys):
            if remaining is not None and remaining() < reserve:
                self.metrics.count("SchedulerDeferred", len(keys) - done)
                logger.warning(
                    "scheduler run out of time: %d of %d due keys left for the next run",
                    len(keys) - done,
                    len(keys),
                )
                break
            sent += self._one(key, clock, force, errors)
        if errors:
            raise PublishError("; ".join(errors))
        return sent

    def _housekeeping(self, now: float, errors: list[str]) -> list[Notification]:
        """The rate item's tidy and the suppressions' expiry notices: never in the way of due
        work (a failure is logged and tried again at the next run; a failed publish is
        reported in ``errors``)."""
        sent: list[Notification] = []
        try:
            self._tidy_rate(now)
        except MfawatchError as exc:  # housekeeping: never in the way of due work
            logger.warning("could not tidy the topic's rate item: %s", exc)
        try:
            sent += self.notices.send(now)
        except PublishError as exc:
            errors.append(str(exc))
        except Exception as exc:  # never in the way of due work; tried again at the next run
            self.metrics.count("SchedulerErrors")
            logger.exception("expiry notices not sent yet, tried again next run: %s", exc)
        return sent

    def _one(self, key: str, now: float, force: bool, errors: list[str]) -> list[Notification]:
        """One due key's work; its failure is parked, reported in ``errors`` or logged, and
        never stops the others' run."""
        try:
            return self._due(key, now, force)
        except UnknownReferenceError as exc:
            self._park(key, now, str(exc))
        except PublishError as exc:
            errors.append(str(exc))
        except Exception as exc:  # one item's fault must not stop the others' run
            self.metrics.count("SchedulerErrors")
            logger.exception("scheduled work on %s failed, retried next run: %s", key, exc)
            if not isinstance(exc, MfawatchError):
                errors.append(f"{key}: {exc}")
        return []

    def _tidy_rate(self, now: float) -> None:
        """Keep the topic's rate item bounded: every rate window adds a counter attribute and
        every write refreshes its TTL, so without this it grows for as long as the stage runs
        (a counter is removed by the next window's write only when no window was skipped).
        Once per rate window and execution environment: counters of windows before the previous
        one and the flags of ended storms go (a flag is removed only if it did not change)."""
        slot = rate_slot(now, self.settings.topic_rate.seconds)
        if slot == self._tidied:
            return
        self._tidied = slot
        item = self.store.get(RATE_KEY, now)
        if item is None:
            return
        stale = stale_counters(item, slot)
        ended = ended_storms(item, now)
        if not stale and not ended:
            return
        unchanged = tuple(Compare(name, "=", value) for name, value in ended.items())
        with contextlib.suppress(ConditionFailed):
            self.store.update(
                RATE_KEY,
                now,
                remove=[*stale, *ended],
                condition=AllOf(unchanged) if unchanged else None,
            )

    def flush(self, now: datetime) -> list[Notification]:
        """Close everything that is open (replay's end). Held summaries may open a storm, so
        repeat until nothing more comes out."""
        sent: list[Notification] = []
        clock = now.timestamp()
        for _ in range(FLUSH_ROUNDS):
            if not self.store.due(math.inf, clock):
                break
            sent += self.tick(now, force=True)
        return sent

    def _park(self, key: str, now: float, reason: str) -> None:
        self.metrics.count("Parked")
        logger.error("parked %s (not retried): %s", key, reason)
        self.store.update(key, now, set_values={"parked": reason[:500]}, remove=[DUE_PK, DUE_AT])

    def _due(self, key: str, now: float, force: bool) -> list[Notification]:
        item = self.store.get(key, now)
        if item is None:
            # Expired (TTL deletes late) or gone: take it out of the due index.
            with contextlib.suppress(ConditionFailed):
                self.store.update(
                    key, now, remove=[DUE_PK, DUE_AT], condition=Compare(EXPIRES_AT, "<=", now)
                )
            return []
        if DUE_AT not in item:
            # Listed, but no longer due: the index lags the table, or this run's earlier work
            # settled it (an event's delivery finishes its principal's escalation).
            return []
        return self._work(key, item, now, force)

    def _work(self, key: str, item: Item, now: float, force: bool) -> list[Notification]:
        """What falls due on an item still due, by the kind of its key."""
        kind = key_kind(key)
        if kind is KeyKind.EVENT:
            return self._event(key, item, now, force)
        if kind is KeyKind.STORM:
            return self.storms.storm(key, item, now, force)
        if kind is KeyKind.HEARTBEAT:
            return self._heartbeat(key, item, now)
        if kind is KeyKind.CAMPAIGN and self.events is not None:
            return self.events.campaigns.due(key, item, now, force)
        if kind in (KeyKind.PRINCIPAL, KeyKind.CAMPAIGN, KeyKind.NOTICE):
            return self._outbox(key, item, now)
        raise UnknownReferenceError(f"{key}: no scheduled work for items of this kind")

    # --- event claims: redelivery and window summaries -------------------------------------------

    def _event(self, key: str, item: Item, now: float, force: bool) -> list[Notification]:
        claim = EventClaim.from_item(item)
        if claim.status is not ClaimStatus.DONE and claim.lease_until > now and not force:
            return []  # its invocation is still at work; the due time moves on with it
        if (
            self.events is not None
            and claim.status is ClaimStatus.PROCESSING
            and claim.window is None
            and not claim.outbox.entries
        ):
            return self.events.finish_stuck(key, item, now)  # still undecided after its lease
        if claim.outbox.pending():
            return self._redeliver(key, claim, now)
        if claim.fatigue and self.events is not None:
            return self.events.fatigue_look(key, item, now)
        if claim.window is None:
            settle(self.store, key, item, now, None)
            return []
        return self.looks.look(key, item, claim, now, force)

    def _redeliver(self, key: str, claim: EventClaim, now: float) -> list[Notification]:
        token = uuid.uuid4().hex
        try:  # take the lease so that a Lambda retry does not deliver the same at once
            self.store.update(
                key,
                now,
                set_values={"lease_until": now + self.settings.lease_seconds, OWNER: token},
                condition=Compare("lease_until", "=", claim.lease_until),
            )
        except ConditionFailed as failed:
            if not failed.current or failed.current.get(OWNER) != token:
                return []  # taken by someone else (not our own write, re-sent by botocore)
        finish: Item = {"status": ClaimStatus.DONE.value}
        remove = [DUE_PK, DUE_AT]
        if claim.window is not None or claim.fatigue:
            finish |= due_mark(now)  # look at its window (or its late failures) next
            remove = []
        return self.delivery.deliver(key, claim.outbox, now, finish=finish, finish_remove=remove)

    # --- outboxes kept on a principal's item (escalations) or a notice item --------------------

    def _outbox(self, key: str, item: Item, now: float) -> list[Notification]:
        """Publish what an item's outbox still owes: an escalation its deciding event did not
        get to publish (a principal's item), an expiry notice whose publish failed."""
        outbox = Outbox.from_item(item)
        if outbox.pending():
            return self.delivery.deliver_leased(key, outbox, now)
        settle(self.store, key, item, now, None)
        return []

    # --- heartbeats -----------------------------------------------------------------------------

    def _heartbeat(self, key: str, item: Item, now: float) -> list[Notification]:
        heartbeat = Heartbeat.from_item(item)
        if heartbeat.outbox.pending():
            return self.delivery.deliver(key, heartbeat.outbox, now)
        if not heartbeat_overdue(
            heartbeat.last_seen, heartbeat.missing_reported, now, HEARTBEAT_OVERDUE_SECONDS
        ):
            settle(self.store, key, item, now, heartbeat.last_seen + HEARTBEAT_OVERDUE_SECONDS)
            return []
        notice = heartbeat_notice(HEARTBEAT_RULE, _heartbeat_view(heartbeat), now, missing=True)
        decided = self.admission.decide([notice], now)
        outbox = heartbeat.outbox.with_entries(decided.entries)
        try:
            self.store.update(
                key,
                now,
                set_values={"missing_reported": True, **outbox.to_item(), **due_mark(now)},
                add={VERSION: 1},
                condition=Compare(
                    VERSION, "=", heartbeat.version, or_missing=heartbeat.version == 0
                ),
            )
        except ConditionFailed:
            return []
        return self.delivery.deliver(key, outbox, now)


def _heartbeat_view(heartbeat: Heartbeat) -> Mapping[str, Any]:
    return {
        "account": heartbeat.account,
        "region": heartbeat.region,
        "last_seen": heartbeat.last_seen,
        "missing_since": heartbeat.missing_since,
    }
