"""Raw event -> typed sign-in record.

Everything downstream (titles, dedup keys, messages) reads a :class:`SignInRecord`, never the raw
event, so the quirks of CloudTrail's formats are handled here and only here:

- EventBridge delivers ``{"detail-type", "source", "account", "region", "time",
  "detail": <record>}``; archives hold bare records. :func:`envelope_of` wraps a bare record
  in the envelope the rule sees.
- Failed IAM-user sign-ins carry ``userIdentity.userName`` but no ``arn``; an unknown user name is
  reported as ``HIDDEN_DUE_TO_SECURITY_REASONS``.
- ``additionalEventData.MFAUsed`` is ``"Yes"``/``"No"`` for IAM users but ``"YES"`` in real
  root events.
- IAM Identity Center: the older format names the user in ``userIdentity.userName``
  (type ``Unknown``); since July 2025, unauthenticated steps carry no user at all
  (``userIdentity`` is only ``type``/``accountId``/``arn``) while later steps carry
  ``userIdentity.onBehalfOf.userId`` (type ``IdentityCenterUser``) and/or
  ``additionalEventData.UserName``. Failures of the MFA step may therefore name nobody; the
  ``AuthWorkflowID`` ties the steps of one sign-in together.
- Federated and Identity Center role sessions (``AssumedRole``, ``FederatedUser``) always record
  ``MFAUsed: "No"``: the MFA happens at the identity provider, which CloudTrail does not see.
  :attr:`SignInRecord.mfa_used` is ``None`` (unknown) for them, never ``False``.
- ``aws login`` (November 2025) signs in with ``AuthorizeOAuth2Access``, an ``AwsApiCall`` whose
  outcome is ``additionalEventData.success`` (``"true"``); ``CreateOAuth2Token`` is the CLI's
  token exchange and every refresh after it.
- A console sign-in denied by an AWS Sign-In resource-based policy or a resource control policy
  is a ``ConsoleLogin`` failure (``errorCode`` ``AccessDenied``, ``errorMessage`` "Authorization
  denied because of a ..."), possibly after a correct password and MFA:
  :attr:`SignInRecord.failure_kind` says :attr:`FailureKind.POLICY_DENIAL`, never ``MFA``.

Fields are read defensively: real events omit fields, carry ``null`` where you expect an object,
and sample events are redacted in creative ways. Whatever JSON value arrives, :func:`parse_event`
returns a record or raises :class:`EventParseError` with a message naming the field; nothing else
escapes (tests/unit/test_records_properties.py checks it on arbitrary and mutated events).

Event ids: a record without ``eventID`` gets ``derived-<32 hex>``, the first 128 bits of the
SHA-256 of the record's canonical JSON (sorted keys, no whitespace), so the same record always has
the same id (a redelivery is still a duplicate) and different records do not share one.

Event times: ``eventTime`` is *usable* when it is an ISO-8601 time between
:data:`EVENT_TIME_MIN` (2000-01-01) and :data:`EVENT_TIME_MAX` (2101-01-01, exclusive). A sender
controls this field, and a time like ``9999-12-31`` would open an incident that never closes (or
overflow ``datetime.timestamp()`` arithmetic). When it is not usable, the envelope's ``time`` is
used if that is usable, else the nearest bound of the range (or the lower bound when no time
parses at all); :attr:`SignInRecord.time_problem` then says what was wrong, in a sentence.
``event_time`` is always an aware UTC datetime inside the range. :func:`processing_time` turns a
record and its arrival time into the time to process it at, with a note: the arrival time for a
record with a time problem or an event time more than a few minutes ahead of its arrival.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from . import constants as c
from .errors import EventParseError

#: Principal types as shown in alerts and used in SNS message attributes: the userIdentity.type
#: values of constants.py, under the names the rest of the code uses.
PRINCIPAL_IAM_USER = c.IDENTITY_IAM_USER
PRINCIPAL_ROOT = c.IDENTITY_ROOT
PRINCIPAL_ASSUMED_ROLE = c.IDENTITY_ASSUMED_ROLE
PRINCIPAL_FEDERATED = c.IDENTITY_FEDERATED_USER
PRINCIPAL_IDENTITY_CENTER = c.IDENTITY_CENTER_USER
PRINCIPAL_UNKNOWN = c.IDENTITY_UNKNOWN

UNKNOWN_PRINCIPAL_KEY = "unknown-user"

#: Event times outside [EVENT_TIME_MIN, EVENT_TIME_MAX) are not used (see the module docstring).
EVENT_TIME_MIN = datetime(2000, 1, 1, tzinfo=UTC)
EVENT_TIME_MAX = datetime(2101, 1, 1, tzinfo=UTC)
#: How far ahead of the arrival time an event time may be (clock skew, EventBridge batching)
#: before :func:`processing_time` uses the arrival time instead.
FUTURE_TOLERANCE = timedelta(minutes=5)
#: Prefix of the ids :func:`record_event_id` derives for records without an ``eventID``.
DERIVED_ID_PREFIX = "derived-"


class FailureKind(StrEnum):
    """Which step of a sign-in failed, as far as the event says (docs/events.md)."""

    NONE = ""
    """Not a failed sign-in step (a success, or not a sign-in event)."""
    MFA = "mfa"
    """The MFA step: ConsoleLogin with MFAUsed yes, or an Identity Center TOTP/WebAuthn check."""
    PASSWORD = "password"  # noqa: S105 - a failure kind, not a secret
    """The password step: ConsoleLogin with MFAUsed no, or an Identity Center PASSWORD check."""
    UNKNOWN_USER = "unknown_user"
    """No such user: AWS hides the name typed (HIDDEN_DUE_TO_SECURITY_REASONS)."""
    POLICY_DENIAL = "policy_denial"
    """Denied by an AWS Sign-In resource-based policy or an RCP: a context, not a wrong factor."""
    OTHER = "other"
    """A failed sign-in event that none of the above describes (e.g. a failed aws login)."""


@dataclass(frozen=True)
class SignInRecord:
    """One CloudTrail event, reduced to what an alert needs. ``raw`` keeps the full envelope."""

    event_id: str
    event_name: str
    event_source: str
    event_type: str
    event_time: datetime
    account: str
    region: str
    source_ip: str
    user_agent: str
    principal: str
    """Who, as a person reads it: ``anaya``, ``root``, ``AWSReservedSSO_A_1/jane@example.com``."""
    principal_key: str
    """Who, as a stable key for dedup and escalation (``unknown-user`` when nobody is named)."""
    principal_type: str
    principal_arn: str
    outcome: str
    """``Success``, ``Failure`` or ``""`` when the event does not say."""
    mfa_used: bool | None
    mfa_type: str
    mfa_device: str
    credential_type: str
    auth_workflow_id: str
    failure_reason: str
    target_user: str
    """For IAM MFA-device changes: the user whose device was changed."""
    identity_store_user_id: str
    raw: Mapping[str, Any] = field(repr=False, compare=False, hash=False)
    time_problem: str = ""
    """Empty when ``eventTime`` was usable; else a sentence saying what was wrong with it and
    which time ``event_time`` holds instead (see the module docstring)."""
    failure_kind: FailureKind = FailureKind.NONE
    """For a failed sign-in step: which step failed (a policy denial is not an MFA failure)."""
    denied_by: str = ""
    """For :attr:`FailureKind.POLICY_DENIAL`: the policy the error message names
    (``resource-based policy``, ``resource control policy``), or ``""`` when it names none."""

    @property
    def console_url(self) -> str:
        """The event in CloudTrail's event history (works when signed in to ``account``)."""
        return cloudtrail_event_url(self.region, self.event_id)

    def title_value(self, name: str) -> str:
        """A title-template field by name (see :data:`RECORD_FIELDS`)."""
        return RECORD_FIELDS[name](self)

    def key_value(self, name: str) -> str:
        """A dedup-key field by name: like :meth:`title_value`, with the stable principal key."""
        return self.principal_key if name == "principal" else RECORD_FIELDS[name](self)


def cloudtrail_event_url(region: str, event_id: str) -> str:
    """CloudTrail console link to one event (``cloudtrailv2`` event-history deep link)."""
    return (
        f"https://{region}.console.aws.amazon.com/cloudtrailv2/home?region={region}"
        f"#/events/{event_id}"
    )


#: Fields that rule title templates and dedup keys may use, with how to read them. In a title,
#: ``principal`` is the readable name; in a dedup key it is the stable ``principal_key``.
RECORD_FIELDS: dict[str, Callable[[SignInRecord], str]] = {
    "account": lambda r: r.account,
    "region": lambda r: r.region,
    "principal": lambda r: r.principal,
    "principal_type": lambda r: r.principal_type,
    "source_ip": lambda r: r.source_ip,
    "user_agent": lambda r: r.user_agent,
    "event_name": lambda r: r.event_name,
    "mfa_type": lambda r: r.mfa_type,
    "mfa_device": lambda r: r.mfa_device,
    "mfa_device_name": lambda r: r.mfa_device.rsplit("/", 1)[-1],
    "credential_type": lambda r: r.credential_type,
    "failure_reason": lambda r: r.failure_reason,
    "target_user": lambda r: r.target_user,
    "auth_workflow_id": lambda r: r.auth_workflow_id,
    "outcome": lambda r: r.outcome,
    "failure_kind": lambda r: str(r.failure_kind),
    "denied_by": lambda r: r.denied_by,
}


def _str(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    try:
        return str(value)
    except ValueError:  # an int beyond Python's str() digit limit (sys.int_info)
        return f"<{type(value).__name__}>"


def _obj(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def is_envelope(event: Mapping[str, Any]) -> bool:
    """True for an EventBridge envelope (``detail`` object plus ``source``)."""
    return isinstance(event.get("detail"), Mapping) and "source" in event


def is_cloudtrail_record(event: Mapping[str, Any]) -> bool:
    """True for a bare CloudTrail record."""
    return "eventName" in event and ("eventSource" in event or "eventTime" in event)


def _event_bridge_source(event_source: str) -> str:
    # EventBridge names CloudTrail-delivered events after the service: signin.amazonaws.com ->
    # aws.signin, iam.amazonaws.com -> aws.iam.
    service = event_source.split(".", 1)[0] if event_source else "unknown"
    return f"aws.{service}"


def record_event_id(record: Mapping[str, Any]) -> str:
    """The record's ``eventID``, or ``derived-<hex>`` from its content when it has none.

    The hex is the first 128 bits of the SHA-256 of the record's canonical JSON (sorted keys, no
    whitespace): stable for the same record whatever its key order, distinct for different ones.
    """
    event_id = _str(record.get("eventID")).strip()
    if event_id:
        return event_id
    canonical = json.dumps(
        record, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_str
    )
    digest = hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()
    return DERIVED_ID_PREFIX + digest[:32]


def envelope_of(record: Mapping[str, Any]) -> dict[str, Any]:
    """Wrap a bare CloudTrail record in the EventBridge envelope a rule would receive.

    ``id`` is derived from the record's event id (:func:`record_event_id`) so that re-wrapping
    the same record is stable.
    """
    identity = _obj(record.get("userIdentity"))
    account = _str(record.get("recipientAccountId")) or _str(identity.get("accountId"))
    event_id = record_event_id(record)
    digest = hashlib.sha256(event_id.encode()).digest()[:16]
    return {
        "version": "0",
        "id": str(uuid.UUID(bytes=digest)),
        "detail-type": c.DETAIL_TYPE_BY_EVENT_TYPE.get(
            _str(record.get("eventType")), c.DEFAULT_DETAIL_TYPE
        ),
        "source": _event_bridge_source(_str(record.get("eventSource"))),
        "account": account,
        "time": _str(record.get("eventTime")),
        "region": _str(record.get("awsRegion")),
        "resources": [],
        "detail": dict(record),
    }


_ENVELOPE_KEYS = ("detail", "detail-type", "source")


def as_envelope(event: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``event`` as an EventBridge envelope, wrapping it when it is a bare record."""
    if not isinstance(event, Mapping):
        raise EventParseError(f"event is a {_json_type(event)}, not a JSON object")
    if is_envelope(event):
        return dict(event)
    if is_cloudtrail_record(event):
        return envelope_of(event)
    if any(key in event for key in _ENVELOPE_KEYS):
        if "detail" not in event:
            raise EventParseError("EventBridge envelope has no 'detail' (the CloudTrail record)")
        if not isinstance(event["detail"], Mapping):
            raise EventParseError(
                f"EventBridge envelope 'detail' is a {_json_type(event['detail'])}, not a JSON "
                "object (the CloudTrail record)"
            )
        raise EventParseError("EventBridge envelope has no 'source'")
    raise EventParseError(
        "not a CloudTrail record (no eventName/eventSource) nor an EventBridge envelope "
        "(no source/detail)"
    )


def _json_type(value: Any) -> str:
    """The JSON name of a value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    return "object" if isinstance(value, Mapping) else type(value).__name__


def parse_time(value: str) -> datetime:
    """Parse CloudTrail's ISO-8601 UTC time (``2022-11-10T16:24:34Z``, with or without fraction).

    Raises ``ValueError`` for text that is not such a time, including one whose UTC conversion
    leaves the years 1-9999 (``0001-01-01T00:00:00+01:00``).
    """
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError(f"{value!r} is outside the years 1-9999 in UTC") from exc


def _time_candidate(value: Any, field_name: str) -> tuple[datetime | None, str]:
    """(the time if usable, else None; what is wrong with it, else "")."""
    if value is None or value == "":
        return None, f"{field_name} is missing"
    if not isinstance(value, str):
        return None, f"{field_name} is a {_json_type(value)}, not an ISO-8601 time"
    shown = repr(value[:64] + ("..." if len(value) > 64 else ""))
    try:
        parsed = parse_time(value)
    except ValueError:
        return None, f"{field_name} {shown} is not an ISO-8601 time"
    if not EVENT_TIME_MIN <= parsed < EVENT_TIME_MAX:
        years = f"{EVENT_TIME_MIN.year}-{EVENT_TIME_MAX.year - 1}"
        return None, f"{field_name} {shown} is outside the years {years}"
    return parsed, ""


def _clamped(value: Any) -> datetime | None:
    """An out-of-range but parseable time moved to the nearest bound of the range."""
    if not isinstance(value, str):
        return None
    try:
        parsed = parse_time(value)
    except ValueError:
        return None
    if parsed < EVENT_TIME_MIN:
        return EVENT_TIME_MIN
    return min(parsed, EVENT_TIME_MAX - timedelta(microseconds=1))


def _event_time(
    detail: Mapping[str, Any], envelope: Mapping[str, Any]
) -> tuple[datetime, str, bool]:
    """(event time, problem, whether that time is a real one): eventTime when usable, else the
    envelope's time, else a bound of the range (not a real time)."""
    event_time, problem = _time_candidate(detail.get("eventTime"), "eventTime")
    if event_time is not None:
        return event_time, "", True
    envelope_time, envelope_problem = _time_candidate(envelope.get("time"), "the envelope time")
    if envelope_time is not None:
        stamp = envelope_time.strftime("%Y-%m-%dT%H:%M:%SZ")
        return envelope_time, f"{problem}; used the envelope time {stamp} instead", True
    fallback = _clamped(detail.get("eventTime")) or _clamped(envelope.get("time"))
    return fallback or EVENT_TIME_MIN, f"{problem} and {envelope_problem}", False


def processing_time(record: SignInRecord, arrival: datetime) -> tuple[datetime, str]:
    """The time to process ``record`` at, and a note when it is not the event's own time.

    The event time, unless it was not usable (:attr:`SignInRecord.time_problem`) or lies more
    than :data:`FUTURE_TOLERANCE` after ``arrival``: then the arrival time, with a note saying
    why, for the alert and the log.
    """
    if record.time_problem:
        return arrival, f"{record.time_problem}; processed at its arrival time"
    if record.event_time > arrival + FUTURE_TOLERANCE:
        ahead = record.event_time - arrival
        return arrival, (
            f"eventTime {record.event_time:%Y-%m-%dT%H:%M:%SZ} is {_duration(ahead)} after its "
            "arrival; processed at its arrival time"
        )
    return record.event_time, ""


def _duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds >= 2 * 86400:
        return f"{seconds // 86400} days"
    if seconds >= 2 * 3600:
        return f"{seconds // 3600} hours"
    return f"{seconds // 60} minutes"


def replay_time(event: Mapping[str, Any]) -> datetime:
    """The time the offline replay orders ``event`` (an envelope or a bare record) by.

    ``eventTime``, else the envelope's ``time`` (as :func:`parse_event`). An archive has no
    arrival time to fall back on, so an event with neither usable is an
    :class:`EventParseError` here (counted as a problem, never replayed at a made-up time).
    """
    envelope = as_envelope(event)
    moment, problem, real = _event_time(_obj(envelope.get("detail")), envelope)
    if not real:
        raise EventParseError(problem)
    return moment


def _arn_tail(arn: str, marker: str) -> str:
    """``arn:aws:sts::1:assumed-role/R/s`` with marker ``:assumed-role/`` -> ``R/s``."""
    index = arn.find(marker)
    return arn[index + len(marker) :] if index >= 0 else ""


def _principal(
    identity: Mapping[str, Any], extra: Mapping[str, Any], auth_workflow_id: str
) -> tuple[str, str, str, str]:
    """Return (display name, stable key, principal type, identity-store user id)."""
    id_type = _str(identity.get("type"))
    arn = _str(identity.get("arn"))
    user_name = _str(identity.get("userName"))
    if id_type == c.IDENTITY_ROOT:
        return "root", "root", PRINCIPAL_ROOT, ""
    if id_type == c.IDENTITY_IAM_USER:
        return _iam_user(identity, arn, user_name)
    if id_type == c.IDENTITY_ASSUMED_ROLE:
        name = _arn_tail(arn, ":assumed-role/")
        if not name:
            issuer = _obj(_obj(identity.get("sessionContext")).get("sessionIssuer"))
            name = _str(issuer.get("userName")) or _str(identity.get("principalId"))
        return (
            name or "unknown role session",
            name or UNKNOWN_PRINCIPAL_KEY,
            PRINCIPAL_ASSUMED_ROLE,
            "",
        )
    if id_type == c.IDENTITY_FEDERATED_USER:
        name = _arn_tail(arn, ":federated-user/") or _str(identity.get("principalId"))
        return (
            name or "unknown federated user",
            name or UNKNOWN_PRINCIPAL_KEY,
            PRINCIPAL_FEDERATED,
            "",
        )
    idc_user_id = _str(_obj(identity.get("onBehalfOf")).get("userId"))
    name = _str(extra.get("UserName")) or user_name
    return _identity_center(id_type, name, idc_user_id, auth_workflow_id)


def _iam_user(identity: Mapping[str, Any], arn: str, user_name: str) -> tuple[str, str, str, str]:
    name = user_name or _arn_tail(arn, ":user/").rsplit("/", 1)[-1]
    if name == c.HIDDEN_USER_NAME:
        # AWS hides the name typed at the sign-in page when no such user exists.
        return (
            "unknown IAM user (name hidden by AWS)",
            c.HIDDEN_USER_NAME,
            PRINCIPAL_IAM_USER,
            "",
        )
    name = name or _str(identity.get("principalId")) or "unknown IAM user"
    return name, name, PRINCIPAL_IAM_USER, ""


def _identity_center(
    id_type: str, name: str, idc_user_id: str, auth_workflow_id: str
) -> tuple[str, str, str, str]:
    """IAM Identity Center (type "Unknown" in the older format, "IdentityCenterUser" in the
    newer), named by user name, by identity-store user id, or by nobody yet."""
    if name:
        return name, name, PRINCIPAL_IDENTITY_CENTER, idc_user_id
    if idc_user_id:
        return (
            f"Identity Center user {idc_user_id}",
            idc_user_id,
            PRINCIPAL_IDENTITY_CENTER,
            idc_user_id,
        )
    if id_type in (c.IDENTITY_UNKNOWN, c.IDENTITY_CENTER_USER, ""):
        # The full AuthWorkflowID is in the message body; the first block is enough to tell apart.
        workflow = auth_workflow_id.split("-", 1)[0]
        shown = f"unknown user (workflow {workflow})" if auth_workflow_id else "unknown user"
        principal_type = PRINCIPAL_IDENTITY_CENTER if auth_workflow_id else PRINCIPAL_UNKNOWN
        return shown, UNKNOWN_PRINCIPAL_KEY, principal_type, ""
    return id_type, id_type, PRINCIPAL_UNKNOWN, ""


def _outcome(detail: Mapping[str, Any], event_name: str) -> str:
    stated = _stated_outcome(detail, event_name)
    return _inferred_outcome(detail, event_name) if stated is None else stated


def _stated_outcome(detail: Mapping[str, Any], event_name: str) -> str | None:
    """The outcome the record states under the event's name (or a credential step's); None
    when it states none."""
    response = _obj(detail.get("responseElements"))
    if event_name in response:
        return _str(response.get(event_name))
    service_details = _obj(detail.get("serviceEventDetails"))
    # Widely copied guides test serviceEventDetails.CredentialChallenge on verification events.
    for key in (
        event_name,
        c.CREDENTIAL_VERIFICATION,
        c.CREDENTIAL_CHALLENGE,
        c.USER_AUTHENTICATION,
    ):
        if key in service_details:
            return _str(service_details.get(key))
    return None


def _inferred_outcome(detail: Mapping[str, Any], event_name: str) -> str:
    """The outcome of a record that states none: an error, ``aws login``'s success flag, or an
    API call that returned."""
    if detail.get("errorCode") or detail.get("errorMessage"):
        return "Failure"
    if event_name in c.SIGNIN_OAUTH2_EVENTS:
        # aws login events say how they ended in additionalEventData.success ("true").
        success = _str(_obj(detail.get("additionalEventData")).get("success")).strip().lower()
        if success in ("true", "false"):
            return "Success" if success == "true" else "Failure"
    if _str(detail.get("eventType")) == "AwsApiCall":
        return "Success"
    return ""


def _policy_denial(detail: Mapping[str, Any]) -> tuple[bool, str]:
    """(whether a sign-in policy denied the request, the policy the message names)."""
    message = _str(detail.get("errorMessage")).strip()
    if message.startswith(c.POLICY_DENIAL_PREFIX):
        # "Authorization denied because of a resource control policy" -> "resource control policy"
        named = message[len(c.POLICY_DENIAL_PREFIX) :].rstrip(".")
        for article in ("a ", "an "):
            named = named.removeprefix(article)
        return True, named
    return _str(detail.get("errorCode")) == c.ERROR_ACCESS_DENIED, ""


def _failure_kind(
    detail: Mapping[str, Any],
    event_name: str,
    outcome: str,
    principal_key: str,
    *,
    mfa_used: bool | None,
    credential_type: str,
) -> tuple[FailureKind, str]:
    """Which step of a sign-in failed (:class:`FailureKind`) and, for a policy denial, which
    policy denied it."""
    if outcome != "Failure" or _str(detail.get("eventSource")) != c.SIGNIN_SOURCE:
        return FailureKind.NONE, ""
    denied, denied_by = _policy_denial(detail)
    if denied:
        return FailureKind.POLICY_DENIAL, denied_by
    if principal_key == c.HIDDEN_USER_NAME:
        return FailureKind.UNKNOWN_USER, ""
    if event_name == c.CONSOLE_LOGIN and mfa_used is not None:
        return (FailureKind.MFA if mfa_used else FailureKind.PASSWORD), ""
    if event_name == c.CREDENTIAL_VERIFICATION and credential_type:
        return (FailureKind.PASSWORD if credential_type == "PASSWORD" else FailureKind.MFA), ""
    return FailureKind.OTHER, ""


def _mfa(extra: Mapping[str, Any]) -> tuple[bool | None, str, str]:
    used_raw = _str(extra.get("MFAUsed")).strip().lower()
    used = True if used_raw == "yes" else False if used_raw == "no" else None
    device = _str(extra.get("MFAIdentifier"))
    mfa_type = _str(extra.get("MfaType")) or _str(extra.get("CredentialType"))
    if not mfa_type and device:
        if ":u2f/" in device:
            mfa_type = "FIDO security key"
        elif ":mfa/" in device:
            mfa_type = "virtual or hardware TOTP device"
    return used, mfa_type, device


def _cloudtrail_detail(envelope: Mapping[str, Any]) -> Mapping[str, Any]:
    """The CloudTrail record in an envelope's ``detail``, or :class:`EventParseError`."""
    detail = _obj(envelope.get("detail"))
    if not is_cloudtrail_record(detail):
        # e.g. a Scheduled Event sent to a rule's function: alerting on it would publish an
        # alert about nobody.
        raise EventParseError(
            f"EventBridge event {_str(envelope.get('id'))!r} ({_str(envelope.get('source'))}, "
            f"{_str(envelope.get('detail-type'))}) carries no CloudTrail record in detail "
            "(no eventName/eventSource)"
        )
    return detail


def _mfa_of(
    extra: Mapping[str, Any], request: Mapping[str, Any], event_name: str, principal_type: str
) -> tuple[bool | None, str, str]:
    """(MFA used, MFA type, MFA device) of a record."""
    mfa_used, mfa_type, mfa_device = _mfa(extra)
    if principal_type in (PRINCIPAL_ASSUMED_ROLE, PRINCIPAL_FEDERATED):
        # Always "No" for federated and Identity Center role sessions: their MFA happens at the
        # identity provider, out of CloudTrail's sight. Unknown, not "not used".
        mfa_used = None
    if not mfa_device and event_name in (c.DEACTIVATE_MFA_DEVICE, c.DELETE_VIRTUAL_MFA_DEVICE):
        mfa_device = _str(request.get("serialNumber"))
    return mfa_used, mfa_type, mfa_device


def parse_event(event: Mapping[str, Any]) -> SignInRecord:
    """Parse an EventBridge envelope or a bare CloudTrail record into a :class:`SignInRecord`.

    Raises :class:`EventParseError` when the event is neither (a non-object, an envelope whose
    ``detail`` is missing or not an object). A time that is not usable is not an error: see
    :attr:`SignInRecord.time_problem`.
    """
    envelope = as_envelope(event)
    detail = _cloudtrail_detail(envelope)
    identity = _obj(detail.get("userIdentity"))
    extra = _obj(detail.get("additionalEventData"))
    request = _obj(detail.get("requestParameters"))

    event_name = _str(detail.get("eventName"))
    auth_workflow_id = _str(extra.get("AuthWorkflowID"))
    display, key, principal_type, idc_user_id = _principal(identity, extra, auth_workflow_id)
    mfa_used, mfa_type, mfa_device = _mfa_of(extra, request, event_name, principal_type)

    # DeleteVirtualMFADevice names only the device serial, not the user it belonged to.
    target_user = _str(request.get("userName"))

    event_time, time_problem, _ = _event_time(detail, envelope)
    outcome = _outcome(detail, event_name)
    credential_type = _str(extra.get("CredentialType"))
    failure_kind, denied_by = _failure_kind(
        detail, event_name, outcome, key, mfa_used=mfa_used, credential_type=credential_type
    )
    return SignInRecord(
        event_id=record_event_id(detail),
        event_name=event_name,
        event_source=_str(detail.get("eventSource")),
        event_type=_str(detail.get("eventType")),
        event_time=event_time,
        account=_str(envelope.get("account"))
        or _str(detail.get("recipientAccountId"))
        or _str(identity.get("accountId")),
        region=_str(envelope.get("region")) or _str(detail.get("awsRegion")),
        source_ip=_str(detail.get("sourceIPAddress")),
        user_agent=_str(detail.get("userAgent")),
        principal=display,
        principal_key=key,
        principal_type=principal_type,
        principal_arn=_str(identity.get("arn")),
        outcome=outcome,
        mfa_used=mfa_used,
        mfa_type=mfa_type,
        mfa_device=mfa_device,
        credential_type=credential_type,
        auth_workflow_id=auth_workflow_id,
        failure_reason=_str(detail.get("errorMessage")) or _str(detail.get("errorCode")),
        target_user=target_user,
        identity_store_user_id=idc_user_id,
        raw=envelope,
        time_problem=time_problem,
        failure_kind=failure_kind,
        denied_by=denied_by,
    )


def now_utc() -> datetime:
    """The wall clock, for the edges that inject it into the core."""
    return datetime.now(UTC)
