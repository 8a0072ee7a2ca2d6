"""Parsing raw events into SignInRecord: our fixtures and every shared real/documented sample."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from chalicelib.core.errors import EventParseError
from chalicelib.core.records import (
    EVENT_TIME_MAX,
    EVENT_TIME_MIN,
    FUTURE_TOLERANCE,
    PRINCIPAL_ASSUMED_ROLE,
    PRINCIPAL_FEDERATED,
    PRINCIPAL_IAM_USER,
    PRINCIPAL_IDENTITY_CENTER,
    PRINCIPAL_ROOT,
    FailureKind,
    envelope_of,
    parse_event,
    processing_time,
    replay_time,
)
from tests.conftest import EVENTS, load_event, load_sample, needs_shared, sample_paths


def test_failed_mfa_record_has_who_where_when() -> None:
    record = parse_event(load_event("iam-consolelogin-failure-mfa-yes"))
    assert record.principal == "ops-admin"
    assert record.principal_key == "ops-admin"
    assert record.principal_type == PRINCIPAL_IAM_USER
    assert record.principal_arn == ""  # failed IAM-user sign-ins carry no arn
    assert record.outcome == "Failure"
    assert record.mfa_used is True
    assert record.failure_reason == "Failed authentication"
    assert record.source_ip == "203.0.113.7"
    assert record.user_agent.startswith("Mozilla/5.0 (Windows NT 10.0")
    assert record.account == "111122223333"
    assert record.region == "us-east-1"
    assert record.event_time == datetime(2026, 11, 2, 9, 0, 8, tzinfo=UTC)
    assert record.event_id == "0b6a3c1e-5a7d-4c43-9f1e-6f4d2a9b8c01"
    assert record.console_url == (
        "https://us-east-1.console.aws.amazon.com/cloudtrailv2/home?region=us-east-1"
        "#/events/0b6a3c1e-5a7d-4c43-9f1e-6f4d2a9b8c01"
    )


def test_root_mfa_flag_in_capitals_is_understood() -> None:
    record = parse_event(load_event("root-consolelogin-failure-mfa-yes"))
    assert record.principal == "root"
    assert record.principal_type == PRINCIPAL_ROOT
    assert record.mfa_used is True


def test_mfa_device_and_type_come_from_the_identifier() -> None:
    record = parse_event(load_event("iam-consolelogin-success-mfa-yes"))
    assert record.mfa_device == "arn:aws:iam::111122223333:mfa/ops-admin-phone"
    assert record.mfa_type == "virtual or hardware TOTP device"
    assert record.title_value("mfa_device_name") == "ops-admin-phone"


def test_hidden_user_name_is_shown_as_unknown() -> None:
    record = parse_event(load_event("iam-consolelogin-failure-unknown-user"))
    assert record.principal == "unknown IAM user (name hidden by AWS)"
    assert record.principal_key == "HIDDEN_DUE_TO_SECURITY_REASONS"
    assert record.failure_reason == "No username found in supplied account"


def test_identity_center_new_format_failure_names_nobody_but_the_workflow() -> None:
    record = parse_event(load_event("idc-new-credentialverification-totp-failure"))
    assert record.principal == "unknown user (workflow 6d1e7c2a)"
    assert record.principal_key == "unknown-user"
    assert record.principal_type == PRINCIPAL_IDENTITY_CENTER
    assert record.auth_workflow_id == "6d1e7c2a-9f3b-4e8d-a1c5-2b7f0e9d4a11"
    assert record.credential_type == "TOTP"
    assert record.mfa_type == "TOTP"
    assert record.outcome == "Failure"


def test_identity_center_old_format_names_the_user() -> None:
    record = parse_event(load_event("idc-old-credentialverification-totp-failure"))
    assert record.principal == "jane@example.com"
    assert record.principal_type == PRINCIPAL_IDENTITY_CENTER


def test_identity_center_new_format_user_name_in_additional_event_data() -> None:
    record = parse_event(load_event("idc-new-credentialchallenge-password"))
    assert record.principal == "jane@example.com"
    assert record.outcome == "Success"


def test_identity_center_new_format_on_behalf_of_user_id() -> None:
    record = parse_event(load_event("idc-new-credentialchallenge-totp"))
    assert record.principal_key == "94d00cd8-e9e6-4810-b177-b08e84725435"
    assert record.identity_store_user_id == "94d00cd8-e9e6-4810-b177-b08e84725435"


def test_outcome_under_credential_challenge_key_is_read() -> None:
    record = parse_event(load_event("idc-credentialverification-webauthn-failure-challenge-key"))
    assert record.outcome == "Failure"
    assert record.credential_type == "WEBAUTHN"


def test_assumed_role_session_is_role_and_session() -> None:
    record = parse_event(load_event("assumedrole-sso-consolelogin-success"))
    assert (
        record.principal == "AWSReservedSSO_AdministratorAccess_0123456789abcdef/jane@example.com"
    )
    assert record.principal_type == PRINCIPAL_ASSUMED_ROLE


def test_mfa_device_removal_records_target_and_device() -> None:
    record = parse_event(load_event("iam-deactivatemfadevice"))
    assert record.target_user == "ops-admin"
    assert record.mfa_device == "arn:aws:iam::111122223333:mfa/ops-admin-phone"
    assert record.outcome == "Success"
    removed = parse_event(load_event("iam-deletevirtualmfadevice"))
    assert removed.target_user == ""
    assert removed.mfa_device.endswith(":mfa/ops-admin-phone")


# --- the 2025-26 sign-in events (docs/events.md) ---------------------------------------------


def test_aws_login_authorization_is_a_sign_in_success_of_the_same_principal() -> None:
    record = parse_event(load_event("signin-authorizeoauth2access-iamuser"))
    assert (record.event_name, record.event_type) == ("AuthorizeOAuth2Access", "AwsApiCall")
    assert record.outcome == "Success"  # additionalEventData.success "true"
    assert record.failure_kind is FailureKind.NONE
    assert (record.principal, record.principal_type) == ("ops-admin", PRINCIPAL_IAM_USER)
    assert record.source_ip == "198.51.100.77"
    # The key the failed MFA attempts of the same user are counted under (fatigue escalation).
    failure = parse_event(load_event("iam-consolelogin-failure-mfa-yes"))
    assert record.principal_key == failure.principal_key == "ops-admin"
    envelope = envelope_of(load_event("signin-authorizeoauth2access-iamuser"))
    assert (envelope["source"], envelope["detail-type"]) == (
        "aws.signin",
        "AWS API Call via CloudTrail",
    )
    root = parse_event(load_event("signin-authorizeoauth2access-root"))
    assert (root.principal_key, root.outcome) == ("root", "Success")


def test_aws_login_outcome_comes_from_the_success_flag() -> None:
    event = load_event("signin-createoauth2token-iamuser")
    assert parse_event(event).outcome == "Success"
    refused = dict(event, additionalEventData={"success": "false"})
    assert parse_event(refused).outcome == "Failure"
    assert parse_event(refused).failure_kind is FailureKind.OTHER
    # Without the flag an AwsApiCall without an error is a success, as for every API call.
    assert parse_event(dict(event, additionalEventData=None)).outcome == "Success"


def test_denied_aws_login_is_a_policy_denial() -> None:
    record = parse_event(load_event("signin-authorizeoauth2access-failure"))
    assert record.outcome == "Failure"
    assert record.failure_kind is FailureKind.POLICY_DENIAL
    assert record.denied_by == "resource control policy"


def test_policy_denial_after_the_mfa_step_is_not_an_mfa_failure() -> None:
    record = parse_event(load_event("iam-consolelogin-failure-rcp-denied-mfa-yes"))
    assert (record.outcome, record.mfa_used) == ("Failure", True)
    assert record.failure_kind is FailureKind.POLICY_DENIAL
    assert record.denied_by == "resource control policy"
    assert record.failure_reason == "Authorization denied because of a resource control policy"
    assert record.title_value("failure_kind") == "policy_denial"
    assert record.title_value("denied_by") == "resource control policy"


def test_resource_based_policy_denial_names_the_policy() -> None:
    record = parse_event(load_event("iam-consolelogin-failure-rbp-denied"))
    assert record.failure_kind is FailureKind.POLICY_DENIAL
    assert record.denied_by == "resource-based policy"


def test_access_denied_without_the_documented_message_is_still_a_policy_denial() -> None:
    event = load_event("iam-consolelogin-failure-rcp-denied-mfa-yes")
    record = parse_event(dict(event, errorMessage="Access denied"))
    assert (record.failure_kind, record.denied_by) == (FailureKind.POLICY_DENIAL, "")
    # ... and the message alone is enough when the errorCode is missing.
    del event["errorCode"]
    assert parse_event(event).failure_kind is FailureKind.POLICY_DENIAL


@pytest.mark.parametrize(
    ("fixture", "kind"),
    [
        ("iam-consolelogin-failure-mfa-yes", FailureKind.MFA),
        ("root-consolelogin-failure-mfa-yes", FailureKind.MFA),
        ("iam-consolelogin-failure-mfa-no", FailureKind.PASSWORD),
        ("iam-consolelogin-failure-unknown-user", FailureKind.UNKNOWN_USER),
        ("idc-new-credentialverification-totp-failure", FailureKind.MFA),
        ("idc-credentialverification-webauthn-failure-challenge-key", FailureKind.MFA),
        ("idc-new-credentialverification-password-failure", FailureKind.PASSWORD),
        ("iam-consolelogin-success-mfa-yes", FailureKind.NONE),
        ("idc-new-credentialchallenge-totp", FailureKind.NONE),
        # A denied API call is a failure, but not of a sign-in step.
        ("idc-deletemfadeviceforuser-denied", FailureKind.NONE),
    ],
)
def test_failure_kind_says_which_sign_in_step_failed(fixture: str, kind: FailureKind) -> None:
    assert parse_event(load_event(fixture)).failure_kind is kind


@pytest.mark.parametrize(
    ("fixture", "principal_type"),
    [
        ("assumedrole-sso-consolelogin-success", PRINCIPAL_ASSUMED_ROLE),
        ("assumedrole-saml-consolelogin-success", PRINCIPAL_ASSUMED_ROLE),
        ("federateduser-consolelogin-success", PRINCIPAL_FEDERATED),
    ],
)
def test_federated_sessions_record_no_mfa_so_it_is_unknown(
    fixture: str, principal_type: str
) -> None:
    event = load_event(fixture)
    assert event["additionalEventData"]["MFAUsed"] == "No"
    record = parse_event(event)
    assert (record.principal_type, record.outcome, record.mfa_used) == (
        principal_type,
        "Success",
        None,
    )
    # An IAM user's "No" still means no MFA.
    assert parse_event(load_event("iam-consolelogin-success-mfa-no")).mfa_used is False


def test_federated_user_is_named_by_its_federated_user_arn() -> None:
    record = parse_event(load_event("federateduser-consolelogin-success"))
    assert (record.principal, record.principal_key) == ("jane", "jane")


def test_identity_center_mfa_device_calls_name_the_caller() -> None:
    own = parse_event(load_event("idc-deletemfadeviceforuser-self"))
    assert own.principal == "Identity Center user 94d00cd8-e9e6-4810-b177-b08e84725435"
    assert own.principal_type == PRINCIPAL_IDENTITY_CENTER
    assert own.identity_store_user_id == "94d00cd8-e9e6-4810-b177-b08e84725435"
    assert (own.event_source, own.outcome) == ("sso-directory.amazonaws.com", "Success")
    assert envelope_of(own.raw["detail"])["source"] == "aws.sso-directory"
    admin = parse_event(load_event("idc-deletemfadeviceforuser-admin"))
    assert admin.principal == (
        "AWSReservedSSO_AdministratorAccess_0123456789abcdef/alice@example.com"
    )
    denied = parse_event(load_event("idc-deletemfadeviceforuser-denied"))
    assert denied.outcome == "Failure"


@pytest.mark.parametrize(
    ("fixture", "target"),
    [
        ("iam-resyncmfadevice", "ops-admin"),
        ("iam-createloginprofile", "build-bot"),
        ("iam-updateloginprofile", "dev-lead"),
        ("iam-changepassword", ""),  # a user changes their own: requestParameters is null
    ],
)
def test_iam_credential_changes_name_the_user_changed(fixture: str, target: str) -> None:
    record = parse_event(load_event(fixture))
    assert (record.principal, record.target_user, record.outcome) == (
        "ops-admin",
        target,
        "Success",
    )


def test_envelope_and_bare_record_parse_alike() -> None:
    envelope = load_event("eventbridge-root-consolelogin-failure")
    from_envelope = parse_event(envelope)
    from_record = parse_event(envelope["detail"])
    assert from_envelope.event_id == from_record.event_id
    assert from_envelope.principal == from_record.principal
    assert from_envelope.event_time == from_record.event_time


def test_wrapping_a_record_gives_the_envelope_eventbridge_delivers() -> None:
    record = load_event("idc-new-credentialverification-totp-failure")
    envelope = envelope_of(record)
    assert envelope["source"] == "aws.signin"
    assert envelope["detail-type"] == "AWS Service Event via CloudTrail"
    assert envelope["account"] == "111122223333"
    assert envelope["region"] == "eu-west-1"
    assert envelope["time"] == "2026-11-02T13:10:31Z"
    assert envelope["detail"] == record
    assert envelope_of(record)["id"] == envelope["id"]  # stable
    signin = envelope_of(load_event("iam-consolelogin-failure-mfa-yes"))
    assert signin["detail-type"] == "AWS Console Sign In via CloudTrail"
    iam = envelope_of(load_event("iam-deactivatemfadevice"))
    assert (iam["source"], iam["detail-type"]) == ("aws.iam", "AWS API Call via CloudTrail")


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({}, "not a CloudTrail record"),
        ({"foo": 1}, "not a CloudTrail record"),
        ({"detail": {}, "detail-type": "x"}, "envelope has no 'source'"),
        ({"source": "aws.signin", "detail-type": "x"}, "envelope has no 'detail'"),
        ({"source": "aws.signin", "detail": None}, "'detail' is a null, not a JSON object"),
        ({"source": "aws.signin", "detail": [1]}, "'detail' is a array, not a JSON object"),
        ({"source": "aws.signin", "detail": "{}"}, "'detail' is a string, not a JSON object"),
    ],
    ids=["empty", "unrelated", "no-source", "no-detail", "null", "array", "string"],
)
def test_non_cloudtrail_objects_are_rejected_with_a_reason(
    event: dict[str, object], message: str
) -> None:
    with pytest.raises(EventParseError, match=re.escape(message)):
        parse_event(event)


@pytest.mark.parametrize(
    ("event", "kind"),
    [([], "array"), ("x", "string"), (3, "number"), (None, "null"), (True, "boolean")],
)
def test_a_non_object_event_is_a_parse_error_naming_its_type(event: Any, kind: str) -> None:
    # Any: what json.loads gives for any payload, as the handler receives it.
    with pytest.raises(EventParseError, match=f"event is a {kind}, not a JSON object"):
        parse_event(event)


def test_unparseable_time_is_a_problem_that_quotes_the_value() -> None:
    record = parse_event(load_event("iam-consolelogin-failure-mfa-yes") | {"eventTime": "XXXX"})
    assert record.time_problem == (
        "eventTime 'XXXX' is not an ISO-8601 time and the envelope time 'XXXX' is not an "
        "ISO-8601 time"
    )
    assert record.event_time == EVENT_TIME_MIN
    with pytest.raises(EventParseError, match="'XXXX' is not an ISO-8601 time"):
        replay_time(record.raw["detail"])


@pytest.mark.parametrize(
    ("event_time", "problem"),
    [
        ("redacted", "is not an ISO-8601 time"),
        ("9999-12-31T00:00:00Z", "is outside the years 2000-2100"),
    ],
)
def test_envelope_time_rescues_an_unusable_event_time(event_time: str, problem: str) -> None:
    envelope = load_event("eventbridge-root-consolelogin-failure")
    envelope["detail"]["eventTime"] = event_time
    record = parse_event(envelope)
    assert record.event_time == datetime(2026, 11, 2, 11, 20, 31, tzinfo=UTC)
    assert record.time_problem == (
        f"eventTime {event_time!r} {problem}; used the envelope time 2026-11-02T11:20:31Z instead"
    )
    assert replay_time(envelope) == record.event_time  # a real time: the replay uses it too


@pytest.mark.parametrize(
    ("event_time", "expected", "problem"),
    [
        (
            "9999-12-31T23:59:59Z",
            EVENT_TIME_MAX - timedelta(microseconds=1),
            "is outside the years 2000-2100",
        ),
        ("9999-12-31T23:59:59-01:00", EVENT_TIME_MIN, "is not an ISO-8601 time"),  # overflows
        ("0001-01-01T00:00:00+01:00", EVENT_TIME_MIN, "is not an ISO-8601 time"),  # overflows
        ("1970-01-01T00:00:00Z", EVENT_TIME_MIN, "is outside the years 2000-2100"),
        (
            "2101-01-01T00:00:00Z",
            EVENT_TIME_MAX - timedelta(microseconds=1),
            "is outside the years 2000-2100",
        ),
    ],
)
def test_absurd_event_times_do_not_raise_and_stay_in_range(
    event_time: str, expected: datetime, problem: str
) -> None:
    """A bare record: its envelope time is the same bad value, so the bound is used."""
    record = parse_event(load_event("iam-consolelogin-failure-mfa-yes") | {"eventTime": event_time})
    assert record.event_time == expected and record.event_time.tzinfo is UTC
    assert record.event_time.timestamp() > 0  # usable in arithmetic
    assert f"eventTime {event_time!r} {problem}" in record.time_problem
    arrival = datetime(2026, 11, 2, 9, 1, tzinfo=UTC)
    assert processing_time(record, arrival) == (
        arrival,
        record.time_problem + "; processed at its arrival time",
    )


def test_range_bounds_are_inclusive_below_and_exclusive_above() -> None:
    base = load_event("iam-consolelogin-failure-mfa-yes")
    assert parse_event(base | {"eventTime": "2000-01-01T00:00:00Z"}).time_problem == ""
    assert parse_event(base | {"eventTime": "2100-12-31T23:59:59Z"}).time_problem == ""
    assert parse_event(base | {"eventTime": "1999-12-31T23:59:59Z"}).time_problem
    assert parse_event(base | {"eventTime": "2101-01-01T00:00:00Z"}).time_problem


def test_processing_time_is_the_event_time_unless_it_is_ahead_of_arrival() -> None:
    record = parse_event(load_event("iam-consolelogin-failure-mfa-yes"))  # 09:00:08
    on_time = datetime(2026, 11, 2, 9, 0, 10, tzinfo=UTC)
    assert processing_time(record, on_time) == (record.event_time, "")
    skewed = record.event_time - FUTURE_TOLERANCE  # exactly the tolerance: still its own time
    assert processing_time(record, skewed) == (record.event_time, "")
    early = datetime(2026, 10, 30, 9, 0, 8, tzinfo=UTC)
    assert processing_time(record, early) == (
        early,
        "eventTime 2026-11-02T09:00:08Z is 3 days after its arrival; processed at its arrival time",
    )


def test_a_record_without_event_id_gets_a_stable_derived_id() -> None:
    base = load_event("iam-consolelogin-failure-mfa-yes")
    del base["eventID"]
    first = parse_event(base)
    assert re.fullmatch(r"derived-[0-9a-f]{32}", first.event_id)
    reordered = dict(reversed(list(base.items())))
    assert parse_event(reordered).event_id == first.event_id  # key order does not matter
    assert parse_event(base | {"eventID": " "}).event_id.startswith("derived-")  # blank: none
    other = parse_event(base | {"sourceIPAddress": "203.0.113.8"})
    assert other.event_id.startswith("derived-") and other.event_id != first.event_id
    # The envelope a bare record is wrapped in carries an id derived from the same id.
    assert envelope_of(base)["id"] == envelope_of(base | {"eventID": first.event_id})["id"]
    assert envelope_of(base)["id"] != envelope_of(dict(base, sourceIPAddress="x"))["id"]


@pytest.mark.parametrize("path", sorted(EVENTS.glob("*.json")), ids=lambda p: p.stem)
def test_every_fixture_parses_with_id_time_and_principal(path: Path) -> None:
    import json

    record = parse_event(json.loads(path.read_text()))
    assert record.event_id
    assert record.account == "111122223333"
    assert record.principal
    assert record.event_time.year == 2026 and record.time_problem == ""


# Expected (principal, principal type, outcome, MFA used) for the shared corpus; a sample that is
# not listed must still parse or raise EventParseError (never another exception).
SHARED_EXPECTED = {
    "iam-consolelogin-failure-mfa-yes.awsdoc.json": ("anaya", "IAMUser", "Failure", True),
    "iam-consolelogin-failure-mfa-no.elastic.json": ("JaneDoe", "IAMUser", "Failure", False),
    "iam-consolelogin-failure-unknown-username.pwnedlabs.json": (
        "unknown IAM user (name hidden by AWS)",
        "IAMUser",
        "Failure",
        False,
    ),
    "iam-consolelogin-failure-mfa-yes-no-errormessage.panther-synthetic.json": (
        "tester",
        "IAMUser",
        "Failure",
        True,
    ),
    "root-consolelogin-failure.awsdoc.json": ("root", "Root", "Failure", False),
    "root-consolelogin-success-mfa-yes.awsdoc.json": ("root", "Root", "Success", True),
    "eventbridge-signin-root-consolelogin-failure.unittest.json": (
        "root",
        "Root",
        "Failure",
        False,
    ),
    "assumedrole-consolelogin-failure.elastic.json": (  # MFAUsed "No": unknown for a role
        "RoleToBeAssumed/MySessionName",
        "AssumedRole",
        "Failure",
        None,
    ),
    "idc-new-credentialverification-password-failure.awsdoc.json": (
        "unknown user (workflow adbf67c4)",
        "IdentityCenterUser",
        "Failure",
        None,
    ),
    "idc-new-credentialchallenge-password-failedflow.awsdoc.json": (
        "bobsmith@example.com",
        "IdentityCenterUser",
        "Success",
        None,
    ),
    "idc-old-credentialverification-totp-success.awsdoc.json": (
        "user1",
        "IdentityCenterUser",
        "Success",
        None,
    ),
    "idc-new-credentialverification-totp-success.awsdoc.json": (
        "Identity Center user 94d00cd8-e9e6-4810-b177-b08e84725435",
        "IdentityCenterUser",
        "Success",
        None,
    ),
    "iam-deactivatemfadevice.elastic.json": ("Alice", "IAMUser", "Success", None),
}
UNPARSEABLE = {  # redacted timestamps, no envelope to fall back on: a time_problem
    "root-consolelogin-failure.spanish-lab.json",
    "root-externalidpdirectorylogin-failure.panther.json",
}


@needs_shared
def test_shared_corpus_expectations_cover_existing_files() -> None:
    names = {p.name for p in sample_paths()}
    assert set(SHARED_EXPECTED) <= names
    assert names >= UNPARSEABLE


@needs_shared
@pytest.mark.parametrize("path", sample_paths(), ids=lambda p: p.name)
def test_every_shared_sample_parses_or_is_rejected_clearly(path: Path) -> None:
    for event in load_sample(path):
        if path.name in UNPARSEABLE:
            assert "is not an ISO-8601 time" in parse_event(event).time_problem
            with pytest.raises(EventParseError, match="is not an ISO-8601 time"):
                replay_time(event)
            continue
        record = parse_event(event)
        assert record.event_name
        if path.name in SHARED_EXPECTED:
            principal, principal_type, outcome, mfa_used = SHARED_EXPECTED[path.name]
            assert (record.principal, record.principal_type, record.outcome, record.mfa_used) == (
                principal,
                principal_type,
                outcome,
                mfa_used,
            )
