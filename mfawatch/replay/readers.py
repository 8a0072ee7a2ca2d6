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
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_fast_loads: Callable[[bytes], Any] | None
try:  # optional speed-up, see documents_in
    from orjson import loads as _fast_loads
except ImportError:  # pragma: no cover - orjson is in requirements-dev.txt
    _fast_loads = None

READABLE_SUFFIXES = (".json", ".jsonl", ".ndjson", ".gz")


@dataclass
class ReadStats:
    """What reading saw: counts and the problems, each naming its file."""

    files: int = 0
    records: int = 0
    unreadable_files: int = 0
    malformed_records: int = 0
    problems: list[str] = field(default_factory=list)
    skipped_files: int = 0
    """Files not read because their path date or delivery stamp is outside --since/--until."""
    late_records: int = 0
    """Records that arrived later than the replay's lateness window (mfawatch.replay.archive)."""

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


def expand_paths(
    paths: Iterable[Path], stats: ReadStats, skip_folder: Callable[[Path], bool] | None = None
) -> Iterator[Path]:
    """Files named directly, plus every readable file below named folders (sorted, recursive).

    The one folder walk of the toolkit. A subfolder for which ``skip_folder`` says true is not
    entered; its readable files are counted in ``stats.skipped_files``.
    """
    for path in paths:
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs.sort()
                if skip_folder is not None:
                    skipped = [d for d in dirs if skip_folder(Path(root) / d)]
                    for folder in skipped:
                        stats.skipped_files += sum(
                            1 for _ in expand_paths([Path(root) / folder], stats)
                        )
                    dirs[:] = [d for d in dirs if d not in skipped]
                for name in sorted(files):
                    if name.endswith(READABLE_SUFFIXES):
                        yield Path(root) / name
        elif path.exists():
            yield path
        else:
            stats.problem(f"{path}: no such file or folder", file_level=True)


def documents_in(
    raw: bytes, origin: str, stats: ReadStats, *, gzipped: bool = False
) -> Iterator[tuple[str, Any]]:
    """The JSON documents in one file's bytes, each with its origin (``file`` or ``file:line``).

    ``raw`` is decompressed when ``gzipped`` (a ``.gz`` name) or when it starts like gzip. A
    whole-file JSON document yields once; JSON lines yield one document per non-blank line.
    File-level problems (unreadable, empty, not JSON) and bad lines are reported in ``stats``;
    nothing raises.
    """
    try:
        if gzipped or raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        stats.problem(f"{origin}: unreadable: {exc}", file_level=True)
        return
    if _fast_loads is not None:
        # orjson (a development dependency) parses CloudTrail files several times faster; on any
        # doubt (BOM, JSON lines, NaN, huge integers, bad UTF-8) the standard path below decides,
        # so problems are reported exactly as without it.
        try:
            document = _fast_loads(raw)
        except ValueError:
            pass
        else:
            yield origin, document
            return
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
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
        yield from _json_lines(lines, origin, stats)
        return
    yield origin, document


def _json_lines(lines: list[str], origin: str, stats: ReadStats) -> Iterator[tuple[str, Any]]:
    """JSON lines: each non-blank line is one record or envelope; a bad line is counted."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            stats.problem(f"{origin}:{number}: not valid JSON: {exc}", file_level=False)
            continue
        yield f"{origin}:{number}", item


def items_of(document: Any) -> list[Any]:
    """The records of a document: a ``{"Records": [...]}`` file, a JSON list, or one item."""
    if isinstance(document, Mapping) and isinstance(document.get("Records"), list):
        items: list[Any] = document["Records"]
        return items
    if isinstance(document, list):
        return document
    return [document]
