"""Stuck leaders: the scheduler's turn on a claim still undecided after its lease and the settle
delay. A leading event is decided again from the event its incident keeps (the same path as a
Lambda retry; every step is idempotent per eventID), and after :data:`STAND_IN_AFTER` tries by a
stand-in claim in its place; a stand-in's own claim finishes the handover it belongs to;
anything else leaves the due index (its Lambda retries and the failed-events queue finish it).

The handover has four steps, each finished by whoever comes next (the next scheduler run, on
the stuck claim or on the stand-in's; the stuck event's own retry). Timeline::

    hold   the stuck claim's lease (its own retry cannot decide it beside the stand-in; a claim
           that refuses every write cannot be taken by its retry either)
    claim  the stand-in's claim, due at lease + settle, before anything names it
    lead   incident leader: stuck -> stand-in (conditional: only the stuck event's window)
    decide the stand-in, as a Lambda retry would (the same alert, id and count)

Before, the leader moved first: a fault before the stand-in's claim was written left a window
led by a claim that did not exist, nothing due, and the stuck event, re-run from the
failed-events queue, counted itself as a repeat of it: the window's events were never counted
(the fault harness, about one run in eight).
"""

from __future__ import annotations

import contextlib
import json
import logging
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ..core.documents import EVENT, FINISH_TRIES, INCIDENT_OF, OWNER, WAITING, ClaimStatus
from ..core.errors import EventInProgressError, StateStoreError
from ..core.notifications import Notification
from ..core.records import parse_event
from ..core.state import DUE_AT, DUE_PK, Compare, ConditionFailed, Item, key_parts
from .claim import Claims, claim_key, stand_in_key
from .parts import Decider, Parts

logger = logging.getLogger(__name__)

#: How many times the scheduler decides a stuck leading event again before a stand-in leads its
#: window in its place (an event that fails every time it is decided, or whose item does).
STAND_IN_AFTER = 2


class StuckLeaders:
    """Decides a stuck leading event again, then hands its window to a stand-in claim."""

    def __init__(self, parts: Parts, claims: Claims, decider: Decider) -> None:
        self.store, self.settings, self.metrics = parts.store, parts.settings, parts.metrics
        self.claims, self.decider = claims, decider

    def finish_stuck(self, key: str, item: Item, now: float) -> list[Notification]:
        """The scheduler's turn on a claim still undecided (see the module docstring)."""
        if item.get(WAITING) and item.get(EVENT):
            # A failure that waited for its user's name: decided now, named or not.
            return self.decider.resume(key, now, item, wait=False)
        incident = str(item.get(INCIDENT_OF, ""))
        current = self.store.get(incident, now) if incident else None
        event = json.loads(current[EVENT]) if current and current.get(EVENT) else None
        rule_id = key_parts(key)[0]
        record = parse_event(event) if event is not None else None
        stuck = claim_key(rule_id, record.event_id) if record else ""
        stand_in = stand_in_key(rule_id, record.event_id) if record else ""
        leader = current.get("leader") if current else None
        if event is not None and key == stand_in and leader in (stuck, stand_in):
            # A stand-in's claim, due because its handover or its decision did not finish.
            return self.stand_in(rule_id, event, incident, now, leading=leader == stand_in)
        if event is None or key != stuck or leader != stuck:
            # Not the window's leader (a repeat, whose own retries finish it), or a stuck
            # leader whose stand-in leads now: the stand-in's claim, written before it took
            # the lead, is due and finishes the window.
            with contextlib.suppress(ConditionFailed):
                self.store.update(
                    key, now, remove=[DUE_PK, DUE_AT], condition=Compare(DUE_AT, "=", item[DUE_AT])
                )
            return []
        at = datetime.fromtimestamp(now, UTC)
        tries = int(self.store.update(incident, now, add={FINISH_TRIES: 1}).get(FINISH_TRIES, 1))
        if tries <= STAND_IN_AFTER:
            self.metrics.count("StuckLeadersFinished")
            logger.warning("%s leads %s and is still undecided: deciding it again", key, incident)
            try:
                return self.decider.handle(rule_id, event, at)
            except EventInProgressError:
                return []  # an invocation holds it right now: still due, looked at again later
        # It fails every time it is decided: a stand-in claim leads the window in its place
        # (the same alert, id and count; the stuck event, if it is ever decided again, finds
        # its stand-in and counts nothing), so its incident is never silent.
        return self.stand_in(rule_id, event, incident, now, item)

    def stand_in(
        self,
        rule_id: str,
        event: Mapping[str, Any],
        incident: str,
        now: float,
        stuck_item: Item | None = None,
        *,
        leading: bool = False,
    ) -> list[Notification]:
        """Hand the window of a stuck leading event to its stand-in claim and decide it there
        (``leading``: the stand-in leads already, only its decision is left)."""
        record = parse_event(event)
        stuck = claim_key(rule_id, record.event_id)
        stand_in = stand_in_key(rule_id, record.event_id)
        if not leading:
            handed = self.hand_over(stuck, stand_in, incident, now, stuck_item)
            if not handed:
                return []
        self.metrics.count("StandIns")
        logger.error("%s fails every time it is decided: a stand-in leads %s", stuck, incident)
        try:
            return self.decider.decide(
                rule_id, event, datetime.fromtimestamp(now, UTC), wait=False, stand_in=True
            )
        except EventInProgressError:
            return []  # the stand-in is being decided right now

    def hand_over(
        self, stuck: str, stand_in: str, incident: str, now: float, stuck_item: Item | None
    ) -> bool:
        """The first three steps of the handover; True once the stand-in leads."""
        s = self.settings
        if stuck_item is None:
            stuck_item = self.store.get(stuck, now)
        if stuck_item is not None and stuck_item.get("window"):
            return self.retire(stand_in, now)  # the stuck event was decided after all
        lease = float((stuck_item or {}).get("lease_until", 0.0))
        token = uuid.uuid4().hex
        try:
            self.store.update(
                stuck,
                now,
                set_values={"lease_until": now + s.lease_seconds, OWNER: token},
                condition=Compare("lease_until", "=", lease),
            )
        except ConditionFailed as failed:
            if not failed.current or failed.current.get(OWNER) != token:
                return False  # its own invocation holds it right now: looked at again next run
        except StateStoreError as exc:
            # Its item refuses writes: so does the takeover of every attempt of its own.
            logger.warning("could not hold %s before its stand-in: %s", stuck, exc)
        # Due at lease + settle, lease not held (its decision takes it); an earlier try's claim
        # is left as it is.
        self.claims.claim(stand_in, now, uuid.uuid4().hex, incident, hold=False)
        try:
            self.store.update(
                incident,
                now,
                set_values={"leader": stand_in},
                condition=Compare("leader", "=", stuck),
            )
        except ConditionFailed as failed:
            if not failed.current or failed.current.get("leader") != stand_in:
                return self.retire(stand_in, now)  # the window moved on
        return True

    def retire(self, stand_in: str, now: float) -> bool:
        """A stand-in that will not lead (its event was decided, or the window moved on)
        leaves the due index; False (it does not lead)."""
        with contextlib.suppress(ConditionFailed):  # gone, or decided meanwhile
            self.store.update(
                stand_in,
                now,
                set_values={"status": ClaimStatus.DONE.value},
                remove=[DUE_PK, DUE_AT],
                condition=Compare("status", "=", ClaimStatus.PROCESSING.value),
            )
        return False
