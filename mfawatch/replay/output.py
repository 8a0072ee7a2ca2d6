"""What a replay prints, as pure functions of its result: ``mfawatch replay`` echoes these lines.

The notifications go to stdout (a table, JSON lines, or the SNS Publish parameters of each
delivery); the totals and problems go to stderr; :func:`replay_failure` says why the command
must exit non-zero.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from chalicelib.core.channels import publish_params
from chalicelib.core.config import Settings
from chalicelib.core.notifications import Notification
from chalicelib.core.render import clean_text, render_subject
from mfawatch.replay.readers import ReadStats
from mfawatch.replay.runner import ReplayResult

#: The name a replay gives standard input, in messages and as a "file".
STDIN = "-"
STDIN_NAME = "<stdin>"


def notification_document(notification: Notification, sent_at: datetime) -> dict[str, object]:
    """One notification as ``--output jsonl`` prints it: its JSON, the subject, the send time."""
    document = notification.to_json()
    document["subject"] = render_subject(notification)
    document["sent_at"] = sent_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    return document


def sns_documents(result: ReplayResult, settings: Settings) -> Iterator[dict[str, Any]]:
    """``--output sns``: the exact SNS Publish parameters of every delivery, with its output."""
    for destination, notification in result.deliveries:
        params = publish_params(notification, settings.output(destination), settings)
        yield {"Output": destination, **params}


def table_lines(notifications: list[Notification], sent_at: list[datetime]) -> list[str]:
    """``--output table``: a header and one line per notification (attacker text sanitized)."""
    if not notifications:
        return ["No notifications."]
    header = f"{'SENT (UTC)':<19} {'KIND':<10} {'SEVERITY':<8} {'RULE':<32} {'ACCOUNT':<12} "
    header += f"{'REGION':<10} {'COUNT':>5}  {'SOURCE IP':<15} SUBJECT"
    lines = [header]
    for n, moment in zip(notifications, sent_at, strict=True):
        lines.append(
            f"{moment:%Y-%m-%d %H:%M:%S} {n.kind:<10} {n.severity:<8} {n.rule.id:<32} "
            f"{clean_text(n.account, 12):<12} {clean_text(n.region, 10):<10} {n.count:>5}  "
            f"{clean_text(n.source_ip, 15):<15} {render_subject(n)}"
        )
    return lines


def totals_lines(result: ReplayResult) -> list[str]:
    """The stderr lines: each problem, then the counts (files, records, notifications by kind)."""
    stats = result.stats
    lines = [f"problem: {clean_text(problem, 500)}" for problem in stats.problems]
    kinds: dict[str, int] = {}
    for n in result.notifications:
        kinds[n.kind] = kinds.get(n.kind, 0) + 1
    by_kind = ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())) or "none"
    lines.append(
        f"files {stats.files}, records {stats.records}, matched {result.matched}, "
        f"notifications {len(result.notifications)} ({by_kind}), "
        f"unreadable files {stats.unreadable_files}, malformed records {stats.malformed_records}"
        + (f", skipped files {stats.skipped_files}" if stats.skipped_files else "")
        + (f", late records {stats.late_records}" if stats.late_records else "")
    )
    return lines


def replay_failure(stats: ReadStats, targets: list[str], strict: bool) -> str:
    """Why a replay must exit non-zero, or "" (pure: the counts and the inputs).

    Nothing read at all is a failure (a typo, an empty folder, the wrong prefix) unless files
    were skipped by --since/--until; with ``strict`` any unreadable file or malformed record is.
    """
    inputs = ", ".join(STDIN_NAME if t == STDIN else t for t in targets)
    if stats.records == 0 and not stats.skipped_files:
        return (
            f"nothing readable in {inputs}: {stats.files} file(s), {stats.unreadable_files} "
            "unreadable; replay reads CloudTrail files (.json, .json.gz), JSON lists, records, "
            "EventBridge envelopes and JSON lines"
        )
    if strict and (stats.unreadable_files or stats.malformed_records):
        return (
            f"--strict: {stats.unreadable_files} unreadable file(s) and "
            f"{stats.malformed_records} malformed record(s) in {inputs} (each named above)"
        )
    return ""
