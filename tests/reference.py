"""Test helpers that the toolkit itself does not need.

The replay command in this process, as tests call it. A deliberately naive replay (read every
file whole, sort every event, replay): the oracle the streaming archive reader
(:mod:`mfawatch.replay.archive`) must equal event for event. A walk over every IAM statement of a
template, and the actions the Lambda functions may call, for the least-privilege checks.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from chalicelib.core.config import Settings
from chalicelib.core.records import is_cloudtrail_record, is_envelope
from chalicelib.core.rules import RuleSet
from mfawatch.cli import main
from mfawatch.replay.readers import ReadStats, SourcedEvent, documents_in, expand_paths, items_of
from mfawatch.replay.runner import ReplayResult, TimedEvent, replay_timed, timed

# What the deployed code calls, written here independently of mfawatch/deploy/templates/,
# which generates the policies: logs (Lambda), SNS publish, the DynamoDB state table and its due
# index, the failed-events queue (on-failure destination) and the stage key.
LAMBDA_ACTIONS = frozenset(
    {
        "logs:CreateLogGroup",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "sns:Publish",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:Query",
        "sqs:SendMessage",
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
        "sqs:ChangeMessageVisibility",
        "kms:GenerateDataKey",
        "kms:Decrypt",
    }
)


def replay_jsonl(*args: str) -> Result:
    """``mfawatch replay --jobs 1 --output jsonl ARGS`` in this process (click's test runner)."""
    return CliRunner().invoke(main, ["replay", "--jobs", "1", "--output", "jsonl", *args])


def _events_in(document: Any, origin: str, stats: ReadStats) -> Iterator[SourcedEvent]:
    items = items_of(document)
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
    except OSError as exc:
        stats.problem(f"{origin}: unreadable: {exc}", file_level=True)
        return
    for where, document in documents_in(raw, origin, stats, gzipped=path.suffix == ".gz"):
        yield from _events_in(document, where, stats)


def read_paths(paths: Iterable[Path], stats: ReadStats) -> Iterator[SourcedEvent]:
    """All events under ``paths`` in file order."""
    for path in expand_paths(paths, stats):
        yield from read_file(path, stats)


def in_time_order(events: Iterable[SourcedEvent], stats: ReadStats) -> list[TimedEvent]:
    """All events sorted by event time (stable: ties keep reading order)."""
    return sorted(timed(events, stats), key=lambda event: event.moment)


def replay_events(
    events: Iterable[SourcedEvent],
    rules: RuleSet,
    stats: ReadStats,
    settings: Settings | None = None,
) -> ReplayResult:
    """Replay events in any order: sort them by event time, then :func:`replay_timed`."""
    return replay_timed(in_time_order(events, stats), rules, stats, settings)


def iam_statements(template: Mapping[str, Any]) -> Iterable[tuple[str, str, Mapping[str, Any]]]:
    """Every IAM statement in a template: (logical id, resource type, statement).

    Covers role inline policies, managed and inline policy resources, key policies and
    resource policies (topics, queues).
    """
    for logical, resource in (template.get("Resources") or {}).items():
        kind = str(resource.get("Type", ""))
        properties = resource.get("Properties") or {}
        documents: list[Any] = []
        for policy in properties.get("Policies") or []:
            if isinstance(policy, Mapping):
                documents.append(policy.get("PolicyDocument"))
        for key in ("PolicyDocument", "KeyPolicy"):
            if key in properties:
                documents.append(properties[key])
        for document in documents:
            if not isinstance(document, Mapping):
                continue
            statements = document.get("Statement") or []
            if isinstance(statements, Mapping):
                statements = [statements]
            for statement in statements:
                yield logical, kind, statement
