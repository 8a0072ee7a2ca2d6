"""Storms: a rule's held notifications merged into a digest per period, storm mode kept or
ended. Held records that the index shows too late to be told apart from counted ones cannot be
merged blind: they are reported (``IndexLagUncounted``, an error log) instead."""

from __future__ import annotations

import logging
import math

from ..core.decisions import merge_held
from ..core.documents import (
    HELD_RETENTION,
    MAX_STORED_LIST,
    VERSION,
    Outbox,
    StormState,
    held_of,
    storm_attribute,
)
from ..core.notifications import Notification, storm_digest_for
from ..core.rules import Rule
from ..core.state import (
    DUE_AT,
    DUE_PK,
    EXPIRES_AT,
    GROUP_AT,
    ConditionFailed,
    Item,
    due_mark,
    key_parts,
)
from .parts import Parts
from .rates import RATE_KEY, storm_key
from .scheduled import (
    Band,
    Found,
    lag_caught,
    look_at_group,
    next_look,
    rule_of,
    settle,
    version_is,
)

logger = logging.getLogger(__name__)


class Storms:
    """Digests of a rule's held notifications, one per period while its storm lasts."""

    def __init__(self, parts: Parts) -> None:
        self.rules, self.store, self.delivery = parts.rules, parts.store, parts.delivery
        self.settings, self.metrics = parts.settings, parts.metrics
        self.admission = parts.admission

    def storm(self, key: str, item: Item, now: float, force: bool) -> list[Notification]:
        """The scheduler's turn on a rule's storm item (``force``: replay's end)."""
        rule_id = key_parts(key)[0] if key_parts(key) else ""
        rule = rule_of(self.rules, rule_id, key)
        state = StormState.from_item(item)
        if state.outbox.pending():
            return self.delivery.deliver(key, state.outbox, now, finish_remove=[])
        period = self.settings.topic_rate.seconds
        cutoff = math.inf if force else now - self.settings.settle_seconds
        band = Band.from_item(item)
        everything, split = look_at_group(
            self.store, storm_key(rule.id), state.cutoff, band, now, cutoff=cutoff
        )
        self._report_late(key, split)
        found = [i for i in everything if float(i[GROUP_AT]) > state.cutoff]
        ready = [*split.late, *split.ready]
        held = [h for i in ready for h in held_of(i)]
        last_hold = max([state.last_hold, *(float(i[GROUP_AT]) for i in found)])
        next_due, phase = self._phase(rule, state, last_hold, split.settling, now, force=force)
        stats = merge_held(held, MAX_STORED_LIST)
        if stats is None and phase != "ended":
            settle(self.store, key, item, now, next_due)
            return []
        last_at = max([state.cutoff, *(float(i[GROUP_AT]) for i in ready)])
        moved = last_at if force else cutoff
        digest = storm_digest_for(
            rule,
            stats,
            opened_at=state.opened_at,
            batch=state.batch + 1,
            phase=phase,
            quiet_since=last_hold,
            label_of=self.admission.suppressions.label,
        )
        decided = self.admission.decide([digest], now)  # a digest is never rate-limited
        outbox = state.outbox.with_entries(decided.entries)
        values: Item = {
            "cutoff": moved,
            **split.band(moved).to_item(),
            "batch": state.batch + 1,
            "last_hold": last_hold,
            # Outlive every record this digest counted (each kept HELD_RETENTION after its hold,
            # which came before now): TTL must not take the cutoff while they can still be read,
            # or the next storm would count them again.
            EXPIRES_AT: max(float(item.get(EXPIRES_AT, 0.0)), now + HELD_RETENTION + period),
            **outbox.to_item(),
            **due_mark(now),
        }
        return self._save(key, state, values, outbox, now, next_due=next_due)

    def _report_late(self, key: str, split: Found) -> None:
        if split.late:
            lag_caught(self.metrics, key, len(split.late))
        if split.unnamed:
            # Held records cannot be merged blind (which are new?): say so, loudly.
            self.metrics.count("IndexLagUncounted", split.unnamed)
            logger.error(
                "%s: %d held records showed up after their digest and cannot be told apart; "
                "they are not in any digest",
                key,
                split.unnamed,
            )

    def _phase(
        self,
        rule: Rule,
        state: StormState,
        last_hold: float,
        settling: bool,
        now: float,
        *,
        force: bool,
    ) -> tuple[float | None, str]:
        """When the storm item is due next, and the digest's phase: ``held`` (holds of a
        principal's limit, outside storm mode), ``ongoing`` or ``ended``."""
        settle_seconds = self.settings.settle_seconds
        period = self.settings.topic_rate.seconds
        rate = self.store.get(RATE_KEY, now) or {}
        in_storm = float(rate.get(storm_attribute(rule.id), 0.0)) > now and not force
        next_due = next_look(self.settings, now, max(state.cutoff, state.opened_at), settling)
        # Quiet for as long as an incident window: the summaries of the storm's incidents come
        # within it, and are held into the storm rather than restarting the alerts.
        quiet = max(period, rule.window_minutes * 60.0)
        if not in_storm:
            return next_due, "held"
        if now - last_hold < quiet:
            # Holds go on: storm mode lasts past the next digest.
            until = now + period + settle_seconds
            self.store.update(RATE_KEY, now, set_values={storm_attribute(rule.id): until})
            return now + period, "ongoing"
        # Quiet for a period: storm mode ends; one last look for holds still settling.
        self.store.update(RATE_KEY, now, set_values={storm_attribute(rule.id): now})
        return now + settle_seconds, "ended"

    def _save(
        self,
        key: str,
        state: StormState,
        values: Item,
        outbox: Outbox,
        now: float,
        *,
        next_due: float | None,
    ) -> list[Notification]:
        try:
            self.store.update(
                key,
                now,
                set_values=values,
                add={VERSION: 1},
                condition=version_is(state.version),
            )
        except ConditionFailed:
            return []
        finish = due_mark(next_due) if next_due is not None else None
        return self.delivery.deliver(
            key,
            outbox,
            now,
            finish=finish,
            finish_remove=[] if next_due is not None else [DUE_PK, DUE_AT],
        )
