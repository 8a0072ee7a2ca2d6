"""Benchmark: mfawatch.patterns.engine vs moto's EventPattern on a CloudTrail-like workload.

Usage::

    .venv/bin/python bench/bench_eventpattern.py [--records N] [--seed S]

Builds a deterministic archive of CloudTrail records wrapped in EventBridge envelopes (about
1% sign-in events of several kinds, the rest assorted API calls), compiles a handful of
realistic sign-in alert rules, and measures rules x events matching throughput for both
engines (best of a few runs, ``time.perf_counter``). It also checks that both engines agree on
every (rule, event) pair - all operators used here are ones moto implements.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from mfawatch.paths import REPO_ROOT
from mfawatch.patterns.engine import compile_pattern

# tests/ is not installed (make installs chalicelib and mfawatch): use the checkout's copy.
sys.path.insert(0, str(REPO_ROOT))
from tests.factory import CloudTrail, Ids

ACCOUNTS = ["123456789012", "111122223333", "444455556666"]
REGIONS = ["us-east-1", "us-west-2", "eu-west-1", "ap-southeast-2"]
USERS = ["alice", "bob", "carol", "dave", "admin-erin", "admin-frank"]
PUBLIC_IPS = ["203.0.113.7", "203.0.113.200", "198.51.100.23", "192.0.2.44", "2001:db8::1:5"]
SERVICE_HOSTS = ["AWS Internal", "s3.amazonaws.com", "ec2.amazonaws.com", "10.1.2.3"]
AGENTS = [
    "aws-sdk-java/2.20.1 Linux/5.10 OpenJDK_64-Bit_Server_VM/17",
    "Boto3/1.34.0 md/Botocore#1.34.0 ua/2.0 os/linux#5.10 md/arch#x86_64 lang/python#3.12",
    "aws-cli/2.15.0 Python/3.11.6 Linux/6.1 exe/x86_64.amzn.2023",
    "console.amazonaws.com",
]
BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2) AppleWebKit/605.1.15 Safari/605.1.15"

RULES: dict[str, dict[str, Any]] = {
    "console-login-failure-with-mfa": {
        "source": ["aws.signin"],
        "detail-type": ["AWS Console Sign In via CloudTrail"],
        "detail": {
            "eventName": ["ConsoleLogin"],
            "responseElements": {"ConsoleLogin": ["Failure"]},
            "additionalEventData": {"MFAUsed": [{"equals-ignore-case": "yes"}]},
        },
    },
    "root-console-login-failure": {
        "source": ["aws.signin"],
        "detail": {
            "eventName": ["ConsoleLogin"],
            "userIdentity": {"type": ["Root"]},
            "responseElements": {"ConsoleLogin": ["Failure"]},
        },
    },
    "idc-mfa-failure": {
        "source": ["aws.signin"],
        "detail": {
            "eventSource": ["signin.amazonaws.com"],
            "eventName": ["CredentialVerification", "CredentialChallenge"],
            "serviceEventDetails": {"CredentialType": ["TOTP", "WEBAUTHN"]},
            "$or": [
                {"serviceEventDetails": {"CredentialVerification": ["Failure"]}},
                {"serviceEventDetails": {"CredentialChallenge": ["Failure"]}},
            ],
        },
    },
    "mfa-device-removed": {
        "source": ["aws.iam"],
        "detail-type": ["AWS API Call via CloudTrail"],
        "detail": {
            "eventSource": ["iam.amazonaws.com"],
            "eventName": ["DeactivateMFADevice", "DeleteVirtualMFADevice"],
        },
    },
    "login-from-watched-network-outside-org": {
        "source": [{"prefix": "aws.sign"}],
        "detail": {
            "eventName": ["ConsoleLogin"],
            "sourceIPAddress": [{"cidr": "203.0.113.0/24"}, {"cidr": "2001:db8::/32"}],
            "userIdentity": {"arn": [{"anything-but": {"prefix": "arn:aws:iam::111122223333:"}}]},
        },
    },
    "admin-login-failure-outside-home-regions": {
        "detail-type": [{"suffix": "Sign In via CloudTrail"}],
        "detail": {
            "userIdentity": {"arn": [{"wildcard": "arn:aws:iam::*:user/admin-*"}]},
            "errorMessage": [{"exists": True}],
            "awsRegion": [{"anything-but": ["us-east-1", "us-west-2"]}],
        },
    },
}


_CLOUDTRAIL = CloudTrail(Ids("bench-eventpattern"))


def _identity(rng: random.Random, account: str) -> dict[str, Any]:
    role = rng.choice(["Deploy", "ReadOnly", "LambdaExec", "Admin"])
    session = f"session-{rng.randrange(10_000)}"
    return _CLOUDTRAIL.role_session(account, role, session, "2024-05-01T10:00:00Z")


def _api_call(rng: random.Random, account: str, region: str) -> tuple[str, dict[str, Any]]:
    kind = rng.random()
    if kind < 0.45:
        bucket = f"data-{rng.randrange(50)}"
        key = f"logs/{rng.randrange(1000)}/part-{rng.randrange(10_000):05d}.json.gz"
        return "aws.s3", {
            "eventSource": "s3.amazonaws.com",
            "eventName": rng.choice(["GetObject", "PutObject", "HeadObject"]),
            "requestParameters": {"bucketName": bucket, "key": key, "Host": f"{bucket}.s3"},
            "responseElements": None,
            "additionalEventData": {
                "SignatureVersion": "SigV4",
                "CipherSuite": "ECDHE-RSA-AES128-GCM-SHA256",
                "bytesTransferredIn": 0,
                "bytesTransferredOut": rng.randrange(1 << 20),
                "x-amz-id-2": uuid.UUID(int=rng.getrandbits(128)).hex,
            },
            "resources": [
                {"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::{bucket}/{key}"},
                {"accountId": account, "type": "AWS::S3::Bucket", "ARN": f"arn:aws:s3:::{bucket}"},
            ],
            "readOnly": True,
            "managementEvent": False,
            "eventCategory": "Data",
        }
    if kind < 0.75:
        ids = [f"i-{rng.getrandbits(64):016x}" for _ in range(rng.randrange(1, 4))]
        return "aws.ec2", {
            "eventSource": "ec2.amazonaws.com",
            "eventName": rng.choice(["DescribeInstances", "DescribeVolumes", "RunInstances"]),
            "requestParameters": {
                "instancesSet": {"items": [{"instanceId": i} for i in ids]},
                "filterSet": {"items": [{"name": "tag:env", "valueSet": {"items": ["prod"]}}]},
            },
            "responseElements": None,
            "readOnly": True,
            "managementEvent": True,
            "eventCategory": "Management",
        }
    if kind < 0.95:
        return "aws.sts", {
            "eventSource": "sts.amazonaws.com",
            "eventName": "AssumeRole",
            "requestParameters": {
                "roleArn": f"arn:aws:iam::{rng.choice(ACCOUNTS)}:role/Deploy",
                "roleSessionName": f"ci-{rng.randrange(100_000)}",
                "durationSeconds": 3600,
            },
            "responseElements": {
                "credentials": {
                    "accessKeyId": f"ASIA{rng.randrange(10**12):012d}",
                    "expiration": "May 1, 2024, 11:00:00 AM",
                    "sessionToken": "IQoJb3JpZ2luX2VjE" + "x" * 40,
                },
                "assumedRoleUser": {"assumedRoleId": "AROAEXAMPLE:ci", "arn": "arn:aws:sts::x"},
            },
            "readOnly": True,
            "managementEvent": True,
            "eventCategory": "Management",
        }
    return "aws.iam", {
        "eventSource": "iam.amazonaws.com",
        "eventName": rng.choice(["ListUsers", "GetRole", "ListMFADevices", "CreateAccessKey"]),
        "requestParameters": {"userName": rng.choice(USERS)},
        "responseElements": None,
        "readOnly": True,
        "managementEvent": True,
        "eventCategory": "Management",
    }


def _sign_in(rng: random.Random, account: str, region: str) -> tuple[str, str, dict[str, Any]]:
    """Return (source, detail-type, detail) for a sign-in related record."""
    kind = rng.randrange(5)
    ip = rng.choice(PUBLIC_IPS)
    if kind <= 1:  # IAM user or root console login
        root = kind == 1 and rng.random() < 0.5
        failed = rng.random() < 0.5
        user = rng.choice(USERS)
        identity = (
            {"type": "Root", "principalId": account, "arn": f"arn:aws:iam::{account}:root"}
            if root
            else {
                "type": "IAMUser",
                "principalId": f"AIDA{rng.randrange(10**12):012d}",
                "arn": f"arn:aws:iam::{account}:user/{user}",
                "userName": user,
            }
        )
        identity["accountId"] = account
        detail: dict[str, Any] = {
            "eventSource": "signin.amazonaws.com",
            "eventName": "ConsoleLogin",
            "userIdentity": identity,
            "sourceIPAddress": ip,
            "userAgent": BROWSER,
            "requestParameters": None,
            "responseElements": {"ConsoleLogin": "Failure" if failed else "Success"},
            "additionalEventData": {
                "LoginTo": "https://console.aws.amazon.com/console/home",
                "MobileVersion": "No",
                "MFAUsed": rng.choice(["Yes", "YES", "No", "yes"]),
            },
            "eventType": "AwsConsoleSignIn",
            "readOnly": False,
            "managementEvent": True,
            "eventCategory": "Management",
        }
        if failed:
            detail["errorMessage"] = "Failed authentication"
        return "aws.signin", "AWS Console Sign In via CloudTrail", detail
    if kind <= 3:  # IAM Identity Center credential checks
        event_name = rng.choice(["CredentialVerification", "CredentialChallenge"])
        return (
            "aws.signin",
            "AWS Service Event via CloudTrail",
            {
                "eventSource": "signin.amazonaws.com",
                "eventName": event_name,
                "userIdentity": {
                    "type": "Unknown",
                    "principalId": f"{account}:{rng.choice(USERS)}",
                    "accountId": account,
                    "userName": rng.choice(USERS),
                },
                "sourceIPAddress": ip,
                "userAgent": BROWSER,
                "serviceEventDetails": {
                    event_name: rng.choice(["Success", "Failure"]),
                    "CredentialType": rng.choice(["TOTP", "WEBAUTHN", "PASSWORD", "EXTERNAL_IDP"]),
                },
                "eventType": "AwsServiceEvent",
                "readOnly": False,
                "managementEvent": True,
                "eventCategory": "Management",
            },
        )
    return (
        "aws.iam",
        "AWS API Call via CloudTrail",
        {
            "eventSource": "iam.amazonaws.com",
            "eventName": rng.choice(["DeactivateMFADevice", "DeleteVirtualMFADevice"]),
            "userIdentity": _identity(rng, account),
            "sourceIPAddress": ip,
            "userAgent": rng.choice(AGENTS),
            "requestParameters": {
                "userName": rng.choice(USERS),
                "serialNumber": f"arn:aws:iam::{account}:mfa/device",
            },
            "responseElements": None,
            "readOnly": False,
            "managementEvent": True,
            "eventCategory": "Management",
        },
    )


def build_workload(records: int, seed: int = 20240501) -> list[dict[str, Any]]:
    """A deterministic list of EventBridge-wrapped CloudTrail records."""
    rng = random.Random(seed)
    events: list[dict[str, Any]] = []
    for n in range(records):
        account = rng.choice(ACCOUNTS)
        region = rng.choice(REGIONS)
        if rng.random() < 0.01:
            source, detail_type, detail = _sign_in(rng, account, region)
        else:
            source, detail = _api_call(rng, account, region)
            detail_type = "AWS API Call via CloudTrail"
            detail["userIdentity"] = _identity(rng, account)
            detail["sourceIPAddress"] = rng.choice(PUBLIC_IPS + SERVICE_HOSTS)
            detail["userAgent"] = rng.choice(AGENTS)
            detail["eventType"] = "AwsApiCall"
        when = f"2024-05-01T{n // 3600 % 24:02d}:{n // 60 % 60:02d}:{n % 60:02d}Z"
        detail.update(
            {
                "eventVersion": "1.08",
                "eventTime": when,
                "awsRegion": region,
                "requestID": str(uuid.UUID(int=rng.getrandbits(128))),
                "eventID": str(uuid.UUID(int=rng.getrandbits(128))),
                "recipientAccountId": account,
                "tlsDetails": {
                    "tlsVersion": "TLSv1.3",
                    "cipherSuite": "TLS_AES_128_GCM_SHA256",
                    "clientProvidedHostHeader": f"{source[4:]}.{region}.amazonaws.com",
                },
            }
        )
        events.append(
            {
                "version": "0",
                "id": str(uuid.UUID(int=rng.getrandbits(128))),
                "detail-type": detail_type,
                "source": source,
                "account": account,
                "time": when,
                "region": region,
                "resources": [],
                "detail": detail,
            }
        )
    return events


def _best_of(runs: int, fn: Callable[[], list[list[bool]]]) -> tuple[float, list[list[bool]]]:
    best = float("inf")
    result: list[list[bool]] = []
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--records", type=int, default=20_000, help="events (default 20000)")
    parser.add_argument("--seed", type=int, default=20240501)
    parser.add_argument("--runs", type=int, default=5, help="timed runs of our engine")
    parser.add_argument("--moto-runs", type=int, default=2, help="timed runs of moto")
    args = parser.parse_args(argv)

    # Imported late: moto is a dev-only dependency and slow to import.
    from moto.events.models import EventPattern as MotoEventPattern

    events = build_workload(args.records, args.seed)
    texts = {name: json.dumps(p) for name, p in RULES.items()}
    ours = [compile_pattern(t) for t in texts.values()]
    moto = [MotoEventPattern.load(t) for t in texts.values()]
    pairs = len(events) * len(ours)
    sign_ins = sum(1 for e in events if e["detail"]["eventSource"] == "signin.amazonaws.com")

    def run_ours() -> list[list[bool]]:
        return [[p.matches(e) for e in events] for p in ours]

    def run_moto() -> list[list[bool]]:
        return [[p.matches_event(e) for e in events] for p in moto]

    ours_s, ours_res = _best_of(args.runs, run_ours)
    moto_s, moto_res = _best_of(args.moto_runs, run_moto)
    disagreements = sum(
        a != b
        for ra, rb in zip(ours_res, moto_res, strict=True)
        for a, b in zip(ra, rb, strict=True)
    )

    print(f"python {platform.python_version()}  os.cpu_count()={os.cpu_count()}")
    print(f"events: {len(events)} ({sign_ins} sign-in records)  rules: {len(ours)}  pairs: {pairs}")
    for name, row in zip(RULES, ours_res, strict=True):
        print(f"  {name:42s} matched {sum(row):5d} events")
    print(f"ours : best of {args.runs}: {ours_s:8.4f} s  {pairs / ours_s:14,.0f} matches/s")
    print(f"moto : best of {args.moto_runs}: {moto_s:8.4f} s  {pairs / moto_s:14,.0f} matches/s")
    print(f"speed-up: {moto_s / ours_s:.1f}x")
    print(f"disagreements with moto: {disagreements} of {pairs} (rule, event) pairs")
    return 0 if disagreements == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
