"""What the scheduler's jobs share: a look at a group's entries, moving an item's due time, the
next look after a look that merged nothing, the rule a stored item names, and the *band* that
catches late index entries.

Late index entries. The ``group`` index is eventually consistent: its entries usually appear
within a second, but AWS does not bound the delay
(https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/HowItWorks.ReadConsistency.html),
and an entry that shows up after the look that cut past it used to be lost. So each look keeps a
*band*: which entries it has counted among those written in the :data:`INDEX_LAG_HORIZON` seconds
before its cutoff (keys, and their number; both on the base-table item that owns the group, read
consistently). The next look queries from ``cutoff - horizon``, compares what it finds in the band
with what the band says was counted, and merges the difference into its batch (``IndexLagCaught``);
the last look of a window or storm comes a horizon after its last cutoff, so an entry up to
:data:`INDEX_LAG_HORIZON` late is still counted.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..core.config import Settings
from ..core.documents import MAX_STORED_LIST, VERSION
from ..core.errors import UnknownReferenceError
from ..core.rules import Rule, RuleSet
from ..core.state import (
    DUE_AT,
    DUE_PK,
    GROUP_AT,
    Compare,
    ConditionFailed,
    Item,
    StateStore,
    due_mark,
)
from .observability import Metrics

logger = logging.getLogger(__name__)

#: How late a ``group`` index entry may show up and still be counted (seconds after its write).
INDEX_LAG_HORIZON = 900.0


@dataclass(frozen=True)
class Band:
    """The entries a look counted among those written in the horizon before its cutoff."""

    keys: tuple[str, ...] = ()
    """Their item keys (the first :data:`documents.MAX_STORED_LIST`)."""
    count: int = 0
    """How many there were (exact)."""

    @property
    def complete(self) -> bool:
        return len(self.keys) == self.count

    def to_item(self) -> Item:
        return {"band": list(self.keys), "band_count": self.count}

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Band:
        return cls(tuple(str(k) for k in item.get("band", ())), int(item.get("band_count", 0)))


@dataclass(frozen=True)
class Found:
    """What a look found in a group, split by the previous and the new cutoff."""

    late: list[Item]
    """Entries at or before the previous cutoff that the previous looks did not count."""
    unnamed: int
    """Late entries that cannot be told apart from counted ones (the band was capped)."""
    ready: list[Item]
    """Entries after the previous cutoff, up to the new one."""
    settling: bool
    """Entries after the new cutoff exist (written too recently to merge)."""
    earlier: list[Item]
    """Every entry at or before the previous cutoff (the band's time range)."""

    def band(self, cutoff: float) -> Band:
        """The band of a look that moved the cutoff to ``cutoff``."""
        counted = [
            i
            for i in (*self.earlier, *self.ready)
            if cutoff - INDEX_LAG_HORIZON < float(i[GROUP_AT]) <= cutoff
        ]
        keys = tuple(str(i["pk"]) for i in counted[:MAX_STORED_LIST])
        return Band(keys, len(counted))


def look_at_group(
    store: StateStore, group: str, previous: float, band: Band, now: float, *, cutoff: float
) -> tuple[list[Item], Found]:
    """Every entry of ``group`` from a horizon before the previous cutoff (``previous``), and
    them split at the new ``cutoff`` (:func:`split_found`). A cutoff of ``math.inf`` (replay's
    end) also reads what was written after ``now``."""
    until = math.inf if math.isinf(cutoff) else now
    everything = store.query_group(group, previous - INDEX_LAG_HORIZON, until, now)
    return everything, split_found(everything, previous, band, cutoff)


def split_found(found: list[Item], previous: float, band: Band, cutoff: float) -> Found:
    """Split a group query from ``previous - INDEX_LAG_HORIZON`` (pure)."""
    earlier = [i for i in found if float(i[GROUP_AT]) <= previous]
    late: list[Item] = []
    unnamed = 0
    if band.complete:
        known = set(band.keys)
        late = [i for i in earlier if str(i["pk"]) not in known]
    else:
        unnamed = max(0, len(earlier) - band.count)
    ready = [i for i in found if previous < float(i[GROUP_AT]) <= cutoff]
    settling = any(float(i[GROUP_AT]) > cutoff for i in found)
    return Found(late, unnamed, ready, settling, earlier)


def settle(store: StateStore, key: str, item: Item, now: float, next_due: float | None) -> None:
    """Move the item's due time on (or out), unless someone moved it meanwhile."""
    with contextlib.suppress(ConditionFailed):
        if next_due is None:
            store.update(
                key, now, remove=[DUE_PK, DUE_AT], condition=Compare(DUE_AT, "=", item[DUE_AT])
            )
        else:
            store.update(
                key,
                now,
                set_values=due_mark(next_due),
                condition=Compare(DUE_AT, "=", item[DUE_AT]),
            )


def next_look(settings: Settings, now: float, since: float, settling: bool) -> float | None:
    """After a look that merged nothing: again once the settling entries have settled, else a
    last look a horizon after ``since`` (the last cutoff, or when the group's entries were due
    to be written), for entries the index shows late; else none."""
    if settling:
        return now + settings.settle_seconds
    last = since + INDEX_LAG_HORIZON + settings.settle_seconds
    return last if now < last else None


def lag_caught(metrics: Metrics, key: str, count: int) -> None:
    metrics.count("IndexLagCaught", count)
    logger.warning("%s: %d group index entries showed up after their look; merged now", key, count)


def rule_of(rules: RuleSet, rule_id: str, key: str) -> Rule:
    """The rule a stored item names; a rule this deployment does not know is parked."""
    try:
        return rules.get(rule_id)
    except KeyError as exc:
        raise UnknownReferenceError(f"{key}: {exc}") from exc


def version_is(version: int) -> Compare:
    """The item still has the version that was read (version 0: never versioned)."""
    return Compare(VERSION, "=", version, or_missing=version == 0)
