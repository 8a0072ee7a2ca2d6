"""The scheduler (the per-minute handler; replay runs it at virtual times): what falls due.

Due items, each handled on its own (a failure is logged, counted as ``SchedulerErrors`` and retried
at the next run; the other items proceed):

* an event claim whose delivery did not finish (lease ran out): deliver what no output confirmed;
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
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from .constants import HEARTBEAT_OVERDUE_SECONDS
from .decisions import heartbeat_overdue, merge_held, merge_repeats
from .delivery import RATE_KEY, ServicePart, storm_key
from .documents import (
    MAX_STORED_LIST,
    OWNER,
    VERSION,
    ClaimStatus,
    EventClaim,
    Heartbeat,
    Outbox,
    StormState,
    held_of,
    storm_attribute,
    window_attribute,
)
from .errors import MfawatchError, PublishError, UnknownReferenceError
from .events import EventHandler, escalation_principal, principal_key
from .notifications import Notification, heartbeat_notice, storm_digest_for, summary_for
from .rules import HEARTBEAT_RULE
from .state import (
    DUE_AT,
    DUE_PK,
    EXPIRES_AT,
    GROUP_AT,
    Compare,
    ConditionFailed,
    Item,
    KeyKind,
    due_mark,
    key_kind,
    key_parts,
)

logger = logging.getLogger(__name__)

#: How many forced runs ``flush`` makes at most (closing may hold summaries into storms).
FLUSH_ROUNDS = 8


class Scheduler(ServicePart):
    """Runs what is due, key by key."""

    events: EventHandler | None = None
    """The event handler, which finishes what an event's own invocations could not: a leading
    event still undecided after its lease (set by :class:`service.AlertService`)."""

    def tick(self, now: datetime, force: bool = False) -> list[Notification]:
        """Send what is due. ``force`` (end of a replay) closes every window and storm now.

        Raises :class:`errors.PublishError` after trying everything if an output failed.
        """
        clock = now.timestamp()
        sent: list[Notification] = []
        errors: list[str] = []
        for key in self.store.due(math.inf if force else clock, clock):
            try:
                sent += self._due(key, clock, force)
            except UnknownReferenceError as exc:
                self._park(key, clock, str(exc))
            except PublishError as exc:
                errors.append(str(exc))
            except Exception as exc:  # one item's fault must not stop the others' run
                self.metrics.count("SchedulerErrors")
                logger.exception("scheduled work on %s failed, retried next run: %s", key, exc)
                if not isinstance(exc, MfawatchError):
                    errors.append(f"{key}: {exc}")
        if errors:
            raise PublishError("; ".join(errors))
        return sent

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
        kind = key_kind(key)
        item = self.store.get(key, now)
        if item is None:
            # Expired (TTL deletes late) or gone: take it out of the due index.
            with contextlib.suppress(ConditionFailed):
                self.store.update(
                    key, now, remove=[DUE_PK, DUE_AT], condition=Compare(EXPIRES_AT, "<=", now)
                )
            return []
        if kind is KeyKind.EVENT:
            return self._event(key, item, now, force)
        if kind is KeyKind.STORM:
            return self._storm(key, item, now, force)
        if kind is KeyKind.HEARTBEAT:
            return self._heartbeat(key, item, now)
        if kind is KeyKind.PRINCIPAL:
            return self._escalations(key, item, now)
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
        if claim.window is None:
            self._settle(key, item, now, None)
            return []
        return self._look(key, item, claim, now, force)

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
        if claim.window is not None:
            finish |= due_mark(now)  # look at its window next
            remove = []
        return self.delivery.deliver(key, claim.outbox, now, finish, remove)

    def _settle(self, key: str, item: Item, now: float, next_due: float | None) -> None:
        """Move the item's due time on (or out), unless someone moved it meanwhile."""
        with contextlib.suppress(ConditionFailed):
            if next_due is None:
                self.store.update(
                    key, now, remove=[DUE_PK, DUE_AT], condition=Compare(DUE_AT, "=", item[DUE_AT])
                )
            else:
                self.store.update(
                    key,
                    now,
                    set_values=due_mark(next_due),
                    condition=Compare(DUE_AT, "=", item[DUE_AT]),
                )

    def _look(
        self, key: str, item: Item, claim: EventClaim, now: float, force: bool
    ) -> list[Notification]:
        window = claim.window
        assert window is not None
        settle = self.settings.settle_seconds
        if not force and now < window.window_end + settle:
            self._settle(key, item, now, window.window_end + settle)
            return []
        cutoff = math.inf if force else now - settle
        found = self.store.query_group(window.group, window.cutoff, math.inf if force else now)
        ready = [
            (float(i["t"]), str(i["event_id"]), float(i[GROUP_AT]))
            for i in found
            if float(i[GROUP_AT]) <= cutoff
        ]
        settling = len(found) > len(ready)
        repeats = merge_repeats(ready, MAX_STORED_LIST)
        if repeats is None:
            self._settle(key, item, now, now + settle if settling else None)
            return []
        rule = self._rule(window.rule_id, key)
        summary = summary_for(rule, window, repeats, window.batch + 1)
        principal = principal_key(
            window.account, escalation_principal(window.principal_key, window.source_ip)
        )
        admitted = self.delivery.count_principal(principal, now, now + rule.window_minutes * 60.0)
        decided = self.delivery.decide_apart(summary, now, admitted)
        advanced = json.loads(window_attribute(window))
        advanced.update(cutoff=repeats.written_until if force else cutoff, batch=window.batch + 1)
        outbox = claim.outbox.with_entries(decided.entries)
        try:
            self.store.update(
                key,
                now,
                set_values={
                    "window": json.dumps(advanced, sort_keys=True, separators=(",", ":")),
                    "status": ClaimStatus.DECIDED.value,
                    "lease_until": now + settle,
                    **outbox.to_item(),
                    **due_mark(now + settle),
                },
                add={VERSION: 1},
                condition=_version(claim.version),
            )
        except ConditionFailed:
            return []  # changed meanwhile: the next run looks again
        # After the summary, one more look (repeats may still be settling; a late one asks).
        finish: Item = {"status": ClaimStatus.DONE.value, **due_mark(now + settle)}
        return self.delivery.deliver(key, outbox, now, finish, [])

    def _rule(self, rule_id: str, key: str) -> Any:
        try:
            return self.rules.get(rule_id)
        except KeyError as exc:
            raise UnknownReferenceError(f"{key}: {exc}") from exc

    # --- storms ----------------------------------------------------------------------------------

    def _storm(self, key: str, item: Item, now: float, force: bool) -> list[Notification]:
        rule_id = key_parts(key)[0] if key_parts(key) else ""
        rule = self._rule(rule_id, key)
        state = StormState.from_item(item)
        if state.outbox.pending():
            return self.delivery.deliver(key, state.outbox, now, None, [])
        settle = self.settings.settle_seconds
        period = self.settings.topic_rate.seconds
        cutoff = math.inf if force else now - settle
        found = self.store.query_group(storm_key(rule.id), state.cutoff, math.inf if force else now)
        ready = [i for i in found if float(i[GROUP_AT]) <= cutoff]
        held = [h for i in ready for h in held_of(i)]
        rate = self.store.get(RATE_KEY, now) or {}
        in_storm = float(rate.get(storm_attribute(rule.id), 0.0)) > now and not force
        phase = "held"  # holds of a principal's limit, outside storm mode
        next_due: float | None = now + settle if len(found) > len(ready) else None
        last_hold = max([state.last_hold, *(float(i[GROUP_AT]) for i in found)])
        # Quiet for as long as an incident window: the summaries of the storm's incidents come
        # within it, and are held into the storm rather than restarting the alerts.
        quiet = max(period, rule.window_minutes * 60.0)
        if in_storm:
            if now - last_hold < quiet:
                # Holds go on: storm mode lasts past the next digest.
                until = now + period + settle
                self.store.update(RATE_KEY, now, set_values={storm_attribute(rule.id): until})
                next_due, phase = now + period, "ongoing"
            else:
                # Quiet for a period: storm mode ends; one last look for holds still settling.
                self.store.update(RATE_KEY, now, set_values={storm_attribute(rule.id): now})
                next_due, phase = now + settle, "ended"
        stats = merge_held(held, MAX_STORED_LIST)
        if stats is None and phase != "ended":
            self._settle(key, item, now, next_due)
            return []
        last_at = max([state.cutoff, *(float(i[GROUP_AT]) for i in ready)])
        digest = storm_digest_for(
            rule, stats, state.opened_at, state.batch + 1, phase, quiet_since=last_hold
        )
        decided = self.delivery.decide([digest], now)  # a digest is never rate-limited
        outbox = state.outbox.with_entries(decided.entries)
        values: Item = {
            "cutoff": last_at if force else cutoff,
            "batch": state.batch + 1,
            "last_hold": last_hold,
            **outbox.to_item(),
            **due_mark(now),
        }
        try:
            self.store.update(
                key,
                now,
                set_values=values,
                add={VERSION: 1},
                condition=_version(state.version),
            )
        except ConditionFailed:
            return []
        finish = due_mark(next_due) if next_due is not None else None
        return self.delivery.deliver(
            key, outbox, now, finish, [] if next_due is not None else [DUE_PK, DUE_AT]
        )

    # --- escalations kept on a principal's item -------------------------------------------------

    def _escalations(self, key: str, item: Item, now: float) -> list[Notification]:
        """Publish an escalation its deciding event did not get to publish."""
        outbox = Outbox.from_item(item)
        if outbox.pending():
            return self.delivery.deliver(key, outbox, now)
        self._settle(key, item, now, None)
        return []

    # --- heartbeats -----------------------------------------------------------------------------

    def _heartbeat(self, key: str, item: Item, now: float) -> list[Notification]:
        heartbeat = Heartbeat.from_item(item)
        if heartbeat.outbox.pending():
            return self.delivery.deliver(key, heartbeat.outbox, now)
        if not heartbeat_overdue(
            heartbeat.last_seen, heartbeat.missing_reported, now, HEARTBEAT_OVERDUE_SECONDS
        ):
            self._settle(key, item, now, heartbeat.last_seen + HEARTBEAT_OVERDUE_SECONDS)
            return []
        notice = heartbeat_notice(HEARTBEAT_RULE, _heartbeat_view(heartbeat), now, missing=True)
        decided = self.delivery.decide([notice], now)
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


def _version(version: int) -> Compare:
    """The item still has the version that was read (version 0: never versioned)."""
    return Compare(VERSION, "=", version, or_missing=version == 0)
