"""Rate counting: a notification counted against its principal's and its topic's windows.

Rate limits (``Settings.principal_rate``, ``Settings.topic_rate``) are fixed-window counters: one
atomic add on a tiny item, so concurrent invocations never conflict. When the topic's window is
full the rule enters storm mode (see :mod:`chalicelib.core.decisions`): its held notifications are
counted in the storm's digest (:mod:`chalicelib.pipeline.storms`), which is scheduled here.
What a count means for a notification (held or published) is decided in
:mod:`chalicelib.pipeline.admission`.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Mapping
from typing import Any

from ..core.config import Settings
from ..core.decisions import rate_slot
from ..core.documents import counter_attribute, storm_attribute
from ..core.state import (
    DUE_AT,
    EXPIRES_AT,
    Compare,
    ConditionFailed,
    KeyKind,
    Missing,
    StateStore,
    due_mark,
    make_key,
)
from .observability import Metrics

logger = logging.getLogger(__name__)

RATE_KEY = make_key(KeyKind.RATE, "topic")


def storm_key(rule_id: str) -> str:
    return make_key(KeyKind.STORM, rule_id)


class RateLimits:
    """The principal's and the topic's windows, storm mode, and the storm digest's due time."""

    def __init__(self, store: StateStore, settings: Settings, metrics: Metrics) -> None:
        self.store = store
        self.settings = settings
        self.metrics = metrics

    def principal_counter(self, now: float) -> tuple[dict[str, int], list[str]]:
        """The ``add``/``remove`` that count one notification against its principal's window."""
        period = self.settings.principal_rate.seconds
        slot = rate_slot(now, period)
        # Remove the counters of every window since the item's previous write could have been
        # (events.py keeps the item this long after a failure), not only the one before last:
        # a skipped window would otherwise keep its counter as long as the principal fails.
        s = self.settings
        life = max(s.brute_force.seconds, s.fatigue_success.seconds)
        stale = range(2, math.ceil(life / period) + 3)
        return {counter_attribute(slot): 1}, [counter_attribute(slot - k) for k in stale]

    def principal_admits(self, principal_item: Mapping[str, Any], now: float) -> bool:
        """Whether the count an add just returned is within the principal's limit."""
        rate = self.settings.principal_rate
        count = int(principal_item.get(counter_attribute(rate_slot(now, rate.seconds)), 0))
        return count <= rate.count

    def count_principal(self, principal_key: str, now: float, expires_at: float) -> bool:
        """Count a notification against its principal (one atomic add); True when admitted."""
        add, remove = self.principal_counter(now)
        item = self.store.update(
            principal_key,
            now,
            set_values={EXPIRES_AT: expires_at},
            add=add,
            remove=remove,
        )
        return self.principal_admits(item, now)

    def topic_admits(self, rule_id: str, now: float) -> tuple[bool, bool]:
        """Take a slot of the topic's window unless the rule is in storm mode.

        Returns (admitted, opened_storm). One atomic add; a rule in storm mode is told by the
        failed condition (no slot taken). A full window opens storm mode for the rule, its digest
        scheduled first.
        """
        rate = self.settings.topic_rate
        slot = rate_slot(now, rate.seconds)
        storm = storm_attribute(rule_id)
        try:
            item = self.store.update(
                RATE_KEY,
                now,
                set_values={EXPIRES_AT: now + 30 * 24 * 3600.0},
                add={counter_attribute(slot): 1},
                remove=[counter_attribute(slot - 2)],
                condition=Compare(storm, "<=", now, or_missing=True),
            )
        except ConditionFailed:
            return False, False  # storm mode: hold without taking a slot
        if int(item.get(counter_attribute(slot), 0)) <= rate.count:
            return True, False
        # The digest is scheduled before the rule is marked stormy: a retry after a fault between
        # the two writes finds the window still full and marks it again, while a rule marked
        # stormy always has its digest due (holds in storm mode schedule nothing themselves).
        self.schedule_digest(rule_id, now)
        # Storm mode lasts past the first digest (due in one period), which extends or ends it.
        until = now + rate.seconds + self.settings.settle_seconds
        self.store.update(RATE_KEY, now, set_values={storm: until})
        logger.warning("rule %s enters storm mode: topic rate %s reached", rule_id, rate)
        self.metrics.count("StormsOpened", Rule=rule_id)
        return False, True

    def schedule_digest(self, rule_id: str, now: float) -> None:
        """Make sure the rule's storm digest is due (one conditional write; a no-op if it is)."""
        with contextlib.suppress(ConditionFailed):
            self.store.update(
                storm_key(rule_id),
                now,
                set_values={
                    "opened_at": now,
                    EXPIRES_AT: now + 2 * 24 * 3600.0,
                    **due_mark(now + self.settings.topic_rate.seconds),
                },
                condition=Missing(DUE_AT),
            )
