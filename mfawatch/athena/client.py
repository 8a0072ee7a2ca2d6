"""The Athena backtest's AWS edge: run the query, wait for it, read what ``UNLOAD`` wrote.

Plain boto3, three Athena calls (``StartQueryExecution``, ``GetQueryExecution``,
``StopQueryExecution``) through an injected client, and the result files read by the S3 reader
replay already uses (:class:`mfawatch.replay.s3archive.S3Archive`). The clock and ``sleep`` are
injected too, so the polling is tested without waiting. Errors become :class:`AthenaQueryError`
carrying Athena's own reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from mfawatch.athena.sql import scan_cost_usd, unload_statement
from mfawatch.errors import ArchiveReadError, AthenaQueryError
from mfawatch.replay.archive import ArchiveFile, TimeRange
from mfawatch.replay.readers import ReadStats

if TYPE_CHECKING:
    from mypy_boto3_athena import AthenaClient

    from mfawatch.replay.s3archive import S3Archive

# GetQueryExecution states (https://docs.aws.amazon.com/athena/latest/APIReference/API_QueryExecutionStatus.html).
SUCCEEDED = "SUCCEEDED"
FAILED = "FAILED"
CANCELLED = "CANCELLED"
_FINAL = frozenset({SUCCEEDED, FAILED, CANCELLED})


@dataclass(frozen=True)
class QueryStatus:
    """Where a query stands: its state, the bytes it scanned so far, the time since it started."""

    query_id: str
    state: str
    scanned_bytes: int
    elapsed_seconds: float
    reason: str = ""

    @property
    def cost_usd(self) -> float:
        return scan_cost_usd(self.scanned_bytes)


Progress = Callable[[QueryStatus], None]


class AthenaQueries:
    """Starts a query and polls it to the end (backing off from 0.5 s to 5 s between polls)."""

    def __init__(
        self,
        client: AthenaClient,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        first_poll: float = 0.5,
        longest_poll: float = 5.0,
    ) -> None:
        self._client = client
        self._sleep = sleep
        self._clock = clock
        self._first_poll = first_poll
        self._longest_poll = longest_poll

    def start(self, sql: str, *, output: str, workgroup: str | None = None) -> str:
        """Start ``sql``; its metadata and manifest go to ``output`` (an ``s3://`` prefix)."""
        try:
            if workgroup:
                started = self._client.start_query_execution(
                    QueryString=sql,
                    ResultConfiguration={"OutputLocation": output},
                    WorkGroup=workgroup,
                )
            else:
                started = self._client.start_query_execution(
                    QueryString=sql, ResultConfiguration={"OutputLocation": output}
                )
        except (ClientError, BotoCoreError) as exc:
            raise AthenaQueryError(f"Athena did not start the query: {exc}") from exc
        return started["QueryExecutionId"]

    def wait(self, query_id: str, progress: Progress | None = None) -> QueryStatus:
        """Poll until the query ends; return its final status or raise with Athena's reason.

        Interrupted (Ctrl-C), the query is stopped, so that it does not go on scanning.
        """
        started = self._clock()
        pause = self._first_poll
        try:
            while True:
                status = self.status(query_id, self._clock() - started)
                if progress is not None:
                    progress(status)
                if status.state in _FINAL:
                    break
                self._sleep(pause)
                pause = min(pause * 2, self._longest_poll)
        except KeyboardInterrupt:
            self.stop(query_id)
            raise
        if status.state != SUCCEEDED:
            scanned = f"after scanning {status.scanned_bytes:,} bytes"
            raise AthenaQueryError(
                f"Athena query {query_id} {status.state} {scanned}: "
                f"{status.reason or 'Athena gave no reason'}"
            )
        return status

    def status(self, query_id: str, elapsed: float) -> QueryStatus:
        """The query's state now."""
        try:
            execution = self._client.get_query_execution(QueryExecutionId=query_id)[
                "QueryExecution"
            ]
        except (ClientError, BotoCoreError) as exc:
            raise AthenaQueryError(f"cannot read the state of query {query_id}: {exc}") from exc
        state = execution.get("Status", {})
        error = state.get("AthenaError", {})
        reason = state.get("StateChangeReason") or error.get("ErrorMessage") or ""
        if error.get("ErrorType") is not None and reason:
            reason = (
                f"{reason} (error category {error.get('ErrorCategory')}, type {error['ErrorType']})"
            )
        return QueryStatus(
            query_id=query_id,
            state=str(state.get("State", "UNKNOWN")),
            scanned_bytes=int(execution.get("Statistics", {}).get("DataScannedInBytes", 0)),
            elapsed_seconds=elapsed,
            reason=str(reason),
        )

    def stop(self, query_id: str) -> None:
        """Ask Athena to cancel the query (best effort: the user is leaving anyway)."""
        try:
            self._client.stop_query_execution(QueryExecutionId=query_id)
        except (ClientError, BotoCoreError):
            return


@dataclass(frozen=True)
class Backtest:
    """A finished backtest query and where its rows are."""

    status: QueryStatus
    destination: str


def run_backtest(
    queries: AthenaQueries,
    select: str,
    *,
    output: str,
    run_id: str,
    workgroup: str | None = None,
    progress: Progress | None = None,
) -> Backtest:
    """``UNLOAD`` the backtest query into a fresh folder below ``output`` and wait for it.

    ``UNLOAD`` needs an empty destination, hence ``<output>/mfawatch-backtest/<run_id>/``.
    """
    if not output.startswith("s3://"):
        raise AthenaQueryError(f"--athena-output {output!r}: must be an s3://bucket/prefix URL")
    destination = f"{output.rstrip('/')}/mfawatch-backtest/{run_id}/"
    query_id = queries.start(
        unload_statement(select, destination), output=output, workgroup=workgroup
    )
    return Backtest(queries.wait(query_id, progress), destination)


def result_files(
    archive: S3Archive, destination: str, stats: ReadStats
) -> Iterator[tuple[str, bytes]]:
    """(URL, bytes) of every object ``UNLOAD`` wrote under ``destination``.

    A result file that cannot be read is reported and counted as an unreadable file, as file
    replay does, and the others are still read.
    """
    try:
        urls = archive.list_urls(destination, TimeRange())
    except ArchiveReadError as exc:
        raise AthenaQueryError(f"cannot list the query's results: {exc}") from exc
    for rank, url in enumerate(sorted(urls)):
        try:
            payload = archive.read(ArchiveFile(url, rank, None, remote=True))
        except ArchiveReadError as exc:
            stats.files += 1
            stats.problem(f"{url}: unreadable: {exc}", file_level=True)
            continue
        yield url, payload
