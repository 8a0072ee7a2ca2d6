"""CloudTrail archives in S3: list the log objects of a date range and read them (AWS edge).

The boto3 S3 client is injected (tests pass one under moto). Listing walks the S3 layout
``[prefix/]AWSLogs/[<org-id>/]<account>/CloudTrail/<region>/YYYY/MM/DD/`` with delimiters, so
that for a ``--since/--until`` range only the date folders of that range are listed, never the
whole bucket. Errors become :class:`mfawatch.errors.ArchiveReadError`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from mfawatch.errors import ArchiveReadError
from mfawatch.replay.archive import DEFAULT_LATENESS, ArchiveFile, TimeRange

if TYPE_CHECKING:
    from datetime import timedelta

    from mypy_boto3_s3 import S3Client

# The levels above a region folder: we descend only into these, so a bucket full of other
# data is not walked. CloudTrail-Digest and CloudTrail-Insight folders are not logs.
_REGION_LEVEL = re.compile(r"(?:^|/)AWSLogs/(?:o-[a-z0-9]+/)?\d{12}/CloudTrail/[a-z0-9-]+/$")
_ABOVE_REGION = re.compile(
    r"^(?:.*/)?(?:AWSLogs/|AWSLogs/o-[a-z0-9]+/|AWSLogs/(?:o-[a-z0-9]+/)?\d{12}/"
    r"|AWSLogs/(?:o-[a-z0-9]+/)?\d{12}/CloudTrail/)$"
)
_MAX_DEPTH = 8


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` -> (bucket, prefix)."""
    if not url.startswith("s3://") or len(url) <= len("s3://"):
        raise ArchiveReadError(f"{url}: not an s3://bucket/prefix URL")
    bucket, _, prefix = url[len("s3://") :].partition("/")
    return bucket, prefix


class S3Archive:
    """Lists and reads CloudTrail log objects in S3 through an injected boto3 client."""

    def __init__(self, client: S3Client) -> None:
        self._client = client

    def list_urls(
        self, url: str, time_range: TimeRange, lateness: timedelta = DEFAULT_LATENESS
    ) -> list[str]:
        """The ``s3://`` URLs of the objects under ``url`` that can hold events in range.

        With both ``since`` and ``until``, only the ``YYYY/MM/DD/`` folders of the range are
        listed below each region folder found; otherwise everything under ``url``.
        """
        bucket, prefix = parse_s3_url(url)
        days = time_range.days(lateness)
        try:
            if days is None:
                keys = self._keys(bucket, prefix)
            else:
                keys = []
                for region_prefix in self._region_prefixes(bucket, prefix):
                    for day in days:
                        keys.extend(self._keys(bucket, f"{region_prefix}{day:%Y/%m/%d}/"))
                if not keys and not _ABOVE_REGION.match(prefix) and prefix:
                    # A prefix below the region level (a date folder, one file): list it as is.
                    keys = self._keys(bucket, prefix)
        except (ClientError, BotoCoreError) as exc:
            raise ArchiveReadError(f"{url}: cannot list: {exc}") from exc
        return [f"s3://{bucket}/{key}" for key in keys]

    def read(self, file: ArchiveFile) -> bytes:
        """The bytes of one object."""
        bucket, key = parse_s3_url(file.name)
        try:
            body: bytes = self._client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except (ClientError, BotoCoreError) as exc:
            raise ArchiveReadError(str(exc)) from exc
        return body

    def _keys(self, bucket: str, prefix: str) -> list[str]:
        paginator = self._client.get_paginator("list_objects_v2")
        keys: list[str] = []
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            keys.extend(item["Key"] for item in page.get("Contents", []))
        return keys

    def _region_prefixes(self, bucket: str, prefix: str) -> list[str]:
        if _REGION_LEVEL.search(prefix):
            return [prefix]
        found: list[str] = []
        level = [prefix]
        for _ in range(_MAX_DEPTH):
            below: list[str] = []
            for current in level:
                for child in self._children(bucket, current):
                    if _REGION_LEVEL.search(child):
                        found.append(child)
                    elif _ABOVE_REGION.match(child) or _leads(child):
                        below.append(child)
            if not below:
                break
            level = below
        return sorted(found)

    def _children(self, bucket: str, prefix: str) -> list[str]:
        paginator = self._client.get_paginator("list_objects_v2")
        children: list[str] = []
        page: Any
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
            children.extend(item["Prefix"] for item in page.get("CommonPrefixes", []))
        return children


def _leads(prefix: str) -> bool:
    """True for a folder above ``AWSLogs/`` (a trail's own key prefix)."""
    return "AWSLogs/" not in prefix
