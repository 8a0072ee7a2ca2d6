"""Replay at scale: stream CloudTrail archives in event-time order with bounded memory.

CloudTrail writes one object per account, region and delivery, under
``AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/`` with the delivery time in the name
(``<account>_CloudTrail_<region>_YYYYMMDDTHHMMZ_<unique>.json.gz``). Events in a file precede
its delivery by a few minutes (about 15 at most, typically 5). So the files are read in
delivery order and their events merged through a heap keyed by event time: once the file
delivered at ``T`` has been read, no event earlier than ``T - lateness`` can still arrive (no
later file holds one), and everything in the heap before that watermark is released.

The bound, stated precisely: the order is exact when every event lies within ``lateness``
(default 60 minutes) of its file's delivery stamp. An event that breaks the bound is still
replayed, as soon as it is read, and is reported and counted as late (``late records``), so
the user knows to rerun with a larger ``--lateness``. Memory holds the candidate events of the
files delivered within the last ``lateness`` (plus the files being read): not the archive.
Ties are broken by the position of the file in sorted path order and of the record in its
file, which makes the result identical to reading everything and sorting it by event time (a
test compares the two, with the naive reader of ``tests/reference.py``). When any input file
does not carry a delivery stamp (a hand-made ``.json``, JSON lines), there is no bound to rely
on: all candidate events are collected and sorted (exact, memory proportional to the
candidates).

Three things keep it fast, none of which changes the result:

* a prefilter derived from the rules' compiled patterns (:class:`Prefilter`): a record whose
  ``eventSource``/``eventName``/... holds none of the exact strings every alternative of every
  rule requires cannot match any rule, so it is counted but never wrapped, timed or matched;
  a rule without such a required literal turns the prefilter off;
* a ``{"Records": [...]}`` file is split into its records' raw JSON text by msgspec's C parser
  (which validates the document but builds no objects), and only the few fields the prefilter
  reads are decoded; only candidates are decoded in full (orjson). Without msgspec/orjson, or
  for any other input shape, the general reader path decodes everything;
* files are decompressed and parsed in a pool of worker processes, while the merge, the rules
  and the service run in order in this process.

Time filters: ``--since`` (inclusive) and ``--until`` (exclusive) apply to event time; whole date
folders and files whose delivery stamp is more than ``lateness`` outside the range are skipped
without being read. Pure core: no AWS SDK here (S3 listing and reading is
:mod:`mfawatch.replay.s3archive`, which hands us bytes).
"""

from __future__ import annotations

import gc
import gzip
import heapq
import json
import os
import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from multiprocessing.pool import AsyncResult
from pathlib import Path
from typing import Any

from chalicelib.core.errors import EventParseError
from chalicelib.core.records import as_envelope, is_cloudtrail_record, is_envelope, replay_time
from chalicelib.core.rules import Rule
from mfawatch.errors import ArchiveReadError
from mfawatch.patterns.requirements import AllOf, AnyOf, Condition, OneOf, pattern_condition
from mfawatch.replay.readers import (
    READABLE_SUFFIXES,
    ReadStats,
    documents_in,
    expand_paths,
    items_of,
)
from mfawatch.replay.runner import TimedEvent

try:  # optional speed-ups (requirements-dev.txt); without them the general path is used
    import msgspec as _msgspec
except ImportError:  # pragma: no cover
    _msgspec = None  # type: ignore[assignment]  # the module's name, bound to None when absent
try:
    from orjson import loads as _fast_loads
except ImportError:  # pragma: no cover
    _fast_loads = None  # type: ignore[assignment]  # likewise

DEFAULT_LATENESS = timedelta(minutes=60)

# ..._CloudTrail_<region>_20261102T0905Z_<unique>.json.gz: the delivery time, to the minute.
_STAMP = re.compile(r"_(\d{8}T\d{4})Z_[^/]*$")
# .../CloudTrail/<region>/2026/11/02/...: the delivery date folder.
_DAY = re.compile(r"/CloudTrail/[^/]+/(\d{4})/(\d{2})/(\d{2})(?:/|$)")


@dataclass(frozen=True)
class ArchiveFile:
    """One log file to replay: a local path or an ``s3://`` URL."""

    name: str
    rank: int
    """Position in sorted path order: the tie-break that makes the merge equal a full sort."""
    delivered: datetime | None
    """The delivery stamp from a CloudTrail file name, when the name has one."""
    remote: bool = False


def delivery_stamp(name: str) -> datetime | None:
    """The delivery time in a CloudTrail log file name (``..._20261102T0905Z_...``), or None."""
    match = _STAMP.search(name)
    if match is None:
        return None
    try:
        return datetime.strptime(match.group(1), "%Y%m%dT%H%M").replace(tzinfo=UTC)
    except ValueError:
        return None


def path_day(name: str) -> date | None:
    """The date of a ``.../CloudTrail/<region>/YYYY/MM/DD/`` folder in a path or key, or None."""
    match = _DAY.search(name.replace(os.sep, "/"))
    if match is None:
        return None
    try:
        return date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
    except ValueError:
        return None


@dataclass(frozen=True)
class TimeRange:
    """``since <= event time < until``; either end may be open."""

    since: datetime | None = None
    until: datetime | None = None

    @property
    def bounded(self) -> bool:
        return self.since is not None or self.until is not None

    def contains(self, moment: datetime) -> bool:
        return (self.since is None or moment >= self.since) and (
            self.until is None or moment < self.until
        )

    def day_may_contain(self, day: date, lateness: timedelta) -> bool:
        """Whether a delivery-date folder can hold events in range (events are within
        ``lateness`` of their delivery)."""
        if self.since is not None and day < (self.since - lateness).date():
            return False
        return not (self.until is not None and day > (self.until + lateness).date())

    def file_may_contain(self, delivered: datetime, lateness: timedelta) -> bool:
        """Whether a file delivered at ``delivered`` can hold events in range."""
        # The stamp is truncated to the minute: the delivery is within a minute after it.
        if self.since is not None and delivered + lateness + timedelta(minutes=1) < self.since:
            return False
        return not (self.until is not None and delivered - lateness >= self.until)

    def days(self, lateness: timedelta = DEFAULT_LATENESS) -> list[date] | None:
        """Every delivery-date folder that can hold events in range (None when a side is open)."""
        if self.since is None or self.until is None:
            return None
        first = (self.since - lateness).date()
        last = (self.until + lateness).date()
        return [first + timedelta(days=n) for n in range((last - first).days + 1)]


# ---------------------------------------------------------------------------------------------
# The prefilter
# ---------------------------------------------------------------------------------------------


# More alternatives than this (many $or groups multiplied out) are not worth checking per record.
_MAX_ALTERNATIVES = 64


def required_alternatives(pattern: Mapping[str, Any]) -> list[dict[str, frozenset[str]]]:
    """The pattern's alternatives, each with the fields of ``detail`` it requires to hold one
    of a set of exact strings.

    Derived from the pattern's necessary condition (:func:`mfawatch.patterns.requirements.
    pattern_condition`), the same one the Athena backtest query is generated from: one
    alternative per way through its ``$or`` branches. A field in such a set matches only when
    the event's value (or one element of an array) is one of the strings; a missing field, an
    object or another string never matches. An alternative that requires no such field is
    ``{}``: any record may match it.
    """
    return _alternatives(pattern_condition(pattern))


def _alternatives(condition: Condition) -> list[dict[str, frozenset[str]]]:
    if isinstance(condition, AnyOf):
        path = condition.path
        if len(path) == 2 and path[0] == "detail" and not condition.ignore_case:
            return [{path[1]: condition.values}]
        return [{}]
    if isinstance(condition, OneOf):
        return [alt for part in condition.parts for alt in _alternatives(part)]
    if isinstance(condition, AllOf):
        combined: list[dict[str, frozenset[str]]] = [{}]
        for part in condition.parts:
            # A field required twice keeps its first set: either one is necessary (an array
            # value may satisfy both sets without their intersection).
            combined = [
                {**{k: v for k, v in mine.items() if k not in alt}, **alt}
                for alt in combined
                for mine in _alternatives(part)
            ]
            if len(combined) > _MAX_ALTERNATIVES:
                return [{}]
        return combined
    return [{}]


@dataclass(frozen=True)
class Prefilter:
    """Which records could match a rule: each alternative is the required literals of one
    alternative of one rule (:func:`required_alternatives`).

    ``alternatives`` empty means *disabled*: some rule (or branch of one) requires no literal,
    so every record is a candidate. Picklable, so worker processes get a copy.
    """

    alternatives: tuple[tuple[tuple[str, frozenset[str]], ...], ...] = ()

    @classmethod
    def for_rules(cls, rules: Iterable[Rule]) -> Prefilter:
        alternatives: list[tuple[tuple[str, frozenset[str]], ...]] = []
        for rule in rules:
            for required in required_alternatives(rule.event_pattern):
                if not required:
                    return cls(())
                # Two fields are plenty to discard almost everything; fewer checks per record.
                chosen = sorted(required.items(), key=lambda kv: (kv[0] not in _PREFERRED, kv[0]))
                alternative = tuple(chosen[:2])
                if alternative not in alternatives:
                    alternatives.append(alternative)
        return cls(tuple(alternatives))

    @property
    def enabled(self) -> bool:
        return bool(self.alternatives)

    def may_match(self, item: Mapping[str, Any]) -> bool:
        """False only when no rule can match this record or envelope."""
        if not self.alternatives:
            return True
        detail: Any = item
        if "detail" in item and is_envelope(item):
            detail = item["detail"]
            # An envelope may spell the field as "detail.eventSource": be conservative.
            if any("." in key for key in item):
                return True
        for alternative in self.alternatives:
            for key, allowed in alternative:
                value = detail.get(key)
                if type(value) is str:
                    if value not in allowed:
                        break
                elif (value is None and key not in detail) or (
                    type(value) is list
                    and all(type(v) is str for v in value)
                    and allowed.isdisjoint(value)
                ):
                    break
                # Anything else (numbers, objects, nested arrays): let the engine decide.
            else:
                return True
        return False


_PREFERRED = ("eventSource", "eventName")


# ---------------------------------------------------------------------------------------------
# Reading one file (runs in worker processes)
# ---------------------------------------------------------------------------------------------


@dataclass
class FileScan:
    """What one file held: counts, problems, and its candidate events (picklable)."""

    name: str
    rank: int
    records: int = 0
    unreadable: int = 0
    malformed: int = 0
    problems: list[str] = field(default_factory=list)
    candidates: list[tuple[datetime, int, str, dict[str, Any]]] = field(default_factory=list)
    """(event time, index in file, origin, envelope) of the records that may match a rule."""


def scan_bytes(
    name: str, rank: int, raw: bytes, prefilter: Prefilter, time_range: TimeRange
) -> FileScan:
    """Decode one file and keep the events that may match a rule and fall in the time range.

    Problems are reported as :func:`mfawatch.replay.readers.read_file` and
    :func:`mfawatch.replay.runner.timed` report them: with the file (and line or index). Records
    the prefilter rules out are counted, not timed: no rule could ever see them.
    """
    # Decoding JSON allocates millions of objects and no cycles: the cyclic collector would
    # only rescan them (about 40% of the parse time), so it pauses while one file is decoded.
    paused = gc.isenabled()
    gc.disable()
    try:
        return _scan(name, rank, raw, prefilter, time_range)
    finally:
        if paused:
            gc.enable()


def _scan(
    name: str, rank: int, raw: bytes, prefilter: Prefilter, time_range: TimeRange
) -> FileScan:
    stats = ReadStats()
    scan = FileScan(name=name, rank=rank)
    reading = _Reading(prefilter, time_range, stats, scan)
    gzipped = name.endswith(".gz")
    split = _split_records(raw, gzipped, prefilter) if prefilter.enabled else None
    if split is not None:
        reading.take_split(name, split)
    else:
        index = 0
        for origin, document in documents_in(raw, name, stats, gzipped=gzipped):
            items = items_of(document)
            several = len(items) > 1
            for position, item in enumerate(items):
                index += 1
                reading.take(item, index, f"{origin}[{position}]" if several else origin)
            del items, document
    scan.records = stats.records
    scan.unreadable = stats.unreadable_files
    scan.malformed = stats.malformed_records
    scan.problems = stats.problems
    return scan


@dataclass(frozen=True)
class _Reading:
    """One file being read: what to keep, and where its counts and candidates go."""

    prefilter: Prefilter
    time_range: TimeRange
    stats: ReadStats
    scan: FileScan

    def take(self, item: Any, index: int, where: str) -> None:
        """Count one decoded item; keep it as a candidate when a rule may match it."""
        stats = self.stats
        if not (isinstance(item, Mapping) and (is_cloudtrail_record(item) or is_envelope(item))):
            stats.problem(
                f"{where}: not a CloudTrail record or EventBridge envelope", file_level=False
            )
            return
        stats.records += 1
        if not self.prefilter.may_match(item):
            return
        # The path replay.timed takes: the same envelope, time and error messages.
        try:
            envelope = as_envelope(item)
            moment = replay_time(envelope)
        except EventParseError as exc:
            stats.problem(f"{where}: {exc}", file_level=False)
            return
        if self.time_range.contains(moment):
            self.scan.candidates.append((moment, index, where, envelope))

    def take_split(self, name: str, split: list[tuple[Any, Any]]) -> None:
        """The records of a file split by :func:`_split_records`: a record the prefilter rules
        out on its few decoded fields is counted without decoding it in full."""
        unset = _msgspec.UNSET if _msgspec is not None else None
        keys = tuple(sorted({key for alt in self.prefilter.alternatives for key, _ in alt}))
        several = len(split) > 1
        may_match = self.prefilter.may_match
        for position, (text, slim) in enumerate(split):
            index = position + 1
            if (
                slim.detail is unset
                and slim.eventName is not unset
                and (slim.eventSource is not unset or slim.eventTime is not unset)
            ):
                # A bare CloudTrail record: the prefilter reads the same values json would give.
                fields = {key: getattr(slim, key) for key in keys}
                if not may_match({k: value for k, value in fields.items() if value is not unset}):
                    self.stats.records += 1
                    continue
            self.take(_loads(text), index, f"{name}[{position}]" if several else name)


# The fast path for {"Records": [...]} files (msgspec, a development dependency). One pass
# splits the array into each record's raw JSON text, another decodes only the few fields the
# prefilter and the record-shape check read; both are msgspec's C parser, which validates
# the whole document and skips the rest without building objects. Only records a rule may
# match are decoded in full. Anything unusual (no or several "Records" keys, an item that is
# not an object, an envelope, invalid JSON) takes the general path, so the outcome is the same.
_SHAPE_FIELDS = ("eventName", "eventSource", "eventTime", "detail", "source")
_slim_decoders: dict[tuple[str, ...], Any] = {}


def _split_records(raw: bytes, gzipped: bool, prefilter: Prefilter) -> list[tuple[Any, Any]] | None:
    if _msgspec is None:
        return None
    try:
        data = gzip.decompress(raw) if gzipped or raw[:2] == b"\x1f\x8b" else raw
    except (OSError, EOFError, gzip.BadGzipFile):
        return None
    if data.count(b'"Records"') != 1:
        return None
    keys = tuple(sorted({key for alt in prefilter.alternatives for key, _ in alt}))
    decoders: Any = _slim_decoders.get(keys)
    if decoders is None:
        fields = [(key, Any, _msgspec.UNSET) for key in dict.fromkeys(_SHAPE_FIELDS + keys)]
        slim = _msgspec.defstruct("Slim", fields)
        # A type built at run time (the fields follow the rules): mypy cannot take it as one.
        files = _msgspec.defstruct("SlimFile", [("Records", list[slim])])  # type: ignore[valid-type]
        raws = _msgspec.defstruct("RawFile", [("Records", list[_msgspec.Raw])])
        decoders = (_msgspec.json.Decoder(raws), _msgspec.json.Decoder(files), keys)
        _slim_decoders[keys] = decoders
    try:
        texts = decoders[0].decode(data).Records
        slims = decoders[1].decode(data).Records
    except (_msgspec.DecodeError, _msgspec.ValidationError):
        return None
    return list(zip(texts, slims, strict=True))


def _loads(text: Any) -> Any:
    data = bytes(text)  # a msgspec.Raw: the record's own JSON text
    return _fast_loads(data) if _fast_loads is not None else json.loads(data)


def _scan_task(
    task: tuple[str, int, bytes | None, Prefilter, TimeRange],
) -> FileScan:
    name, rank, payload, prefilter, time_range = task
    if payload is None:
        try:
            payload = Path(name).read_bytes()
        except OSError as exc:
            return FileScan(name, rank, unreadable=1, problems=[f"{name}: unreadable: {exc}"])
    return scan_bytes(name, rank, payload, prefilter, time_range)


# ---------------------------------------------------------------------------------------------
# Finding files
# ---------------------------------------------------------------------------------------------


def local_files(
    paths: Iterable[Path],
    stats: ReadStats,
    time_range: TimeRange = TimeRange(),
    lateness: timedelta = DEFAULT_LATENESS,
    first_rank: int = 0,
) -> list[ArchiveFile]:
    """Files named directly, plus every readable file below named folders (sorted, recursive:
    :func:`mfawatch.replay.readers.expand_paths`). Date folders and stamped files that cannot hold
    events in ``time_range`` are skipped (and counted) unread.
    """

    def outside_range(folder: Path) -> bool:
        day = path_day(str(folder))
        return day is not None and not time_range.day_may_contain(day, lateness)

    found: list[ArchiveFile] = []
    skip = outside_range if time_range.bounded else None
    for path in expand_paths(paths, stats, skip):
        _add(found, str(path), time_range, lateness, stats)
    return [ArchiveFile(f.name, first_rank + n, f.delivered, f.remote) for n, f in enumerate(found)]


def _add(
    found: list[ArchiveFile],
    name: str,
    time_range: TimeRange,
    lateness: timedelta,
    stats: ReadStats,
    *,
    remote: bool = False,
) -> None:
    delivered = delivery_stamp(name)
    if (
        delivered is not None
        and time_range.bounded
        and not time_range.file_may_contain(delivered, lateness)
    ):
        stats.skipped_files += 1
        return
    found.append(ArchiveFile(name, len(found), delivered, remote))


def remote_files(
    names: Iterable[str],
    stats: ReadStats,
    time_range: TimeRange = TimeRange(),
    lateness: timedelta = DEFAULT_LATENESS,
    first_rank: int = 0,
) -> list[ArchiveFile]:
    """:class:`ArchiveFile` entries for listed object URLs (sorted), with the same skipping."""
    found: list[ArchiveFile] = []
    for name in sorted(names):
        if not name.endswith(READABLE_SUFFIXES):
            continue
        day = path_day(name)
        if day is not None and time_range.bounded and not time_range.day_may_contain(day, lateness):
            stats.skipped_files += 1
            continue
        _add(found, name, time_range, lateness, stats, remote=True)
    return [ArchiveFile(f.name, first_rank + n, f.delivered, True) for n, f in enumerate(found)]


# ---------------------------------------------------------------------------------------------
# The ordered stream
# ---------------------------------------------------------------------------------------------

Fetch = Callable[[ArchiveFile], bytes]
"""Reads a remote file's bytes; raises :class:`ArchiveReadError`."""

Progress = Callable[[ReadStats, int, int], None]
"""Called after each file with the running stats, files done and files in total."""


def _scans(
    files: Sequence[ArchiveFile],
    fetch: Fetch | None,
    prefilter: Prefilter,
    time_range: TimeRange,
    jobs: int,
) -> Iterator[FileScan]:
    """Scan files in the given order, ``jobs`` at a time, yielding results in that order."""

    def task(file: ArchiveFile) -> tuple[str, int, bytes | None, Prefilter, TimeRange] | FileScan:
        payload: bytes | None = None
        if file.remote:
            if fetch is None:
                return FileScan(
                    file.name, file.rank, unreadable=1, problems=[f"{file.name}: no reader"]
                )
            try:
                payload = fetch(file)
            except ArchiveReadError as exc:
                return FileScan(
                    file.name, file.rank, unreadable=1, problems=[f"{file.name}: unreadable: {exc}"]
                )
        return (file.name, file.rank, payload, prefilter, time_range)

    if jobs <= 1 or len(files) < 4:
        for file in files:
            made = task(file)
            yield made if isinstance(made, FileScan) else _scan_task(made)
        return

    import multiprocessing

    # fork is cheap and the workers need nothing but the module; spawn where fork is absent.
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    # A bounded window of files in flight keeps memory flat however large the archive.
    window: deque[FileScan | AsyncResult[FileScan]] = deque()
    with context.Pool(jobs) as pool:
        for file in files:
            made = task(file)
            window.append(
                made if isinstance(made, FileScan) else pool.apply_async(_scan_task, (made,))
            )
            if len(window) >= 2 * jobs:
                yield _result(window.popleft())
        while window:
            yield _result(window.popleft())


def _result(item: FileScan | AsyncResult[FileScan]) -> FileScan:
    return item if isinstance(item, FileScan) else item.get()


def ordered_events(
    files: Sequence[ArchiveFile],
    stats: ReadStats,
    *,
    prefilter: Prefilter = Prefilter(),
    time_range: TimeRange = TimeRange(),
    lateness: timedelta = DEFAULT_LATENESS,
    fetch: Fetch | None = None,
    jobs: int = 1,
    progress: Progress | None = None,
) -> Iterator[TimedEvent]:
    """The candidate events of ``files`` in event-time order (see the module docstring)."""
    stamped = all(f.delivered is not None for f in files)
    order = sorted(files, key=lambda f: (f.delivered, f.rank)) if stamped else list(files)
    heap: list[tuple[datetime, int, int, str, dict[str, Any]]] = []
    released: tuple[datetime, int, int] | None = None
    done = 0
    for scan, file in zip(_scans(order, fetch, prefilter, time_range, jobs), order, strict=True):
        done += 1
        stats.files += 1
        stats.records += scan.records
        stats.unreadable_files += scan.unreadable
        stats.malformed_records += scan.malformed
        stats.problems.extend(scan.problems)
        if stamped:
            assert file.delivered is not None
            watermark = file.delivered - lateness
            while heap and heap[0][0] < watermark:
                moment, rank, index, origin, envelope = heapq.heappop(heap)
                released = (moment, rank, index)
                yield TimedEvent(moment, origin, envelope)
        for moment, index, origin, envelope in scan.candidates:
            if released is not None and (moment, scan.rank, index) < released:
                stats.late_records += 1
                stats.problems.append(
                    f"{origin}: event time {moment:%Y-%m-%dT%H:%M:%SZ} is more than "
                    f"{_minutes(lateness)} minutes before its file's delivery stamp: replayed out "
                    "of order (use a larger --lateness)"
                )
                yield TimedEvent(moment, origin, envelope)
                continue
            heapq.heappush(heap, (moment, scan.rank, index, origin, envelope))
        if progress is not None:
            progress(stats, done, len(order))
    while heap:
        moment, _, _, origin, envelope = heapq.heappop(heap)
        yield TimedEvent(moment, origin, envelope)


def _minutes(delta: timedelta) -> int:
    return int(delta.total_seconds() // 60)
