"""Window summaries: a leading event whose window ended merges its window's repeats into a
summary (a "look"); a look that finds repeats still settling looks again, and a repeat processed
after the window ended asks for a look itself, so late repeats make another batch instead of
being lost. A look merges what was written up to ``now - settle`` (``Settings.settle_seconds``:
longer than the Lambda timeout plus the index's propagation), and keeps a band
(:mod:`.scheduled`) for entries the index shows late.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace

from ..core.decisions import Repeats, merge_repeats
from ..core.documents import (
    MAX_STORED_LIST,
    VERSION,
    ClaimStatus,
    EventClaim,
    Outbox,
    WindowRef,
    held_of,
    window_attribute,
)
from ..core.notifications import Covered, Notification, summary_for, suppressed_clause
from ..core.rules import Rule
from ..core.state import GROUP_AT, ConditionFailed, Item, due_mark
from ..core.suppressions import Seen
from .parts import Parts
from .principal import escalation_principal, principal_key
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


class Looks:
    """Merges a window's repeats into its summaries, batch by batch."""

    def __init__(self, parts: Parts) -> None:
        self.rules, self.store, self.delivery = parts.rules, parts.store, parts.delivery
        self.settings, self.metrics = parts.settings, parts.metrics
        self.rates, self.admission = parts.rates, parts.admission

    def look(
        self, key: str, item: Item, claim: EventClaim, now: float, force: bool
    ) -> list[Notification]:
        """One look at the window of a leading event's claim (``force``: replay's end)."""
        window = claim.window
        assert window is not None
        delay = self.settings.settle_seconds
        if not force and now < window.window_end + delay:
            settle(self.store, key, item, now, window.window_end + delay)
            return []
        cutoff = math.inf if force else now - delay
        band = Band(window.band, window.band_count)
        _, found = look_at_group(self.store, window.group, window.cutoff, band, now, cutoff=cutoff)
        merged = [*found.late, *found.ready]
        repeats = self._repeats(key, window, found, merged)
        if repeats is None:
            since = max(window.cutoff, window.window_end)
            settle(self.store, key, item, now, next_look(self.settings, now, since, found.settling))
            return []
        rule = rule_of(self.rules, window.rule_id, key)
        summary = self.summary(rule, window, repeats, merged, item, now=now)
        principal = principal_key(
            window.account, escalation_principal(window.principal_key, window.source_ip)
        )
        admitted = self.rates.count_principal(principal, now, now + rule.window_minutes * 60.0)
        decided = self.admission.decide_apart(summary, now, admitted)
        moved = max(repeats.written_until, window.cutoff) if force else cutoff
        outbox = claim.outbox.with_entries(decided.entries)
        if not self._advance(key, claim, outbox, now, moved=moved, band=found.band(moved)):
            return []  # changed meanwhile: the next run looks again
        # After the summary, one more look (repeats may still be settling; a late one asks).
        finish: Item = {"status": ClaimStatus.DONE.value, **due_mark(now + delay)}
        return self.delivery.deliver(key, outbox, now, finish=finish, finish_remove=[])

    def _repeats(
        self, key: str, window: WindowRef, found: Found, merged: list[Item]
    ) -> Repeats | None:
        """The repeats a look merges: those after the previous cutoff and the late ones."""
        repeats = merge_repeats(
            [(float(i["t"]), str(i["event_id"]), float(i[GROUP_AT])) for i in merged],
            MAX_STORED_LIST,
        )
        if found.unnamed:
            # Counted without their ids: the band could not name them.
            times = [float(i["t"]) for i in found.earlier] or [window.window_start]
            repeats = (
                replace(repeats, count=repeats.count + found.unnamed)
                if repeats is not None
                else Repeats(found.unnamed, min(times), max(times), (), window.cutoff)
            )
        if found.late or found.unnamed:
            lag_caught(self.metrics, key, len(found.late) + found.unnamed)
        return repeats

    def _advance(
        self, key: str, claim: EventClaim, outbox: Outbox, now: float, *, moved: float, band: Band
    ) -> bool:
        """Save the next batch's window (cutoff, band) with the summary's outbox, if the claim
        is still the version that was read."""
        window = claim.window
        assert window is not None
        delay = self.settings.settle_seconds
        advanced = json.loads(window_attribute(window))
        advanced.update(cutoff=moved, batch=window.batch + 1, band=band.keys, band_count=band.count)
        try:
            self.store.update(
                key,
                now,
                set_values={
                    "window": json.dumps(advanced, sort_keys=True, separators=(",", ":")),
                    "status": ClaimStatus.DECIDED.value,
                    "lease_until": now + delay,
                    **outbox.to_item(),
                    **due_mark(now + delay),
                },
                add={VERSION: 1},
                condition=version_is(claim.version),
            )
        except ConditionFailed:
            return False
        return True

    def summary(
        self,
        rule: Rule,
        window: WindowRef,
        repeats: Repeats,
        merged: list[Item],
        item: Item,
        *,
        now: float,
    ) -> Notification:
        """The window's summary, saying which of its repeats a suppression covers (each by its
        own address; they are counted here) and which suppression held its alert. When some
        repeats are not covered but the window's own address is, the summary names theirs, so
        that the suppression does not hold what it does not match."""
        suppressions = self.admission.suppressions
        ips = {str(i["event_id"]): str(i.get("source_ip") or window.source_ip) for i in merged}

        def is_covered(ip: str) -> bool:
            seen = Seen(window.principal, window.account, ip)
            return suppressions.matching(seen, rule.id, rule.severity, now) is not None

        counts = suppressions.tally(
            (Seen(window.principal, window.account, ip) for ip in ips.values()),
            rule.id,
            rule.severity,
            now,
        )
        leader = next((h.suppressed_by for h in held_of(item) if h.suppressed_by), "")
        said = Covered(
            suppressed_clause(counts, suppressions.label),
            suppressions.label(leader) if leader else "",
        )
        summary = summary_for(rule, window, repeats, window.batch + 1, said)
        partly = 0 < sum(counts.values()) < repeats.count
        if not partly or self.admission.suppression_of(summary, now) is None:
            return summary
        free = sorted({ip for ip in ips.values() if not is_covered(ip)})
        shown = free[0] if len(free) == 1 else f"{len(free)} IPs"
        return summary_for(rule, window, repeats, window.batch + 1, replace(said, source_ip=shown))
