"""The scheduler (the per-minute handler; replay runs it at virtual times): what falls due.

Due items, each handled on its own (a failure is logged, counted as ``SchedulerErrors`` and retried
at the next run; the other items proceed):

* an event claim whose delivery did not finish (lease ran out): deliver what no output confirmed;
* a success escalated for MFA fatigue, once Lambda's retries are over and after each failure
  processed later: correct its count (:meth:`events.EventHandler.fatigue_look`);
* a leading event whose window ended: merge its window's repeats into a summary (a "look"); a
  look that finds repeats still settling looks again, and a repeat processed after the window
  ended asks for a look itself, so late repeats make another batch instead of being lost;
* a rule's storm: merge its held notifications into a digest, keep or end storm mode;
* a heartbeat that is overdue: report the account x Region missing, once.

Stored state that names a rule or output this deployment does not know (renamed, removed) is
reported (``Parked`` metric, an error log naming the item) and taken out of the due index instead
of failing every run. Expired items still in the index (TTL deletion lags) are taken out too.

``settle`` (``Settings.settle_seconds``) is how long a written item may take to become visible to
a look: longer than the Lambda timeout (a write in flight lands within it) plus the index's
propagation. A look merges what was written up to ``now - settle``.

Late index entries. The ``group`` index is eventually consistent: its entries usually appear within
a second, but AWS does not bound the delay
(https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/HowItWorks.ReadConsistency.html),
and an entry that shows up after the look that cut past it used to be lost. So each look keeps a
*band*: which entries it has counted among those written in the :data:`INDEX_LAG_HORIZON` seconds
before its cutoff (keys, and their number; both on the base-table item that owns the group, read
consistently). The next look queries from ``cutoff - horizon``, compares what it finds in the band
with what the band says was counted, and merges the difference into its batch (``IndexLagCaught``);
the last look of a window or storm comes a horizon after its last cutoff, so an entry up to
:data:`INDEX_LAG_HORIZON` late is still counted. A late entry that cannot be named (the band holds
more than it can list) is still counted in a summary; in a storm digest it is reported
(``IndexLagUncounted``, an error log) rather than merged blind. A per-repeat counter would catch
any delay, but costs a write per repeat that the request budget (alert 8, repeat 4) does not have;
the band costs the scheduler one more query per window.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from .constants import HEARTBEAT_OVERDUE_SECONDS
from .decisions import Repeats, heartbeat_overdue, merge_held, merge_repeats, rate_slot
from .delivery import RATE_KEY, ServicePart, storm_key
from .documents import (
    HELD_RETENTION,
    MAX_STORED_LIST,
    OWNER,
    VERSION,
    ClaimStatus,
    EventClaim,
    Heartbeat,
    Outbox,
    StormState,
    WindowRef,
    ended_storms,
    held_of,
    stale_counters,
    storm_attribute,
    window_attribute,
)
from .errors import MfawatchError, PublishError, UnknownReferenceError
from .events import EventHandler, escalation_principal, principal_key
from .notifications import (
    Covered,
    Notification,
    expiry_notice,
    heartbeat_notice,
    storm_digest_for,
    summary_for,
    suppressed_clause,
)
from .rules import HEARTBEAT_RULE, Rule
from .state import (
    DUE_AT,
    DUE_PK,
    EXPIRES_AT,
    GROUP_AT,
    Absent,
    AllOf,
    Compare,
    ConditionFailed,
    Item,
    KeyKind,
    due_mark,
    key_kind,
    key_parts,
    make_key,
)
from .suppressions import SUPPRESSION_RULE, Seen

logger = logging.getLogger(__name__)

#: How many forced runs ``flush`` makes at most (closing may hold summaries into storms).
FLUSH_ROUNDS = 8
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


#: Seconds a run keeps in hand when it stops taking due keys (at most a third of the time it had
#: at its start): one key's work is a few requests, each bounded by the clients' timeouts
#: (app.CLIENT_CONFIG), so it finishes before Lambda's.
SCHEDULER_RESERVE_SECONDS = 10.0

Remaining = Callable[[], float]
"""Seconds left before the invocation's deadline (Lambda: the context's
``get_remaining_time_in_millis() / 1000``)."""


class Scheduler(ServicePart):
    """Runs what is due, the earliest due first, until the invocation's time is nearly up."""

    _tidied: int | None = None
    """The rate window whose tidy this execution environment has done."""
    events: EventHandler | None = None
    """The event handler, which finishes what an event's own invocations could not: a leading
    event still undecided after its lease (set by :class:`service.AlertService`)."""

    _noticed: frozenset[str] = frozenset()
    """Suppressions whose expiry notice this execution environment saw delivered."""

    def tick(
        self, now: datetime, force: bool = False, remaining: Remaining | None = None
    ) -> list[Notification]:
        """Send what is due. ``force`` (end of a replay) closes every window and storm now.

        Keys are taken earliest due first. With ``remaining``, the run stops taking keys when
        fewer than :data:`SCHEDULER_RESERVE_SECONDS` (or a third of the time it started with)
        are left: what it did not reach stays due for the next run (a minute later), with the
        oldest work first again. A big backlog (a password spray over thousands of IPs) is worked
        off over several runs instead of the function timing out in the middle of every run on
        the same keys.

        Raises :class:`errors.PublishError` after trying everything if an output failed.
        """
        clock = now.timestamp()
        sent: list[Notification] = []
        errors: list[str] = []
        reserve = min(SCHEDULER_RESERVE_SECONDS, remaining() / 3) if remaining else 0.0
        try:
            self._tidy_rate(clock)
        except MfawatchError as exc:  # housekeeping: never in the way of due work
            logger.warning("could not tidy the topic's rate item: %s", exc)
        try:
            sent += self._expiry_notices(clock)
        except PublishError as exc:
            errors.append(str(exc))
        except Exception as exc:  # never in the way of due work; tried again at the next run
            self.metrics.count("SchedulerErrors")
            logger.exception("expiry notices not sent yet, tried again next run: %s", exc)
        keys = self.store.due(math.inf if force else clock, clock)
        for done, key in enumerate(keys):
            if remaining is not None and remaining() < reserve:
                self.metrics.count("SchedulerDeferred", len(keys) - done)
                logger.warning(
                    "scheduler run out of time: %d of %d due keys left for the next run",
                    len(keys) - done,
                    len(keys),
                )
                break
            try:
                sent += self._due(key, clock, force)
            except UnknownReferenceError as exc:
                self._park(key, clock, str(exc))
            except PublishError as exc:
                errors.append(str(exc))
            except Exception as exc:  # one item's fault must not stop the others' run
                self.metrics.count("SchedulerErrors")
                logger.exception("scheduled work on %s failed, retried next run: %s", key, exc)
                if not isinstance(exc, MfawatchError):
                    errors.append(f"{key}: {exc}")
        if errors:
            raise PublishError("; ".join(errors))
        return sent

    def _tidy_rate(self, now: float) -> None:
        """Keep the topic's rate item bounded: every rate window adds a counter attribute and
        every write refreshes its TTL, so without this it grows for as long as the stage runs
        (a counter is removed by the next window's write only when no window was skipped).
        Once per rate window and execution environment: counters of windows before the previous
        one and the flags of ended storms go (a flag is removed only if it did not change)."""
        slot = rate_slot(now, self.settings.topic_rate.seconds)
        if slot == self._tidied:
            return
        self._tidied = slot
        item = self.store.get(RATE_KEY, now)
        if item is None:
            return
        stale = stale_counters(item, slot)
        ended = ended_storms(item, now)
        if not stale and not ended:
            return
        unchanged = tuple(Compare(name, "=", value) for name, value in ended.items())
        with contextlib.suppress(ConditionFailed):
            self.store.update(
                RATE_KEY,
                now,
                remove=[*stale, *ended],
                condition=AllOf(unchanged) if unchanged else None,
            )

    def flush(self, now: datetime) -> list[Notification]:
        """Close everything that is open (replay's end). Held summaries may open a storm, so
        repeat until nothing more comes out."""
        sent: list[Notification] = []
        clock = now.timestamp()
        for _ in range(FLUSH_ROUNDS):
            if not self.store.due(math.inf, clock):
                break
            sent += self.tick(now, force=True)
        return sent

    def _park(self, key: str, now: float, reason: str) -> None:
        self.metrics.count("Parked")
        logger.error("parked %s (not retried): %s", key, reason)
        self.store.update(key, now, set_values={"parked": reason[:500]}, remove=[DUE_PK, DUE_AT])

    def _due(self, key: str, now: float, force: bool) -> list[Notification]:
        kind = key_kind(key)
        item = self.store.get(key, now)
        if item is None:
            # Expired (TTL deletes late) or gone: take it out of the due index.
            with contextlib.suppress(ConditionFailed):
                self.store.update(
                    key, now, remove=[DUE_PK, DUE_AT], condition=Compare(EXPIRES_AT, "<=", now)
                )
            return []
        if DUE_AT not in item:
            # Listed, but no longer due: the index lags the table, or this run's earlier work
            # settled it (an event's delivery finishes its principal's escalation).
            return []
        if kind is KeyKind.EVENT:
            return self._event(key, item, now, force)
        if kind is KeyKind.STORM:
            return self._storm(key, item, now, force)
        if kind is KeyKind.HEARTBEAT:
            return self._heartbeat(key, item, now)
        if kind is KeyKind.CAMPAIGN and self.events is not None:
            return self.events.campaigns.due(key, item, now, force)
        if kind in (KeyKind.PRINCIPAL, KeyKind.CAMPAIGN, KeyKind.NOTICE):
            return self._outbox(key, item, now)
        raise UnknownReferenceError(f"{key}: no scheduled work for items of this kind")

    # --- event claims: redelivery and window summaries -------------------------------------------

    def _event(self, key: str, item: Item, now: float, force: bool) -> list[Notification]:
        claim = EventClaim.from_item(item)
        if claim.status is not ClaimStatus.DONE and claim.lease_until > now and not force:
            return []  # its invocation is still at work; the due time moves on with it
        if (
            self.events is not None
            and claim.status is ClaimStatus.PROCESSING
            and claim.window is None
            and not claim.outbox.entries
        ):
            return self.events.finish_stuck(key, item, now)  # still undecided after its lease
        if claim.outbox.pending():
            return self._redeliver(key, claim, now)
        if claim.fatigue and self.events is not None:
            return self.events.fatigue_look(key, item, now)
        if claim.window is None:
            self._settle(key, item, now, None)
            return []
        return self._look(key, item, claim, now, force)

    def _redeliver(self, key: str, claim: EventClaim, now: float) -> list[Notification]:
        token = uuid.uuid4().hex
        try:  # take the lease so that a Lambda retry does not deliver the same at once
            self.store.update(
                key,
                now,
                set_values={"lease_until": now + self.settings.lease_seconds, OWNER: token},
                condition=Compare("lease_until", "=", claim.lease_until),
            )
        except ConditionFailed as failed:
            if not failed.current or failed.current.get(OWNER) != token:
                return []  # taken by someone else (not our own write, re-sent by botocore)
        finish: Item = {"status": ClaimStatus.DONE.value}
        remove = [DUE_PK, DUE_AT]
        if claim.window is not None or claim.fatigue:
            finish |= due_mark(now)  # look at its window (or its late failures) next
            remove = []
        return self.delivery.deliver(key, claim.outbox, now, finish, remove)

    def _settle(self, key: str, item: Item, now: float, next_due: float | None) -> None:
        """Move the item's due time on (or out), unless someone moved it meanwhile."""
        with contextlib.suppress(ConditionFailed):
            if next_due is None:
                self.store.update(
                    key, now, remove=[DUE_PK, DUE_AT], condition=Compare(DUE_AT, "=", item[DUE_AT])
                )
            else:
                self.store.update(
                    key,
                    now,
                    set_values=due_mark(next_due),
                    condition=Compare(DUE_AT, "=", item[DUE_AT]),
                )

    def _look(
        self, key: str, item: Item, claim: EventClaim, now: float, force: bool
    ) -> list[Notification]:
        window = claim.window
        assert window is not None
        settle = self.settings.settle_seconds
        if not force and now < window.window_end + settle:
            self._settle(key, item, now, window.window_end + settle)
            return []
        cutoff = math.inf if force else now - settle
        band = Band(window.band, window.band_count)
        found = split_found(
            self.store.query_group(
                window.group,
                window.cutoff - INDEX_LAG_HORIZON,
                math.inf if force else now,
                now,
            ),
            window.cutoff,
            band,
            cutoff,
        )
        merged = [*found.late, *found.ready]
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
            self._lag_caught(key, len(found.late) + found.unnamed)
        if repeats is None:
            since = max(window.cutoff, window.window_end)
            self._settle(key, item, now, self._next_look(now, since, found.settling))
            return []
        rule = self._rule(window.rule_id, key)
        summary = self._summary(rule, window, repeats, merged, item, now)
        principal = principal_key(
            window.account, escalation_principal(window.principal_key, window.source_ip)
        )
        admitted = self.delivery.count_principal(principal, now, now + rule.window_minutes * 60.0)
        decided = self.delivery.decide_apart(summary, now, admitted)
        advanced = json.loads(window_attribute(window))
        moved = max(repeats.written_until, window.cutoff) if force else cutoff
        counted = found.band(moved)
        advanced.update(
            cutoff=moved, batch=window.batch + 1, band=counted.keys, band_count=counted.count
        )
        outbox = claim.outbox.with_entries(decided.entries)
        try:
            self.store.update(
                key,
                now,
                set_values={
                    "window": json.dumps(advanced, sort_keys=True, separators=(",", ":")),
                    "status": ClaimStatus.DECIDED.value,
                    "lease_until": now + settle,
                    **outbox.to_item(),
                    **due_mark(now + settle),
                },
                add={VERSION: 1},
                condition=_version(claim.version),
            )
        except ConditionFailed:
            return []  # changed meanwhile: the next run looks again
        # After the summary, one more look (repeats may still be settling; a late one asks).
        finish: Item = {"status": ClaimStatus.DONE.value, **due_mark(now + settle)}
        return self.delivery.deliver(key, outbox, now, finish, [])

    def _summary(
        self,
        rule: Rule,
        window: WindowRef,
        repeats: Repeats,
        merged: list[Item],
        item: Item,
        now: float,
    ) -> Notification:
        """The window's summary, saying which of its repeats a suppression covers (each by its
        own address; they are counted here) and which suppression held its alert. When some
        repeats are not covered but the window's own address is, the summary names theirs, so
        that the suppression does not hold what it does not match."""
        suppressions = self.delivery.suppressions
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
        if not partly or self.delivery.suppression_of(summary, now) is None:
            return summary
        free = sorted({ip for ip in ips.values() if not is_covered(ip)})
        shown = free[0] if len(free) == 1 else f"{len(free)} IPs"
        return summary_for(rule, window, repeats, window.batch + 1, replace(said, source_ip=shown))

    def _next_look(self, now: float, since: float, settling: bool) -> float | None:
        """After a look that merged nothing: again once the settling entries have settled, else
        a last look a horizon after ``since`` (the last cutoff, or when the group's entries were
        due to be written), for entries the index shows late; else none."""
        settle = self.settings.settle_seconds
        if settling:
            return now + settle
        last = since + INDEX_LAG_HORIZON + settle
        return last if now < last else None

    def _lag_caught(self, key: str, count: int) -> None:
        self.metrics.count("IndexLagCaught", count)
        logger.warning(
            "%s: %d group index entries showed up after their look; merged now", key, count
        )

    def _rule(self, rule_id: str, key: str) -> Any:
        try:
            return self.rules.get(rule_id)
        except KeyError as exc:
            raise UnknownReferenceError(f"{key}: {exc}") from exc

    # --- storms ----------------------------------------------------------------------------------

    def _storm(self, key: str, item: Item, now: float, force: bool) -> list[Notification]:
        rule_id = key_parts(key)[0] if key_parts(key) else ""
        rule = self._rule(rule_id, key)
        state = StormState.from_item(item)
        if state.outbox.pending():
            return self.delivery.deliver(key, state.outbox, now, None, [])
        settle = self.settings.settle_seconds
        period = self.settings.topic_rate.seconds
        cutoff = math.inf if force else now - settle
        band = Band.from_item(item)
        everything = self.store.query_group(
            storm_key(rule.id),
            state.cutoff - INDEX_LAG_HORIZON,
            math.inf if force else now,
            now,
        )
        split = split_found(everything, state.cutoff, band, cutoff)
        if split.late:
            self._lag_caught(key, len(split.late))
        if split.unnamed:
            # Held records cannot be merged blind (which are new?): say so, loudly.
            self.metrics.count("IndexLagUncounted", split.unnamed)
            logger.error(
                "%s: %d held records showed up after their digest and cannot be told apart; "
                "they are not in any digest",
                key,
                split.unnamed,
            )
        found = [i for i in everything if float(i[GROUP_AT]) > state.cutoff]
        ready = [*split.late, *split.ready]
        held = [h for i in ready for h in held_of(i)]
        rate = self.store.get(RATE_KEY, now) or {}
        in_storm = float(rate.get(storm_attribute(rule.id), 0.0)) > now and not force
        phase = "held"  # holds of a principal's limit, outside storm mode
        next_due = self._next_look(now, max(state.cutoff, state.opened_at), split.settling)
        last_hold = max([state.last_hold, *(float(i[GROUP_AT]) for i in found)])
        # Quiet for as long as an incident window: the summaries of the storm's incidents come
        # within it, and are held into the storm rather than restarting the alerts.
        quiet = max(period, rule.window_minutes * 60.0)
        if in_storm:
            if now - last_hold < quiet:
                # Holds go on: storm mode lasts past the next digest.
                until = now + period + settle
                self.store.update(RATE_KEY, now, set_values={storm_attribute(rule.id): until})
                next_due, phase = now + period, "ongoing"
            else:
                # Quiet for a period: storm mode ends; one last look for holds still settling.
                self.store.update(RATE_KEY, now, set_values={storm_attribute(rule.id): now})
                next_due, phase = now + settle, "ended"
        stats = merge_held(held, MAX_STORED_LIST)
        if stats is None and phase != "ended":
            self._settle(key, item, now, next_due)
            return []
        last_at = max([state.cutoff, *(float(i[GROUP_AT]) for i in ready)])
        moved = last_at if force else cutoff
        digest = storm_digest_for(
            rule,
            stats,
            state.opened_at,
            state.batch + 1,
            phase,
            quiet_since=last_hold,
            label_of=self.delivery.suppressions.label,
        )
        decided = self.delivery.decide([digest], now)  # a digest is never rate-limited
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
        try:
            self.store.update(
                key,
                now,
                set_values=values,
                add={VERSION: 1},
                condition=_version(state.version),
            )
        except ConditionFailed:
            return []
        finish = due_mark(next_due) if next_due is not None else None
        return self.delivery.deliver(
            key, outbox, now, finish, [] if next_due is not None else [DUE_PK, DUE_AT]
        )

    # --- outboxes kept on a principal's item (escalations) or a notice item --------------------

    def _outbox(self, key: str, item: Item, now: float) -> list[Notification]:
        """Publish what an item's outbox still owes: an escalation its deciding event did not
        get to publish (a principal's item), an expiry notice whose publish failed."""
        outbox = Outbox.from_item(item)
        if outbox.pending():
            return self.delivery.deliver_leased(key, outbox, now)
        self._settle(key, item, now, None)
        return []

    # --- suppressions about to expire ------------------------------------------------------------

    def _expiry_notices(self, now: float) -> list[Notification]:
        """One LOW notice per suppression, :data:`suppressions.NOTICE_DAYS` days before it
        expires, exactly once: a conditional put of the notice's item (per suppression and
        expiry date) carries its outbox, so whoever wins it (or a retry of a put whose reply was
        lost) delivers that outbox, output by output; a publish that failed leaves the item due
        and the next run delivers what did not confirm. Timeline::

            expires - 7 days: first run puts notice#<id>#<date> (absent only) -> publishes
            next runs: item there, nothing pending -> remembered, no more reads here
        """
        sent: list[Notification] = []
        for suppression in self.delivery.suppressions.due_notices(now):
            if suppression.id in self._noticed:
                continue
            key = make_key(KeyKind.NOTICE, suppression.id, suppression.expires.isoformat())
            notice = expiry_notice(SUPPRESSION_RULE, suppression, now)
            try:
                decided = self.delivery.decide([notice], now)  # never held: not rate-limited
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

    # --- heartbeats -----------------------------------------------------------------------------

    def _heartbeat(self, key: str, item: Item, now: float) -> list[Notification]:
        heartbeat = Heartbeat.from_item(item)
        if heartbeat.outbox.pending():
            return self.delivery.deliver(key, heartbeat.outbox, now)
        if not heartbeat_overdue(
            heartbeat.last_seen, heartbeat.missing_reported, now, HEARTBEAT_OVERDUE_SECONDS
        ):
            self._settle(key, item, now, heartbeat.last_seen + HEARTBEAT_OVERDUE_SECONDS)
            return []
        notice = heartbeat_notice(HEARTBEAT_RULE, _heartbeat_view(heartbeat), now, missing=True)
        decided = self.delivery.decide([notice], now)
        outbox = heartbeat.outbox.with_entries(decided.entries)
        try:
            self.store.update(
                key,
                now,
                set_values={"missing_reported": True, **outbox.to_item(), **due_mark(now)},
                add={VERSION: 1},
                condition=Compare(
                    VERSION, "=", heartbeat.version, or_missing=heartbeat.version == 0
                ),
            )
        except ConditionFailed:
            return []
        return self.delivery.deliver(key, outbox, now)


def _heartbeat_view(heartbeat: Heartbeat) -> Mapping[str, Any]:
    return {
        "account": heartbeat.account,
        "region": heartbeat.region,
        "last_seen": heartbeat.last_seen,
        "missing_since": heartbeat.missing_since,
    }


def _version(version: int) -> Compare:
    """The item still has the version that was read (version 0: never versioned)."""
    return Compare(VERSION, "=", version, or_missing=version == 0)
