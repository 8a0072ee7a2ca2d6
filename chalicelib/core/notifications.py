"""Decisions become notifications: what will be published, before any rendering or I/O."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .records import SignInRecord, parse_event
from .rules import Rule, RuleSet

if TYPE_CHECKING:
    from .decisions import Repeats, StormStats
    from .documents import WindowRef
    from .suppressions import Suppression

KIND_ALERT = "alert"
KIND_SUMMARY = "summary"
KIND_STORM = "storm"
KIND_ESCALATION = "escalation"
KIND_HEARTBEAT = "heartbeat"
KIND_NOTICE = "notice"
"""About mfawatch's own configuration: a suppression about to expire."""
KINDS = (KIND_ALERT, KIND_SUMMARY, KIND_STORM, KIND_ESCALATION, KIND_HEARTBEAT, KIND_NOTICE)


@dataclass(frozen=True)
class Notification:
    """One message to publish. Text fields are raw (attacker-controlled); renderers sanitize."""

    kind: str
    rule: Rule
    severity: str
    title: str
    dedup_key: str
    account: str
    region: str
    principal: str
    principal_type: str
    source_ip: str
    event_ids: tuple[str, ...]
    count: int
    first_seen: datetime
    last_seen: datetime
    record: SignInRecord | None = None
    """The event that triggered it (alerts and escalations)."""
    summary: str = ""
    """For summaries, digests and escalations: one sentence on what the notification covers."""
    notes: tuple[str, ...] = field(default=())
    """Operational remarks shown in the message, e.g. ``dedup unavailable``."""
    id: str = ""
    """Deterministic identity (``alert:<rule>:<eventID>``, ...): the same decision, the same id."""

    @property
    def rule_id(self) -> str:
        return self.rule.id

    def to_state(self) -> dict[str, Any]:
        """A JSON document that :func:`notification_from_state` turns back into this."""
        document = self.to_json()
        document["id"] = self.id
        document["first_seen"] = self.first_seen.timestamp()
        document["last_seen"] = self.last_seen.timestamp()
        if self.record is not None:
            document["raw"] = dict(self.record.raw)
            document["principal_key"] = self.record.principal_key
        return document

    def to_json(self) -> dict[str, Any]:
        """The stable JSON view used by ``replay --output jsonl`` (raw, unsanitized values)."""
        return {
            "kind": self.kind,
            "rule": self.rule.id,
            "severity": self.severity,
            "title": self.title,
            "dedup_key": self.dedup_key,
            "account": self.account,
            "region": self.region,
            "principal": self.principal,
            "principal_type": self.principal_type,
            "source_ip": self.source_ip,
            "event_ids": list(self.event_ids),
            "count": self.count,
            "first_seen": _iso(self.first_seen),
            "last_seen": _iso(self.last_seen),
            "summary": self.summary,
            "notes": list(self.notes),
        }


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def notification_from_state(document: Mapping[str, Any], rules: RuleSet) -> Notification:
    """Rebuild a notification stored in an outbox (the inverse of ``Notification.to_state``)."""
    record = None
    if "raw" in document:
        record = replace(
            parse_event(document["raw"]),
            principal=document["principal"],
            principal_key=document.get("principal_key", document["principal"]),
            principal_type=document["principal_type"],
        )
    return Notification(
        kind=document["kind"],
        rule=rules.get(document["rule"]),
        severity=document["severity"],
        title=document["title"],
        dedup_key=document["dedup_key"],
        account=document["account"],
        region=document["region"],
        principal=document["principal"],
        principal_type=document["principal_type"],
        source_ip=document["source_ip"],
        event_ids=tuple(document["event_ids"]),
        count=int(document["count"]),
        first_seen=datetime.fromtimestamp(float(document["first_seen"]), UTC),
        last_seen=datetime.fromtimestamp(float(document["last_seen"]), UTC),
        record=record,
        summary=document.get("summary", ""),
        notes=tuple(document.get("notes", ())),
        id=document.get("id", ""),
    )


def _clock(moment: datetime, other: datetime) -> str:
    """HH:MM:SS, with the date when the span crosses midnight."""
    return moment.strftime("%H:%M:%S" if moment.date() == other.date() else "%Y-%m-%d %H:%M:%S")


def _at(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _between(first: datetime, last: datetime) -> str:
    return f"between {_clock(first, last)} and {_clock(last, first)} UTC"


def _listed(ids: tuple[str, ...], count: int) -> tuple[str, ...]:
    """The note on a notification that lists fewer event ids than it counts."""
    return (f"event ids listed: the first {len(ids)} of {count}",) if len(ids) < count else ()


def alert_for(rule: Rule, record: SignInRecord, notes: tuple[str, ...] = ()) -> Notification:
    """The leading alert of an incident: one event, rendered in full."""
    return Notification(
        id=f"alert:{rule.id}:{record.event_id}",
        kind=KIND_ALERT,
        rule=rule,
        severity=rule.severity,
        title=rule.render_title(record),
        dedup_key=rule.dedup_key_of(record),
        account=record.account,
        region=record.region,
        principal=record.principal,
        principal_type=record.principal_type,
        source_ip=record.source_ip,
        event_ids=(record.event_id,),
        count=1,
        first_seen=record.event_time,
        last_seen=record.event_time,
        record=record,
        notes=notes,
    )


@dataclass(frozen=True)
class Covered:
    """What an incident window's summary says a suppression covers among what it counts."""

    repeats: str = ""
    """:func:`suppressed_clause` of the repeats a suppression covers (counted here all the
    same)."""
    leader: str = ""
    """The suppression (``id (owner, reason)``) that held the window's alert."""
    source_ip: str = ""
    """The address to name when it is not the window's (repeats of a rule whose key leaves the
    IP out, some of them suppressed)."""


def summary_for(
    rule: Rule, window: WindowRef, repeats: Repeats, batch: int, covered: Covered = Covered()
) -> Notification:
    """The trailing summary of an incident window: its repeats, exact count, first/last time,
    and what of it a suppression covers (``covered``)."""
    count = repeats.count
    first, last = _at(repeats.first), _at(repeats.last)
    ids = repeats.event_ids
    who, ip = window.principal, covered.source_ip or window.source_ip
    held = (
        f" The alert that opened the window was suppressed by {covered.leader}."
        if covered.leader
        else ""
    )
    these = f" Of these, {covered.repeats}." if covered.repeats else ""
    title = f"{rule.counted(count).replace(' ', ' more ', 1)} for {who} from {ip}"
    return Notification(
        id=f"summary:{rule.id}:{window.dedup_key}:{window.window_start}:{batch}",
        kind=KIND_SUMMARY,
        rule=rule,
        severity=rule.severity,
        title=title,
        dedup_key=window.dedup_key,
        account=window.account,
        region=window.region,
        principal=who,
        principal_type=window.principal_type,
        source_ip=ip,
        event_ids=ids,
        count=count,
        first_seen=first,
        last_seen=last,
        summary=f"{title} {_between(first, last)} (window opened "
        f"{_at(window.window_start):%H:%M:%S})." + these + held,
        notes=_listed(ids, count),
    )


def _top(counts: Mapping[str, int], limit: int = 5) -> str:
    ranked = sorted(counts.items(), key=lambda kv: (-int(kv[1]), kv[0]))[:limit]
    return ", ".join(f"{name or '?'} ({n})" for name, n in ranked)


def _single(counts: Mapping[str, int]) -> str:
    return next(iter(counts)) if len(counts) == 1 else "multiple"


_STORM_LABELS = {
    "ongoing": "Alert storm",
    "ended": "Alert storm ended",
    "held": "Held by rate limit",
}


def storm_digest_for(
    rule: Rule,
    storm: StormStats | None,
    *,
    opened_at: float,
    batch: int,
    phase: str,
    quiet_since: float = 0.0,
    label_of: Callable[[str], str] = str,
) -> Notification:
    """One digest of the notifications a rate limit or a suppression held for a rule.

    ``phase``: ``ongoing`` (storm mode goes on; the next digest follows in a storm period),
    ``ended`` (the rule was quiet long enough: the last digest of the storm; with ``storm`` None
    when nothing was held since the previous digest) or ``held`` (held by a principal's limit
    or a suppression outside storm mode). ``label_of`` names a suppression by its id
    (``id (owner, reason)``). A digest of suppressed notifications only is LOW: an output's
    ``min_severity`` can keep it out.
    """
    quiet = _at(quiet_since or opened_at)
    ending = {
        "ongoing": " The storm goes on: the next digest follows.",
        "ended": f" The storm is over: the rule has been quiet since {quiet:%H:%M:%S} UTC.",
        "held": "",
    }[phase]
    digest = Notification(
        id=f"storm:{rule.id}:{opened_at!r}:{batch}",
        kind=KIND_STORM,
        rule=rule,
        severity=rule.severity,
        title=f"{_STORM_LABELS[phase]}: nothing held since the last digest",
        dedup_key=f"storm:{rule.id}",
        account="multiple",
        region="multiple",
        principal="nobody",
        principal_type="multiple",
        source_ip="none",
        event_ids=(),
        count=0,
        first_seen=quiet,
        last_seen=quiet,
        summary="No notification was held since the last digest." + ending,
    )
    if storm is None:
        return digest
    return _held_digest(digest, storm, phase, ending, label_of)


def _held_digest(
    empty: Notification,
    storm: StormStats,
    phase: str,
    ending: str,
    label_of: Callable[[str], str],
) -> Notification:
    """The digest ``empty`` (its id, rule and dedup key) filled with what ``storm`` held."""
    rule, count, escalated = empty.rule, storm.count, storm.escalated
    label, severity, cause = _STORM_LABELS[phase], rule.severity, "Rate limit reached"
    if phase == "held" and _all_suppressed(storm):
        label, severity, cause = "Suppressed", "LOW", "Suppressed"
    named = storm.principals or escalated
    only = next(iter(named)) if len(named) == 1 else f"{len(named)} principals"
    only_ip = next(iter(storm.ips)) if len(storm.ips) == 1 else f"{len(storm.ips)} IPs"
    what = rule.counted(count) if count else f"{sum(escalated.values())} escalations held"
    first, last = _at(storm.first), _at(storm.last)
    return replace(
        empty,
        severity=severity,
        title=f"{label}: {what} ({only}, {only_ip})" if count else f"{label}: {what} ({only})",
        account=_single(storm.accounts or {"": 0}),
        region=_single(storm.regions or {"": 0}),
        principal=only,
        principal_type=_single(storm.principal_types or {"": 0}),
        source_ip=only_ip,
        event_ids=storm.event_ids,
        count=count,
        first_seen=first,
        last_seen=last,
        summary=_held_sentence(rule, storm, cause, label_of) + ending,
        notes=_listed(storm.event_ids, count),
    )


def _all_suppressed(storm: StormStats) -> bool:
    """Every event and every escalation the digest holds was held by a suppression."""
    return sum(storm.suppressed.values()) == storm.count and sum(
        storm.suppressed_escalations.values()
    ) == sum(storm.escalated.values())


def _held_sentence(
    rule: Rule, storm: StormStats, cause: str, label_of: Callable[[str], str]
) -> str:
    """What a digest held: counts, span, top principals and IPs, escalations, suppressions."""
    principals, ips, escalated = storm.principals, storm.ips, storm.escalated
    sentence = (
        f"{cause}: {storm.notifications} notifications covering {rule.counted(storm.count)} "
        f"were held {_between(_at(storm.first), _at(storm.last))}. "
        f"{len(principals)} distinct principals, {len(ips)} distinct source IPs. "
        f"Top principals: {_top(principals)}. Top source IPs: {_top(ips)}."
    )
    if escalated:
        sentence += (
            f" Also held: {sum(escalated.values())} escalations (brute force / fatigue) for "
            f"{_top(escalated)}."
        )
    if storm.suppressed or storm.suppressed_escalations:
        sentence += " " + suppressed_sentence(storm, label_of)
    return sentence


def suppressed_sentence(storm: StormStats, label_of: Callable[[str], str] = str) -> str:
    """``3 suppressed by pentest-q4 (alice@example.com, external pen test).``, one clause per
    suppression; held escalations are named apart (their events are counted already)."""
    clauses = []
    for suppression_id in sorted({*storm.suppressed, *storm.suppressed_escalations}):
        events = storm.suppressed.get(suppression_id, 0)
        escalations = storm.suppressed_escalations.get(suppression_id, 0)
        plural = "s" if escalations != 1 else ""
        label = label_of(suppression_id)
        if not events:
            clauses.append(f"{escalations} escalation{plural} suppressed by {label}")
            continue
        clause = f"{events} suppressed by {label}"
        if escalations:
            clause += f", with {escalations} escalation{plural}"
        clauses.append(clause)
    return "; ".join(clauses) + "."


def brute_force_for(
    rule: Rule, record: SignInRecord, failures: int, minutes: float, event_ids: tuple[str, ...]
) -> Notification:
    """Escalation: many failed MFA attempts by one principal in a short time."""
    first = record.event_time
    return Notification(
        id=f"escalation:brute-force:{record.account}:{record.principal_key}:{record.event_id}",
        kind=KIND_ESCALATION,
        rule=rule,
        severity="HIGH",
        title=(
            f"Possible MFA brute force / fatigue: {failures} failed MFA attempts for "
            f"{record.principal} in {minutes:g} minutes"
        ),
        dedup_key=f"brute-force:{record.account}|{record.principal_key}",
        account=record.account,
        region=record.region,
        principal=record.principal,
        principal_type=record.principal_type,
        source_ip=record.source_ip,
        event_ids=event_ids,
        count=failures,
        first_seen=first,
        last_seen=first,
        record=record,
        summary=(
            f"{failures} failed MFA attempts for {record.principal} within {minutes:g} minutes "
            f"(latest from {record.source_ip}). Someone who knows the password is guessing "
            "codes or pushing MFA prompts until one is accepted."
        ),
    )


#: The id prefixes of campaign escalations and of their trailing summaries
#: (:mod:`chalicelib.core.campaigns`).
CAMPAIGN_ID_PREFIX = "escalation:campaign"
CAMPAIGN_SUMMARY_ID_PREFIX = "summary:campaign"


def is_campaign(notification: Notification) -> bool:
    """A campaign escalation or its trailing summary: never held in a storm digest by a rate
    limit, since the campaign explains the storm."""
    return notification.id.startswith((CAMPAIGN_ID_PREFIX, CAMPAIGN_SUMMARY_ID_PREFIX))


def suppressed_clause(counts: Mapping[str, int], label_of: Callable[[str], str] = str) -> str:
    """``2 suppressed by pentest-q4 (secops@example.com, external pen test)``, one clause per
    suppression (by id, ``; `` between them); empty when nothing was suppressed."""
    return "; ".join(
        f"{counts[s]} suppressed by {label_of(s)}" for s in sorted(counts) if counts[s]
    )


def _suppressed_members(noun: str, clause: str) -> str:
    return (
        f" Of these {noun}, {clause}: their own alerts are held and counted in their rule's digest."
        if clause
        else ""
    )


def _accounts(shown: tuple[str, ...]) -> list[str]:
    return sorted({m.split("/", 1)[0] for m in shown})


def _short_ip(source_ip: str) -> str:
    """An address as a campaign's text shows it: cut at 64 characters (an attacker's string)."""
    return source_ip if len(source_ip) <= 64 else source_ip[:63] + "…"


def _member_list(shown: tuple[str, ...], members: int) -> str:
    """``111122223333/alice, 111122223333/bob and 3 more. Accounts: 111122223333.``"""
    more = f" and {members - len(shown)} more" if members > len(shown) else ""
    return f"{', '.join(shown)}{more}. Accounts: {', '.join(_accounts(shown))}."


def campaign_for(
    rule: Rule,
    record: SignInRecord,
    *,
    campaign: str,
    severity: str,
    noun: str,
    shown: tuple[str, ...],
    members: int,
    failures: int,
    minutes: float,
    suppressed: str = "",
) -> Notification:
    """Escalation: one source IP failing a sign-in step for ``members`` distinct principals (or
    accounts: ``noun``) within ``minutes``. ``shown``: the first members (``account/principal``,
    or the account for root); ``suppressed``: :func:`suppressed_clause` of the members."""
    return Notification(
        id=f"{CAMPAIGN_ID_PREFIX}:{campaign}:{record.event_id}",
        kind=KIND_ESCALATION,
        rule=rule,
        severity=severity,
        title=_CAMPAIGN_TITLES.get(campaign, "{ip}: {n} {noun} failed within {m:g} minutes").format(
            ip=record.source_ip, n=members, noun=noun, m=minutes
        ),
        dedup_key=f"campaign:{campaign}|{record.source_ip}",
        account=record.account,
        region=record.region,
        principal=f"{members} {noun}",
        principal_type="campaign",
        source_ip=record.source_ip,
        event_ids=(record.event_id,),
        count=failures,
        first_seen=record.event_time,
        last_seen=record.event_time,
        record=record,
        summary=(
            f"{_short_ip(record.source_ip)} failed to sign in as {members} distinct {noun} "
            f"({failures} failures) within {minutes:g} minutes: {_member_list(shown, members)} "
            "One source that knows or guesses the credentials of several identities is a "
            "campaign, not a user who mistyped." + _suppressed_members(noun, suppressed)
        ),
    )


def campaign_summary_for(
    rule: Rule,
    *,
    campaign: str,
    noun: str,
    source_ip: str,
    escalated_by: str,
    shown: tuple[str, ...],
    members: int,
    failures: int,
    first: datetime,
    last: datetime,
    region: str = "",
    suppressed: str = "",
) -> Notification:
    """The trailing summary of a campaign escalation: every member the source IP tried in the
    campaign's window, once the window is over (``escalated_by``: the escalation's event). A
    summary like an incident's, of its rule's severity; its ``count`` is 0, because each
    member's events are counted by that principal's own alerts and summaries (the contract:
    per rule, alerts + summaries + digests add up to the events): the members and attempts are
    in its title and text. ``suppressed``: :func:`suppressed_clause` of the members."""
    ip, accounts = _short_ip(source_ip), _accounts(shown)
    name = _CAMPAIGN_NAMES.get(campaign, campaign)
    return Notification(
        id=f"{CAMPAIGN_SUMMARY_ID_PREFIX}:{campaign}:{escalated_by}",
        kind=KIND_SUMMARY,
        rule=rule,
        severity=rule.severity,
        title=f"{name} from {ip} ended: {members} {noun} tried",
        dedup_key=f"campaign-summary:{campaign}|{source_ip}",
        account=accounts[0] if accounts else "",
        region=region,
        principal=f"{members} {noun}",
        principal_type="campaign",
        source_ip=source_ip,
        event_ids=(),
        count=0,
        first_seen=first,
        last_seen=last,
        summary=(
            f"The campaign from {ip} is over: {members} distinct {noun} tried ({failures} "
            f"first attempts per member and window) {_between(first, last)}: "
            f"{_member_list(shown, members)} The alerts and summaries of each principal count "
            "every failure." + _suppressed_members(noun, suppressed)
        ),
    )


_CAMPAIGN_NAMES = {
    "mfa-spray": "MFA spray",
    "root-across-accounts": "Root sign-in attempts across accounts",
    "password-spray": "Password spray",
}


_CAMPAIGN_TITLES = {
    "mfa-spray": "MFA spray from {ip}: {n} principals failed the MFA step within {m:g} minutes",
    "root-across-accounts": "Root sign-in failed in {n} accounts from {ip} within {m:g} minutes",
    "password-spray": "Password spray from {ip}: wrong passwords for {n} principals within {m:g} "
    "minutes",
}


def takeover_for(
    rule: Rule, record: SignInRecord, failures: tuple[str, ...], minutes: float
) -> Notification:
    """Escalation: an MFA device or password change of a principal shortly after its failed
    MFA step (``record`` is about the changed principal)."""
    return _takeover(
        rule,
        record,
        what=f"{record.event_name} for {record.principal} after {_attempts(len(failures))}",
        failures=failures,
        summary=f"{record.event_name} changed the credentials of {record.principal} (from "
        f"{record.source_ip}) within {minutes:g} minutes after {len(failures)} failed MFA "
        "attempt(s): someone may be replacing the factor they could not pass.",
        event_ids=(*failures, record.event_id),
    )


def _takeover(
    rule: Rule,
    record: SignInRecord,
    *,
    what: str,
    failures: tuple[str, ...],
    summary: str,
    event_ids: tuple[str, ...] | None = None,
) -> Notification:
    """A CRITICAL "Possible account takeover: ``what``" about ``record``'s principal."""
    return _about_success(
        rule,
        record,
        id=f"escalation:takeover:{record.event_id}",
        severity="CRITICAL",
        title=f"Possible account takeover: {what}",
        failures=failures,
        summary=summary,
        dedup="takeover",
        event_ids=event_ids,
    )


def _attempts(n: int) -> str:
    return f"{n} failed MFA attempt{'' if n == 1 else 's'}"


def _ips(ips: tuple[str, ...], limit: int = 5) -> str:
    more = f" and {len(ips) - limit} more" if len(ips) > limit else ""
    return ", ".join(ips[:limit]) + more


def takeover_sign_in_for(
    rule: Rule,
    record: SignInRecord,
    failures: tuple[str, ...],
    other_ips: tuple[str, ...],
    minutes: float,
    *,
    fatigue: tuple[int, float] | None = None,
) -> Notification:
    """Escalation: a successful sign-in from another address than the principal's failed MFA
    steps shortly before. ``failures``: the failures from ``other_ips``; ``fatigue`` (failures,
    minutes) when the MFA fatigue threshold is met too: this notification stands for both."""
    also = (
        f" It also meets the MFA fatigue threshold ({fatigue[0]} failed MFA attempts within "
        f"{fatigue[1]:g} minutes): this is the one notification for both."
        if fatigue
        else ""
    )
    attempts = _attempts(len(failures))
    where = other_ips[0] if len(other_ips) == 1 else f"{len(other_ips)} other IPs"
    return _takeover(
        rule,
        record,
        what=f"{record.principal} signed in from {record.source_ip} after {attempts} from {where}",
        failures=failures,
        summary=f"{record.event_name} {record.event_id} by {record.principal} succeeded from "
        f"{record.source_ip} within {minutes:g} minutes after {attempts} from another "
        f"address ({_ips(other_ips)}): the MFA step failed at one address and the sign-in "
        "succeeded at another. Someone who knows the password may have got past MFA "
        "elsewhere (a phished code or session), or the user signed in while someone else "
        f"was failing.{also}",
    )


FATIGUE_ID_PREFIX = "escalation:fatigue-success"
#: The id part of a correction to an MFA fatigue success: ``<escalation id>:late:<counted>``.
FATIGUE_LATE = ":late:"


def is_fatigue_correction(notification: Notification) -> bool:
    """A correction to an MFA fatigue success: it is admitted and suppressed as its CRITICAL
    escalation is (never rate-limited), so the two always reach the same outputs."""
    return notification.id.startswith(FATIGUE_ID_PREFIX) and FATIGUE_LATE in notification.id


def fatigue_success_for(
    rule: Rule, record: SignInRecord, failures: tuple[str, ...], minutes: float
) -> Notification:
    """Escalation: a successful sign-in right after repeated MFA failures, none from another
    address (then it is a takeover, :func:`takeover_sign_in_for`). Names the success."""
    return _about_success(
        rule,
        record,
        id=f"{FATIGUE_ID_PREFIX}:{record.event_id}",
        severity="CRITICAL",
        title=(
            f"MFA fatigue success: {record.principal} signed in from {record.source_ip} after "
            f"{len(failures)} failed MFA attempts"
        ),
        failures=failures,
        summary=(
            f"Successful sign-in {record.event_id} by {record.principal} followed "
            f"{len(failures)} failed MFA attempts within {minutes:g} minutes."
        ),
    )


def fatigue_correction_for(
    rule: Rule, record: SignInRecord, counted: int, late: tuple[str, ...], minutes: float
) -> Notification:
    """The trailing correction of an MFA fatigue success (``record``): ``late`` failed MFA
    attempts before the sign-in were processed after the escalation, which said ``counted``.
    HIGH, so that a success has exactly one CRITICAL; its id names the count it corrects, so
    each correction is decided once whoever retries it."""
    total = counted + len(late)
    more = f"{len(late)} more failed MFA attempt{'' if len(late) == 1 else 's'}"
    return _about_success(
        rule,
        record,
        id=f"{FATIGUE_ID_PREFIX}:{record.event_id}{FATIGUE_LATE}{counted}",
        severity="HIGH",
        title=(
            f"MFA fatigue success of {record.principal}: {more} before the sign-in ({total} in all)"
        ),
        failures=late,
        summary=(
            f"Correction to the MFA fatigue success {record.event_id}: {more} before it "
            f"reached mfawatch after the escalation was sent (a delivery retried late). The "
            f"successful sign-in by {record.principal} followed {total} failed MFA attempts "
            f"within {minutes:g} minutes, not {counted}."
        ),
    )


def _about_success(
    rule: Rule,
    record: SignInRecord,
    *,
    id: str,
    severity: str,
    title: str,
    failures: tuple[str, ...],
    summary: str,
    dedup: str = "fatigue-success",
    event_ids: tuple[str, ...] | None = None,
) -> Notification:
    """An escalation about one principal's success or credential change (an MFA fatigue
    success or its correction, a takeover), counting ``failures``, grouped under
    ``<dedup>:<account>|<principal>``; ``event_ids``: the success first, unless given."""
    return Notification(
        id=id,
        kind=KIND_ESCALATION,
        rule=rule,
        severity=severity,
        title=title,
        dedup_key=f"{dedup}:{record.account}|{record.principal_key}",
        account=record.account,
        region=record.region,
        principal=record.principal,
        principal_type=record.principal_type,
        source_ip=record.source_ip,
        event_ids=(record.event_id, *failures) if event_ids is None else event_ids,
        count=len(failures),
        first_seen=record.event_time,
        last_seen=record.event_time,
        record=record,
        summary=summary,
    )


def heartbeat_notice(
    rule: Rule, heartbeat: Mapping[str, Any], now: float, missing: bool
) -> Notification:
    """An account x Region stopped (or resumed) forwarding: its heartbeat is overdue (or back)."""
    account, region = str(heartbeat["account"]), str(heartbeat["region"])
    last = _at(float(heartbeat.get("missing_since") or heartbeat["last_seen"]))
    if missing:
        title = f"Sign-in events from account {account} {region} stopped arriving"
        sentence = (
            f"No heartbeat from account {account} in {region} since {last:%Y-%m-%d %H:%M:%S} UTC: "
            "its forwarding rules, role or the central bus policy may be broken, so failed MFA "
            "sign-ins there would go unnoticed."
        )
    else:
        title = f"Sign-in events from account {account} {region} arrive again"
        sentence = (
            f"The heartbeat from account {account} in {region} is back "
            f"(missing since {last:%Y-%m-%d %H:%M:%S} UTC)."
        )
    moment = _at(now)
    return Notification(
        id=f"heartbeat:{'missing' if missing else 'recovered'}:{account}:{region}:{now}",
        kind=KIND_HEARTBEAT,
        rule=rule,
        severity=rule.severity if missing else "LOW",
        title=title,
        dedup_key=f"heartbeat:{account}|{region}",
        account=account,
        region=region,
        principal="mfawatch heartbeat",
        principal_type="Heartbeat",
        source_ip="",
        event_ids=(),
        count=0,
        first_seen=last,
        last_seen=moment,
        summary=sentence,
    )


def expiry_notice(rule: Rule, suppression: Suppression, now: float) -> Notification:
    """A suppression stops applying in :data:`suppressions.NOTICE_DAYS` days or fewer: once per
    suppression and expiry date (the id names both), LOW."""
    moment = _at(now)
    days = math.ceil((suppression.expires_at - now) / 86400.0)
    return Notification(
        id=f"notice:suppression-expiring:{suppression.id}:{suppression.expires.isoformat()}",
        kind=KIND_NOTICE,
        rule=rule,
        severity="LOW",
        title=f"Suppression {suppression.id} expires on {suppression.expires} (in {days} days)",
        dedup_key=f"suppression:{suppression.id}",
        account="",
        region="",
        principal=suppression.owner,
        principal_type="Suppression",
        source_ip="",
        event_ids=(),
        count=0,
        first_seen=moment,
        last_seen=moment,
        summary=(
            f"Suppression {suppression.label} stops applying at 00:00 UTC on "
            f"{suppression.expires}: what it matches alerts again from then. Renew it (a new "
            f"expires, at most 90 days ahead) or remove suppressions/{suppression.id}.yaml."
        ),
    )
