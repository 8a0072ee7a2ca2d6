"""Per-protocol messages: what each kind of SNS subscriber receives. Pure functions.

A ``standard`` output publishes with ``MessageStructure=json``
(https://docs.aws.amazon.com/sns/latest/dg/sns-send-custom-platform-specific-payloads-mobile-devices.html,
"Publish with a different message for each protocol"): SNS picks the body by the subscriber's
protocol and falls back to ``default``:

| key | receives |
|---|---|
| ``default``, ``email`` | the readable text with the runbook (:func:`render.render_text`) |
| ``sms`` | one line, printable ASCII, at most 160 characters |
| ``sqs``, ``lambda``, ``http(s)``, ``firehose``, ``email-json`` | the alert document (JSON) |

A ``chat`` output publishes the custom-notification format of Amazon Q Developer in chat
applications (formerly AWS Chatbot), which drops messages in any other format
(https://docs.aws.amazon.com/chatbot/latest/adminguide/custom-notifs.html): ``version`` "1.0",
``source`` "custom", ``content`` (``textType`` client-markdown, ``title``, ``description``,
``nextSteps``, ``keywords``) and ``metadata.threadId`` = the incident's dedup key, so an alert,
its summary and its escalations share a thread.

Every attacker-controlled string (user agent, user name, source IP field) is cleaned of control
characters and bounded (:func:`render.clean_text`); in chat markdown it is also escaped, and shown
inside a code span so that links, mentions and emphasis are not interpreted.
"""

from __future__ import annotations

import json
from typing import Any

from .. import __version__
from .config import Output, Settings
from .notifications import Notification
from .records import cloudtrail_event_url
from .render import (
    MAX_FIELD,
    MAX_NAME,
    ascii_line,
    clean_text,
    message_attributes,
    render_subject,
    render_text,
)

SCHEMA_VERSION = "1"
SMS_MAX = 160
CHAT_THREAD_MAX = 128
JSON_PROTOCOLS = ("sqs", "lambda", "http", "https", "firehose", "email-json")

# Chat platforms render markdown differently and Slack shows backslash escapes literally, so
# outside code spans the characters that build links, emphasis and code become look-alikes.
_LOOKALIKES = str.maketrans({"[": "［", "]": "］", "`": "ˋ", "*": "∗", "~": "∼", "|": "¦"})
_SEVERITY_MARK = {"LOW": "🔵", "MEDIUM": "🟡", "HIGH": "🟠", "CRITICAL": "🔴"}


def _iso(notification: Notification, which: str) -> str:
    moment = notification.first_seen if which == "first" else notification.last_seen
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def alert_document(notification: Notification, account_name: str = "") -> dict[str, Any]:
    """The alert as JSON for programs (sqs, lambda, https, firehose). A stable contract: fields
    are only ever added within ``schema_version`` 1 (docs/outputs.md, "The alert document")."""
    n = notification
    record = n.record
    event: dict[str, Any] | None = None
    if record is not None:
        event = {
            "event_id": record.event_id,
            "event_name": record.event_name,
            "event_source": record.event_source,
            "event_time": record.event_time.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "outcome": record.outcome,
            "failure_reason": clean_text(record.failure_reason),
            "mfa_used": record.mfa_used,
            "mfa_type": clean_text(record.mfa_type, 64),
            "mfa_device": clean_text(record.mfa_device),
            "credential_type": clean_text(record.credential_type, 64),
            "auth_workflow_id": clean_text(record.auth_workflow_id, 64),
            "user_agent": clean_text(record.user_agent),
            "principal_arn": clean_text(record.principal_arn),
            "target_user": clean_text(record.target_user, MAX_NAME),
            "console_url": record.console_url,
        }
    return {
        "schema_version": SCHEMA_VERSION,
        "producer": f"mfawatch {__version__}",
        "id": n.id,
        "kind": n.kind,
        "rule": n.rule.id,
        "severity": n.severity,
        "title": clean_text(n.title, 300),
        "summary": clean_text(n.summary, 1000),
        "description": n.rule.description,
        "dedup_key": clean_text(n.dedup_key),
        "count": n.count,
        "event_ids": list(n.event_ids),
        "first_seen": _iso(n, "first"),
        "last_seen": _iso(n, "last"),
        "account": {"id": n.account, "name": clean_text(account_name, MAX_NAME)},
        "region": n.region,
        "principal": {"name": clean_text(n.principal, MAX_NAME), "type": n.principal_type},
        "source_ip": clean_text(n.source_ip, 64),
        "event": event,
        "cloudtrail_url": cloudtrail_event_url(n.region, n.event_ids[0]) if n.event_ids else "",
        "runbook": list(n.rule.runbook),
        "notes": [clean_text(note, 300) for note in n.notes],
    }


def render_sms(notification: Notification) -> str:
    """One line for SMS: severity, title, account, time. Printable ASCII, at most 160 chars."""
    n = notification
    tail = f" acct {n.account} {n.first_seen:%m-%d %H:%MZ}"
    return ascii_line(render_subject(n), SMS_MAX - len(tail)) + tail


def escape_markdown(value: object, limit: int = MAX_FIELD) -> str:
    """Cleaned text that chat markdown shows as text: &, <, > as entities (no ``<!channel>``
    mentions, no ``<url|text>`` links) and link/emphasis/code characters as look-alikes (no
    ``[text](url)`` links, no bold or code spans)."""
    text = clean_text(value, limit)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.translate(_LOOKALIKES)


def code_span(value: object, limit: int = MAX_FIELD) -> str:
    """Attacker-controlled text shown verbatim: a code span no backtick can close early."""
    text = clean_text(value, limit).replace("`", "ˋ")
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return f"`{text}`" if text else "_not recorded_"


def render_chat(notification: Notification, account_name: str = "") -> dict[str, Any]:
    """The Amazon Q Developer custom notification for a chat output."""
    n = notification
    record = n.record
    account = n.account + (f" ({escape_markdown(account_name, MAX_NAME)})" if account_name else "")
    lines = [escape_markdown(n.rule.description, 600)]
    if n.summary:
        lines.append(escape_markdown(n.summary, 600))
    lines += [
        f"*Who:* {code_span(n.principal, MAX_NAME)} ({n.principal_type})",
        f"*Source IP:* {code_span(n.source_ip, 64)}",
        f"*Account:* {account}, region {escape_markdown(n.region, 32)}",
    ]
    if n.count > 1 or n.first_seen != n.last_seen:
        lines.append(f"*When:* {_iso(n, 'first')} to {_iso(n, 'last')} ({n.count} events)")
    else:
        lines.append(f"*When:* {_iso(n, 'first')}")
    if record is not None:
        lines.append(f"*User agent:* {code_span(record.user_agent)}")
        lines.append(f"*MFA:* {code_span(record.mfa_type or 'not reported', 64)}")
    if n.event_ids:
        url = cloudtrail_event_url(n.region, n.event_ids[0])
        lines.append(f"*Event:* {code_span(n.event_ids[0], 64)} ({url})")
    lines += [f"*Note:* {escape_markdown(note, 300)}" for note in n.notes]
    mark = _SEVERITY_MARK.get(n.severity, "")
    return {
        "version": "1.0",
        "source": "custom",
        "id": n.id,
        "content": {
            "textType": "client-markdown",
            "title": f"{mark} [{n.severity}] {escape_markdown(n.title, 250)}".strip(),
            "description": "\n".join(lines),
            "nextSteps": [escape_markdown(step, 500) for step in n.rule.runbook],
            "keywords": [n.severity, n.rule.id, n.kind, n.account],
        },
        "metadata": {
            "threadId": clean_text(n.dedup_key, CHAT_THREAD_MAX),
            "summary": ascii_line(render_subject(n), 200),
            "eventType": f"mfawatch.{n.kind}",
            "relatedResources": list(n.event_ids[:10]),
            "additionalContext": {"rule": n.rule.id, "account": n.account, "region": n.region},
        },
    }


def publish_params(
    notification: Notification, output: Output, settings: Settings
) -> dict[str, Any]:
    """The exact SNS Publish parameters for one output (also what ``--output sns`` prints)."""
    account_name = settings.account_name(notification.account)
    params: dict[str, Any] = {
        "TopicArn": output.topic_arn,
        "Subject": render_subject(notification),
        "MessageAttributes": message_attributes(notification),
    }
    if output.format == "chat":
        params["Message"] = json.dumps(render_chat(notification, account_name), ensure_ascii=False)
        return params
    text = render_text(notification, account_name)
    document = json.dumps(alert_document(notification, account_name), ensure_ascii=False)
    bodies = {"default": text, "email": text, "sms": render_sms(notification)}
    bodies.update({protocol: document for protocol in JSON_PROTOCOLS})
    params["Message"] = json.dumps(bodies, ensure_ascii=False)
    params["MessageStructure"] = "json"
    return params
