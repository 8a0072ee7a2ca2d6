"""The principal step: one update appends the failure and counts the alert against the
principal's rate window; a completed burst is escalated once with a conditional write that
carries the escalation's outbox (the principal's item stays due until it is delivered); the
successes the failure precedes are named for a re-check (MFA fatigue, takeover chains)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..core.campaigns import takeover_rechecks
from ..core.decisions import (
    KEEP_FAILURES,
    brute_force_burst,
    failures_to_keep,
    fatigue_rechecks,
)
from ..core.documents import PrincipalFailures, failure_entry, parse_failure_entry
from ..core.notifications import Notification, brute_force_for
from ..core.records import PRINCIPAL_IDENTITY_CENTER, UNKNOWN_PRINCIPAL_KEY, SignInRecord
from ..core.state import EXPIRES_AT, Item, KeyKind, make_key
from .parts import Attempt, Parts, horizon


def principal_key(account: str, principal: str) -> str:
    return make_key(KeyKind.PRINCIPAL, account, principal)


def escalation_principal(principal: str, source_ip: str) -> str:
    """Who failures and rate limits are counted for (a record's ``principal_key``); unnamed
    Identity Center users are told apart by source IP."""
    if principal == UNKNOWN_PRINCIPAL_KEY:
        return f"{UNKNOWN_PRINCIPAL_KEY}@{source_ip}"
    return principal


def principal_of(record: SignInRecord) -> str:
    """The key of the principal item an event is counted on."""
    return principal_key(
        record.account, escalation_principal(record.principal_key, record.source_ip)
    )


@dataclass(frozen=True)
class Counted:
    """What the principal step found: whether the principal's rate window admits an alert, the
    escalation it published, and the successes to re-check (claim keys, in order)."""

    admitted: bool = True
    escalated: list[Notification] = field(default_factory=list)
    rechecks: list[str] = field(default_factory=list)


class Principals:
    """Counts failures and alerts per principal and escalates a completed burst once."""

    def __init__(self, parts: Parts) -> None:
        self.store, self.delivery, self.settings = parts.store, parts.delivery, parts.settings
        self.rates = parts.rates

    def count(self, attempt: Attempt, alert: bool) -> Counted:
        """The principal step of one attempt: a failure is appended, an alert counted."""
        rule, record, now, t = attempt.rule, attempt.record, attempt.now, attempt.t
        failure = rule.signal == "failure"
        if not (failure or alert):
            return Counted()
        who = principal_of(record)
        add, remove = self.rates.principal_counter(now) if alert else ({}, [])
        keep_for = horizon(self.settings)
        item = self.store.update(
            who,
            now,
            set_values={EXPIRES_AT: max(t, now) + keep_for},
            append={"failures": [failure_entry(t, record.event_id, record.source_ip)]}
            if failure
            else None,
            add=add,
            remove=remove,
        )
        history = PrincipalFailures.from_item(item)
        admitted = self.rates.principal_admits(item, now) if alert else True
        if len(item.get("failures", [])) > 2 * KEEP_FAILURES:
            # Bounded item: keep the last failures (a concurrent append lost here only makes a
            # burst count one failure short).
            self.store.update(
                who, now, set_values={"failures": failures_to_keep(history, t, keep_for)}
            )
        if not failure:
            return Counted(admitted)
        escalated = self.brute_force(attempt, who, history, item)
        fs, tk = self.settings.fatigue_success, self.settings.takeover
        rechecks = {
            *fatigue_rechecks(history, t, fs.count, fs.seconds),
            *takeover_rechecks(history, t, tk.seconds),
        }
        rechecks.update(self.count_for_user_id(record, t, now))
        return Counted(admitted, escalated, sorted(rechecks))

    def brute_force(
        self, attempt: Attempt, who: str, history: PrincipalFailures, item: Item
    ) -> list[Notification]:
        """Escalate a completed burst once: the escalation mark and the escalation's outbox are
        one conditional write on the principal's item, which stays due until delivered, so the
        scheduler finishes it if the escalating event itself never gets further."""
        rule, record = attempt.rule, attempt.record
        bf = self.settings.brute_force
        burst = brute_force_burst(history, record.event_id, attempt.t, bf.count, bf.seconds)
        if not burst.escalate:
            return []
        escalation = replace(
            brute_force_for(rule, record, burst.in_window, bf.minutes, burst.event_ids),
            notes=attempt.notes,
        )
        return self.delivery.escalate_once(
            who,
            item,
            escalation,
            event_id=record.event_id,
            start=burst.start,
            until=burst.until,
            now=attempt.now,
        )

    def count_for_user_id(self, record: SignInRecord, t: float, now: float) -> set[str]:
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
        return self.list_under_user_id(record.account, user_id, entry, now)

    def list_under_user_id(self, account: str, user_id: str, entry: str, now: float) -> set[str]:
        """Append a failure ``entry`` to the principal item of an identity-store user id (one
        update) and return the successes there that it precedes (claim keys to re-check)."""
        s, key, keep_for = self.settings, principal_key(account, user_id), horizon(self.settings)
        t = parse_failure_entry(entry)[0]
        item = self.store.update(
            key,
            now,
            set_values={EXPIRES_AT: max(t, now) + keep_for},
            append={"failures": [entry]},
        )
        history = PrincipalFailures.from_item(item)
        if len(item.get("failures", [])) > 2 * KEEP_FAILURES:
            self.store.update(
                key, now, set_values={"failures": failures_to_keep(history, t, keep_for)}
            )
        fs = s.fatigue_success
        return {
            *fatigue_rechecks(history, t, fs.count, fs.seconds),
            *takeover_rechecks(history, t, s.takeover.seconds),
        }
