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

Fields are read defensively: real events omit fields, carry ``null`` where you expect an object,
and sample events are redacted in creative ways.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
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
}


def _str(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


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


def envelope_of(record: Mapping[str, Any]) -> dict[str, Any]:
    """Wrap a bare CloudTrail record in the EventBridge envelope a rule would receive.

    ``id`` is derived from the record's eventID so that re-wrapping the same record is stable.
    """
    identity = _obj(record.get("userIdentity"))
    account = _str(record.get("recipientAccountId")) or _str(identity.get("accountId"))
    event_id = _str(record.get("eventID"))
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


def as_envelope(event: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``event`` as an EventBridge envelope, wrapping it when it is a bare record."""
    if is_envelope(event):
        return dict(event)
    if is_cloudtrail_record(event):
        return envelope_of(event)
    raise EventParseError(
        "not a CloudTrail record (no eventName/eventSource) nor an EventBridge envelope "
        "(no source/detail)"
    )


def parse_time(value: str) -> datetime:
    """Parse CloudTrail's ISO-8601 UTC time (``2022-11-10T16:24:34Z``, with or without fraction)."""
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _event_time(detail: Mapping[str, Any], envelope: Mapping[str, Any]) -> datetime:
    for candidate in (detail.get("eventTime"), envelope.get("time")):
        if isinstance(candidate, str) and candidate:
            try:
                return parse_time(candidate)
            except ValueError:
                continue
    raise EventParseError(
        f"eventTime {detail.get('eventTime')!r} is not an ISO-8601 time and the envelope has no "
        "usable 'time'"
    )


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
    on_behalf_of = _obj(identity.get("onBehalfOf"))
    idc_user_id = _str(on_behalf_of.get("userId"))

    if id_type == c.IDENTITY_ROOT:
        return "root", "root", PRINCIPAL_ROOT, ""
    if id_type == c.IDENTITY_IAM_USER:
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

    # IAM Identity Center (type "Unknown" in the older format, "IdentityCenterUser" in the newer).
    name = _str(extra.get("UserName")) or user_name
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
    response = _obj(detail.get("responseElements"))
    if event_name in response:
        return _str(response.get(event_name))
    service_details = _obj(detail.get("serviceEventDetails"))
    if event_name in service_details:
        return _str(service_details.get(event_name))
    # Widely copied guides test serviceEventDetails.CredentialChallenge on verification events.
    for key in (c.CREDENTIAL_VERIFICATION, c.CREDENTIAL_CHALLENGE, c.USER_AUTHENTICATION):
        if key in service_details:
            return _str(service_details.get(key))
    if detail.get("errorCode") or detail.get("errorMessage"):
        return "Failure"
    if _str(detail.get("eventType")) == "AwsApiCall":
        return "Success"
    return ""


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


def parse_event(event: Mapping[str, Any]) -> SignInRecord:
    """Parse an EventBridge envelope or a bare CloudTrail record into a :class:`SignInRecord`.

    Raises :class:`EventParseError` when the event is neither, or has no usable time.
    """
    if not isinstance(event, Mapping):
        raise EventParseError(f"event is a {type(event).__name__}, not a JSON object")
    envelope = as_envelope(event)
    detail = _obj(envelope.get("detail"))
    identity = _obj(detail.get("userIdentity"))
    extra = _obj(detail.get("additionalEventData"))
    request = _obj(detail.get("requestParameters"))

    event_name = _str(detail.get("eventName"))
    auth_workflow_id = _str(extra.get("AuthWorkflowID"))
    display, key, principal_type, idc_user_id = _principal(identity, extra, auth_workflow_id)
    mfa_used, mfa_type, mfa_device = _mfa(extra)
    if not mfa_device and event_name in (c.DEACTIVATE_MFA_DEVICE, c.DELETE_VIRTUAL_MFA_DEVICE):
        mfa_device = _str(request.get("serialNumber"))

    # DeleteVirtualMFADevice names only the device serial, not the user it belonged to.
    target_user = _str(request.get("userName"))

    return SignInRecord(
        event_id=_str(detail.get("eventID")),
        event_name=event_name,
        event_source=_str(detail.get("eventSource")),
        event_type=_str(detail.get("eventType")),
        event_time=_event_time(detail, envelope),
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
        outcome=_outcome(detail, event_name),
        mfa_used=mfa_used,
        mfa_type=mfa_type,
        mfa_device=mfa_device,
        credential_type=_str(extra.get("CredentialType")),
        auth_workflow_id=auth_workflow_id,
        failure_reason=_str(detail.get("errorMessage")) or _str(detail.get("errorCode")),
        target_user=target_user,
        identity_store_user_id=idc_user_id,
        raw=envelope,
    )


def now_utc() -> datetime:
    """The wall clock, for the edges that inject it into the core."""
    return datetime.now(UTC)
