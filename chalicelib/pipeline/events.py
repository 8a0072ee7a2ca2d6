"""Event handling: one matched event -> claimed once -> decided -> saved -> delivered.

Per event (alert rules), each step one request on its own item:

1. **Claim** the (rule, eventID) item with a conditional put, with the attempt's owner token (a
   write of ours re-sent by botocore is recognised as ours). A duplicate delivery learns from
   the failed condition (the item comes back with it) that it is a duplicate, in progress, or
   decided but not fully delivered. This is the only step before which the service may fail
   open: if the claim cannot be written, nothing was saved, published or held for the event in
   this invocation, so a marked copy goes out ("dedup unavailable", :func:`fail_open_copy_id`).
   After it, a state error raises (Lambda retries) and the retry finishes what was saved. The
   claim is due when its lease and the settle delay are over: saving the decision moves that
   due time, so the scheduler finds an incident's leader that never got further and decides it
   again (:meth:`EventHandler.finish_stuck`).
2. **Incident**: a conditional write opens a new window if none is open for the event time (the
   ALERT; the incident keeps the event); otherwise the failed condition returns the open window
   (a REPEAT, counted on the event's own claim, in the window's group, merged into the summary
   by the scheduler).
3. **Principal**: one update appends the failure and counts the alert against the principal's
   rate window; a completed burst is escalated once with a conditional write that carries the
   escalation's outbox (the principal's item stays due until it is delivered); successes the
   failure precedes are re-checked for MFA fatigue.
4. **Admission** (:mod:`chalicelib.pipeline.delivery`): the topic's rate window, storm mode.
5. **Save** the decision on the claim (outbox, held records, window), then **deliver**.

An Identity Center failure that names nobody, before any step of its workflow did, waits for
the step that names the user (or the scheduler) instead. Every step is idempotent per eventID,
so a takeover after a crash decides the same again. docs/design.md argues the order of the steps.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from ..core.campaigns import (
    is_takeover_step,
    takeover_failures,
    takeover_rechecks,
    takeover_target,
)
from ..core.config import Settings
from ..core.decisions import (
    KEEP_FAILURES,
    Claim,
    SuccessEscalation,
    brute_force_burst,
    claim_outcome,
    entries_to_keep,
    failures_to_keep,
    fatigue_rechecks,
    incident_expiry,
    late_fatigue_failures,
    success_escalation,
    window_for,
)
from ..core.documents import (
    EVENT,
    FATIGUE_COUNT,
    FATIGUE_IDS,
    FATIGUE_LATE,
    FATIGUE_RECHECKS,
    FINISH_TRIES,
    ID_WAITING,
    INCIDENT_OF,
    MAX_IP,
    MAX_STORED_LIST,
    OWNER,
    WAITING,
    ClaimStatus,
    EventClaim,
    Incident,
    Outbox,
    PrincipalFailures,
    WindowRef,
    Workflow,
    bounded,
    failure_entry,
    parse_failure_entry,
    window_attribute,
)
from ..core.errors import EventInProgressError, FailedOpenError, PublishError, StateStoreError
from ..core.notifications import (
    Notification,
    alert_for,
    brute_force_for,
    fatigue_correction_for,
    fatigue_success_for,
    takeover_for,
    takeover_sign_in_for,
)
from ..core.records import (
    PRINCIPAL_IDENTITY_CENTER,
    UNKNOWN_PRINCIPAL_KEY,
    SignInRecord,
    parse_event,
    processing_time,
)
from ..core.rules import Rule, RuleSet
from ..core.state import (
    DUE_AT,
    DUE_PK,
    EXPIRES_AT,
    Absent,
    AllOf,
    AnyOf,
    Compare,
    ConditionFailed,
    Item,
    KeyKind,
    Missing,
    StateStore,
    due_mark,
    group_mark,
    key_parts,
    make_key,
)
from .campaign_step import CampaignStep
from .delivery import Decided, Delivery, ServicePart
from .observability import Metrics

logger = logging.getLogger(__name__)


#: Distinct marked copies (published without deduplication) per rule and minute, for the whole
#: stage: see :func:`fail_open_copy_id`.
FAIL_OPEN_PER_MINUTE = 10
#: Marked copies one execution environment publishes per minute (all rules): publishes stay
#: within this times the environments running, for receivers that cannot deduplicate (e-mail).
FAIL_OPEN_PER_ENVIRONMENT = 1


def fail_open_copy_id(rule_id: str, event_id: str, event_time: float) -> str:
    """The id of the marked copy an event falls into when the state store is down.

    Nothing is shared between execution environments while DynamoDB is down, except what every
    one of them computes alike from the event: its id and its time. So the copy's id is derived
    from them: the minute of the event time and one of :data:`FAIL_OPEN_PER_MINUTE` tickets
    drawn by a hash of the event id. Every attempt of an event, in any environment, makes the
    same id (one copy per event across Lambda's retries, for receivers to deduplicate), and a
    rule has at most :data:`FAIL_OPEN_PER_MINUTE` distinct copies per minute, stage-wide.
    """
    digest = hashlib.sha256(f"{rule_id}|{event_id}".encode()).digest()
    ticket = int.from_bytes(digest[:8], "big") % FAIL_OPEN_PER_MINUTE
    return f"failopen:{rule_id}:{int(event_time // 60)}:{ticket}"


def claim_key(rule_id: str, event_id: str) -> str:
    return make_key(KeyKind.EVENT, rule_id, event_id)


#: How many times the scheduler decides a stuck leading event again before a stand-in leads its
#: window in its place (an event that fails every time it is decided, or whose item does).
STAND_IN_AFTER = 2


def stand_in_key(rule_id: str, event_id: str) -> str:
    """The claim that decides a stuck leading event in its place (:meth:`finish_stuck`)."""
    return make_key(KeyKind.EVENT, rule_id, event_id, "stand-in")


def principal_key(account: str, principal: str) -> str:
    return make_key(KeyKind.PRINCIPAL, account, principal)


def escalation_principal(principal: str, source_ip: str) -> str:
    """Who failures and rate limits are counted for (a record's ``principal_key``); unnamed
    Identity Center users are told apart by source IP."""
    if principal == UNKNOWN_PRINCIPAL_KEY:
        return f"{UNKNOWN_PRINCIPAL_KEY}@{source_ip}"
    return principal


def _event_attribute(record: SignInRecord) -> str:
    """The raw event, kept on a claim that someone may have to decide again (bounded)."""
    return json.dumps(bounded(record.raw), sort_keys=True, separators=(",", ":"))


class EventHandler(ServicePart):
    """Turns one matched event into saved decisions and delivered notifications."""

    def __init__(
        self,
        rules: RuleSet,
        store: StateStore,
        delivery: Delivery,
        settings: Settings,
        metrics: Metrics,
    ) -> None:
        super().__init__(rules, store, delivery, settings, metrics)
        self.campaigns = CampaignStep(rules, store, delivery, settings, metrics)
        # The marked copies this execution environment published (id -> minute), recent only.
        self._fail_opens: dict[str, int] = {}

    def handle(self, rule_id: str, event: Mapping[str, Any], now: datetime) -> list[Notification]:
        """Process one event that EventBridge (or replay) matched to ``rule_id``.

        ``now`` is the processing time: the wall clock in Lambda, the event time in replay.
        Returns what was published. Raises :class:`errors.EventParseError` for an event that is
        not a CloudTrail record, :class:`errors.EventInProgressError` when another invocation is
        processing the same event, :class:`errors.PublishError` when an output failed and
        :class:`errors.StateStoreError` when state failed after the claim (Lambda retries all).
        """
        return self._handle(rule_id, event, now, wait=True)

    def _handle(
        self,
        rule_id: str,
        event: Mapping[str, Any],
        now: datetime,
        wait: bool,
        stand_in: bool = False,
    ) -> list[Notification]:
        """:meth:`handle`; ``wait``: a failure may still wait for its user's name (not when
        the scheduler decides what waited)."""
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
            record, named_now, id_now = self._attribute(record, clock, rule.id if waits else "")
        except StateStoreError as exc:
            if rule.mode != "alert":
                raise
            return self._fail_open(rule, record, clock, exc)
        # Failures of this workflow processed before this step named its user waited for it;
        # named ones processed before this step carried the user id are listed under it now.
        sent = [n for key in named_now for n in self._resume(key, clock)]
        for entry in id_now:
            t_f, event_id, _ = parse_failure_entry(entry)
            user_id = record.identity_store_user_id
            for success in sorted(self._list_under_user_id(record.account, user_id, entry, clock)):
                sent += self._recheck(success, failure_entry(t_f, event_id), clock)
        if rule.signal == "success":
            return sent + self._success(rule, record, clock, notes)
        if rule.mode != "alert":
            # Context rules count for campaigns (wrong passwords): no claim, idempotent steps.
            return sent + self.campaigns.observe(rule, record, clock, notes)
        return sent + self._alert_rule(rule, record, clock, notes, wait, stand_in)

    def _horizon(self) -> float:
        """How long a principal's failures and successes are kept: the longest window that
        looks back at them (brute force, fatigue success, takeover chain)."""
        s = self.settings
        return max(s.brute_force.seconds, s.fatigue_success.seconds, s.takeover.seconds)

    def _notes(self, record: SignInRecord) -> tuple[str, ...]:
        note = self.settings.account_note(record.account)
        return (note,) if note else ()

    # --- the claim -------------------------------------------------------------------------------

    def _claim(
        self,
        key: str,
        now: float,
        token: str,
        incident: str = "",
        hold: bool = True,
        keep: Item | None = None,
    ) -> tuple[Claim, EventClaim | None]:
        """Claim the event for this attempt (``token``). A write of ours that was applied but
        whose reply was lost, then re-sent by botocore, fails its own condition: the item it
        returns carries our token, so it is ours (NEW), not another invocation's.

        The claim is due when its lease and the settle delay are over: the save of its decision
        moves or clears that due time, so only a claim stuck undecided is still due then, and
        the scheduler finishes it if it leads ``incident`` (:meth:`finish_stuck`). A claim that
        does not ``hold`` its lease (a success kept for later failures to re-check) can be
        taken at once by whoever decides it next; ``keep`` is written with a new claim."""
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

    def _release(self, key: str, now: float) -> None:
        """Give the claim back after a state error, so that the retry need not wait for the
        lease. Best effort: the store is failing already."""
        try:
            self.store.update(key, now, set_values={"lease_until": now})
        except (StateStoreError, ConditionFailed):
            logger.warning("could not release the claim %s; its lease will run out", key)

    def _alert_rule(
        self,
        rule: Rule,
        record: SignInRecord,
        now: float,
        notes: tuple[str, ...],
        wait: bool,
        stand_in: bool = False,
    ) -> list[Notification]:
        key = (stand_in_key if stand_in else claim_key)(rule.id, record.event_id)
        incident = make_key(KeyKind.INCIDENT, rule.id, rule.dedup_key_of(record))
        try:
            outcome, existing = self._claim(key, now, uuid.uuid4().hex, incident)
        except StateStoreError as exc:
            return self._fail_open(rule, record, now, exc)
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
            return self._deliver_claim(key, existing, now)
        try:
            # A later attempt (never the first): a stand-in may have decided it meanwhile.
            if (
                existing is not None
                and not stand_in
                and self.store.get(stand_in_key(rule.id, record.event_id), now) is not None
            ):
                self.store.update(
                    key,
                    now,
                    set_values={"status": ClaimStatus.DONE.value},
                    remove=[DUE_PK, DUE_AT],
                )
                return []
            claimed_at = existing.claimed_at if existing and existing.claimed_at else now
            if wait and self._unnamed(record) and now < claimed_at + self._name_wait():
                return self._wait_for_name(rule, record, key, now)
            return self._decide(rule, record, key, now, notes)
        except StateStoreError:
            self._release(key, now)
            raise

    # --- deciding --------------------------------------------------------------------------------

    def _decide(
        self,
        rule: Rule,
        record: SignInRecord,
        key: str,
        now: float,
        notes: tuple[str, ...],
    ) -> list[Notification]:
        s = self.settings
        t = record.event_time.timestamp()
        dedup = rule.dedup_key_of(record)
        incident = make_key(KeyKind.INCIDENT, rule.id, dedup)
        start, end = window_for(t, rule.window_minutes)
        group = f"{incident}#{start!r}"
        window, led = self._lead(incident, key, record, start, end, t, now)
        if window is not None and window.leader == stand_in_key(rule.id, record.event_id):
            # Its stand-in leads its window and counts it (finish_stuck): not a repeat of it.
            self.store.update(
                key, now, set_values={"status": ClaimStatus.DONE.value}, remove=[DUE_PK, DUE_AT]
            )
            return []
        if led is not None:  # its own window, written by an earlier attempt
            start, end, group = led.window_start, led.window_end, led.group
        alert = window is None
        if not alert:
            self.metrics.count("Repeats", Rule=rule.id)
        logger.info(
            "decision %s for %s",
            "alert" if alert else "repeat",
            record.event_id,
            extra={"rule": rule.id, "event_id": record.event_id, "dedup_key": dedup},
        )

        who = principal_key(
            record.account, escalation_principal(record.principal_key, record.source_ip)
        )
        decided: list[Notification] = []
        if alert:
            decided.append(alert_for(rule, record, notes))
        principal_admitted = True
        history = PrincipalFailures()
        item: Item = {}
        if rule.signal == "failure" or alert:
            add, remove = self.delivery.principal_counter(now) if alert else ({}, [])
            horizon = self._horizon()
            item = self.store.update(
                who,
                now,
                set_values={EXPIRES_AT: max(t, now) + horizon},
                append={"failures": [failure_entry(t, record.event_id, record.source_ip)]}
                if rule.signal == "failure"
                else None,
                add=add,
                remove=remove,
            )
            history = PrincipalFailures.from_item(item)
            if alert:
                principal_admitted = self.delivery.principal_admits(item, now)
            if len(item.get("failures", [])) > 2 * KEEP_FAILURES:
                # Bounded item: keep the last failures (a concurrent append lost here only makes
                # a burst count one failure short).
                self.store.update(
                    who, now, set_values={"failures": failures_to_keep(history, t, horizon)}
                )
        escalated: list[Notification] = []
        if rule.signal == "failure":
            escalated = self._brute_force(rule, record, who, history, item, now, notes)
            fs = s.fatigue_success
            rechecks = {
                *fatigue_rechecks(history, t, fs.count, fs.seconds),
                *takeover_rechecks(history, t, s.takeover.seconds),
            }
            rechecks.update(self._count_for_user_id(record, t, now))
            for success in sorted(rechecks):
                escalated += self._recheck(success, failure_entry(t, record.event_id), now)
        if alert:
            # A new incident is a new (principal, IP) for its source's campaign (docs/design.md).
            escalated += self.campaigns.observe(rule, record, now, notes, incident_opened=True)

        result = self.delivery.decide(decided, now, principal_admitted) if alert else None
        attributes: Item = {}
        window_ref: WindowRef | None = None
        if result is not None:
            window_ref = WindowRef(
                group=group,
                rule_id=rule.id,
                dedup_key=dedup,
                window_start=start,
                window_end=end,
                account=record.account,
                region=record.region,
                principal=record.principal,
                principal_key=record.principal_key,
                principal_type=record.principal_type,
                source_ip=record.source_ip,
            )
            attributes["window"] = window_attribute(window_ref)
            attributes.update(result.held_attributes(rule.id, now))
        else:
            assert window is not None
            result = Decided([], [])
            attributes.update(group_mark(window.group, now))
            # The repeat's own address: a summary says which of its repeats a suppression
            # covers, and its rule's key may leave the IP out.
            ip = record.source_ip[:MAX_IP]
            attributes.update({"t": t, "event_id": record.event_id, "source_ip": ip})
            if now > window.window_end:
                # Processed after its window ended: the summary may have been cut already, so
                # ask the leading event for another look (a late batch, never lost).
                self._late_batch(window.leader, now)
        return escalated + self._save_and_deliver(key, result, window_ref, attributes, now)

    def _count_for_user_id(self, record: SignInRecord, t: float, now: float) -> set[str]:
        """An Identity Center user's failure, named by user name, is also listed under the
        user's identity-store id when a step of its sign-in carried it: Identity Center device
        changes name the user only by that id. Returns the successes listed there (device
        changes, unnamed sign-ins) that it re-checks, as the user-name item's are."""
        user_id = record.identity_store_user_id
        if (
            record.principal_type != PRINCIPAL_IDENTITY_CENTER
            or not user_id
            or record.principal_key in (user_id, UNKNOWN_PRINCIPAL_KEY)
        ):
            return set()
        entry = failure_entry(t, record.event_id, record.source_ip)
        return self._list_under_user_id(record.account, user_id, entry, now)

    def _list_under_user_id(self, account: str, user_id: str, entry: str, now: float) -> set[str]:
        """Append a failure ``entry`` to the principal item of an identity-store user id (one
        update) and return the successes there that it precedes (claim keys to re-check)."""
        s, key, horizon = self.settings, principal_key(account, user_id), self._horizon()
        t = parse_failure_entry(entry)[0]
        item = self.store.update(
            key,
            now,
            set_values={EXPIRES_AT: max(t, now) + horizon},
            append={"failures": [entry]},
        )
        history = PrincipalFailures.from_item(item)
        if len(item.get("failures", [])) > 2 * KEEP_FAILURES:
            self.store.update(
                key, now, set_values={"failures": failures_to_keep(history, t, horizon)}
            )
        fs = s.fatigue_success
        return {
            *fatigue_rechecks(history, t, fs.count, fs.seconds),
            *takeover_rechecks(history, t, s.takeover.seconds),
        }

    def _lead(
        self,
        incident: str,
        key: str,
        record: SignInRecord,
        start: float,
        end: float,
        t: float,
        now: float,
    ) -> tuple[Incident | None, Incident | None]:
        """Open the incident window of an event at ``t``, or find the open one.

        Returns ``(window, led)``: ``window`` is the open window another event leads (this one
        is a repeat), else None; ``led`` is this event's own window when an earlier attempt of
        it opened it (a retry, or its own write re-sent by botocore), read back unchanged.

        The incident keeps the leading event itself: if the leader never gets to save its
        decision (every attempt fails or is killed), its claim is still due after its lease
        and the scheduler decides it again from here (:meth:`finish_stuck`), so its incident
        is late, never silent. Timeline::

            claim (due at lease + settle) -> incident (leader, its event) -> decision saved
            (due moved: redelivery, or the window's summary) -> published
            stuck: still due at lease + settle -> the scheduler decides the leader again
        """
        group = f"{incident}#{start!r}"
        for _ in range(3):
            try:
                self.store.update(
                    incident,
                    now,
                    set_values={
                        "window_start": start,
                        "window_end": end,
                        "leader": key,
                        "group": group,
                        EVENT: _event_attribute(record),
                        FINISH_TRIES: 0,
                        EXPIRES_AT: incident_expiry(end, now),
                    },
                    condition=AnyOf((Absent(), Compare("window_end", "<=", t))),
                )
                return None, None
            except ConditionFailed as failed:
                if failed.current is None:
                    # The condition failed on an item that is gone again (an emulator's
                    # non-atomic update; DynamoDB returns the item): try again.
                    continue
                window = Incident.from_item(failed.current)
            if window.leader == key:
                return None, window
            return window, None
        raise StateStoreError(f"{incident}: conditional write failed without an item")

    def finish_stuck(self, key: str, item: Item, now: float) -> list[Notification]:
        """The scheduler's turn on a claim still undecided after its lease and the settle
        delay. A leading event is decided again from the event its incident keeps (the same
        path as a Lambda retry; every step is idempotent per eventID), and after
        :data:`STAND_IN_AFTER` tries by a stand-in claim in its place (:meth:`_stand_in`); a
        stand-in's own claim finishes the handover it belongs to; anything else leaves the due
        index (its Lambda retries and the failed-events queue finish it)."""
        if item.get(WAITING) and item.get(EVENT):
            # A failure that waited for its user's name: decided now, named or not.
            return self._resume(key, now, item, wait=False)
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
            return self._stand_in(rule_id, event, incident, now, leading=leader == stand_in)
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
                return self.handle(rule_id, event, at)
            except EventInProgressError:
                return []  # an invocation holds it right now: still due, looked at again later
        # It fails every time it is decided: a stand-in claim leads the window in its place
        # (the same alert, id and count; the stuck event, if it is ever decided again, finds
        # its stand-in and counts nothing), so its incident is never silent.
        return self._stand_in(rule_id, event, incident, now, item)

    def _stand_in(
        self,
        rule_id: str,
        event: Mapping[str, Any],
        incident: str,
        now: float,
        stuck_item: Item | None = None,
        leading: bool = False,
    ) -> list[Notification]:
        """Hand the window of a stuck leading event to its stand-in claim and decide it there
        (``leading``: the stand-in leads already, only its decision is left).

        Four steps, each finished by whoever comes next (the next scheduler run, on the stuck
        claim or on the stand-in's; the stuck event's own retry). Timeline::

            hold   the stuck claim's lease (its own retry cannot decide it beside the stand-in;
                   a claim that refuses every write cannot be taken by its retry either)
            claim  the stand-in's claim, due at lease + settle, before anything names it
            lead   incident leader: stuck -> stand-in (conditional: only the stuck event's window)
            decide the stand-in, as a Lambda retry would (the same alert, id and count)

        Before, the leader moved first: a fault before the stand-in's claim was written left a
        window led by a claim that did not exist, nothing due, and the stuck event, re-run from
        the failed-events queue, counted itself as a repeat of it: the window's events were
        never counted (the fault harness, about one run in eight).
        """
        record = parse_event(event)
        stuck = claim_key(rule_id, record.event_id)
        stand_in = stand_in_key(rule_id, record.event_id)
        if not leading:
            handed = self._hand_over(stuck, stand_in, incident, now, stuck_item)
            if not handed:
                return []
        self.metrics.count("StandIns")
        logger.error("%s fails every time it is decided: a stand-in leads %s", stuck, incident)
        try:
            return self._handle(
                rule_id, event, datetime.fromtimestamp(now, UTC), wait=False, stand_in=True
            )
        except EventInProgressError:
            return []  # the stand-in is being decided right now

    def _hand_over(
        self, stuck: str, stand_in: str, incident: str, now: float, stuck_item: Item | None
    ) -> bool:
        """The first three steps of :meth:`_stand_in`; True once the stand-in leads."""
        s = self.settings
        if stuck_item is None:
            stuck_item = self.store.get(stuck, now)
        if stuck_item is not None and stuck_item.get("window"):
            return self._retire(stand_in, now)  # the stuck event was decided after all
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
        # Due at lease + settle, lease not held (its decision below takes it); an earlier try's
        # claim is left as it is.
        self._claim(stand_in, now, uuid.uuid4().hex, incident, hold=False)
        try:
            self.store.update(
                incident,
                now,
                set_values={"leader": stand_in},
                condition=Compare("leader", "=", stuck),
            )
        except ConditionFailed as failed:
            if not failed.current or failed.current.get("leader") != stand_in:
                return self._retire(stand_in, now)  # the window moved on
        return True

    def _retire(self, stand_in: str, now: float) -> bool:
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

    def _late_batch(self, leader: str, now: float) -> None:
        at = now + self.settings.settle_seconds
        with contextlib.suppress(ConditionFailed):
            self.store.update(
                leader,
                now,
                set_values=due_mark(at),
                # Only an existing claim, and never bring an even later look forward.
                condition=AllOf(
                    (
                        Compare("status", "<>", ""),
                        AnyOf((Missing(DUE_AT), Compare(DUE_AT, "<", at))),
                    )
                ),
            )

    def _brute_force(
        self,
        rule: Rule,
        record: SignInRecord,
        who: str,
        history: PrincipalFailures,
        item: Item,
        now: float,
        notes: tuple[str, ...],
    ) -> list[Notification]:
        """Escalate a completed burst once: the escalation mark and the escalation's outbox are
        one conditional write on the principal's item, which stays due until delivered, so the
        scheduler finishes it if the escalating event itself never gets further."""
        bf = self.settings.brute_force
        t = record.event_time.timestamp()
        burst = brute_force_burst(history, record.event_id, t, bf.count, bf.seconds)
        if not burst.escalate:
            return []
        escalation = replace(
            brute_force_for(rule, record, burst.in_window, bf.minutes, burst.event_ids),
            notes=notes,
        )
        return self.delivery.escalate_once(
            who, item, escalation, record.event_id, burst.start, burst.until, now
        )

    def _save_and_deliver(
        self,
        key: str,
        result: Decided,
        window: WindowRef | None,
        attributes: Item,
        now: float,
    ) -> list[Notification]:
        s = self.settings
        outbox = Outbox(tuple(result.entries))
        finish, finish_remove = self._finish(window, now, bool(attributes.get(FATIGUE_IDS)))
        values: Item = {**attributes, **outbox.to_item()}
        if result.publishes:
            values.update(status=ClaimStatus.DECIDED.value, **due_mark(now + s.lease_seconds))
            self.store.update(key, now, set_values=values)
            return self.delivery.deliver(key, outbox, now, finish, finish_remove)
        values.update(finish)
        self.store.update(key, now, set_values=values, remove=finish_remove)
        return []

    def _deliver_claim(self, key: str, claim: EventClaim, now: float) -> list[Notification]:
        """Deliver what a crashed or failed attempt decided and no output confirmed."""
        finish, remove = self._finish(claim.window, now, bool(claim.fatigue))
        return self.delivery.deliver(key, claim.outbox, now, finish, remove)

    def _finish(
        self, window: WindowRef | None, now: float, fatigue: bool = False
    ) -> tuple[Item, list[str]]:
        """What a claim's last confirmation writes: done; a leading event stays due for the
        summary of its window (window end + settle), a success escalated for MFA fatigue for
        the look that counts the failures processed after it (:meth:`fatigue_look`, once
        Lambda's retries of those failures are over), any other claim leaves the due index."""
        finish: Item = {"status": ClaimStatus.DONE.value}
        if window is not None:
            return finish | due_mark(window.window_end + self.settings.settle_seconds), []
        if fatigue:
            return finish | due_mark(now + self._retry_horizon()), []
        return finish, [DUE_PK, DUE_AT]

    # --- successes: MFA fatigue, takeover -------------------------------------------------------

    def _success(
        self, rule: Rule, record: SignInRecord, now: float, notes: tuple[str, ...]
    ) -> list[Notification]:
        """A successful sign-in (or a credential change, :func:`campaigns.takeover_target`):
        kept (its claim keeps the event, the principal's item names it), then checked against
        the principal's failures: MFA fatigue, or a takeover when the failures came from other
        IPs (:func:`decisions.success_escalation`; a credential change after any failure). A
        failure processed later that precedes it re-checks it
        (:func:`decisions.fatigue_rechecks`, :func:`campaigns.takeover_rechecks`), so the
        escalation is raised whatever the order, once per success (its claim). Timeline::

            claim (the event, lease not held) -> listed on the principal's item -> enough
            failures before it: hold the lease, decide the escalation, save, publish
            a failure processed later: lists its failure, finds the success, decides it again
        """
        fs = self.settings.fatigue_success
        if is_takeover_step(record):
            target = takeover_target(record)
            if target is None:
                return []
            record = target
        t = record.event_time.timestamp()
        key = claim_key(rule.id, record.event_id)
        token = uuid.uuid4().hex
        # The event is kept with the claim, before anything names it: a failure that finds the
        # success listed on the principal's item can decide it again.
        keep = {EVENT: _event_attribute(record)}
        outcome, existing = self._claim(key, now, token, hold=False, keep=keep)
        if outcome is Claim.DUPLICATE:
            self.metrics.count("Duplicates", Rule=rule.id)
            return []
        if outcome is Claim.IN_PROGRESS:
            raise EventInProgressError(
                f"rule {rule.id} event {record.event_id} is being processed; retry later"
            )
        if outcome is Claim.PENDING and existing is not None:
            return self._deliver_claim(key, existing, now)
        who = principal_key(
            record.account, escalation_principal(record.principal_key, record.source_ip)
        )
        horizon = self._horizon()
        item = self.store.update(
            who,
            now,
            set_values={EXPIRES_AT: max(t, now) + horizon},
            append={"successes": [failure_entry(t, key)]},
        )
        history = PrincipalFailures.from_item(item)
        if len(item.get("successes", [])) > 2 * KEEP_FAILURES:
            self.store.update(
                who,
                now,
                set_values={"successes": entries_to_keep(history.successes, t, horizon)},
            )
        tk = self.settings.takeover
        chained = is_takeover_step(record)
        fatigue_too: tuple[str, ...] = ()
        counted: Item = {}
        if chained:
            failures = takeover_failures(history.failures, t, tk.seconds)
            if len(failures) < tk.count:
                return []
            escalation = takeover_for(rule, record, failures, tk.minutes)
        else:
            check = success_escalation(
                history, t, record.source_ip, (fs.count, fs.seconds), (tk.count, tk.seconds)
            )
            failures = check.failures
            if check.kind is SuccessEscalation.NONE:
                return []
            if check.kind is SuccessEscalation.FATIGUE:
                escalation = fatigue_success_for(rule, record, failures, fs.minutes)
                # What it counted: a look after the retry horizon counts what came later.
                counted = {FATIGUE_IDS: list(failures), FATIGUE_COUNT: len(failures)}
            else:
                chained, fatigue_too = True, check.fatigue
                reached = (len(check.fatigue), fs.minutes) if check.fatigue else None
                escalation = takeover_sign_in_for(
                    rule, record, failures, check.other_ips, tk.minutes, reached
                )
        try:
            # Escalate: hold the lease first (one decider, whoever re-checks concurrently).
            self.store.update(
                key,
                now,
                set_values={"lease_until": now + self.settings.lease_seconds},
                condition=Compare(OWNER, "=", token),
            )
        except ConditionFailed as failed:
            raise EventInProgressError(
                f"rule {rule.id} event {record.event_id} is being decided elsewhere"
            ) from failed
        if chained:
            # One escalation per chain: a second step after the same failures (a virtual device
            # created, then enabled; a sign-in from another IP, then a new device) is the same
            # takeover. The mark is the escalating step's time, so a step whose failures began
            # before it is the same chain, whichever failures were known when it escalated (a
            # late failure does not start a second chain). It names this event: its retry
            # passes again.
            first = min(t_f for t_f, e in history.failures if e in failures)
            try:
                self.store.update(
                    who,
                    now,
                    set_values={"takeover_until": t, "takeover_by": record.event_id},
                    condition=AnyOf(
                        (
                            Compare("takeover_until", "<", first, or_missing=True),
                            Compare("takeover_by", "=", record.event_id),
                        )
                    ),
                )
            except ConditionFailed:
                if fatigue_too:
                    # The chain escalated already (a credential change): the MFA fatigue
                    # success is still this sign-in's own escalation.
                    escalation = fatigue_success_for(rule, record, fatigue_too, fs.minutes)
                    counted = {FATIGUE_IDS: list(fatigue_too), FATIGUE_COUNT: len(fatigue_too)}
                else:
                    self.store.update(key, now, set_values={"status": ClaimStatus.DONE.value})
                    return []
        escalation = replace(escalation, notes=notes)
        try:
            result = self.delivery.decide([escalation], now)
            return self._save_and_deliver(key, result, None, counted, now)
        except StateStoreError:
            self._release(key, now)
            raise

    def _resume(
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
            return self._handle(
                key_parts(key)[0], json.loads(item[EVENT]), datetime.fromtimestamp(now, UTC), wait
            )
        except EventInProgressError:
            return []  # someone decides it right now
        except PublishError as exc:
            # Decided and saved; what did not publish stays due: the scheduler redelivers it.
            logger.error("%s decided again, not delivered yet: %s", key, exc)
            return []

    def _recheck(self, key: str, failure: str, now: float) -> list[Notification]:
        """A failure (``time|eventID``) processed after a success it precedes: decide the
        success again if it is still undecided (:meth:`_resume`); if it was escalated for MFA
        fatigue, report the failure on it and make it due for a look (:meth:`fatigue_look`)
        after this failure, which the escalation did not count. One conditional request either
        way: the report, or the failed condition returns the item. Timeline (3/30m)::

            f0, f1, f2 processed -> success S processed: CRITICAL "after 3", look due at +180 s
            f3 (before S) processed at +400 s: S escalated -> f3 reported, look due at +490 s
            look: 4 failures before S, 3 counted -> HIGH "1 more ... (4 in all)"
        """
        try:
            self.store.update(
                key,
                now,
                set_values=due_mark(now + self.settings.settle_seconds),
                add={FATIGUE_LATE: frozenset({failure}), FATIGUE_RECHECKS: 1},
                # Bounded: past the cap the principal's failures still tell the look.
                condition=AllOf(
                    (
                        Compare(FATIGUE_COUNT, ">", 0),
                        Compare(FATIGUE_RECHECKS, "<", MAX_STORED_LIST, or_missing=True),
                    )
                ),
            )
        except ConditionFailed as failed:
            return self._resume(key, now, failed.current or {})
        return []

    def fatigue_look(self, key: str, item: Item, now: float) -> list[Notification]:
        """The scheduler's turn on a success escalated for MFA fatigue, once Lambda's retries
        of the failures before it are over (and again after each failure processed later,
        :meth:`_recheck`): failures before the success that its escalation did not count get
        one trailing correction (HIGH, "N more failed MFA attempts before the sign-in (M in
        all)"), decided once per count it grows from (a conditional write with its outbox), so
        the escalation and its corrections add up to the same total in every arrival order."""
        claim = EventClaim.from_item(item)
        rule = self.rules.get(key_parts(key)[0])
        record = parse_event(json.loads(item[EVENT]))
        fs = self.settings.fatigue_success
        who = principal_key(
            record.account, escalation_principal(record.principal_key, record.source_ip)
        )
        history = PrincipalFailures.from_item(self.store.get(who, now))
        t = record.event_time.timestamp()
        late = late_fatigue_failures(history, claim.fatigue_late, t, fs.seconds, claim.fatigue)
        if not late:
            with contextlib.suppress(ConditionFailed):  # a poke moved it meanwhile: look again
                self.store.update(
                    key, now, remove=[DUE_PK, DUE_AT], condition=Compare(DUE_AT, "=", item[DUE_AT])
                )
            return []
        correction = fatigue_correction_for(rule, record, claim.fatigue_count, late, fs.minutes)
        decided = self.delivery.decide_apart(correction, now)
        outbox = claim.outbox.with_entries(decided.entries)
        s = self.settings
        try:
            self.store.update(
                key,
                now,
                set_values={
                    FATIGUE_IDS: [*claim.fatigue, *late],
                    FATIGUE_COUNT: claim.fatigue_count + len(late),
                    "status": ClaimStatus.DECIDED.value,
                    "lease_until": now + s.lease_seconds,
                    **outbox.to_item(),
                    **due_mark(now + s.lease_seconds),
                },
                remove=[] if outbox.delivered else ["delivered"],
                condition=Compare(FATIGUE_COUNT, "=", claim.fatigue_count),
            )
        except ConditionFailed:
            return []  # another run corrected it from this count
        # One more look after this one: a failure processed while it ran is counted then.
        finish = {"status": ClaimStatus.DONE.value, **due_mark(now + s.settle_seconds)}
        return self.delivery.deliver(key, outbox, now, finish, [])

    # --- Identity Center attribution -------------------------------------------------------------

    def _attribute(
        self, record: SignInRecord, now: float, waiting_rule: str = ""
    ) -> tuple[SignInRecord, list[str], list[str]]:
        """Name the user of an Identity Center step from earlier steps of the same workflow
        (one request: the names and ids a step carries are merged, what is known comes back).

        A failure of ``waiting_rule`` that names nobody and finds no name yet is listed on the
        workflow (in the same request, only while the workflow has no name): the step that names
        the user later decides it again. One that finds the name but not the identity-store
        user id is listed for the id (one more request, only in that order): the step that
        carries the id lists it under the id (:meth:`_list_under_user_id`). Returns the record,
        for a step that names the user the claims of the failures that waited for it, and for a
        step that carries the id the failures (entries) that waited for that.
        """
        if not record.auth_workflow_id:
            return record, [], []
        key = make_key(KeyKind.WORKFLOW, record.auth_workflow_id)
        named = (
            record.principal
            if record.principal_type == PRINCIPAL_IDENTITY_CENTER
            and record.principal_key not in (UNKNOWN_PRINCIPAL_KEY, record.identity_store_user_id)
            else ""
        )
        values: Item = {}
        if named:
            values["user_name"] = named
        if record.identity_store_user_id:
            values["user_id"] = record.identity_store_user_id
        ttl = {EXPIRES_AT: now + self.settings.workflow_ttl_seconds}
        waiting: list[str] = []
        for_id: list[str] = []
        if waiting_rule and not named and record.principal_key == UNKNOWN_PRINCIPAL_KEY:
            try:
                item = self.store.update(
                    key,
                    now,
                    set_values={**values, **ttl},
                    append={WAITING: [claim_key(waiting_rule, record.event_id)]},
                    condition=Missing("user_name"),
                )
            except ConditionFailed as failed:
                item = failed.current or {}
            known = Workflow.from_item(item)
            if known.user_name and not known.user_id and not record.identity_store_user_id:
                known = self._wait_for_user_id(key, record, now, known)
        elif values:
            item = self.store.update(key, now, set_values={**values, **ttl})
            known = Workflow.from_item(item)
            if named and item.get(WAITING):
                waiting = [str(k) for k in item[WAITING]]
                # Nothing is listed once the workflow has a name (the condition above).
                self.store.update(key, now, remove=[WAITING])
            if record.identity_store_user_id and item.get(ID_WAITING):
                for_id = [str(e) for e in item[ID_WAITING]]
                # Nothing is listed once the workflow has the id (:meth:`_wait_for_user_id`).
                self.store.update(key, now, remove=[ID_WAITING])
        else:
            known = Workflow.from_item(self.store.get(key, now))
        # The identity-store user id a step of the workflow carried: device changes name the
        # user by it (the failure's takeover chain, :meth:`_count_for_user_id`).
        user_id = record.identity_store_user_id or known.user_id
        if named or not known.user_name:
            named_record = replace(record, identity_store_user_id=user_id) if named else record
            return named_record, waiting, for_id
        return (
            replace(
                record,
                principal=known.user_name,
                principal_key=known.user_name,
                principal_type=PRINCIPAL_IDENTITY_CENTER,
                identity_store_user_id=user_id,
            ),
            waiting,
            for_id,
        )

    def _wait_for_user_id(
        self, key: str, record: SignInRecord, now: float, known: Workflow
    ) -> Workflow:
        """List a named failure on its workflow until a step carries the user id (only while
        the workflow has none: a failed condition returns the id that came meanwhile)."""
        entry = failure_entry(record.event_time.timestamp(), record.event_id, record.source_ip)
        try:
            self.store.update(key, now, append={ID_WAITING: [entry]}, condition=Missing("user_id"))
        except ConditionFailed as failed:
            return Workflow.from_item(failed.current) if failed.current else known
        return known

    def _unnamed(self, record: SignInRecord) -> bool:
        """An Identity Center failure whose user no step of its workflow has named yet."""
        return bool(record.auth_workflow_id) and record.principal_key == UNKNOWN_PRINCIPAL_KEY

    def _name_wait(self) -> float:
        """How long a failure waits for the step that names its user: a naming step whose first
        attempt failed is processed within :meth:`_retry_horizon`."""
        return self._retry_horizon()

    def _retry_horizon(self) -> float:
        """How late an event is processed when its first invocations fail: Lambda retries a
        failed invocation 1 and then 2 more minutes later, within the lease and the settle
        delay (3 minutes by default)."""
        return self.settings.lease_seconds + self.settings.settle_seconds

    def _wait_for_name(
        self, rule: Rule, record: SignInRecord, key: str, now: float
    ) -> list[Notification]:
        """Keep the failure undecided, with its event, until the naming step decides it again
        or the scheduler does when the wait is over (the claim is due then)."""
        self.metrics.count("WaitingForName", Rule=rule.id)
        logger.info(
            "waiting for the step that names the user of %s",
            record.event_id,
            extra={"rule": rule.id, "event_id": record.event_id},
        )
        self.store.update(
            key,
            now,
            set_values={EVENT: _event_attribute(record), WAITING: True, "lease_until": now},
        )
        return []

    # --- failing open ----------------------------------------------------------------------------

    def _fail_open_first(self, copy_id: str, now: float) -> bool:
        """Whether this environment publishes ``copy_id``: not published here yet (recent ids
        kept), and within :data:`FAIL_OPEN_PER_ENVIRONMENT` this minute."""
        minute = int(now // 60)
        self._fail_opens = {k: m for k, m in self._fail_opens.items() if m >= minute - 10}
        this_minute = sum(1 for m in self._fail_opens.values() if m == minute)
        if copy_id in self._fail_opens or this_minute >= FAIL_OPEN_PER_ENVIRONMENT:
            return False
        self._fail_opens[copy_id] = minute
        return True

    def _fail_open(
        self, rule: Rule, record: SignInRecord, now: float, exc: StateStoreError
    ) -> list[Notification]:
        """The claim could not be written. If the store cannot say that an earlier attempt saved
        anything either, publish a marked copy of the alert now rather than risk missing it, then
        raise: Lambda's retry (or the failed-events queue) still takes the event through the
        deduplicated path, which alone counts it. The copy counts no event. Its id
        (:func:`fail_open_copy_id`) is the same for every attempt of the event and shared by
        the events of its ticket: at most :data:`FAIL_OPEN_PER_MINUTE` distinct copies per rule
        and minute for the whole stage, each published once per execution environment; an
        outage during a storm must not become a flood."""
        self.metrics.count("StateStoreErrors", Rule=rule.id)
        key = claim_key(rule.id, record.event_id)
        try:
            saved = self.store.get(key, now) is not None
        except StateStoreError:
            saved = False  # unknown: the store is failing
        if saved:
            raise StateStoreError(f"{key}: an earlier attempt saved state; retry ({exc})") from exc
        copy_id = fail_open_copy_id(rule.id, record.event_id, record.event_time.timestamp())
        if rule.mode != "alert" or not self._fail_open_first(copy_id, now):
            raise exc
        self.metrics.count("FailOpens", Rule=rule.id)
        logger.error(
            "state store failed before the claim, publishing marked copy %s: %s",
            copy_id,
            exc,
            extra={"rule": rule.id, "event_id": record.event_id},
        )
        notes = (
            f"dedup unavailable: {exc}",
            "sent before deduplication and counting no event; the deduplicated alert or "
            "summary follows once the state store answers",
            f"other failures of the same minute may share this copy ({copy_id}): at most "
            f"{FAIL_OPEN_PER_MINUTE} copies a minute per rule",
            *self._notes(record),
        )
        alert = alert_for(rule, record, notes=notes)
        copy = replace(alert, id=copy_id, count=0)
        for destination in self.delivery.publisher.destinations(copy):
            self.delivery.publisher.publish(copy, destination)
        self.metrics.count("Notifications", Kind=copy.kind)
        raise FailedOpenError(
            f"rule {rule.id} event {record.event_id}: published without dedup ({exc}); the "
            "retry takes it through the deduplicated path"
        ) from exc
