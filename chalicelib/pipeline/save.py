"""The save step: the decision on the claim (outbox, held records, window), then delivery.

What a claim's last confirmation writes depends on what it is: a leading event stays due for
its window's summary, a success escalated for MFA fatigue for the look that counts the
failures processed after it (:mod:`.fatigue`), any other claim leaves the due index.
"""

from __future__ import annotations

from ..core.documents import FATIGUE_IDS, ClaimStatus, EventClaim, Outbox, WindowRef
from ..core.notifications import Notification
from ..core.state import DUE_AT, DUE_PK, Item, due_mark
from .admission import Decided
from .parts import Parts, retry_horizon


class Saver:
    """Saves a decision on its claim and delivers it; delivers what a failed attempt saved."""

    def __init__(self, parts: Parts) -> None:
        self.store, self.delivery, self.settings = parts.store, parts.delivery, parts.settings

    def save_and_deliver(
        self,
        key: str,
        result: Decided,
        window: WindowRef | None,
        attributes: Item,
        now: float,
    ) -> list[Notification]:
        s = self.settings
        outbox = Outbox(tuple(result.entries))
        finish, finish_remove = self.finish(window, now, bool(attributes.get(FATIGUE_IDS)))
        values: Item = {**attributes, **outbox.to_item()}
        if result.publishes:
            values.update(status=ClaimStatus.DECIDED.value, **due_mark(now + s.lease_seconds))
            self.store.update(key, now, set_values=values)
            return self.delivery.deliver(
                key, outbox, now, finish=finish, finish_remove=finish_remove
            )
        values.update(finish)
        self.store.update(key, now, set_values=values, remove=finish_remove)
        return []

    def deliver_claim(self, key: str, claim: EventClaim, now: float) -> list[Notification]:
        """Deliver what a crashed or failed attempt decided and no output confirmed."""
        finish, remove = self.finish(claim.window, now, bool(claim.fatigue))
        return self.delivery.deliver(key, claim.outbox, now, finish=finish, finish_remove=remove)

    def finish(
        self, window: WindowRef | None, now: float, fatigue: bool = False
    ) -> tuple[Item, list[str]]:
        """What a claim's last confirmation writes (see the module docstring): done; due at
        window end + settle for a leading event, after Lambda's retries of the failures before
        it for a success escalated for MFA fatigue; else out of the due index."""
        finish: Item = {"status": ClaimStatus.DONE.value}
        if window is not None:
            return finish | due_mark(window.window_end + self.settings.settle_seconds), []
        if fatigue:
            return finish | due_mark(now + retry_horizon(self.settings)), []
        return finish, [DUE_PK, DUE_AT]
