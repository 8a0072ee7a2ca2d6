"""Synthetic failed sign-ins for the service's property tests and the scheduler tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.core.records import envelope_of
from tests.conftest import load_event

BASE = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
IAM_RULE, ROOT_RULE = "iam-console-mfa-failure", "root-console-failure"


def failed_sign_in(
    rule_id: str, event_id: str, offset: float, user: int, ip: int
) -> dict[str, Any]:
    """A failed MFA sign-in of IAM user ``u<user>`` (or a failed root sign-in) from an IP."""
    if rule_id == IAM_RULE:
        record = load_event("iam-consolelogin-failure-mfa-yes")
        record["userIdentity"]["userName"] = f"u{user}"
    else:
        record = load_event("root-consolelogin-failure-mfa-yes")
    record["eventID"] = event_id
    record["eventTime"] = (BASE + timedelta(seconds=offset)).strftime("%Y-%m-%dT%H:%M:%SZ")
    record["sourceIPAddress"] = f"203.0.113.{ip + 1}"
    return envelope_of(record)
