"""Builders of the sign-in events the state-machine tests deliver (real fixtures, restamped)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.core.records import envelope_of
from tests.conftest import load_event

BASE = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
T0 = BASE.timestamp()
IAM_FAILURE = "iam-console-mfa-failure"
SUCCESS = "sign-in-success"
IC_FAILURE = "identity-center-mfa-failure"
IC_STEPS = "identity-center-sign-in-steps"


def _stamp(record: dict[str, Any], event_id: str, offset: float, ip: str) -> dict[str, Any]:
    record["eventID"] = event_id
    record["eventTime"] = (BASE + timedelta(seconds=offset)).strftime("%Y-%m-%dT%H:%M:%SZ")
    record["sourceIPAddress"] = ip
    return envelope_of(record)


def failed_mfa(event_id: str, offset: float, user: str = "alice", ip: str = "203.0.113.7") -> Any:
    """A failed MFA sign-in of IAM user ``user``, ``offset`` seconds after :data:`BASE`."""
    record = load_event("iam-consolelogin-failure-mfa-yes")
    record["userIdentity"]["userName"] = user
    return _stamp(record, event_id, offset, ip)


def signed_in(event_id: str, offset: float, user: str = "alice", ip: str = "203.0.113.7") -> Any:
    """A successful sign-in (with MFA) of IAM user ``user``."""
    record = load_event("iam-consolelogin-success-mfa-yes")
    record["userIdentity"]["userName"] = user
    return _stamp(record, event_id, offset, ip)


def ic_mfa_failure(
    event_id: str, offset: float, workflow: str, ip: str = "198.51.100.23"
) -> dict[str, Any]:
    """A failed Identity Center MFA step (new format: it names nobody)."""
    record = load_event("idc-new-credentialverification-totp-failure")
    record["additionalEventData"]["AuthWorkflowID"] = workflow
    return _stamp(record, event_id, offset, ip)


def ic_naming_step(
    event_id: str, offset: float, workflow: str, user: str, ip: str = "198.51.100.23"
) -> dict[str, Any]:
    """The password step of the same Identity Center sign-in: it names the user."""
    record = load_event("idc-new-credentialchallenge-password")
    record["additionalEventData"].update(AuthWorkflowID=workflow, UserName=user)
    return _stamp(record, event_id, offset, ip)


def in_account(envelope: dict[str, Any], account: str) -> dict[str, Any]:
    """The same event from another account (envelope and record agree)."""
    detail = dict(envelope["detail"])
    detail["recipientAccountId"] = account
    detail["userIdentity"] = {**detail.get("userIdentity", {}), "accountId": account}
    return {**envelope, "account": account, "detail": detail}


def root_success_without_mfa(event_id: str, offset: float, ip: str = "203.0.113.7") -> Any:
    """A successful root console sign-in without MFA (a CRITICAL alert)."""
    return _stamp(load_event("root-consolelogin-success-mfa-no"), event_id, offset, ip)


def burst(n: int, user: str = "alice") -> list[tuple[float, str, dict[str, object]]]:
    """``n`` failed MFA sign-ins of one user from one IP, a second apart."""
    return [(T0 + i, IAM_FAILURE, failed_mfa(f"f{i:02d}", i, user=user)) for i in range(n)]
