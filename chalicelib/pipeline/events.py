"""Event handling: one matched event -> claimed once -> decided -> saved -> delivered.

Per event (alert rules), each step one request on its own item, each step a module:

1. **Claim** (:mod:`.claim`) the (rule, eventID) item with a conditional put, with the
   attempt's owner token. The only step before which the service may fail open
   (:mod:`.fail_open`); after it, a state error raises (Lambda retries) and the retry finishes
   what was saved. A claim still undecided after its lease and the settle delay is the
   scheduler's (:mod:`.stuck`).
2. **Incident** (:mod:`.incident`): a new window (the ALERT) or the open one (a REPEAT).
3. **Principal** (:mod:`.principal`): failures and alerts counted per principal, a completed
   burst escalated once, the successes the failure precedes re-checked (:mod:`.fatigue`); a new
   incident is also a member of its source IP's campaign (:mod:`.campaign_step`).
4. **Admission** (:mod:`.admit`, :mod:`.delivery`): the topic's rate window, storm mode.
5. **Save** (:mod:`.save`) the decision on the claim (outbox, held records, window), then
   **deliver**.

Successes (MFA fatigue, takeover chains) take their own path (:mod:`.successes`). An Identity
Center failure that names nobody, before any step of its workflow did, waits for the step that
names the user (or the scheduler) instead (:mod:`.attribution`). Every step is idempotent per
eventID, so a takeover after a crash decides the same again. docs/design.md argues the order of
the steps.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from ..core.decisions import Claim
from ..core.documents import EVENT, ClaimStatus, EventClaim, failure_entry, parse_failure_entry
from ..core.errors import EventInProgressError, PublishError, StateStoreError
from ..core.notifications import Notification, alert_for
from ..core.records import SignInRecord, parse_event, processing_time
from ..core.rules import Rule
from ..core.state import Item, KeyKind, key_parts, make_key
from .admission import Decided
from .admit import admit
from .attribution import Attribution, unnamed
from .campaign_step import CampaignStep
from .claim import Claims, claim_key, stand_in_key
from .fail_open import FailOpen
from .fatigue import FatigueLooks
from .incident import Incidents
from .parts import Attempt, Parts
from .principal import Principals
from .save import Saver
from .stuck import StuckLeaders
from .successes import Successes

logger = logging.getLogger(__name__)


class EventHandler:
    """Turns one matched event into saved decisions and delivered notifications."""

    def __init__(self, parts: Parts) -> None:
        self.rules, self.store, self.settings = parts.rules, parts.store, parts.settings
        self.metrics = parts.metrics
        self.claims = Claims(parts)
        self.incidents = Incidents(parts)
        self.principals = Principals(parts)
        self.saver = Saver(parts)
        self.campaigns = CampaignStep(parts)
        self.successes = Successes(parts, self.claims, self.saver)
        self.attribution = Attribution(parts)
        self.fatigue = FatigueLooks(parts, self)
        self.stuck = StuckLeaders(parts, self.claims, self)
        self.fail_open = FailOpen(parts)
        self.admission = parts.admission

    def handle(self, rule_id: str, event: Mapping[str, Any], now: datetime) -> list[Notification]:
        """Process one event that EventBridge (or replay) matched to ``rule_id``.

        ``now`` is the processing time: the wall clock in Lambda, the event time in replay.
        Returns what was published. Raises :class:`errors.EventParseError` for an event that is
        not a CloudTrail record, :class:`errors.EventInProgressError` when another invocation is
        processing the same event, :class:`errors.PublishError` when an output failed and
        :class:`errors.StateStoreError` when state failed after the claim (Lambda retries all).
        """
        return self.decide(rule_id, event, now, wait=True)

    def decide(
        self,
        rule_id: str,
        event: Mapping[str, Any],
        now: datetime,
        *,
        wait: bool,
        stand_in: bool = False,
    ) -> list[Notification]:
        """:meth:`handle`; ``wait``: a failure may still wait for its user's name (not when
        the scheduler decides what waited); ``stand_in``: under its stand-in claim."""
        rule = self.rules.get(rule_id)
        record = parse_event(event)
        self.metrics.count("EventsMatched", Rule=rule.id)
        clock = now.timestamp()
        at, problem = processing_time(record, now)
        notes = self._notes(record)
        if problem:
            # A forged or broken time would open a window that never closes and swallow later
            # events: the event is taken at its arrival time, and the alert says so.
            record = replace(record, event_time=at)
            notes = (problem, *notes)
        waits = rule.mode == "alert" and rule.signal == "failure"
        try:
            attributed = self.attribution.attribute(record, clock, rule.id if waits else "")
        except StateStoreError as exc:
            if rule.mode != "alert":
                raise
            return self.fail_open.fail_open(rule, record, clock, exc, self._notes(record))
        record, named_now, id_now = attributed
        sent = self._named_now(record, named_now, id_now, clock)
        if rule.signal == "success":
            return sent + self.successes.success(rule, record, clock, notes)
        if rule.mode != "alert":
            # Context rules count for campaigns (wrong passwords): no claim, idempotent steps.
            return sent + self.campaigns.observe(rule, record, clock, notes)
        return sent + self._alert_rule(rule, record, clock, notes, wait=wait, stand_in=stand_in)

    def _named_now(
        self, record: SignInRecord, named_now: list[str], id_now: list[str], now: float
    ) -> list[Notification]:
        """Failures of this workflow processed before this step named its user waited for it;
        named ones processed before this step carried the user id are listed under it now."""
        sent = [n for key in named_now for n in self.resume(key, now)]
        for entry in id_now:
            t_f, event_id, _ = parse_failure_entry(entry)
            user_id = record.identity_store_user_id
            listed = self.principals.list_under_user_id(record.account, user_id, entry, now)
            for success in sorted(listed):
                sent += self.fatigue.recheck(success, failure_entry(t_f, event_id), now)
        return sent

    def _notes(self, record: SignInRecord) -> tuple[str, ...]:
        note = self.settings.account_note(record.account)
        return (note,) if note else ()

    def _alert_rule(
        self,
        rule: Rule,
        record: SignInRecord,
        now: float,
        notes: tuple[str, ...],
        *,
        wait: bool,
        stand_in: bool = False,
    ) -> list[Notification]:
        """The claim step, then the decision of a claimed event."""
        key = (stand_in_key if stand_in else claim_key)(rule.id, record.event_id)
        incident = make_key(KeyKind.INCIDENT, rule.id, rule.dedup_key_of(record))
        try:
            outcome, existing = self.claims.claim(key, now, uuid.uuid4().hex, incident)
        except StateStoreError as exc:
            return self.fail_open.fail_open(rule, record, now, exc, self._notes(record))
        if outcome is Claim.DUPLICATE:
            self.metrics.count("Duplicates", Rule=rule.id)
            logger.info(
                "duplicate delivery of %s ignored",
                record.event_id,
                extra={"rule": rule.id, "event_id": record.event_id},
            )
            return []
        if outcome is Claim.IN_PROGRESS:
            raise EventInProgressError(
                f"rule {rule.id} event {record.event_id} is being processed by another "
                "invocation; retry later"
            )
        if outcome is Claim.PENDING and existing is not None:
            return self.saver.deliver_claim(key, existing, now)
        try:
            return self._claimed(Attempt(rule, record, key, now, notes), existing, wait, stand_in)
        except StateStoreError:
            self.claims.release(key, now)
            raise

    def _claimed(
        self, attempt: Attempt, existing: EventClaim | None, wait: bool, stand_in: bool
    ) -> list[Notification]:
        rule, record, key, now = attempt.rule, attempt.record, attempt.key, attempt.now
        # A later attempt (never the first): a stand-in may have decided it meanwhile.
        if (
            existing is not None
            and not stand_in
            and self.store.get(stand_in_key(rule.id, record.event_id), now) is not None
        ):
            self.claims.done(key, now)
            return []
        claimed_at = existing.claimed_at if existing and existing.claimed_at else now
        if wait and unnamed(record) and now < claimed_at + self.attribution.name_wait():
            return self.attribution.wait_for_name(rule, record, key, now)
        return self._decide(attempt)

    def _decide(self, attempt: Attempt) -> list[Notification]:
        """Incident -> principal -> admission -> save, for a claimed event."""
        opened = self.incidents.open(attempt)
        if opened.stood_in:
            self.claims.done(attempt.key, attempt.now)
            return []
        counted = self.principals.count(attempt, alert=opened.alert)
        escalated = list(counted.escalated)
        failure = failure_entry(attempt.t, attempt.record.event_id)
        for success in counted.rechecks:
            escalated += self.fatigue.recheck(success, failure, attempt.now)
        if opened.window is not None:
            attributes = self.incidents.repeat(attempt, opened.window)
            return escalated + self.saver.save_and_deliver(
                attempt.key, Decided([], []), None, attributes, attempt.now
            )
        # A new incident is a new (principal, IP) for its source's campaign (docs/design.md).
        escalated += self.campaigns.observe(
            attempt.rule, attempt.record, attempt.now, attempt.notes, incident_opened=True
        )
        alert = alert_for(attempt.rule, attempt.record, attempt.notes)
        admitted = admit(self.admission, attempt, opened, alert, counted.admitted)
        return escalated + self.saver.save_and_deliver(
            attempt.key, admitted.result, admitted.window, admitted.attributes, attempt.now
        )

    def resume(
        self, key: str, now: float, item: Item | None = None, wait: bool = True
    ) -> list[Notification]:
        """Decide again an event whose claim keeps it (a success to re-check, a failure that
        waited for its user's name), unless it is decided already or being decided."""
        if item is None:
            item = self.store.get(key, now)
        if not item or not item.get(EVENT):
            return []
        claim = EventClaim.from_item(item)
        if claim.status is not ClaimStatus.PROCESSING:
            return []
        try:
            at = datetime.fromtimestamp(now, UTC)
            return self.decide(key_parts(key)[0], json.loads(item[EVENT]), at, wait=wait)
        except EventInProgressError:
            return []  # someone decides it right now
        except PublishError as exc:
            # Decided and saved; what did not publish stays due: the scheduler redelivers it.
            logger.error("%s decided again, not delivered yet: %s", key, exc)
            return []

    def finish_stuck(self, key: str, item: Item, now: float) -> list[Notification]:
        """The scheduler's turn on a claim still undecided (:mod:`.stuck`)."""
        return self.stuck.finish_stuck(key, item, now)

    def fatigue_look(self, key: str, item: Item, now: float) -> list[Notification]:
        """The scheduler's turn on a success escalated for MFA fatigue (:mod:`.fatigue`)."""
        return self.fatigue.look(key, item, now)
