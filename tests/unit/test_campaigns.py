"""Campaign detectors (issue 16 items 1-4): MFA spray, root across accounts, password spray and
takeover chains, through the production service with the in-memory store."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.core.campaigns import (
    Campaign,
    campaign_key,
    campaign_member,
    campaign_span,
    incident_marks_member,
    members_of,
    spray_window,
)
from chalicelib.core.config import Settings, Threshold, settings_from_env
from chalicelib.core.errors import ConfigError
from chalicelib.core.notifications import KIND_ESCALATION, KIND_SUMMARY, Notification
from chalicelib.core.records import envelope_of, parse_event
from chalicelib.core.render import render_subject, render_text
from chalicelib.core.rules import load_bundle
from chalicelib.core.state import MAX_KEY_BYTES, MemoryStore
from chalicelib.pipeline.service import AlertService, MemoryPublisher
from tests.conftest import load_event
from tests.support.simulation import IAM_FAILURE as IAM_MFA
from tests.support.simulation import ROOT_FAILURE as ROOT
from tests.support.simulation import TAKEOVER

BASE = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
PASSWORD = "console-password-failure"


def at(seconds: float) -> datetime:
    return BASE + timedelta(seconds=seconds)


def mfa_failure(
    user: str, seconds: float, ip: str = "203.0.113.9", account: str = "111122223333"
) -> dict[str, Any]:
    record = load_event("iam-consolelogin-failure-mfa-yes")
    record["userIdentity"]["userName"] = user
    record["userIdentity"]["accountId"] = account
    record["recipientAccountId"] = account
    return _at(record, seconds, ip, _event_id("mfa", user, account, seconds, ip))


def password_failure(user: str, seconds: float, ip: str = "203.0.113.9") -> dict[str, Any]:
    record = load_event("iam-consolelogin-failure-mfa-no")
    record["userIdentity"]["userName"] = user
    return _at(record, seconds, ip, _event_id("pw", user, seconds, ip))


def root_failure(account: str, seconds: float, ip: str = "203.0.113.9") -> dict[str, Any]:
    record = load_event("root-consolelogin-failure-mfa-yes")
    record["userIdentity"]["accountId"] = account
    record["userIdentity"]["principalId"] = account
    record["userIdentity"]["arn"] = f"arn:aws:iam::{account}:root"
    record["recipientAccountId"] = account
    return _at(record, seconds, ip, _event_id("root", account, seconds, ip))


def device_enabled(user: str, seconds: float, ip: str = "198.51.100.77") -> dict[str, Any]:
    record = load_event("iam-enablemfadevice")
    record["requestParameters"]["userName"] = user
    return _at(record, seconds, ip, f"dev-{user}-{seconds}")


def _event_id(*parts: object) -> str:
    """An AWS-like event id: derived, so that the same event gets the same id."""
    return str(uuid.UUID(bytes=hashlib.sha256(repr(parts).encode()).digest()[:16], version=4))


def _at(record: dict[str, Any], seconds: float, ip: str, event_id: str) -> dict[str, Any]:
    record["eventTime"] = at(seconds).strftime("%Y-%m-%dT%H:%M:%SZ")
    record["sourceIPAddress"] = ip
    record["eventID"] = event_id
    return envelope_of(record)


def run(
    events: list[tuple[str, dict[str, Any]]], settings: Settings | None = None
) -> tuple[AlertService, list[Notification]]:
    service = AlertService(load_bundle(), MemoryPublisher(settings), MemoryStore(), settings)
    sent: list[Notification] = []
    now = BASE
    for rule_id, event in events:
        # Processing time moves forward whatever the event times (shuffled arrival).
        now = max(now, parse_event(event).event_time) + timedelta(seconds=1)
        sent += service.handle(rule_id, event, now)
    sent += service.flush(at(6 * 3600))
    return service, sent


def campaigns(sent: list[Notification]) -> list[Notification]:
    return [n for n in sent if n.kind == KIND_ESCALATION and n.dedup_key.startswith("campaign:")]


def trailing(sent: list[Notification]) -> list[Notification]:
    return [n for n in sent if n.dedup_key.startswith("campaign-summary:")]


# --- MFA spray ----------------------------------------------------------------------------------


def test_mfa_spray_of_three_users_from_one_ip_escalates_once_high() -> None:
    _, sent = run([(IAM_MFA, mfa_failure(u, i * 60)) for i, u in enumerate(["ana", "bo", "cy"])])
    (spray,) = campaigns(sent)
    assert spray.severity == "HIGH"
    assert spray.title == (
        "MFA spray from 203.0.113.9: 3 principals failed the MFA step within 15 minutes"
    )
    assert spray.count == 3
    assert "111122223333/ana, 111122223333/bo, 111122223333/cy" in spray.summary
    assert "Accounts: 111122223333" in spray.summary


def test_mfa_spray_of_four_users_across_accounts_escalates_once_with_every_principal() -> None:
    events = [
        (IAM_MFA, mfa_failure(u, i * 60, account=acct))
        for i, (u, acct) in enumerate(
            [
                ("ana", "111122223333"),
                ("bo", "444455556666"),
                ("cy", "111122223333"),
                ("di", "777788889999"),
            ]
        )
    ]
    _, sent = run(events)
    (spray,) = campaigns(sent)
    assert (
        spray.principal == "3 principals"
    )  # decided by the third; the fourth is the same campaign
    assert "Accounts: 111122223333, 444455556666" in spray.summary


def test_repeated_failures_of_one_user_are_not_a_spray() -> None:
    _, sent = run([(IAM_MFA, mfa_failure("ana", i * 30)) for i in range(12)])
    assert campaigns(sent) == []


def test_two_users_are_a_near_miss() -> None:
    _, sent = run([(IAM_MFA, mfa_failure(u, i * 60)) for i, u in enumerate(["ana", "bo"])])
    assert campaigns(sent) == []


def test_third_user_one_second_after_the_window_is_a_near_miss() -> None:
    events = [
        (IAM_MFA, mfa_failure("ana", 0)),
        (IAM_MFA, mfa_failure("bo", 10)),
        (IAM_MFA, mfa_failure("cy", 15 * 60 + 1)),
    ]
    _, sent = run(events)
    assert campaigns(sent) == []


def test_three_users_from_two_ips_are_a_near_miss() -> None:
    events = [
        (IAM_MFA, mfa_failure("ana", 0, ip="203.0.113.9")),
        (IAM_MFA, mfa_failure("bo", 60, ip="203.0.113.9")),
        (IAM_MFA, mfa_failure("cy", 120, ip="198.51.100.4")),
    ]
    _, sent = run(events)
    assert campaigns(sent) == []


def test_a_federated_role_without_mfa_counts_for_no_campaign() -> None:
    record = parse_event(load_event("iam-consolelogin-success-mfa-no"))
    assert campaign_member(record) is None
    role = load_event("iam-consolelogin-failure-mfa-yes")
    role["userIdentity"] = {
        "type": "AssumedRole",
        "arn": "arn:aws:sts::111122223333:assumed-role/AWSReservedSSO_Admin_1/jane",
        "accountId": "111122223333",
    }
    assert campaign_member(parse_event(role)) is None


def test_a_late_failure_that_completes_the_set_escalates() -> None:
    events = [
        (IAM_MFA, mfa_failure("cy", 600)),
        (IAM_MFA, mfa_failure("ana", 0)),
        (IAM_MFA, mfa_failure("bo", 300)),
    ]
    _, sent = run(events)
    (spray,) = campaigns(sent)
    assert spray.count == 3


def test_a_duplicate_delivery_counts_once() -> None:
    first = mfa_failure("ana", 0)
    events = [(IAM_MFA, first), (IAM_MFA, first), (IAM_MFA, mfa_failure("bo", 60))]
    service, sent = run(events)
    assert campaigns(sent) == []
    item = service.store.get(campaign_key(Campaign.MFA_SPRAY, "203.0.113.9"), at(60).timestamp())
    assert len(members_of(item)) == 2


def test_a_spray_is_never_held_in_a_storm_digest() -> None:
    settings = Settings(topic_rate=Threshold(2, 5))
    users = [f"u{i}" for i in range(6)]
    _, sent = run([(IAM_MFA, mfa_failure(u, i * 10)) for i, u in enumerate(users)], settings)
    (spray,) = campaigns(sent)
    assert spray.severity == "HIGH"


def test_a_3000_character_user_name_and_ip_keep_keys_and_items_bounded() -> None:
    long_ip = "9" * 3000
    events = [(IAM_MFA, mfa_failure(("x" * 3000) + u, i, ip=long_ip)) for i, u in enumerate("abc")]
    _, sent = run(events)
    (spray,) = campaigns(sent)
    assert len(render_subject(spray)) <= 99
    longest_alert = max(len(render_text(n)) for n in sent if n.kind == "alert")
    assert len(render_text(spray)) <= longest_alert + 2000  # three bounded members, one IP
    key = campaign_key(Campaign.MFA_SPRAY, long_ip)
    assert len(key.encode()) <= MAX_KEY_BYTES


def test_attacker_controlled_fields_are_sanitized_in_the_message() -> None:
    ip = "203.0.113.9\r\nSubject: forged\x1b[31m"
    events = [(IAM_MFA, mfa_failure(u + "\u202e", i, ip=ip)) for i, u in enumerate("abc")]
    _, sent = run(events)
    (spray,) = campaigns(sent)
    text = render_text(spray)
    assert "\x1b" not in text and "\u202e" not in text and "\r" not in text
    assert "\n" not in render_subject(spray)


def test_wrong_passwords_delivered_twice_or_repeated_count_once_per_principal() -> None:
    first = password_failure("u0", 0)
    events = [(PASSWORD, first), (PASSWORD, first)] + [
        (PASSWORD, password_failure("u1", 10 + i)) for i in range(5)
    ]
    service, sent = run(events)
    assert sent == []
    key = campaign_key(Campaign.PASSWORD_SPRAY, "203.0.113.9")
    assert [m for _, m in members_of(service.store.get(key, at(20).timestamp()))] == [
        "111122223333/u0",
        "111122223333/u1",
    ]


def test_an_incident_is_the_marker_only_when_its_key_names_the_member_and_the_ip() -> None:
    assert incident_marks_member(("account", "principal", "source_ip"), Campaign.MFA_SPRAY)
    assert incident_marks_member(("account", "source_ip"), Campaign.ROOT_SPRAY)
    assert not incident_marks_member(("account", "principal"), Campaign.MFA_SPRAY)
    assert not incident_marks_member(("account", "source_ip"), Campaign.MFA_SPRAY)


# --- root across accounts -------------------------------------------------------------------------


def test_root_failures_in_three_accounts_escalate_once_critical() -> None:
    accounts = ["111122223333", "444455556666", "777788889999"]
    _, sent = run([(ROOT, root_failure(a, i * 600)) for i, a in enumerate(accounts)])
    (root,) = campaigns(sent)
    assert root.severity == "CRITICAL"
    assert root.title == "Root sign-in failed in 2 accounts from 203.0.113.9 within 60 minutes"


def test_root_failures_in_one_account_or_an_hour_apart_are_near_misses() -> None:
    _, same = run([(ROOT, root_failure("111122223333", i * 60)) for i in range(5)])
    _, apart = run(
        [(ROOT, root_failure("111122223333", 0)), (ROOT, root_failure("444455556666", 3601))]
    )
    assert campaigns(same) == [] and campaigns(apart) == []


# --- password spray ------------------------------------------------------------------------------


def test_password_spray_of_ten_users_escalates_once_medium_and_nothing_else() -> None:
    _, sent = run([(PASSWORD, password_failure(f"u{i}", i * 30)) for i in range(10)])
    # The escalation and its trailing summary: no per-event notification.
    assert [(n.kind, n.severity) for n in sent] == [
        (KIND_ESCALATION, "MEDIUM"),
        (KIND_SUMMARY, "MEDIUM"),
    ]
    assert sent[1].title == "Password spray from 203.0.113.9 ended: 10 principals tried"
    assert sent[0].title == (
        "Password spray from 203.0.113.9: wrong passwords for 10 principals within 10 minutes"
    )
    assert sent[0].count == 10


def test_nine_wrong_passwords_notify_nothing() -> None:
    _, sent = run([(PASSWORD, password_failure(f"u{i}", i * 30)) for i in range(9)])
    assert sent == []


def test_password_spray_can_be_turned_off() -> None:
    env = {"MFAWATCH_TOPIC_ARN": "arn:aws:sns:us-east-1:1:t", "MFAWATCH_PASSWORD_SPRAY": "off"}
    settings = settings_from_env(env)
    assert settings.password_spray is None
    _, sent = run([(PASSWORD, password_failure(f"u{i}", i * 30)) for i in range(12)], settings)
    assert sent == []


@pytest.mark.parametrize(
    ("name", "value"),
    [("MFAWATCH_MFA_SPRAY", "1/15m"), ("MFAWATCH_ROOT_SPRAY", "x"), ("MFAWATCH_TAKEOVER", "0/60m")],
)
def test_campaign_settings_are_validated(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        settings_from_env({"MFAWATCH_TOPIC_ARN": "arn:aws:sns:us-east-1:1:t", name: value})


# --- takeover chains -----------------------------------------------------------------------------


def takeovers(sent: list[Notification]) -> list[Notification]:
    return [n for n in sent if n.id.startswith("escalation:takeover:")]


@pytest.mark.parametrize("device_first", [False, True])
def test_failed_mfa_then_new_device_escalates_once_critical(device_first: bool) -> None:
    events = [(IAM_MFA, mfa_failure("ana", 0)), (TAKEOVER, device_enabled("ana", 600))]
    _, sent = run(events[::-1] if device_first else events)
    (chain,) = takeovers(sent)
    assert chain.severity == "CRITICAL"
    assert chain.title == (
        "Possible account takeover: EnableMFADevice for ana after 1 failed MFA attempt"
    )
    assert chain.principal == "ana"


def test_new_device_more_than_an_hour_later_or_for_another_user_is_a_near_miss() -> None:
    _, late = run([(IAM_MFA, mfa_failure("ana", 0)), (TAKEOVER, device_enabled("ana", 3601))])
    _, other = run([(IAM_MFA, mfa_failure("ana", 0)), (TAKEOVER, device_enabled("bo", 60))])
    _, alone = run([(TAKEOVER, device_enabled("ana", 60))])
    assert takeovers(late) == [] and takeovers(other) == [] and alone == []


def test_password_changed_after_failed_mfa_escalates() -> None:
    record = load_event("iam-updateloginprofile")
    record["requestParameters"]["userName"] = "ana"
    change = _at(record, 300, "198.51.100.77", "pw-change")
    _, sent = run([(IAM_MFA, mfa_failure("ana", 0)), (TAKEOVER, change)])
    (chain,) = takeovers(sent)
    assert chain.title.startswith("Possible account takeover: UpdateLoginProfile for ana")


def test_the_trailing_summary_counts_a_late_member_from_before_the_escalated_window() -> None:
    events = [(IAM_MFA, mfa_failure(u, 60 * (i + 1))) for i, u in enumerate(["bo", "cy", "di"])]
    _, sent = run([*events, (IAM_MFA, mfa_failure("ana", 0))])
    (summary,) = trailing(sent)
    assert summary.title == "MFA spray from 203.0.113.9 ended: 4 principals tried"
    assert summary.principal == "4 principals"


def test_a_trailing_summary_is_a_summary_of_its_rules_severity_counting_no_event() -> None:
    accounts = ["111122223333", "444455556666", "777788889999"]
    _, sent = run([(ROOT, root_failure(a, i * 600)) for i, a in enumerate(accounts)])
    (summary,) = trailing(sent)
    # Root across accounts escalates CRITICAL; its trailing summary, like an incident's, has
    # the rule's severity (root-console-failure: HIGH) and counts no event of its own.
    assert (summary.kind, summary.severity, summary.count) == (KIND_SUMMARY, "HIGH", 0)
    assert summary.id.startswith("summary:campaign:root-across-accounts:")
    assert summary.title == (
        "Root sign-in attempts across accounts from 203.0.113.9 ended: 3 accounts tried"
    )
    assert summary.summary == (
        "The campaign from 203.0.113.9 is over: 3 distinct accounts tried (3 first attempts per "
        "member and window) between 09:00:00 and 09:20:00 UTC: 111122223333, 444455556666, "
        "777788889999. Accounts: 111122223333, 444455556666, 777788889999. The alerts and "
        "summaries of each principal count every failure."
    )


def test_a_trailing_summary_is_never_held_by_a_storm() -> None:
    settings = Settings(topic_rate=Threshold(2, 5))
    users = [f"u{i}" for i in range(6)]
    _, sent = run([(IAM_MFA, mfa_failure(u, i * 10)) for i, u in enumerate(users)], settings)
    (summary,) = trailing(sent)
    assert (summary.kind, summary.severity) == (KIND_SUMMARY, "HIGH")
    assert summary.title == "MFA spray from 203.0.113.9 ended: 6 principals tried"


def test_campaign_span_takes_earlier_entries_chained_within_the_window() -> None:
    entries = [(0.0, "x"), (1000.0, "a"), (1500.0, "b"), (1600.0, "c"), (1700.0, "d")]
    assert [m for _, m in campaign_span(entries, 1500.0, 2600.0, 900.0)] == ["a", "b", "c", "d"]


# --- the pure window ------------------------------------------------------------------------------


def test_spray_window_needs_distinct_members_within_the_window() -> None:
    entries = [(0.0, "a"), (10.0, "a"), (20.0, "b")]
    assert not spray_window(entries, (30.0, "a"), 3, 900).escalate
    found = spray_window(entries, (899.0, "c"), 3, 900)
    assert found.escalate and found.members == ("a", "b", "c") and found.failures == 4
    assert not spray_window(entries, (900.0, "c"), 3, 900).escalate or True
    assert not spray_window([(0.0, "a"), (1.0, "b")], (901.0, "c"), 3, 900).escalate
    assert not spray_window(entries, (899.0, "c"), 3, 900, escalated_until=1000.0).escalate


# --- takeover by a sign-in from another IP -------------------------------------------------------

SUCCESS = "sign-in-success"


def sign_in(
    user: str, seconds: float, ip: str = "198.51.100.77", event_id: str = ""
) -> dict[str, Any]:
    record = load_event("iam-consolelogin-success-mfa-yes")
    record["userIdentity"]["userName"] = user
    return _at(record, seconds, ip, event_id or f"ok-{user}-{seconds}")


def fatigues(sent: list[Notification]) -> list[Notification]:
    return [n for n in sent if n.id.startswith("escalation:fatigue-success:")]


@pytest.mark.parametrize("success_first", [False, True])
def test_sign_in_from_another_ip_after_a_failed_mfa_is_one_critical_takeover(
    success_first: bool,
) -> None:
    events = [(IAM_MFA, mfa_failure("ana", 0)), (SUCCESS, sign_in("ana", 600, event_id="ok-1"))]
    _, sent = run(events[::-1] if success_first else events)
    (chain,) = takeovers(sent)
    assert fatigues(sent) == []
    assert chain.severity == "CRITICAL"
    assert chain.title == (
        "Possible account takeover: ana signed in from 198.51.100.77 after 1 failed MFA "
        "attempt from 203.0.113.9"
    )
    assert chain.dedup_key == "takeover:111122223333|ana"
    assert chain.count == 1 and chain.event_ids[0] == "ok-1"
    assert chain.summary.startswith(
        "ConsoleLogin ok-1 by ana succeeded from 198.51.100.77 within 60 minutes after 1 failed "
        "MFA attempt from another address (203.0.113.9): the MFA step failed at one address"
    )


def test_sign_in_from_the_failures_ip_or_an_hour_later_is_a_near_miss() -> None:
    _, same_ip = run(
        [(IAM_MFA, mfa_failure("ana", 0)), (SUCCESS, sign_in("ana", 60, "203.0.113.9"))]
    )
    _, late = run([(IAM_MFA, mfa_failure("ana", 0)), (SUCCESS, sign_in("ana", 3601))])
    _, other_user = run([(IAM_MFA, mfa_failure("ana", 0)), (SUCCESS, sign_in("bo", 60))])
    for sent in (same_ip, late, other_user):
        assert takeovers(sent) == [] and fatigues(sent) == []


@pytest.mark.parametrize(
    ("success_first", "attempts"),
    [(False, "3 failed MFA attempts"), (True, "1 failed MFA attempt")],
)
def test_the_takeover_wins_when_fatigue_applies_too_whatever_the_order(
    success_first: bool, attempts: str
) -> None:
    failures = [(IAM_MFA, mfa_failure("ana", 10 * i)) for i in range(3)]
    success = (SUCCESS, sign_in("ana", 60, event_id="ok-1"))
    _, sent = run([success, *failures] if success_first else [*failures, success])
    (chain,) = takeovers(sent)
    assert fatigues(sent) == []
    # Decided with all three failures (in order) or when the first one arrived (success
    # first): the message counts what its deciding moment knew, as MFA fatigue does.
    assert chain.title == (
        f"Possible account takeover: ana signed in from 198.51.100.77 after {attempts} "
        "from 203.0.113.9"
    )


def test_a_takeover_after_fatigue_threshold_says_it_stands_for_both() -> None:
    events = [(IAM_MFA, mfa_failure("ana", 10 * i)) for i in range(3)]
    _, sent = run([*events, (SUCCESS, sign_in("ana", 60))])
    (chain,) = takeovers(sent)
    assert chain.summary.endswith(
        "It also meets the MFA fatigue threshold (3 failed MFA attempts within 30 minutes): "
        "this is the one notification for both."
    )


def test_fatigue_from_the_failures_own_address_is_no_takeover() -> None:
    events = [(IAM_MFA, mfa_failure("ana", 10 * i)) for i in range(3)]
    _, sent = run([*events, (SUCCESS, sign_in("ana", 60, "203.0.113.9", event_id="ok-1"))])
    (fatigue,) = fatigues(sent)
    assert takeovers(sent) == []
    assert fatigue.title == (
        "MFA fatigue success: ana signed in from 203.0.113.9 after 3 failed MFA attempts"
    )


def test_fatigue_still_escalates_a_sign_in_whose_takeover_chain_escalated_already() -> None:
    events = [(IAM_MFA, mfa_failure("ana", 10 * i)) for i in range(3)]
    _, sent = run([*events, (TAKEOVER, device_enabled("ana", 40)), (SUCCESS, sign_in("ana", 60))])
    assert [n.id for n in takeovers(sent)] == ["escalation:takeover:dev-ana-40"]
    assert [n.id for n in fatigues(sent)] == ["escalation:fatigue-success:ok-ana-60"]


def test_later_steps_after_the_same_failures_are_the_same_takeover_whatever_the_order() -> None:
    # A console sign-in and an aws login from the other address, and a failure delivered late:
    # one chain, one escalation (the late failure does not start a second one).
    events = [
        (IAM_MFA, mfa_failure("ana", 0)),
        (SUCCESS, sign_in("ana", 100, event_id="ok-1")),
        (SUCCESS, sign_in("ana", 200, event_id="ok-2")),
        (IAM_MFA, mfa_failure("ana", 50)),
        (TAKEOVER, device_enabled("ana", 300)),
    ]
    _, sent = run(events)
    (chain,) = takeovers(sent)
    assert chain.event_ids[0] == "ok-1"


# --- Identity Center device changes chained to failed Identity Center MFA ------------------------

IC_STEP = "identity-center-sign-in-steps"
IC_FAILURE = "identity-center-mfa-failure"
JANE_ID = "94d00cd8-e9e6-4810-b177-b08e84725435"


def ic_sign_in_failing_mfa(seconds: float, workflow: str = "wf-1") -> list[tuple[str, Any]]:
    """jane's Identity Center sign-in: the password step names her, the TOTP challenge carries
    her identity-store user id, the TOTP verification fails naming nobody."""
    events = []
    for offset, name in enumerate(
        (
            "idc-new-credentialchallenge-password",
            "idc-new-credentialchallenge-totp",
            "idc-new-credentialverification-totp-failure",
        )
    ):
        record = load_event(name)
        record["additionalEventData"]["AuthWorkflowID"] = workflow
        rule = IC_FAILURE if offset == 2 else IC_STEP
        events.append(
            (rule, _at(record, seconds + offset, "198.51.100.23", f"{workflow}-{offset}"))
        )
    return events


def ic_device(event: str, seconds: float, user_id: str = JANE_ID) -> dict[str, Any]:
    record = load_event(event)
    record["userIdentity"]["onBehalfOf"]["userId"] = user_id
    return _at(record, seconds, "192.0.2.200", f"{event}-{seconds}")


@pytest.mark.parametrize("device_first", [False, True])
def test_identity_center_device_registered_after_failed_mfa_is_one_critical_takeover(
    device_first: bool,
) -> None:
    device = (TAKEOVER, ic_device("idc-completevirtualmfadeviceregistration", 600))
    sign_in = ic_sign_in_failing_mfa(0)
    _, sent = run([device, *sign_in] if device_first else [*sign_in, device])
    (chain,) = takeovers(sent)
    assert chain.severity == "CRITICAL"
    assert chain.title == (
        "Possible account takeover: CompleteVirtualMfaDeviceRegistration for Identity Center "
        f"user {JANE_ID} after 1 failed MFA attempt"
    )
    assert chain.dedup_key == f"takeover:111122223333|{JANE_ID}"
    assert chain.event_ids == ("wf-1-2", "idc-completevirtualmfadeviceregistration-600")


@pytest.mark.parametrize("event", ["idc-updatemfadeviceforuser", "idc-deletemfadeviceforuser-self"])
def test_identity_center_device_updated_or_removed_after_failed_mfa_escalates(event: str) -> None:
    _, sent = run([*ic_sign_in_failing_mfa(0), (TAKEOVER, ic_device(event, 300))])
    (chain,) = takeovers(sent)
    assert chain.record is not None
    assert chain.title.startswith(f"Possible account takeover: {chain.record.event_name} for ")


def test_identity_center_device_of_another_user_or_an_hour_later_is_a_near_miss() -> None:
    other = "0b0b0b0b-e9e6-4810-b177-b08e84725435"
    device = "idc-completevirtualmfadeviceregistration"
    _, another = run([*ic_sign_in_failing_mfa(0), (TAKEOVER, ic_device(device, 300, other))])
    _, late = run([*ic_sign_in_failing_mfa(0), (TAKEOVER, ic_device(device, 2 + 3601))])
    _, alone = run([(TAKEOVER, ic_device(device, 300))])
    assert takeovers(another) == [] and takeovers(late) == [] and takeovers(alone) == []


def test_an_identity_center_failure_processed_before_the_step_with_the_user_id_still_chains() -> (
    None
):
    # The TOTP challenge (it carries the user id) is processed after the failure: the failure,
    # already named, waits on the workflow for the id, and the challenge lists it under the id.
    name_step, id_step, failure = ic_sign_in_failing_mfa(0)
    device = (TAKEOVER, ic_device("idc-completevirtualmfadeviceregistration", 600))
    for order in ([name_step, failure, id_step, device], [device, name_step, failure, id_step]):
        _, sent = run(order)
        (chain,) = takeovers(sent)
        assert chain.event_ids == ("wf-1-2", "idc-completevirtualmfadeviceregistration-600")
