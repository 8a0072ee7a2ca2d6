"""Campaigns: decisions across principals and accounts, keyed by the source IP.

Three detectors count distinct *members* per source IP within a window (docs/design.md,
"Campaigns"):

- **MFA spray**: IAM and Identity Center users failing the MFA step (``FailureKind.MFA``);
- **root across accounts**: root sign-in failures, one member per account;
- **password spray**: wrong passwords (``FailureKind.PASSWORD``), optional.

Per event, at most three requests, none on an item that every event rewrites:

1. a **marker** per (campaign, IP, member), a conditional put (absent or expired): a member
   already counted within the window costs this one request; the marker names the event that
   created it, so a retry of that event (a kill after the put) goes on to step 2. An alert rule
   whose incident key names the member and the IP skips it: opening the incident (a write the
   event makes anyway) is the marker (:func:`incident_marks_member`);
2. the IP's **campaign item** (written once per new member, not per event): ``ADD`` of the
   member's entry (``time|member``) to a string set, an idempotent write, capped at
   :data:`MAX_MEMBERS`;
3. when the entries hold ``count`` distinct members within the window: the escalation, one
   conditional write of the mark and the outbox on the campaign item
   (:meth:`delivery.Delivery.escalate_once`, shared with the brute force), which stays due until
   delivered and then until its trailing summary (:meth:`CampaignStep.due`).

Timeline (MFA spray, 3/15m, seconds)::

    a@0    marker (IP, a) created -> set {0|a}
    b@60   marker (IP, b) created -> set {0|a, 60|b}
    a@90   marker (IP, a) exists  -> nothing more (one request)
    c@120  marker (IP, c) created -> set {0|a, 60|b, 120|c}: 3 members within 900 s
           -> mark escalated_until = 120 + 900, escalated_by = c, outbox; deliver
    d@30   processed later: set grows, its window starts at 0 < escalated_until: the same
           campaign, no second escalation
    a@2000 marker (IP, a) expired (lazy TTL: an expired marker is absent) -> counted again

Takeover chains are in :func:`takeover_target` and :func:`takeover_failures` (pure); the handler
wires them through the successes re-check (:mod:`chalicelib.pipeline.events`).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from . import constants as c
from .config import Settings, Threshold
from .documents import HELD_RETENTION, PrincipalFailures
from .records import (
    PRINCIPAL_IAM_USER,
    PRINCIPAL_IDENTITY_CENTER,
    PRINCIPAL_ROOT,
    UNKNOWN_PRINCIPAL_KEY,
    FailureKind,
    SignInRecord,
)
from .state import (
    DUE_AT,
    DUE_PK,
    KeyKind,
    key_part,
    make_key,
)
from .suppressions import Seen

#: Most member entries an IP's campaign item keeps (the oldest go first): the escalation needs
#: ``count`` of them; the message names at most :data:`SHOWN_MEMBERS`.
MAX_MEMBERS = 50
SHOWN_MEMBERS = 10
#: The attribute of a campaign item holding its member entries (a string set).
MEMBERS = "members"
#: The escalation's trailing summary: when it is due, the window it covers, the escalation's
#: rule, and the mark that it was decided.
SUMMARY_AT, CAMPAIGN_START, RULE_ID, SUMMARIZED = (
    "summary_at",
    "campaign_start",
    "rule_id",
    "summarized",
)
#: How long a campaign item outlives the latest window its entries can be in: its trailing
#: summary is due at that window's end + the settle delay, and must survive a scheduler outage
#: as long as a held summary does.
ITEM_GRACE = HELD_RETENTION
DUE_KEYS = (DUE_PK, DUE_AT)


class Campaign(enum.StrEnum):
    """A detector keyed by source IP."""

    MFA_SPRAY = "mfa-spray"
    ROOT_SPRAY = "root-across-accounts"
    PASSWORD_SPRAY = "password-spray"  # noqa: S105 - a detector name


@dataclass(frozen=True)
class CampaignSpec:
    campaign: Campaign
    severity: str
    threshold: Threshold
    noun: str
    """What the members are (``principals``, ``accounts``)."""


def spec_of(campaign: Campaign, settings: Settings) -> CampaignSpec | None:
    """The detector's settings; None when it is off."""
    if campaign is Campaign.MFA_SPRAY:
        return CampaignSpec(campaign, "HIGH", settings.mfa_spray, "principals")
    if campaign is Campaign.ROOT_SPRAY:
        return CampaignSpec(campaign, "CRITICAL", settings.root_spray, "accounts")
    if settings.password_spray is None:
        return None
    return CampaignSpec(campaign, "MEDIUM", settings.password_spray, "principals")


def campaign_member(record: SignInRecord) -> tuple[Campaign, str] | None:
    """Which campaign a failed sign-in counts for, and as which member (``account/principal``,
    or the account for root). A user nobody named (AWS hides the name, an Identity Center user
    of an unnamed workflow) and role sessions (federated: MFA is never recorded) count for none:
    distinct members cannot be told apart, and a role session never fails the MFA step here."""
    if not record.source_ip or record.outcome != "Failure":
        return None
    if record.principal_type == PRINCIPAL_ROOT and record.event_name == c.CONSOLE_LOGIN:
        return Campaign.ROOT_SPRAY, record.account
    spray = _SPRAY_OF_FAILURE.get(record.failure_kind) if _named_user(record) else None
    return None if spray is None else (spray, f"{record.account}/{record.principal_key}")


#: The campaign a named user's failed step counts for.
_SPRAY_OF_FAILURE = {
    FailureKind.MFA: Campaign.MFA_SPRAY,
    FailureKind.PASSWORD: Campaign.PASSWORD_SPRAY,
}


def _named_user(record: SignInRecord) -> bool:
    """An IAM or Identity Center user whose name the event gives."""
    return record.principal_type in (
        PRINCIPAL_IAM_USER,
        PRINCIPAL_IDENTITY_CENTER,
    ) and record.principal_key not in (UNKNOWN_PRINCIPAL_KEY, c.HIDDEN_USER_NAME)


def member_subject(campaign: Campaign, member: str, source_ip: str) -> Seen:
    """A member (``account/principal``, or the account for root) as a suppression sees it."""
    if campaign is Campaign.ROOT_SPRAY:
        return Seen("root", member, source_ip)
    account, _, principal = member.partition("/")
    return Seen(principal, account, source_ip)


def member_entry(t: float, member: str) -> str:
    """A member's entry in the campaign item: bounded whatever the user name (``key_part``)."""
    return f"{t!r}|{key_part(member)}"


def parse_entries(entries: Iterable[Any]) -> list[tuple[float, str]]:
    parsed = []
    for entry in entries:
        t, _, member = str(entry).partition("|")
        parsed.append((float(t), member))
    return sorted(set(parsed))


@dataclass(frozen=True)
class SprayWindow:
    """The distinct members of the window an entry completes, if it completes one."""

    escalate: bool
    members: tuple[str, ...]
    """Distinct members, in the order of their first entry in the window."""
    failures: int
    """Entries in the window (a member counted again after its marker expired counts twice)."""
    start: float
    until: float
    """The end of the mark this window sets: its last entry + the window."""


def spray_window(
    entries: Iterable[tuple[float, str]],
    entry: tuple[float, str],
    count: int,
    window: float,
    *,
    escalated_until: float = 0.0,
    escalated_by_me: bool = False,
) -> SprayWindow:
    """Does ``entry`` complete ``count`` distinct members within ``window`` seconds, for the first
    time in its campaign? Like a brute-force burst, any window that holds the entry counts
    (arrival order does not matter); one that starts before ``escalated_until`` is the campaign
    already escalated, unless this event escalated it (its retry decides the same again)."""
    events = sorted({*entries, entry})
    t = entry[0]
    for start, _ in events:
        if not start <= t < start + window:
            continue
        inside = [e for e in events if start <= e[0] < start + window]
        members = tuple(dict.fromkeys(m for _, m in inside))
        if len(members) >= count:
            until = max(escalated_until, inside[-1][0] + window)
            escalate = escalated_by_me or start >= escalated_until
            return SprayWindow(escalate, members, len(inside), start, until)
    return SprayWindow(False, (), 0, t, escalated_until)


def campaign_span(
    entries: list[tuple[float, str]], start: float, end: float, window: float
) -> list[tuple[float, str]]:
    """The entries of the campaign whose escalated window starts at ``start``: those up to
    ``end`` (the escalation's mark), and the earlier ones each within ``window`` of the next (a
    late event from before the window that escalated belongs to the same campaign)."""
    inside = [e for e in entries if start <= e[0] < end]
    earlier = sorted((e for e in entries if e[0] < start), reverse=True)
    first = start
    for entry in earlier:
        if first - entry[0] >= window:
            break
        inside.insert(0, entry)
        first = entry[0]
    return inside


def entries_to_keep(entries: list[tuple[float, str]], t: float, window: float) -> list[str]:
    """The newest :data:`MAX_MEMBERS` entries not older than ``window`` before ``t``."""
    recent = [e for e in entries if e[0] > t - window]
    return [f"{et!r}|{m}" for et, m in recent[-MAX_MEMBERS:]]


# --- takeover chains ------------------------------------------------------------------------------

#: What ``requestParameters.userName`` says for root (EnableMFADevice on root's own device).
ROOT_USER_NAME = "AWS ROOT USER"


def takeover_target(record: SignInRecord) -> SignInRecord | None:
    """For an MFA-device or password change, the record as about the user it changed (the
    principal whose failed MFA it may follow), else None. A failed call changed nothing.

    IAM: ``requestParameters.userName``; ``ChangePassword`` names no user (the caller changed
    their own). Identity Center: the identity-store user id, which is the caller's own
    (``onBehalfOf.userId``) when a user manages their devices in the access portal;
    ``requestParameters.userId`` is read when present (an administrator's call: its fields are
    not documented, and without it the change cannot be tied to a user)."""
    if record.outcome != "Success" or not is_takeover_step(record):
        return None
    if record.event_source in c.IDENTITY_CENTER_DEVICE_SOURCES:
        user_id = _requested_user_id(record) or (
            record.identity_store_user_id
            if record.principal_type == PRINCIPAL_IDENTITY_CENTER
            else ""
        )
        if not user_id:
            return None
        return replace(
            record,
            principal=f"Identity Center user {user_id}",
            principal_key=user_id,
            principal_type=PRINCIPAL_IDENTITY_CENTER,
            identity_store_user_id=user_id,
        )
    own = record.principal_type in (PRINCIPAL_IAM_USER, PRINCIPAL_ROOT)
    target = record.target_user or (record.principal_key if own else "")
    if not target:
        return None
    if target in (ROOT_USER_NAME, "root"):
        root = PRINCIPAL_ROOT
        return replace(record, principal="root", principal_key="root", principal_type=root)
    return replace(
        record, principal=target, principal_key=target, principal_type=PRINCIPAL_IAM_USER
    )


#: Longest identity-store user id read from a request (a UUID, optionally prefixed with the
#: identity store's id: well under this).
MAX_USER_ID = 128


def _requested_user_id(record: SignInRecord) -> str:
    detail = record.raw.get("detail")
    request = detail.get("requestParameters") if isinstance(detail, Mapping) else None
    value = request.get("userId") if isinstance(request, Mapping) else None
    return value[:MAX_USER_ID] if isinstance(value, str) else ""


def is_takeover_step(record: SignInRecord) -> bool:
    """An event that may be a takeover chain's step (before its outcome and user are known)."""
    if record.event_source in c.IDENTITY_CENTER_DEVICE_SOURCES:
        return record.event_name in c.IDENTITY_CENTER_TAKEOVER_STEPS
    if record.event_source == c.IAM_SOURCE:
        return record.event_name in c.IAM_MFA_DEVICE_ADDED | c.IAM_PASSWORD_CHANGED
    return False


def takeover_failures(
    failures: Iterable[tuple[float, str]], t: float, window: float
) -> tuple[str, ...]:
    """The failure event ids in ``[t - window, t)``: failed MFA steps a takeover step follows."""
    return tuple(event_id for ft, event_id in failures if t - window <= ft < t)


def takeover_rechecks(history: PrincipalFailures, t: float, window: float) -> tuple[str, ...]:
    """The successes (claim keys) a failure at ``t`` precedes within ``window``: a takeover step
    processed before the failure is decided again by it (as an MFA fatigue success is)."""
    return tuple(key for s_t, key in history.successes if s_t - window <= t < s_t)


# --- the step -------------------------------------------------------------------------------------


def campaign_key(campaign: Campaign, source_ip: str) -> str:
    return make_key(KeyKind.CAMPAIGN, campaign.value, source_ip)


def marker_key(campaign: Campaign, source_ip: str, member: str) -> str:
    return make_key(KeyKind.CAMPAIGN, campaign.value, source_ip, member)


def incident_marks_member(dedup_key: tuple[str, ...], campaign: Campaign) -> bool:
    """Whether an incident of a rule with this key is opened once per (member, IP) and window:
    then opening it (a conditional write the event makes anyway) already says "first time in
    the window", and the campaign item is written once per incident, never per repeat. A rule
    whose key leaves out the IP or the principal needs the marker item."""
    names = set(dedup_key)
    member = {"account"} if campaign is Campaign.ROOT_SPRAY else {"account", "principal"}
    return "source_ip" in names and member <= names


def members_of(item: Mapping[str, Any] | None) -> list[tuple[float, str]]:
    """A campaign item's entries (for tests and the CLI)."""
    return parse_entries((item or {}).get(MEMBERS, ()))
