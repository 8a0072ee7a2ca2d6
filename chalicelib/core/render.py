"""Notifications -> text a person reads. Pure functions; attacker-controlled strings are cleaned.

The user agent, the user name typed at the sign-in page and even the source IP field come from
whoever is signing in, i.e. possibly the attacker. Before they reach an e-mail or a chat message we
strip control characters (CR/LF that would forge lines, ANSI escapes that repaint terminals,
bidirectional overrides that reorder text), bound their length, and keep the SNS subject to
printable ASCII on one line, at most 99 characters (the SNS Publish API wants it "less than 100
characters long": https://docs.aws.amazon.com/sns/latest/api/API_Publish.html).
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime

from .. import __version__
from . import constants as c
from .notifications import Notification
from .records import cloudtrail_event_url

# ANSI/VT escape sequences: CSI (ESC [ ... final), OSC (ESC ] ... BEL/ST), and two-byte escapes.
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
_SPACES = re.compile(r"\s+")

MAX_FIELD = 256
MAX_NAME = 128


def clean_text(value: object, limit: int = MAX_FIELD) -> str:
    """One line of display-safe text: no control/format characters, bounded, whitespace folded."""
    text = _ANSI.sub("", str(value) if value is not None else "")
    kept = []
    for char in text:
        category = unicodedata.category(char)
        # Cc: control (CR, LF, ESC, NUL, C1). Cf: format (bidi overrides, zero-width joiners).
        # Zl/Zp: line/paragraph separators. All become a space or vanish.
        if category in ("Cc", "Zl", "Zp"):
            kept.append(" ")
        elif category == "Cf" or category.startswith("Cs"):
            continue
        else:
            kept.append(char)
    folded = _SPACES.sub(" ", "".join(kept)).strip()
    if len(folded) > limit:
        folded = folded[: limit - 1].rstrip() + "…"
    return folded


def ascii_line(value: object, limit: int) -> str:
    """Printable ASCII only (0x20-0x7E), one line, at most ``limit`` characters."""
    text = clean_text(value, limit=4 * limit)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = "".join(ch for ch in text if " " <= ch <= "~")
    text = _SPACES.sub(" ", text).strip()
    if len(text) > limit:
        text = text[: limit - 3].rstrip() + "..."
    return text


def render_subject(notification: Notification) -> str:
    """SNS subject: ``[HIGH] <title>``, printable ASCII, one line, at most 99 characters."""
    prefix = f"[{notification.severity}] "
    if notification.kind in ("summary", "storm"):
        prefix += f"{notification.kind}: "
    subject = ascii_line(prefix + notification.title, c.SNS_SUBJECT_MAX)
    # SNS wants the subject to begin with a letter, number or punctuation; ours starts with '['.
    return subject or "mfawatch alert"


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _row(label: str, value: str) -> str:
    return f"{label + ':':<13}{value}"


def render_text(notification: Notification, account_name: str = "") -> str:
    """The plain-text message (e-mail and the SNS default): who, what, when, where, what to do."""
    n = notification
    rule = n.rule
    lines = [
        f"[{n.severity}] {clean_text(n.title, 300)}",
        "",
        clean_text(rule.description, 1000),
    ]
    if n.summary:
        lines += ["", clean_text(n.summary, 1000)]
    lines.append("")
    lines += _who_and_when(n)
    lines += _where(n, account_name)
    lines += _events(n)
    lines += ["", "What to do:"]
    lines += [f"  {i}. {clean_text(step, 500)}" for i, step in enumerate(rule.runbook, start=1)]
    lines += [
        "",
        f"-- mfawatch {__version__}; dedup key {clean_text(n.dedup_key, MAX_FIELD)}",
    ]
    return "\n".join(lines) + "\n"


def _who_and_when(n: Notification) -> list[str]:
    """The rows Rule, Who, ARN and What (of an event), When (and Events, over a span)."""
    record = n.record
    lines = [
        _row("Rule", f"{n.rule.id} (severity {n.severity}, {n.kind})"),
        _row("Who", f"{clean_text(n.principal, MAX_NAME)} ({n.principal_type})"),
    ]
    if record is not None and record.principal_arn:
        lines.append(_row("ARN", clean_text(record.principal_arn, MAX_FIELD)))
    if record is not None:
        lines.append(_row("What", clean_text(_what(n), 300)))
    if n.count > 1 or n.first_seen != n.last_seen:
        lines.append(_row("When", f"{_when(n.first_seen)} to {_when(n.last_seen)}"))
        lines.append(_row("Events", str(n.count)))
    else:
        lines.append(_row("When", _when(n.first_seen)))
    return lines


def _where(n: Notification, account_name: str) -> list[str]:
    """The rows Source IP, User agent, Account, and the event's MFA, Workflow and Reason."""
    record = n.record
    account = n.account + (f" ({clean_text(account_name, MAX_NAME)})" if account_name else "")
    lines = [_row("Source IP", clean_text(n.source_ip, 64) or "not recorded")]
    if record is not None:
        lines.append(_row("User agent", clean_text(record.user_agent, MAX_FIELD) or "not recorded"))
    lines.append(_row("Account", f"{account}, region {n.region}"))
    if record is None:
        return lines
    mfa = clean_text(record.mfa_type, 64) or "not reported"
    if record.mfa_device:
        mfa += f", device {clean_text(record.mfa_device, MAX_FIELD)}"
    lines.append(_row("MFA", mfa))
    if record.auth_workflow_id:
        lines.append(_row("Workflow", clean_text(record.auth_workflow_id, 64)))
    if record.failure_reason:
        lines.append(_row("Reason", clean_text(record.failure_reason, MAX_FIELD)))
    return lines


def _events(n: Notification) -> list[str]:
    """The rows Event IDs (the first 20), CloudTrail (a link to the first) and Notes."""
    shown_ids = n.event_ids[:20]
    lines = [_row("Event ID" if len(n.event_ids) == 1 else "Event IDs", ", ".join(shown_ids))]
    if len(n.event_ids) > len(shown_ids):
        lines.append(_row("", f"... and {len(n.event_ids) - len(shown_ids)} more"))
    if n.event_ids:
        lines.append(_row("CloudTrail", cloudtrail_event_url(n.region, n.event_ids[0])))
    lines += [_row("Note", clean_text(note, 300)) for note in n.notes]
    return lines


def _what(n: Notification) -> str:
    record = n.record
    if record is None:
        return ""
    outcome = record.outcome or "no outcome recorded"
    parts = [f"{record.event_name} ({record.event_source}) {outcome}"]
    if record.credential_type:
        parts.append(f"credential {record.credential_type}")
    if record.mfa_used is not None:
        parts.append("MFA used: yes" if record.mfa_used else "MFA used: no")
    if record.target_user:
        parts.append(f"target user {record.target_user}")
    return "; ".join(parts)


def message_attributes(notification: Notification) -> dict[str, dict[str, str]]:
    """SNS message attributes for subscription filter policies (values are never empty)."""
    values = {
        "rule": notification.rule.id,
        "severity": notification.severity,
        "kind": notification.kind,
        "account": notification.account,
        "region": notification.region,
        "principal_type": notification.principal_type,
    }
    return {
        name: {"DataType": "String", "StringValue": ascii_line(value, 256) or "unknown"}
        for name, value in values.items()
    }
