"""Read CloudTrail as AWS delivers it, from files and folders, without ever crashing on bad input.

Accepted, by content (not by name): CloudTrail S3 log files (``{"Records": [...]}``, usually
``.json.gz``), a JSON list of records, a single record, a single EventBridge envelope, and JSON
lines (one record or envelope per line). ``.gz`` files are decompressed. Folders are walked
recursively in sorted order. Every problem is reported with the file (and line or index) and
counted; nothing is silently dropped.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .records import is_cloudtrail_record, is_envelope

READABLE_SUFFIXES = (".json", ".jsonl", ".ndjson", ".gz")


@dataclass
class ReadStats:
    """What reading saw: counts and the problems, each naming its file."""

    files: int = 0
    records: int = 0
    unreadable_files: int = 0
    malformed_records: int = 0
    problems: list[str] = field(default_factory=list)

    def problem(self, message: str, *, file_level: bool) -> None:
        self.problems.append(message)
        if file_level:
            self.unreadable_files += 1
        else:
            self.malformed_records += 1


@dataclass(frozen=True)
class SourcedEvent:
    """An event and where it came from (``file`` or ``file:line``)."""

    origin: str
    event: Mapping[str, Any]


def expand_paths(paths: Iterable[Path], stats: ReadStats) -> Iterator[Path]:
    """Files named directly, plus every readable file below named folders (sorted, recursive)."""
    for path in paths:
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs.sort()
                for name in sorted(files):
                    if name.endswith(READABLE_SUFFIXES):
                        yield Path(root) / name
        elif path.exists():
            yield path
        else:
            stats.problem(f"{path}: no such file or folder", file_level=True)


def _events_in(document: Any, origin: str, stats: ReadStats) -> Iterator[SourcedEvent]:
    if isinstance(document, Mapping) and isinstance(document.get("Records"), list):
        items: list[Any] = document["Records"]
    elif isinstance(document, list):
        items = document
    else:
        items = [document]
    for index, item in enumerate(items):
        where = f"{origin}[{index}]" if len(items) > 1 else origin
        if isinstance(item, Mapping) and (is_envelope(item) or is_cloudtrail_record(item)):
            stats.records += 1
            yield SourcedEvent(where, item)
        else:
            stats.problem(
                f"{where}: not a CloudTrail record or EventBridge envelope", file_level=False
            )


def read_file(path: Path, stats: ReadStats) -> Iterator[SourcedEvent]:
    """The events of one file; problems are counted in ``stats``."""
    stats.files += 1
    origin = str(path)
    try:
        raw = path.read_bytes()
        if path.suffix == ".gz" or raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        text = raw.decode("utf-8-sig")
    except (OSError, EOFError, gzip.BadGzipFile, UnicodeDecodeError) as exc:
        stats.problem(f"{origin}: unreadable: {exc}", file_level=True)
        return
    if not text.strip():
        stats.problem(f"{origin}: empty file", file_level=True)
        return
    try:
        document = json.loads(text)
    except json.JSONDecodeError as whole_error:
        lines = text.splitlines()
        if len(lines) < 2:
            stats.problem(f"{origin}: not valid JSON: {whole_error}", file_level=True)
            return
        # JSON lines: each non-blank line is one record or envelope.
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                stats.problem(f"{origin}:{number}: not valid JSON: {exc}", file_level=False)
                continue
            yield from _events_in(item, f"{origin}:{number}", stats)
        return
    yield from _events_in(document, origin, stats)


def read_paths(paths: Iterable[Path], stats: ReadStats) -> Iterator[SourcedEvent]:
    """All events under ``paths`` in file order."""
    for path in expand_paths(paths, stats):
        yield from read_file(path, stats)
