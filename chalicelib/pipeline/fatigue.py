"""MFA fatigue after the fact: a failure processed after the success it precedes.

If the success is still undecided, it is decided again; if it was escalated, the failure is
reported on it and a look is due (one conditional request either way: the report, or the failed
condition returns the item). The look, once Lambda's retries of those failures are over, sends
one trailing correction per count it grows from, so the escalation and its corrections add up
to the same total in every arrival order. Timeline (3/30m)::

    f0, f1, f2 processed -> success S processed: CRITICAL "after 3", look due at +180 s
    f3 (before S) processed at +400 s: S escalated -> f3 reported, look due at +490 s
    look: 4 failures before S, 3 counted -> HIGH "1 more ... (4 in all)"
"""

from __future__ import annotations

import contextlib
import json

from ..core.decisions import late_fatigue_failures
from ..core.documents import (
    EVENT,
    FATIGUE_COUNT,
    FATIGUE_IDS,
    FATIGUE_LATE,
    FATIGUE_RECHECKS,
    MAX_STORED_LIST,
    ClaimStatus,
    EventClaim,
    PrincipalFailures,
)
from ..core.notifications import Notification, fatigue_correction_for
from ..core.records import parse_event
from ..core.state import DUE_AT, DUE_PK, AllOf, Compare, ConditionFailed, Item, due_mark, key_parts
from .parts import Decider, Parts
from .principal import principal_of


class FatigueLooks:
    """Reports late failures on an escalated success and corrects its count once per count."""

    def __init__(self, parts: Parts, decider: Decider) -> None:
        self.rules, self.store, self.delivery = parts.rules, parts.store, parts.delivery
        self.settings, self.decider = parts.settings, decider
        self.admission = parts.admission

    def recheck(self, key: str, failure: str, now: float) -> list[Notification]:
        """A failure (``time|eventID``) processed after a success it precedes (see the module
        docstring)."""
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
            return self.decider.resume(key, now, failed.current or {})
        return []

    def look(self, key: str, item: Item, now: float) -> list[Notification]:
        """The scheduler's turn on a success escalated for MFA fatigue, once Lambda's retries
        of the failures before it are over (and again after each failure processed later):
        failures before the success that its escalation did not count get one trailing
        correction (HIGH, "N more failed MFA attempts before the sign-in (M in all)"), decided
        once per count it grows from (a conditional write with its outbox)."""
        claim = EventClaim.from_item(item)
        rule = self.rules.get(key_parts(key)[0])
        record = parse_event(json.loads(item[EVENT]))
        fs = self.settings.fatigue_success
        history = PrincipalFailures.from_item(self.store.get(principal_of(record), now))
        t = record.event_time.timestamp()
        late = late_fatigue_failures(history, claim.fatigue_late, t, fs.seconds, claim.fatigue)
        if not late:
            with contextlib.suppress(ConditionFailed):  # a poke moved it meanwhile: look again
                self.store.update(
                    key, now, remove=[DUE_PK, DUE_AT], condition=Compare(DUE_AT, "=", item[DUE_AT])
                )
            return []
        correction = fatigue_correction_for(rule, record, claim.fatigue_count, late, fs.minutes)
        decided = self.admission.decide_apart(correction, now)
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
        return self.delivery.deliver(key, outbox, now, finish=finish, finish_remove=[])
