"""Generate the bundled demo scenario: one day of CloudTrail, as S3 delivers it, for two accounts.

Run ``python scenarios/generate_demo.py`` to rewrite ``scenarios/demo/``; a test checks that the
committed files equal this script's output, so edit the story here. Every event is written by
hand with the builders of tests/factory.py, modeled on the real formats.

The story (2026-11-02, UTC):
- 08:59-09:09 account 111122223333, IAM user ops-admin, attacker at 203.0.113.7: a mistyped
  password, 12 failed MFA codes in four minutes, a successful sign-in (MFA fatigue worked), then
  the attacker removes ops-admin's MFA device and registers their own.
- 11:20-11:25 account 444455556666: a failed root sign-in from 192.0.2.44, then root signs in
  WITHOUT MFA from the same address.
- 13:05-13:12 IAM Identity Center (home region eu-west-1): jane@example.com fumbles her TOTP code
  twice before it works (post-July-2025 format: the failures name nobody); someone else types a
  wrong password.
- 14:00 account 444455556666, eu-north-1 sign-in endpoint: dev-lead fails MFA once, then succeeds.
- 10:15 build-bot signs in with a password alone.
- All day: ordinary API calls and sign-ins with MFA (benign noise).
- 15:30-16:04 a campaign from 203.0.113.150: the MFA step fails for alice, bob (111122223333),
  carol and dave (444455556666), one attempt each (an MFA spray); eleven minutes later the same
  address enables its own MFA device for carol (a takeover chain); then root sign-in fails in
  both accounts (root across accounts).
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
import random
import shutil
import sys
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mfawatch.paths import REPO_ROOT

# tests/ is not installed (make installs chalicelib and mfawatch): use the checkout's copy.
sys.path.insert(0, str(REPO_ROOT))
from tests.factory import CloudTrail, Ids

OUT = Path(__file__).resolve().parent / "demo"
PROD = "111122223333"
DEV = "444455556666"
DAY = datetime(2026, 11, 2, tzinfo=UTC)
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
ATTACKER_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "HeadlessChrome/130.0.0.0 Safari/537.36"
)
FIREFOX = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.5; rv:132.0) Gecko/20100101 Firefox/132.0"


def at(hms: str) -> datetime:
    h, m, s = (int(x) for x in hms.split(":"))
    return DAY.replace(hour=h, minute=m, second=s)


_cloudtrail = CloudTrail(Ids("mfawatch-demo"))
iam_user = _cloudtrail.iam_user
root = _cloudtrail.root
console_login = _cloudtrail.console_login
check_mfa = _cloudtrail.check_mfa
idc_event = functools.partial(_cloudtrail.idc_event, account=PROD, ua=FIREFOX)
unauthenticated = _cloudtrail.unauthenticated
idc_user = _cloudtrail.idc_user
api_call = _cloudtrail.api_call
console_session = _cloudtrail.console_session
role_session = _cloudtrail.role_session


def story() -> list[dict[str, Any]]:
    """Every event of the day, chapter by chapter (the ids are numbered in this order)."""
    return [
        *_ops_admin_fatigue(),
        *_dev_root_without_mfa(),
        *_identity_center_totp(),
        *_dev_lead(),
        *_build_bot(),
        *_benign_noise(),
        *_campaign(),
    ]


def _ops_admin_fatigue() -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    add = events.append
    attacker = "203.0.113.7"
    # 1. ops-admin: the password is known; MFA codes are guessed until one works.
    add(
        console_login(
            at("08:59:40"),
            PROD,
            iam_user(PROD, "ops-admin", arn=False),
            outcome="Failure",
            mfa_used="No",
            ip=attacker,
            ua=ATTACKER_UA,
        )
    )
    failures = [
        at("09:00:08") + timedelta(seconds=s)
        for s in (0, 19, 41, 60, 83, 101, 122, 150, 171, 193, 214, 232)
    ]
    for when in failures:
        add(
            check_mfa(
                when - timedelta(seconds=3),
                PROD,
                "ops-admin",
                ip=attacker,
                ua=ATTACKER_UA,
                region="us-east-1",
            )
        )
        add(
            console_login(
                when,
                PROD,
                iam_user(PROD, "ops-admin", arn=False),
                outcome="Failure",
                mfa_used="Yes",
                ip=attacker,
                ua=ATTACKER_UA,
            )
        )
    add(
        console_login(
            at("09:05:10"),
            PROD,
            iam_user(PROD, "ops-admin"),
            outcome="Success",
            mfa_used="Yes",
            ip=attacker,
            ua=ATTACKER_UA,
            mfa_identifier=f"arn:aws:iam::{PROD}:mfa/ops-admin-phone",
        )
    )
    session = console_session(PROD, "ops-admin", at("09:05:10"))
    # The attacker, signed in as ops-admin, swaps the MFA device (IAM calls, us-east-1).
    attacker_iam = functools.partial(
        api_call,
        region="us-east-1",
        source="iam.amazonaws.com",
        identity=session,
        ip=attacker,
        ua="AWS Internal",
    )
    add(attacker_iam(at("09:06:02"), PROD, name="ListMFADevices", params={"userName": "ops-admin"}))
    add(
        attacker_iam(
            at("09:07:42"),
            PROD,
            name="DeactivateMFADevice",
            params={
                "userName": "ops-admin",
                "serialNumber": f"arn:aws:iam::{PROD}:mfa/ops-admin-phone",
            },
        )
    )
    add(
        attacker_iam(
            at("09:07:50"),
            PROD,
            name="DeleteVirtualMFADevice",
            params={"serialNumber": f"arn:aws:iam::{PROD}:mfa/ops-admin-phone"},
        )
    )
    add(
        attacker_iam(
            at("09:08:31"),
            PROD,
            name="CreateVirtualMFADevice",
            params={"virtualMFADeviceName": "ops-admin-new", "path": "/"},
        )
    )
    add(
        attacker_iam(
            at("09:09:00"),
            PROD,
            name="EnableMFADevice",
            params={
                "userName": "ops-admin",
                "serialNumber": f"arn:aws:iam::{PROD}:mfa/ops-admin-new",
            },
        )
    )
    return events


def _dev_root_without_mfa() -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    add = events.append
    # 2. Root of the dev account: a failure, then a success without MFA from the same address.
    for when, outcome in (("11:20:30", "Failure"), ("11:25:02", "Success")):
        add(
            console_login(
                at(when),
                DEV,
                root(DEV),
                outcome=outcome,
                mfa_used="No",
                ip="192.0.2.44",
                ua=FIREFOX,
            )
        )
    return events


def _identity_center_totp() -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    add = events.append
    # 3. Identity Center: jane fumbles her TOTP twice (new format: failures name nobody).
    workflow = "6d1e7c2a-9f3b-4e8d-a1c5-2b7f0e9d4a11"
    jane_ip = "198.51.100.23"
    jane_id = "94d00cd8-e9e6-4810-b177-b08e84725435"
    # (time, step, credential, outcome, names jane in userIdentity, UserName in the event)
    steps = (
        ("13:10:01", "CredentialChallenge", "PASSWORD", "Success", False, "jane@example.com"),
        ("13:10:09", "CredentialVerification", "PASSWORD", "Success", False, "jane@example.com"),
        ("13:10:10", "CredentialChallenge", "TOTP", "Success", True, ""),
        ("13:10:31", "CredentialVerification", "TOTP", "Failure", False, ""),
        ("13:10:45", "CredentialVerification", "TOTP", "Failure", False, ""),
        ("13:11:02", "CredentialVerification", "TOTP", "Success", True, ""),
        ("13:11:03", "UserAuthentication", "PASSWORD,TOTP", "Success", True, "jane@example.com"),
    )
    for when, step, credential, outcome, named, user_name in steps:
        add(
            idc_event(
                at(when),
                step,
                credential_type=credential,
                outcome=outcome,
                workflow=workflow,
                ip=jane_ip,
                identity=idc_user(PROD, jane_id) if named else unauthenticated(PROD),
                user_name=user_name,
            )
        )
    # Someone else types a wrong Identity Center password: not an MFA failure.
    add(
        idc_event(
            at("13:05:00"),
            "CredentialVerification",
            credential_type="PASSWORD",
            outcome="Failure",
            workflow="0e3c5a71-4b2d-4f6a-9c8e-7d1b2a3c4e55",
            ip="203.0.113.150",
            identity=unauthenticated(PROD),
        )
    )
    return events


def _dev_lead() -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    add = events.append
    # 4. dev-lead, eu-north-1 endpoint: one failed MFA code, then success.
    sign_in = functools.partial(
        console_login, mfa_used="Yes", ip="198.51.100.200", ua=CHROME, region="eu-north-1"
    )
    add(sign_in(at("14:00:12"), DEV, iam_user(DEV, "dev-lead", arn=False), outcome="Failure"))
    add(
        sign_in(
            at("14:00:40"),
            DEV,
            iam_user(DEV, "dev-lead"),
            outcome="Success",
            mfa_identifier=f"arn:aws:iam::{DEV}:mfa/dev-lead",
        )
    )
    return events


def _build_bot() -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    add = events.append
    # 5. build-bot signs in with a password alone.
    add(
        console_login(
            at("10:15:00"),
            PROD,
            iam_user(PROD, "build-bot"),
            outcome="Success",
            mfa_used="No",
            ip="198.51.100.99",
            ua=CHROME,
        )
    )
    return events


def _benign_noise() -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    add = events.append
    # 6. Benign noise: sign-ins with MFA and ordinary API calls.
    rng = random.Random(20261102)
    people = [("alice", PROD), ("bob", PROD), ("carol", DEV), ("dave", DEV)]
    for name, account in people:
        when = at("08:00:00") + timedelta(seconds=rng.randrange(0, 9 * 3600))
        ip = f"198.51.100.{rng.randrange(30, 90)}"
        add(
            check_mfa(
                when - timedelta(seconds=4), account, name, ip=ip, ua=CHROME, region="us-east-1"
            )
        )
        add(
            console_login(
                when,
                account,
                iam_user(account, name),
                outcome="Success",
                mfa_used="Yes",
                ip=ip,
                ua=CHROME,
                mfa_identifier=f"arn:aws:iam::{account}:mfa/{name}",
            )
        )
    calls: list[tuple[str, str, dict[str, Any] | None]] = [
        ("s3.amazonaws.com", "GetBucketLocation", {"bucketName": "app-assets"}),
        ("ec2.amazonaws.com", "DescribeInstances", {"maxResults": 100}),
        (
            "sts.amazonaws.com",
            "AssumeRole",
            {"roleArn": "arn:aws:iam::111122223333:role/deploy", "roleSessionName": "ci"},
        ),
        ("kms.amazonaws.com", "Decrypt", {"encryptionAlgorithm": "SYMMETRIC_DEFAULT"}),
        ("lambda.amazonaws.com", "ListFunctions20150331", None),
        ("cloudformation.amazonaws.com", "DescribeStacks", None),
        ("iam.amazonaws.com", "GetUser", {"userName": "alice"}),
    ]
    regions = ["us-east-1", "us-east-1", "eu-west-1", "eu-north-1"]
    for _ in range(360):
        source, name, params = rng.choice(calls)
        account = rng.choice([PROD, DEV])
        region = "us-east-1" if source == "iam.amazonaws.com" else rng.choice(regions)
        when = at("08:00:00") + timedelta(seconds=rng.randrange(0, 8 * 3600))
        identity = role_session(account, "app-runtime", f"i-{rng.randrange(16**8):08x}")
        error = (
            ("AccessDenied", "User is not authorized to perform this action")
            if rng.random() < 0.03
            else None
        )
        add(
            api_call(
                when,
                account,
                region=region,
                source=source,
                name=name,
                identity=identity,
                ip=f"10.0.{rng.randrange(256)}.{rng.randrange(256)}",
                ua="aws-sdk-java/2.25.0 Linux/5.10",
                params=params,
                error=error,
            )
        )
    return events


def _campaign() -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    add = events.append
    # 7. A campaign: one address that knows four passwords (two accounts) fails the MFA step for
    # each, then registers its own MFA device for carol; and tries root in both accounts.
    sprayer = "203.0.113.150"
    for offset, (name, account) in enumerate(
        [("alice", PROD), ("bob", PROD), ("carol", DEV), ("dave", DEV)]
    ):
        add(
            console_login(
                at("15:30:00") + timedelta(seconds=70 * offset),
                account,
                iam_user(account, name, arn=False),
                outcome="Failure",
                mfa_used="Yes",
                ip=sprayer,
                ua=ATTACKER_UA,
            )
        )
    add(
        api_call(
            at("15:41:12"),
            DEV,
            region="us-east-1",
            source="iam.amazonaws.com",
            name="EnableMFADevice",
            identity=console_session(DEV, "carol", at("15:40:00")),
            ip=sprayer,
            ua="AWS Internal",
            params={"userName": "carol", "serialNumber": f"arn:aws:iam::{DEV}:mfa/carol-new"},
        )
    )
    for offset, account in enumerate([PROD, DEV]):
        add(
            console_login(
                at("16:02:00") + timedelta(seconds=95 * offset),
                account,
                root(account),
                outcome="Failure",
                mfa_used="No",
                ip=sprayer,
                ua=ATTACKER_UA,
            )
        )
    return events


def write(events: list[dict[str, Any]], out: Path = OUT) -> list[Path]:
    """Write events as CloudTrail S3 log files: one file per account, region and 5 minutes."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        moment = datetime.strptime(event["eventTime"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        bucket = moment.replace(minute=moment.minute - moment.minute % 5, second=0)
        groups[
            (event["recipientAccountId"], event["awsRegion"], bucket.strftime("%Y%m%dT%H%MZ"))
        ].append(event)
    if out.exists():
        shutil.rmtree(out)
    written = []
    for (account, region, stamp), records in sorted(groups.items()):
        records.sort(key=lambda r: (r["eventTime"], r["eventID"]))
        folder = (
            out / "AWSLogs" / account / "CloudTrail" / region / stamp[:4] / stamp[4:6] / stamp[6:8]
        )
        folder.mkdir(parents=True, exist_ok=True)
        suffix = hashlib.sha256(f"{account}{region}{stamp}".encode()).hexdigest()[:16]
        path = folder / f"{account}_CloudTrail_{region}_{stamp}_{suffix}.json.gz"
        payload = json.dumps({"Records": records}, separators=(",", ":")).encode()
        path.write_bytes(gzip.compress(payload, mtime=0))
        written.append(path)
    return written


if __name__ == "__main__":
    files = write(story())
    print(f"wrote {len(files)} files under {OUT}")
