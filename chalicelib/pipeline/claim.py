"""The claim step: one conditional put per (rule, eventID) with the attempt's owner token.

A duplicate delivery learns from the failed condition (the item comes back with it) that it is
a duplicate, in progress, or decided but not fully delivered. The claim is due when its lease
and the settle delay are over: saving the decision moves that due time, so the scheduler finds
an incident's leader that never got further (:mod:`chalicelib.pipeline.stuck`).
"""

from __future__ import annotations

import json
import logging

from ..core.decisions import Claim, claim_outcome
from ..core.documents import INCIDENT_OF, OWNER, ClaimStatus, EventClaim, bounded
from ..core.errors import StateStoreError
from ..core.records import SignInRecord
from ..core.state import (
    DUE_AT,
    DUE_PK,
    EXPIRES_AT,
    Absent,
    Compare,
    ConditionFailed,
    Item,
    KeyKind,
    due_mark,
    make_key,
)
from .parts import Parts

logger = logging.getLogger(__name__)


def claim_key(rule_id: str, event_id: str) -> str:
    return make_key(KeyKind.EVENT, rule_id, event_id)


def stand_in_key(rule_id: str, event_id: str) -> str:
    """The claim that decides a stuck leading event in its place (:mod:`.stuck`)."""
    return make_key(KeyKind.EVENT, rule_id, event_id, "stand-in")


def event_attribute(record: SignInRecord) -> str:
    """The raw event, kept on a claim that someone may have to decide again (bounded)."""
    return json.dumps(bounded(record.raw), sort_keys=True, separators=(",", ":"))


class Claims:
    """Claims an event for one attempt, takes over a crashed attempt's, gives it back."""

    def __init__(self, parts: Parts) -> None:
        self.store, self.settings = parts.store, parts.settings

    def claim(
        self,
        key: str,
        now: float,
        token: str,
        incident: str = "",
        *,
        hold: bool = True,
        keep: Item | None = None,
    ) -> tuple[Claim, EventClaim | None]:
        """Claim the event for this attempt (``token``). A write of ours that was applied but
        whose reply was lost, then re-sent by botocore, fails its own condition: the item it
        returns carries our token, so it is ours (NEW), not another invocation's.

        The claim is due when its lease and the settle delay are over: the save of its decision
        moves or clears that due time, so only a claim stuck undecided is still due then, and
        the scheduler finishes it if it leads ``incident``. A claim that does not ``hold`` its
        lease (a success kept for later failures to re-check) can be taken at once by whoever
        decides it next; ``keep`` is written with a new claim."""
        s = self.settings
        lease_until = now + s.lease_seconds if hold else now
        fresh: Item = {
            "status": ClaimStatus.PROCESSING.value,
            "lease_until": lease_until,
            "claimed_at": now,
            OWNER: token,
            EXPIRES_AT: now + s.claim_ttl_seconds,
        }
        if incident:
            fresh[INCIDENT_OF] = incident
            fresh.update(due_mark(now + s.lease_seconds + s.settle_seconds))
        fresh.update(keep or {})
        try:
            self.store.put(key, fresh, now, condition=Absent())
            return Claim.NEW, None
        except ConditionFailed as failed:
            existing = EventClaim.from_item(failed.current) if failed.current else None
        if existing is not None and existing.owner == token:
            return Claim.NEW, None
        outcome = claim_outcome(existing, now)
        if outcome in (Claim.NEW, Claim.PENDING) and existing is not None:
            # Take over a crashed attempt's claim: exactly one taker wins the lease.
            try:
                self.store.update(
                    key,
                    now,
                    set_values={"lease_until": lease_until, OWNER: token},
                    condition=Compare("lease_until", "=", existing.lease_until),
                )
            except ConditionFailed as failed:
                if not failed.current or failed.current.get(OWNER) != token:
                    return Claim.IN_PROGRESS, existing
        return outcome, existing

    def release(self, key: str, now: float) -> None:
        """Give the claim back after a state error, so that the retry need not wait for the
        lease. Best effort: the store is failing already."""
        try:
            self.store.update(key, now, set_values={"lease_until": now})
        except (StateStoreError, ConditionFailed):
            logger.warning("could not release the claim %s; its lease will run out", key)

    def done(self, key: str, now: float) -> None:
        """Mark a claim decided with nothing to deliver: it leaves the due index."""
        self.store.update(
            key, now, set_values={"status": ClaimStatus.DONE.value}, remove=[DUE_PK, DUE_AT]
        )
