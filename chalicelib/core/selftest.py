"""Post-deploy self-test, Lambda side: recognize the synthetic event and answer it.

``selftest --stage STAGE`` (:mod:`mfawatch.deploy.selftest`) invokes every deployed function
directly (``lambda.invoke``, RequestResponse) with :func:`selftest_event`. That event can only
arrive by a direct invoke: EventBridge delivers envelopes whose top-level keys are fixed
(``version``, ``id``, ``detail-type``, ``source``, ``account``, ``time``, ``region``,
``resources``, ``detail``) and a PutEvents sender controls only what goes under ``detail``, so no
rule delivers a top-level ``mfawatch-selftest`` key, and no pattern in ``rules/`` matches the
event (a test runs every one against it). ``app.py`` answers it before the service is called:
no dedup claim, no incident state, no metric, no sign-in counted.

With ``"publish": true`` the function sends one LOW "mfawatch self-test" notification to every
configured output (not only the outputs a LOW notification is routed to: the point is to prove
that each topic accepts this function's messages) and answers with the SNS message ids.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from .notifications import Notification
from .rules import Rule

logger = logging.getLogger(__name__)

SELFTEST_KEY = "mfawatch-selftest"
SELFTEST_VERSION = 1
KIND_SELFTEST = "selftest"
TITLE = "mfawatch self-test"

SELFTEST_RULE = Rule(
    id="selftest",
    title=TITLE,
    description=(
        "A synthetic notification sent after a deploy by `selftest --publish`: it proves that the "
        "function can publish to this output. No sign-in happened and no incident was opened."
    ),
    severity="LOW",
    runbook=(
        "Nothing to do if you (or your deploy pipeline) just ran `selftest --publish`.",
        "Otherwise find who invoked the function directly (CloudTrail lambda Invoke events are "
        "data events; the function's log shows the request id): it needs "
        "lambda:InvokeFunction on the mfawatch functions.",
    ),
    event_pattern={},
)


class Publisher(Protocol):
    """What the self-test needs of :class:`chalicelib.aws.sns.SnsPublisher`."""

    def send(self, notification: Notification, destination: str) -> str: ...


def selftest_event(publish: bool = False) -> dict[str, Any]:
    """The payload ``selftest`` sends to each function."""
    return {SELFTEST_KEY: {"version": SELFTEST_VERSION, "publish": publish}}


def is_selftest(event: object) -> bool:
    """True for :func:`selftest_event` payloads (never for an EventBridge envelope)."""
    return isinstance(event, Mapping) and SELFTEST_KEY in event and "detail" not in event


def selftest_notification(
    function_name: str, function_arn: str, request_id: str, now: datetime
) -> Notification:
    """The LOW notification a ``--publish`` self-test sends."""
    parts = function_arn.split(":")
    region, account = (parts[3], parts[4]) if len(parts) > 4 else ("", "")
    return Notification(
        id=f"selftest:{function_name}:{request_id}",
        kind=KIND_SELFTEST,
        rule=SELFTEST_RULE,
        severity="LOW",
        title=TITLE,
        dedup_key=f"selftest:{function_name}",
        account=account,
        region=region,
        principal="mfawatch self-test",
        principal_type="SelfTest",
        source_ip="",
        event_ids=(),
        count=1,
        first_seen=now,
        last_seen=now,
        summary=(
            f"Function {function_name} published this on request {request_id}: this output "
            "receives mfawatch notifications."
        ),
    )


def answer(
    event: Mapping[str, Any],
    *,
    function_name: str,
    function_arn: str,
    request_id: str,
    publisher: Publisher,
    outputs: Sequence[str],
    now: datetime,
) -> dict[str, Any]:
    """Answer a self-test event: the function is up; with ``publish``, publish to ``outputs``.

    A failed publish raises (:class:`errors.PublishError`), so the caller sees the error type.
    """
    request = event.get(SELFTEST_KEY)
    publish = isinstance(request, Mapping) and request.get("publish") is True
    published: dict[str, str] = {}
    if publish:
        notification = selftest_notification(function_name, function_arn, request_id, now)
        for output in outputs:
            published[output] = publisher.send(notification, output)
    logger.info(
        "self-test of %s answered (published to %s)",
        function_name,
        ", ".join(published) or "no output",
    )
    return {
        SELFTEST_KEY: SELFTEST_VERSION,
        "function": function_name,
        "initialized": True,
        "published": published,
    }
