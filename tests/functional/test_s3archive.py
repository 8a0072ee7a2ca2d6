"""Replay from s3://bucket/prefix: date-range listing and reading with moto S3."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws

from mfawatch.errors import ArchiveReadError
from mfawatch.replay.archive import Prefilter, TimeRange, ordered_events, remote_files
from mfawatch.replay.readers import ReadStats
from mfawatch.replay.s3archive import S3Archive, parse_s3_url
from tests.conftest import load_event
from tests.reference import replay_jsonl

MFA_FAIL = load_event("iam-consolelogin-failure-mfa-yes")
BUCKET = "trail-bucket"


def _key(account: str, stamp: str, org: str = "") -> str:
    day = f"{stamp[:4]}/{stamp[4:6]}/{stamp[6:8]}"
    return (
        f"trail/AWSLogs/{org}{account}/CloudTrail/us-east-1/{day}/"
        f"{account}_CloudTrail_us-east-1_{stamp}_x.json.gz"
    )


@pytest.fixture
def s3(aws_credentials: None) -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        for account, stamp, event_id, org in (
            ("111122223333", "20261101T2355Z", "day-before", ""),
            ("111122223333", "20261102T0905Z", "b", ""),
            ("444455556666", "20261102T0900Z", "a", "o-abc123def4/"),
            ("111122223333", "20261104T0905Z", "later", ""),
        ):
            record = dict(
                MFA_FAIL,
                eventID=event_id,
                eventTime=f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]}T{stamp[9:11]}:{stamp[11:13]}:00Z",
            )
            body = gzip.compress(json.dumps({"Records": [record]}).encode())
            client.put_object(Bucket=BUCKET, Key=_key(account, stamp, org), Body=body)
        client.put_object(
            Bucket=BUCKET, Key="trail/AWSLogs/111122223333/CloudTrail-Digest/x", Body=b""
        )
        yield client


def test_date_range_lists_only_the_range_folders(s3: Any) -> None:
    archive = S3Archive(s3)
    window = TimeRange(datetime(2026, 11, 2, tzinfo=UTC), datetime(2026, 11, 3, tzinfo=UTC))
    urls = archive.list_urls(f"s3://{BUCKET}/trail/", window)
    assert sorted(u.rsplit("_", 2)[1] for u in urls) == [
        "20261101T2355Z",
        "20261102T0900Z",
        "20261102T0905Z",
    ]
    assert all("/2026/11/04/" not in u for u in urls)
    # without a range: everything under the prefix
    assert len(archive.list_urls(f"s3://{BUCKET}/trail/", TimeRange())) == 5


def test_s3_objects_replay_in_event_time_order(s3: Any, rules: Any) -> None:
    archive = S3Archive(s3)
    window = TimeRange(datetime(2026, 11, 2, tzinfo=UTC), datetime(2026, 11, 3, tzinfo=UTC))
    stats = ReadStats()
    files = remote_files(archive.list_urls(f"s3://{BUCKET}/", window), stats, window)
    events = ordered_events(
        files, stats, prefilter=Prefilter.for_rules(rules), time_range=window, fetch=archive.read
    )
    assert [e.envelope["detail"]["eventID"] for e in events] == ["a", "b"]
    assert stats.files == 3 and stats.records == 3


def test_missing_object_and_bucket_are_reported(s3: Any) -> None:
    archive = S3Archive(s3)
    stats = ReadStats()
    files = remote_files([f"s3://{BUCKET}/{_key('1', '20261102T0000Z')}"], stats)
    assert list(ordered_events(files, stats, fetch=archive.read)) == []
    assert stats.unreadable_files == 1 and "NoSuchKey" in stats.problems[0]
    with pytest.raises(ArchiveReadError, match="s3://no-such-bucket/: cannot list"):
        archive.list_urls("s3://no-such-bucket/", TimeRange())
    with pytest.raises(ArchiveReadError, match="not an s3://bucket/prefix URL"):
        parse_s3_url("s3://")


def test_cli_replays_an_s3_url(s3: Any) -> None:
    result = replay_jsonl(
        "--since", "2026-11-02", "--until", "2026-11-03", f"s3://{BUCKET}/trail/AWSLogs/"
    )
    assert result.exit_code == 0, result.output
    ids = [json.loads(line)["event_ids"][0] for line in result.stdout.splitlines()]
    assert ids == ["a", "b"]
    assert "files 3, records 3" in result.stderr
