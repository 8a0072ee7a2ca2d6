"""A generated Organization archive (tests/factory.py, three accounts) replayed with
``mfawatch replay``: each campaign gives exactly one escalation of its severity with its counts,
and its near misses give none (issue 16, "Done when")."""

from __future__ import annotations

import gzip
import json
import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.factory import CloudTrail, Ids
from tests.reference import replay_jsonl

ACCOUNTS = ("111122223333", "444455556666", "777788889999")
START = datetime(2026, 11, 3, 9, 0, tzinfo=UTC)
UA = "Mozilla/5.0 (X11; Linux x86_64) HeadlessChrome/130.0.0.0"
SPRAYER, ROOT_PROBER, TAKER = "203.0.113.61", "203.0.113.62", "203.0.113.63"


def organization_day() -> list[dict[str, Any]]:
    ct = CloudTrail(Ids("campaign-replay"))

    def at(minutes: float) -> datetime:
        return START + timedelta(minutes=minutes)

    def mfa_failure(minutes: float, account: str, user: str, ip: str) -> dict[str, Any]:
        identity = ct.iam_user(account, user, arn=False)
        return ct.console_login(
            at(minutes), account, identity, outcome="Failure", mfa_used="Yes", ip=ip, ua=UA
        )

    def root_failure(minutes: float, account: str, ip: str) -> dict[str, Any]:
        return ct.console_login(
            at(minutes), account, ct.root(account), outcome="Failure", mfa_used="No", ip=ip, ua=UA
        )

    def device(minutes: float, account: str, user: str, ip: str) -> dict[str, Any]:
        return ct.api_call(
            at(minutes),
            account,
            region="us-east-1",
            source="iam.amazonaws.com",
            name="EnableMFADevice",
            identity=ct.console_session(account, user, at(minutes)),
            ip=ip,
            ua="AWS Internal",
            params={"userName": user, "serialNumber": f"arn:aws:iam::{account}:mfa/{user}-new"},
        )

    a, b, c = ACCOUNTS
    return [
        # A spray across 4 users of 3 accounts from one IP (each fails twice).
        *(
            mfa_failure(m + r, acct, user, SPRAYER)
            for m, (acct, user) in zip(
                (0, 2, 4, 6), ((a, "ana"), (b, "ben"), (c, "cho"), (a, "dee")), strict=True
            )
            for r in (0, 0.5)
        ),
        # Root attempted in 3 accounts from one IP within the hour.
        *(root_failure(60 + 20 * i, acct, ROOT_PROBER) for i, acct in enumerate(ACCOUNTS)),
        # A failed MFA, then a new device for the same user 30 minutes later.
        mfa_failure(180, b, "eve", TAKER),
        device(210, b, "eve", "198.51.100.201"),
        # Near misses: two users from one IP, a third from another; a third user 15 min + 1 s
        # after the first; root failing twice in one account; a device for a user who never
        # failed; a new device 61 minutes after the failure.
        mfa_failure(300, a, "fay", "192.0.2.70"),
        mfa_failure(301, b, "gus", "192.0.2.70"),
        mfa_failure(302, c, "hal", "192.0.2.71"),
        mfa_failure(400, a, "ike", "192.0.2.72"),
        mfa_failure(401, b, "jo", "192.0.2.72"),
        mfa_failure(415 + 1 / 60, c, "kai", "192.0.2.72"),
        root_failure(500, a, "192.0.2.73"),
        root_failure(505, a, "192.0.2.73"),
        device(520, c, "liv", "192.0.2.74"),
        mfa_failure(600, c, "max", "192.0.2.75"),
        device(661, c, "max", "192.0.2.75"),
    ]


def write_archive(folder: Path, records: list[dict[str, Any]]) -> None:
    """One gzipped CloudTrail file per account, records shuffled within it (CloudTrail does
    not sort a file; replay orders by event time)."""
    by_account: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_account.setdefault(record["recipientAccountId"], []).append(record)
    for account, items in by_account.items():
        random.Random(account).shuffle(items)
        path = folder / "AWSLogs" / account / "CloudTrail" / "us-east-1" / "2026" / "11" / "03"
        path.mkdir(parents=True)
        payload = json.dumps({"Records": items}).encode()
        (path / f"{account}_CloudTrail_us-east-1_20261103T0900Z_campaign.json.gz").write_bytes(
            gzip.compress(payload, mtime=0)
        )


def test_each_campaign_of_an_organization_archive_escalates_once(tmp_path: Path) -> None:
    write_archive(tmp_path, organization_day())
    result = replay_jsonl(str(tmp_path))
    assert result.exit_code == 0, result.output
    items = [json.loads(line) for line in result.stdout.splitlines()]
    escalations = [
        (i["severity"], i["subject"], i["count"])
        for i in items
        if i["kind"] == "escalation" and "brute force" not in i["subject"]
    ]
    # One escalation per campaign when the threshold is crossed.
    assert escalations == [
        (
            "HIGH",
            f"[HIGH] MFA spray from {SPRAYER}: 3 principals failed the MFA step within 15 minutes",
            3,
        ),
        (
            "CRITICAL",
            f"[CRITICAL] Root sign-in failed in 2 accounts from {ROOT_PROBER} within 60 minutes",
            2,
        ),
        (
            "CRITICAL",
            "[CRITICAL] Possible account takeover: EnableMFADevice for eve after 1 failed MFA "
            "attempt",
            1,
        ),
    ]
    # Then each spray's trailing summary, with the exact members once the window is over: a
    # summary of its rule's severity, counting no event (its members' alerts do).
    trailing = [
        (i["severity"], i["subject"], i["count"])
        for i in items
        if i["kind"] == "summary" and i["principal"].endswith((" principals", " accounts"))
    ]
    assert trailing == [
        ("HIGH", f"[HIGH] summary: MFA spray from {SPRAYER} ended: 4 principals tried", 0),
        (
            "HIGH",
            "[HIGH] summary: Root sign-in attempts across accounts from "
            f"{ROOT_PROBER} ended: 3 accounts tried",
            0,
        ),
    ]
    # Every failure still alerts or is summarized as before: 16 MFA failures, 5 root failures.
    counted: Counter[str] = Counter()
    for i in items:
        if i["kind"] in ("alert", "summary", "storm"):
            counted[i["rule"]] += i["count"]
    assert counted == {"iam-console-mfa-failure": 16, "root-console-failure": 5}
