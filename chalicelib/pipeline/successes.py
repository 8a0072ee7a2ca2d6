"""Successes: a successful sign-in (or a credential change, :func:`campaigns.takeover_target`)
is kept (its claim keeps the event, the principal's item names it), then checked against the
principal's failures: MFA fatigue, or a takeover when the failures came from other IPs
(:func:`decisions.success_escalation`; a credential change after any failure). A failure
processed later that precedes it re-checks it (:func:`decisions.fatigue_rechecks`,
:func:`campaigns.takeover_rechecks`), so the escalation is raised whatever the order, once per
success (its claim). Timeline::

    claim (the event, lease not held) -> listed on the principal's item -> enough failures
    before it: hold the lease, decide the escalation, save, publish
    a failure processed later: lists its failure, finds the success, decides it again
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace

from ..core.campaigns import is_takeover_step, takeover_failures, takeover_target
from ..core.decisions import (
    KEEP_FAILURES,
    Claim,
    SuccessEscalation,
    entries_to_keep,
    success_escalation,
)
from ..core.documents import (
    EVENT,
    FATIGUE_COUNT,
    FATIGUE_IDS,
    OWNER,
    ClaimStatus,
    PrincipalFailures,
    failure_entry,
)
from ..core.errors import EventInProgressError, StateStoreError
from ..core.notifications import (
    Notification,
    fatigue_success_for,
    takeover_for,
    takeover_sign_in_for,
)
from ..core.records import SignInRecord
from ..core.rules import Rule
from ..core.state import EXPIRES_AT, AnyOf, Compare, ConditionFailed, Item
from .claim import Claims, claim_key, event_attribute
from .parts import Attempt, Parts, horizon
from .principal import principal_of
from .save import Saver


@dataclass(frozen=True)
class Escalation:
    """A success's escalation: the notification, what it counted (saved on the claim), whether
    it is a takeover chain (one per chain) and the fatigue it also reached (a takeover sign-in
    that is MFA fatigue too)."""

    notification: Notification
    failures: tuple[str, ...]
    counted: Item
    chained: bool
    fatigue_too: tuple[str, ...] = ()


class Successes:
    """Keeps a success and escalates it once: MFA fatigue or a takeover chain."""

    def __init__(self, parts: Parts, claims: Claims, saver: Saver) -> None:
        self.store, self.settings = parts.store, parts.settings
        self.metrics, self.admission = parts.metrics, parts.admission
        self.claims, self.saver = claims, saver

    def success(
        self, rule: Rule, record: SignInRecord, now: float, notes: tuple[str, ...]
    ) -> list[Notification]:
        """Decide one success (see the module docstring)."""
        if is_takeover_step(record):
            target = takeover_target(record)
            if target is None:
                return []
            record = target
        key = claim_key(rule.id, record.event_id)
        token = uuid.uuid4().hex
        # The event is kept with the claim, before anything names it: a failure that finds the
        # success listed on the principal's item can decide it again.
        keep = {EVENT: event_attribute(record)}
        outcome, existing = self.claims.claim(key, now, token, hold=False, keep=keep)
        if outcome is Claim.DUPLICATE:
            self.metrics.count("Duplicates", Rule=rule.id)
            return []
        if outcome is Claim.IN_PROGRESS:
            raise EventInProgressError(
                f"rule {rule.id} event {record.event_id} is being processed; retry later"
            )
        if outcome is Claim.PENDING and existing is not None:
            return self.saver.deliver_claim(key, existing, now)
        attempt = Attempt(rule, record, key, now, notes)
        history = self.listed(attempt)
        escalation = self.escalation(attempt, history)
        if escalation is None:
            return []
        self.hold(attempt, token)
        if escalation.chained:
            escalation = self.mark_chain(attempt, history, escalation)
            if escalation is None:
                return []
        try:
            result = self.admission.decide([replace(escalation.notification, notes=notes)], now)
            return self.saver.save_and_deliver(key, result, None, escalation.counted, now)
        except StateStoreError:
            self.claims.release(key, now)
            raise

    def listed(self, attempt: Attempt) -> PrincipalFailures:
        """List the success on its principal's item (bounded); the principal's history."""
        who, t, now = principal_of(attempt.record), attempt.t, attempt.now
        keep_for = horizon(self.settings)
        item = self.store.update(
            who,
            now,
            set_values={EXPIRES_AT: max(t, now) + keep_for},
            append={"successes": [failure_entry(t, attempt.key)]},
        )
        history = PrincipalFailures.from_item(item)
        if len(item.get("successes", [])) > 2 * KEEP_FAILURES:
            self.store.update(
                who,
                now,
                set_values={"successes": entries_to_keep(history.successes, t, keep_for)},
            )
        return history

    def escalation(self, attempt: Attempt, history: PrincipalFailures) -> Escalation | None:
        """The escalation the principal's failures before the success call for, if any."""
        rule, record, t = attempt.rule, attempt.record, attempt.t
        fs, tk = self.settings.fatigue_success, self.settings.takeover
        if is_takeover_step(record):
            failures = takeover_failures(history.failures, t, tk.seconds)
            if len(failures) < tk.count:
                return None
            return Escalation(takeover_for(rule, record, failures, tk.minutes), failures, {}, True)
        check = success_escalation(
            history, t, record.source_ip, (fs.count, fs.seconds), (tk.count, tk.seconds)
        )
        failures = check.failures
        if check.kind is SuccessEscalation.NONE:
            return None
        if check.kind is SuccessEscalation.FATIGUE:
            # What it counted: a look after the retry horizon counts what came later.
            counted = {FATIGUE_IDS: list(failures), FATIGUE_COUNT: len(failures)}
            return Escalation(
                fatigue_success_for(rule, record, failures, fs.minutes), failures, counted, False
            )
        reached = (len(check.fatigue), fs.minutes) if check.fatigue else None
        notification = takeover_sign_in_for(
            rule, record, failures, check.other_ips, tk.minutes, fatigue=reached
        )
        return Escalation(notification, failures, {}, True, check.fatigue)

    def hold(self, attempt: Attempt, token: str) -> None:
        """Escalate: hold the lease first (one decider, whoever re-checks concurrently)."""
        try:
            self.store.update(
                attempt.key,
                attempt.now,
                set_values={"lease_until": attempt.now + self.settings.lease_seconds},
                condition=Compare(OWNER, "=", token),
            )
        except ConditionFailed as failed:
            raise EventInProgressError(
                f"rule {attempt.rule.id} event {attempt.record.event_id} is being decided elsewhere"
            ) from failed

    def mark_chain(
        self, attempt: Attempt, history: PrincipalFailures, escalation: Escalation
    ) -> Escalation | None:
        """One escalation per chain: a second step after the same failures (a virtual device
        created, then enabled; a sign-in from another IP, then a new device) is the same
        takeover. The mark is the escalating step's time, so a step whose failures began before
        it is the same chain, whichever failures were known when it escalated (a late failure
        does not start a second chain). It names this event: its retry passes again."""
        record, t, now = attempt.record, attempt.t, attempt.now
        first = min(t_f for t_f, e in history.failures if e in escalation.failures)
        try:
            self.store.update(
                principal_of(record),
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
            if not escalation.fatigue_too:
                self.store.update(attempt.key, now, set_values={"status": ClaimStatus.DONE.value})
                return None
            # The chain escalated already (a credential change): the MFA fatigue success is
            # still this sign-in's own escalation.
            fatigue = escalation.fatigue_too
            fs = self.settings.fatigue_success
            counted = {FATIGUE_IDS: list(fatigue), FATIGUE_COUNT: len(fatigue)}
            notification = fatigue_success_for(attempt.rule, record, fatigue, fs.minutes)
            return Escalation(notification, fatigue, counted, False)
        return escalation
