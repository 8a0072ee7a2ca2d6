"""Benchmark: full `replay` of a 200,000-record CloudTrail archive against `zcat | jq` select.

Builds (deterministically) 100 `.json.gz` files in the S3 layout, about 1% sign-in events (failed
MFA, successes with and without MFA, wrong passwords, CheckMfa, Identity Center steps) among
ordinary API calls with realistic nested detail, then measures in one run:

  (a) `python -m mfawatch replay --output jsonl DIR` (subprocess: the whole pipeline);
  (b) `zcat FILES | jq -c '.Records[] | select(failed MFA)'` on the same files;
  (c) the decompression floor: `zcat FILES > /dev/null` and Python `gzip.decompress`.

Usage: .venv/bin/python bench/bench_replay.py [--dir DIR] [--records N] [--files N]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mfawatch.paths import REPO_ROOT as ROOT

# tests/ is not installed (make installs chalicelib and mfawatch): use the checkout's copy.
sys.path.insert(0, str(ROOT))
from tests.factory import CloudTrail, Ids, iso

ACCOUNTS = ("111122223333", "444455556666")
REGION = "us-east-1"
START = datetime(2026, 11, 2, 0, 5, tzinfo=UTC)
JQ_FILTER = (
    '.Records[] | select(.eventName=="ConsoleLogin" and .responseElements.ConsoleLogin=="Failure"'
    ' and (.additionalEventData.MFAUsed|ascii_downcase)=="yes")'
)
USERS = [f"user-{n:03d}" for n in range(60)]
ROLES = ["AppRole", "DeployRole", "ReadOnly", "LambdaExec", "EcsTask"]
API_CALLS = [
    ("s3.amazonaws.com", "GetObject", "AwsApiCall"),
    ("s3.amazonaws.com", "PutObject", "AwsApiCall"),
    ("ec2.amazonaws.com", "DescribeInstances", "AwsApiCall"),
    ("sts.amazonaws.com", "AssumeRole", "AwsApiCall"),
    ("kms.amazonaws.com", "Decrypt", "AwsApiCall"),
    ("dynamodb.amazonaws.com", "DescribeTable", "AwsApiCall"),
    ("lambda.amazonaws.com", "GetFunction", "AwsApiCall"),
    ("iam.amazonaws.com", "ListUsers", "AwsApiCall"),
    ("iam.amazonaws.com", "GetRole", "AwsApiCall"),
    ("cloudwatch.amazonaws.com", "GetMetricData", "AwsApiCall"),
]
UA = [
    "aws-cli/2.15.30 Python/3.11.8 Linux/6.1.0 exe/x86_64.amzn.2 prompt/off command/s3.cp",
    "Boto3/1.34.69 md/Botocore#1.34.69 ua/2.0 os/linux#6.1 md/arch#x86_64 lang/python#3.12.1",
    "aws-sdk-java/2.25.11 Linux/5.10 OpenJDK_64-Bit_Server_VM/17.0.10+7-LTS Java/17.0.10",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/131.0.0.0 Safari/537.36",
]


def _api_call(
    cloudtrail: CloudTrail, rng: random.Random, account: str, moment: datetime
) -> dict[str, Any]:
    """An ordinary API call with the nested detail real ones carry (the bulk of an archive)."""
    source, name, _ = rng.choice(API_CALLS)
    identity = cloudtrail.role_session(
        account, rng.choice(ROLES), f"session-{rng.randrange(10_000)}", iso(moment)
    )
    ip = f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}"
    params = {
        "bucketName": f"data-{rng.randrange(50)}",
        "key": f"prefix/{rng.randrange(10**6)}/object.parquet",
        "Host": f"data-{rng.randrange(50)}.s3.amazonaws.com",
        "filters": [{"name": "instance-state-name", "values": ["running", "stopped"]}],
    }
    record = cloudtrail.api_call(
        moment,
        account,
        region=REGION,
        source=source,
        name=name,
        identity=identity,
        ip=ip,
        ua=rng.choice(UA),
        params=params,
    )
    record["additionalEventData"] = {
        "SignatureVersion": "SigV4",
        "CipherSuite": "TLS_AES_128_GCM_SHA256",
        "bytesTransferredIn": rng.randrange(10_000),
        "AuthenticationMethod": "AuthHeader",
        "x-amz-id-2": hashlib.sha256(str(rng.random()).encode()).hexdigest(),
    }
    record["resources"] = [
        {"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::data-{rng.randrange(50)}/prefix/"},
        {"accountId": account, "type": "AWS::S3::Bucket", "ARN": "arn:aws:s3:::data"},
    ]
    return record


def _sign_in(
    cloudtrail: CloudTrail, rng: random.Random, account: str, moment: datetime
) -> dict[str, Any]:
    """A console sign-in step: failed MFA, successes, a wrong password, CheckMfa, Identity
    Center TOTP verification."""
    kind = rng.choice(
        [
            "mfa-fail",
            "mfa-fail",
            "success-mfa",
            "success-no-mfa",
            "wrong-password",
            "check-mfa",
            "idc-totp-fail",
            "idc-totp-ok",
        ]
    )
    user = rng.choice(USERS)
    ip = f"203.0.113.{rng.randrange(1, 255)}"
    if kind == "check-mfa":
        return cloudtrail.check_mfa(moment, account, user, ip=ip, ua=UA[3], region=REGION)
    if kind.startswith("idc-"):
        outcome = "Failure" if kind == "idc-totp-fail" else "Success"
        workflow = str(uuid.UUID(int=rng.getrandbits(128)))
        return cloudtrail.idc_event(
            moment,
            "CredentialVerification",
            credential_type="TOTP",
            outcome=outcome,
            workflow=workflow,
            ip=ip,
            identity=cloudtrail.unauthenticated(account),
            account=account,
            ua=UA[3],
            region=REGION,
        )
    failed = kind in ("mfa-fail", "wrong-password")
    return cloudtrail.console_login(
        moment,
        account,
        cloudtrail.iam_user(account, user, arn=not failed),
        outcome="Failure" if failed else "Success",
        mfa_used="Yes" if kind in ("mfa-fail", "success-mfa") else "No",
        ip=ip,
        ua=UA[3],
        region=REGION,
    )


def build(out: Path, records: int = 200_000, files: int = 100, seed: int = 7) -> list[Path]:
    """Write the archive under ``out`` (S3 layout); deterministic for a given seed."""
    rng = random.Random(seed)
    cloudtrail = CloudTrail(Ids(f"bench-replay-{seed}"))
    if out.exists():
        shutil.rmtree(out)
    per_file = records // files
    written: list[Path] = []
    for n in range(files):
        account = ACCOUNTS[n % len(ACCOUNTS)]
        delivered = START + timedelta(minutes=5 * (n // len(ACCOUNTS)))
        events = []
        for _ in range(per_file):
            # Events precede their delivery by up to 15 minutes.
            moment = delivered - timedelta(seconds=rng.randrange(15 * 60))
            maker = _sign_in if rng.random() < 0.01 else _api_call
            events.append(maker(cloudtrail, rng, account, moment))
        stamp = delivered.strftime("%Y%m%dT%H%MZ")
        folder = out / "AWSLogs" / account / "CloudTrail" / REGION / delivered.strftime("%Y/%m/%d")
        folder.mkdir(parents=True, exist_ok=True)
        suffix = hashlib.sha256(f"{account}{stamp}{n}".encode()).hexdigest()[:16]
        path = folder / f"{account}_CloudTrail_{REGION}_{stamp}_{suffix}.json.gz"
        payload = json.dumps({"Records": events}, separators=(",", ":")).encode()
        path.write_bytes(gzip.compress(payload, compresslevel=6, mtime=0))
        written.append(path)
    return written


def timed_run(command: list[str] | str, *, shell: bool = False) -> tuple[float, str, str]:
    """Run a command from the checkout: (seconds, stdout, stderr); fails on a non-zero exit."""
    start = time.perf_counter()
    done = subprocess.run(  # noqa: PLW1510 - checked below
        command, shell=shell, capture_output=True, text=True, cwd=ROOT
    )
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{command!r} failed ({done.returncode}): {done.stderr[-2000:]}")
    return elapsed, done.stdout, done.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, help="where to build the archive (default: a temp dir)")
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--files", type=int, default=100)
    args = parser.parse_args()
    temp = None
    if args.dir is None:
        temp = tempfile.TemporaryDirectory(prefix="mfawatch-bench-")
        args.dir = Path(temp.name) / "archive"
    try:
        started = time.perf_counter()
        files = build(args.dir, args.records, args.files)
        size = sum(p.stat().st_size for p in files)
        raw = sum(len(gzip.decompress(p.read_bytes())) for p in files)
        print(
            f"built {len(files)} files, {args.records:,} records, {size / 1e6:.1f} MB gzip, "
            f"{raw / 1e6:.1f} MB JSON in {time.perf_counter() - started:.1f} s under {args.dir}"
        )
        names = " ".join(str(p) for p in files)
        n = args.records

        replay_s, out, err = timed_run(
            [
                sys.executable,
                "-m",
                "mfawatch",
                "replay",
                "--output",
                "jsonl",
                "--no-progress",
                str(args.dir),
            ]
        )
        notifications = len(out.splitlines())
        totals = err.strip().splitlines()[-1]
        jq_s, jq_out, _ = timed_run(
            f"/usr/bin/zcat {names} | /usr/bin/jq -c '{JQ_FILTER}'", shell=True
        )
        zcat_s, _, _ = timed_run(f"/usr/bin/zcat {names} > /dev/null", shell=True)
        start = time.perf_counter()
        for path in files:
            gzip.decompress(path.read_bytes())
        pygz_s = time.perf_counter() - start

        print(f"cores: os.cpu_count() = {os.cpu_count()}")
        print(f"{'what':<44} {'records':>9} {'seconds':>8} {'records/s':>11}")
        for label, seconds in (
            ("(a) replay --output jsonl (whole pipeline)", replay_s),
            ("(b) zcat | jq select failed MFA", jq_s),
            ("(c) zcat > /dev/null", zcat_s),
            ("(c) python gzip.decompress", pygz_s),
        ):
            print(f"{label:<44} {n:>9,} {seconds:>8.2f} {n / seconds:>11,.0f}")
        print(f"replay: {notifications} notifications; {totals}")
        print(f"jq: {len(jq_out.splitlines())} failed-MFA records selected")
        print(f"jq / replay = {jq_s / replay_s:.1f}x (goal >= 3x)")
        floor = min(zcat_s, pygz_s)
        print(
            f"replay / decompression floor = {replay_s / floor:.2f}x "
            f"(floor {floor:.2f} s, the faster of zcat and gzip.decompress)"
        )
    finally:
        if temp is not None:
            temp.cleanup()


if __name__ == "__main__":
    main()
