"""The alerting decisions, as pure functions of what was read (no I/O, no clock, no AWS SDK).

Times are epoch seconds. ``t`` is the event time (what windows and bursts are about); ``now`` is
the processing time (what leases, rate limits and due times are about). In replay both are the
event time. The service (:mod:`chalicelib.pipeline.events`, :mod:`chalicelib.pipeline.admission`,
:mod:`chalicelib.pipeline.scheduler`) reads items, calls these, and writes the outcome with one
conditional or atomic request per item.

Timelines (defaults):

* Event claim. EventBridge retries a delivery for up to 24 hours and Lambda's asynchronous
  invocation keeps an event up to 6 hours, so a claim is remembered for 48 hours::

      claim (processing, lease 90 s) -> decision saved (decided) -> each output confirms -> done

  A second delivery while the lease runs is IN_PROGRESS (the handler raises, Lambda retries
  later); after ``done`` it is a DUPLICATE; once the lease ran out, a ``processing`` claim is
  decided again (every step is idempotent per eventID) and a ``decided`` one only delivers what
  no output confirmed.
* Incident window (15 min)::

      t0 first event: ALERT; the incident item points at its claim (window [t0, t0+15m))
      repeats: counted on their own claims, in the window's group; no shared write
      window end + settle: the scheduler merges the group into one summary on the leader's claim
      a repeat processed after the window ended asks for another look (a late batch)

  ``settle`` (the lease) bounds how late a claim written before ``cutoff`` can become visible:
  longer than the Lambda timeout plus the index's propagation.
* Failures per principal: recent failures (``failures``, deduplicated on read) and one escalation
  per burst: N within M escalates once; ``escalated_until`` suppresses the rest of the burst and
  ``escalated_by`` lets the deciding event decide the same again when it is retried.
* Rate limits: fixed-window counters (one atomic add each): ``N per M minutes`` per principal and
  per topic. Once the topic's window is full, the rule goes into storm mode: its rate-limited
  notifications are held without taking tokens, a digest goes out every storm period while holds
  continue, and a final one when the rule has been quiet for a period.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from .documents import ClaimStatus, EventClaim, Held, PrincipalFailures, failure_entry

#: How long an incident's items outlive its window, so a late summary can still be delivered.
INCIDENT_GRACE = 2 * 24 * 3600.0
#: Keep the last failures of a principal up to this many (enough for both escalation checks).
KEEP_FAILURES = 60


# --- exactly once per event ------------------------------------------------------------------


class Claim(enum.Enum):
    NEW = "new"
    """First delivery (or a takeover after a crashed attempt's lease ran out): decide."""
    IN_PROGRESS = "in_progress"
    """Another invocation is processing it right now: retry later."""
    PENDING = "pending"
    """Decided, but not every output confirmed: deliver the rest."""
    DUPLICATE = "duplicate"
    """Fully handled before: do nothing."""


def claim_outcome(existing: EventClaim | None, now: float) -> Claim:
    """What a delivery finds when its claim already exists (``existing``; None: absent)."""
    if existing is None:
        return Claim.NEW
    if existing.status is ClaimStatus.DONE:
        return Claim.DUPLICATE
    if existing.lease_until > now:
        # Someone is deciding or delivering right now: doing it in parallel publishes twice.
        return Claim.IN_PROGRESS
    if existing.status is ClaimStatus.DECIDED:
        return Claim.PENDING
    return Claim.NEW


# --- incidents ---------------------------------------------------------------------------------


def window_for(t: float, minutes: float) -> tuple[float, float]:
    return t, t + minutes * 60.0


def incident_expiry(window_end: float, now: float) -> float:
    # Windows follow event time; retention follows processing time (a late delivery of an old
    # event must still find its incident), whichever is later.
    return max(window_end, now) + INCIDENT_GRACE


@dataclass(frozen=True)
class Repeats:
    """What the repeats of a window add up to (exact count; ids capped by the caller)."""

    count: int
    first: float
    last: float
    event_ids: tuple[str, ...]
    written_until: float
    """The latest processing time among them (the next batch starts after it)."""


def merge_repeats(repeats: Iterable[tuple[float, str, float]], limit: int) -> Repeats | None:
    """Merge ``(event time, eventID, written at)`` of a window's repeats (None: no repeats)."""
    items = sorted(set(repeats))
    if not items:
        return None
    ids = tuple(event_id for _, event_id, _ in items[:limit])
    return Repeats(
        count=len({event_id for _, event_id, _ in items}),
        first=items[0][0],
        last=items[-1][0],
        event_ids=ids,
        written_until=max(at for _, _, at in items),
    )


# --- failures per principal: brute force / MFA fatigue ----------------------------------------


@dataclass(frozen=True)
class Burst:
    in_window: int
    event_ids: tuple[str, ...]
    escalate: bool
    start: float
    """The time of the burst's first failure."""
    until: float
    """The end of the suppression this burst sets (its last failure + the window)."""


def brute_force_burst(
    history: PrincipalFailures, event_id: str, t: float, count: int, window: float
) -> Burst:
    """Does this failure complete ``count`` failures within ``window`` seconds, for the first time
    in its burst?

    Deliveries arrive out of order, so the check is not "the ``count`` failures before this one"
    but "any ``count`` consecutive failures, this one among them, spanning less than ``window``".
    One escalation per burst: a burst that starts before ``escalated_until`` is the same burst; the
    event recorded as ``escalated_by`` decides the same again when it is retried.
    """
    events = sorted({*history.failures, (t, event_id)})
    index = events.index((t, event_id))
    burst: list[tuple[float, str]] = []
    for start in range(max(0, index - count + 1), index + 1):
        run = events[start : start + count]
        if len(run) == count and run[-1][0] - run[0][0] < window:
            burst = [e for e in events if run[0][0] <= e[0] < run[0][0] + window]
            break
    if not burst:
        return Burst(0, (), False, t, history.escalated_until)
    until = max(history.escalated_until, burst[-1][0] + window)
    escalate = history.escalated_by == event_id or burst[0][0] >= history.escalated_until
    return Burst(len(burst), tuple(e[1] for e in burst), escalate, burst[0][0], until)


def failures_between(history: PrincipalFailures, since: float, until: float) -> tuple[str, ...]:
    """The failure event ids in ``(since, until]`` (MFA fatigue: failures before a success)."""
    return tuple(event_id for t, event_id in history.failures if since < t <= until)


def fatigue_rechecks(
    history: PrincipalFailures, t: float, count: int, window: float
) -> tuple[str, ...]:
    """The successes (their claim keys) that a failure at ``t`` may make an MFA fatigue success:
    those it precedes within ``window``, with at least ``count`` failures before them. A
    success processed before (some of) its failures is re-checked by them, so the escalation
    does not depend on the order in which the events are processed."""
    return tuple(
        key
        for s_t, key in history.successes
        if s_t - window < t <= s_t and len(failures_between(history, s_t - window, s_t)) >= count
    )


def late_fatigue_failures(
    history: PrincipalFailures,
    reported: Sequence[tuple[float, str]],
    t: float,
    window: float,
    counted: Sequence[str],
) -> tuple[str, ...]:
    """The failures before a success at ``t`` (within ``window``) that its MFA fatigue
    escalation has not counted: processed after it was decided (a delivery retried by Lambda,
    a parked event). They are found in the principal's failures and in those ``reported`` on
    the success by their re-checks (which outlive the principal's item). A correction counts
    them, so the escalation and its corrections add up to the same total whatever the order in
    which the events were processed."""
    known = set(counted)
    found = sorted({*history.failures, *reported})
    late = (e for at, e in found if t - window < at <= t and e not in known)
    return tuple(dict.fromkeys(late))


def failures_to_keep(history: PrincipalFailures, now_t: float, horizon: float) -> list[str]:
    """The trimmed failure list: the last :data:`KEEP_FAILURES` within ``horizon``, each with
    its source IP."""
    recent = [(t, e) for t, e in history.failures if t > now_t - horizon]
    return [failure_entry(t, e, history.failure_ips.get(e, "")) for t, e in recent[-KEEP_FAILURES:]]


class SuccessEscalation(enum.Enum):
    """What a successful sign-in after failed MFA steps of the same principal escalates to."""

    NONE = "none"
    FATIGUE = "fatigue"
    """At least K failures within T before it (``MFAWATCH_FATIGUE_SUCCESS``), all from its own
    address."""
    TAKEOVER = "takeover"
    """At least N failures within M before it from *other* IPs than the success's
    (``MFAWATCH_TAKEOVER``): the factor failed at one address, the sign-in succeeded at
    another. It wins when MFA fatigue applies too."""


@dataclass(frozen=True)
class SuccessCheck:
    """The escalation of one success, with the failures it names."""

    kind: SuccessEscalation
    failures: tuple[str, ...]
    """The failures it follows: from other IPs within the takeover window (takeover), within
    the fatigue window (fatigue)."""
    other_ips: tuple[str, ...] = ()
    """The other IPs (takeover), first seen first."""
    fatigue: tuple[str, ...] = ()
    """The failures within the fatigue window when they reach its threshold (either kind): a
    takeover says it meets that threshold too, and stands in for the fatigue escalation."""


def success_escalation(
    history: PrincipalFailures,
    t: float,
    source_ip: str,
    fatigue: tuple[int, float],
    takeover: tuple[int, float],
) -> SuccessCheck:
    """Decide a success at ``t`` from ``source_ip`` (``fatigue``/``takeover``: count, seconds).

    Both checks only grow with the failures known, so a failure processed after the success
    can only turn nothing into an escalation, never take one back; and one success escalates
    once (its claim). When both apply, the takeover wins and says that the fatigue threshold is
    met too: a success from an address where the MFA step never failed is the more specific
    finding, and it is the one decided whichever arrives first, the success or its failures
    (the first failure from another IP makes it; fatigue needs the K-th). A failure without a
    recorded IP (written before IPs were kept, or none in the event) is never "another IP";
    neither is any IP when the success has none."""
    f_count, f_window = fatigue
    k_count, k_window = takeover
    in_fatigue = failures_between(history, t - f_window, t)
    reached = in_fatigue if len(in_fatigue) >= f_count else ()
    other = tuple(
        event_id
        for ft, event_id in history.failures
        if t - k_window <= ft < t and _other_ip(history.failure_ips.get(event_id, ""), source_ip)
    )
    if len(other) >= k_count:
        ips = _ips_other_than(history, other, source_ip)
        return SuccessCheck(SuccessEscalation.TAKEOVER, other, ips, reached)
    if reached:
        return SuccessCheck(SuccessEscalation.FATIGUE, reached, fatigue=reached)
    return SuccessCheck(SuccessEscalation.NONE, ())


def _other_ip(failure_ip: str, success_ip: str) -> bool:
    return bool(failure_ip) and bool(success_ip) and failure_ip != success_ip


def _ips_other_than(
    history: PrincipalFailures, failures: tuple[str, ...], source_ip: str
) -> tuple[str, ...]:
    """The IPs of ``failures`` other than ``source_ip``, first seen first."""
    ips = (history.failure_ips.get(e, "") for e in failures)
    return tuple(dict.fromkeys(ip for ip in ips if ip and ip != source_ip))


def entries_to_keep(
    entries: Sequence[tuple[float, str]], now_t: float, horizon: float
) -> list[str]:
    """A trimmed list of ``(time, name)`` entries: the last :data:`KEEP_FAILURES` within
    ``horizon`` (failures, successes)."""
    recent = [(t, e) for t, e in entries if t > now_t - horizon]
    return [failure_entry(t, e) for t, e in recent[-KEEP_FAILURES:]]


# --- rate limits and storms ------------------------------------------------------------------


def rate_slot(now: float, period: float) -> int:
    """The fixed window ``now`` falls in (rate counters are kept per window)."""
    return int(now // period)


@dataclass(frozen=True)
class StormStats:
    """A storm digest's content: exact counts, bounded lists."""

    count: int
    notifications: int
    event_ids: tuple[str, ...]
    principals: dict[str, int]
    ips: dict[str, int]
    accounts: dict[str, int]
    regions: dict[str, int]
    principal_types: dict[str, int]
    escalated: dict[str, int]
    first: float
    last: float
    suppressed: dict[str, int] = field(default_factory=dict)
    """Events held by each suppression (by id), within ``count``."""
    suppressed_escalations: dict[str, int] = field(default_factory=dict)
    """Escalations held by each suppression (by id), within ``escalated``."""


def merge_held(held: Sequence[Held], limit: int) -> StormStats | None:
    """Merge held notifications into one digest (None when nothing was held).

    Escalations cover events that alerts and summaries count already: they are tallied apart so
    the digest's count stays the exact number of events it accounts for.
    """
    if not held:
        return None
    counted = [h for h in held if h.kind != "escalation"]

    def tally(values: Iterable[tuple[str, int]]) -> dict[str, int]:
        counter: Counter[str] = Counter()
        for name, n in values:
            counter[name] += n
        return dict(counter)

    ids: list[str] = []
    for h in counted:
        ids.extend(h.event_ids[: max(0, limit - len(ids))])
    return StormStats(
        count=sum(h.count for h in counted),
        notifications=len(held),
        event_ids=tuple(ids),
        principals=tally((h.principal, h.count) for h in counted),
        ips=tally((h.source_ip, h.count) for h in counted),
        accounts=tally((h.account, h.count) for h in counted),
        regions=tally((h.region, h.count) for h in counted),
        principal_types=tally((h.principal_type, h.count) for h in counted),
        escalated=tally((h.principal, 1) for h in held if h.kind == "escalation"),
        first=min(h.first for h in held),
        last=max(h.last for h in held),
        suppressed=tally((h.suppressed_by, h.count) for h in counted if h.suppressed_by),
        suppressed_escalations=tally(
            (h.suppressed_by, 1) for h in held if h.kind == "escalation" and h.suppressed_by
        ),
    )


def held_growth(recorded: int, recorded_ids: Iterable[str], held: Held) -> Held | None:
    """What a held notification adds to the ``recorded`` count its held records already give
    (None: nothing). A held summary rebuilt after a crash covers the same repeats and maybe
    more, never fewer: the difference is recorded apart, so what the storm digest counts only
    grows and never counts an event twice."""
    if held.count <= recorded:
        return None
    known = set(recorded_ids)
    return replace(
        held,
        count=held.count - recorded,
        event_ids=tuple(e for e in held.event_ids if e not in known),
    )


# --- heartbeats --------------------------------------------------------------------------------


def heartbeat_overdue(last_seen: float, missing_reported: bool, now: float, overdue: float) -> bool:
    """Report an account x Region whose heartbeat stopped, once per outage."""
    return not missing_reported and now >= last_seen + overdue
