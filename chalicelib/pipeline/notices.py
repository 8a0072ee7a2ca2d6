"""Suppressions about to expire: one LOW notice each, sent exactly once (the scheduler runs it
before the due work of every run)."""

from __future__ import annotations

from ..core.documents import HELD_RETENTION, Outbox
from ..core.notifications import Notification, expiry_notice
from ..core.state import EXPIRES_AT, Absent, ConditionFailed, KeyKind, due_mark, make_key
from ..core.suppressions import SUPPRESSION_RULE
from .parts import Parts


class ExpiryNotices:
    """The expiry notices of the stage's suppressions."""

    def __init__(self, parts: Parts) -> None:
        self.store, self.delivery, self.settings = parts.store, parts.delivery, parts.settings
        self.admission = parts.admission
        #: Suppressions whose expiry notice this execution environment saw delivered.
        self._noticed: frozenset[str] = frozenset()

    def send(self, now: float) -> list[Notification]:
        """One LOW notice per suppression, :data:`suppressions.NOTICE_DAYS` days before it
        expires, exactly once: a conditional put of the notice's item (per suppression and
        expiry date) carries its outbox, so whoever wins it (or a retry of a put whose reply was
        lost) delivers that outbox, output by output; a publish that failed leaves the item due
        and the next run delivers what did not confirm. Timeline::

            expires - 7 days: first run puts notice#<id>#<date> (absent only) -> publishes
            next runs: item there, nothing pending -> remembered, no more reads here
        """
        sent: list[Notification] = []
        for suppression in self.admission.suppressions.due_notices(now):
            if suppression.id in self._noticed:
                continue
            key = make_key(KeyKind.NOTICE, suppression.id, suppression.expires.isoformat())
            notice = expiry_notice(SUPPRESSION_RULE, suppression, now)
            try:
                decided = self.admission.decide([notice], now)  # never held: not rate-limited
                outbox = Outbox(tuple(decided.entries))
                item = {
                    **outbox.to_item(),
                    EXPIRES_AT: suppression.expires_at + HELD_RETENTION,
                    **due_mark(now + self.settings.lease_seconds),
                }
                self.store.put(key, item, now, condition=Absent())
            except ConditionFailed as failed:
                item = failed.current or {}
            outbox = Outbox.from_item(item)
            if outbox.pending():
                sent += self.delivery.deliver(key, outbox, now)
            self._noticed = self._noticed | {suppression.id}
        return sent
