"""Parked events: what Lambda's on-failure destination wrote to the failed-events queue.

EventBridge invokes the rule functions asynchronously. After the last retry of its
EventInvokeConfig (or once the event is older than its maximum event age) Lambda sends an
invocation record to the on-failure destination, the stage's failed-events SQS queue. The
record's documented shape (AWS Lambda Developer Guide, "Capturing records of Lambda asynchronous
invocations", https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html)::

    {"version": "1.0", "timestamp": "2019-11-14T18:16:05.568Z",
     "requestContext": {"requestId": "...",
                        "functionArn": "arn:aws:lambda:...:function:NAME:$LATEST",
                        "condition": "RetriesExhausted", "approximateInvokeCount": 3},
     "requestPayload": {...the original event...},
     "responseContext": {"statusCode": 200, "executedVersion": "$LATEST",
                         "functionError": "Unhandled"},
     "responsePayload": {"errorMessage": "...", "errorType": "..."}}

``condition`` is ``RetriesExhausted`` or ``EventAgeExceeded`` (then the function may never have
run, and the response fields are absent). The consumer (``app.consume_parked_events``, an SQS
event source with ``ReportBatchItemFailures``) re-runs ``requestPayload`` through the same
:meth:`service.AlertService.handle` as the rule's own function, so a parked event is decided,
deduplicated and counted like any other; an event already handled (its claim is done) is a
duplicate and publishes nothing.

Pure: this module parses records, finds the rule, and decides the retry delay; the SQS edge is
:mod:`chalicelib.aws.sqs`, the loop over a batch is :class:`ParkedEvents`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from ..core.errors import MfawatchError, ParkedRecordError
from ..core.rules import RuleSet
from .observability import Metrics

logger = logging.getLogger(__name__)

#: requestContext.condition values Lambda documents for on-failure records.
CONDITIONS = ("RetriesExhausted", "EventAgeExceeded")

#: Handlers whose parked invocations are not replayed: each run is superseded by the next one
#: (the scheduler every minute, heartbeats every 15 minutes), and replaying an old heartbeat
#: would record it as seen now.
PERIODIC_HANDLERS = ("send_due_summaries", "heartbeat", "on_heartbeat")

# Backoff through the visibility timeout. A record that fails stays in the queue; the consumer
# sets its visibility timeout to FIRST_RETRY_SECONDS * 2**(receives - 1), at most
# MAX_RETRY_SECONDS, so a regional brown-out is ridden out without hammering it. With the
# queue's maxReceiveCount (deploy/resources.yaml, 10) the last attempt comes about
# 1+2+4+8+15*5 = 90 minutes after the first; then SQS moves the message to the final
# dead-letter queue, whose alarm pages. The ceiling is SQS's 12-hour visibility maximum
# (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-visibility-timeout.html).
FIRST_RETRY_SECONDS = 60
MAX_RETRY_SECONDS = 15 * 60
SQS_MAX_VISIBILITY_SECONDS = 12 * 3600
#: A record is started only with this much of the invocation left (a replay is a handful of
#: requests, each with botocore's timeouts and retries, app.CLIENT_CONFIG). The records not
#: started are reported as failures and come back after the queue's visibility timeout, instead
#: of the whole batch returning when the function times out.
RECORD_TIME_BUDGET_SECONDS = 10.0


@dataclass(frozen=True)
class ParkedEvent:
    """One on-failure record, read defensively; the SQS message and the raw record are kept."""

    message_id: str
    receipt_handle: str
    queue_arn: str
    receive_count: int
    function_name: str
    condition: str
    request_id: str
    invoke_count: int
    error: str
    event: Mapping[str, Any]
    raw: Mapping[str, Any] = field(repr=False)

    @property
    def event_id(self) -> str:
        detail = self.event.get("detail")
        return str(detail.get("eventID", "")) if isinstance(detail, Mapping) else ""


def function_name_of(arn: str) -> str:
    """``arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]`` -> ``NAME``."""
    parts = arn.split(":")
    if len(parts) < 7 or parts[0] != "arn" or parts[2] != "lambda" or parts[5] != "function":
        raise ParkedRecordError(f"requestContext.functionArn {arn!r} is not a Lambda function ARN")
    return parts[6]


def parse_sqs_record(record: Mapping[str, Any]) -> ParkedEvent:
    """One SQS record of the consumer's event -> :class:`ParkedEvent`.

    Raises :class:`errors.ParkedRecordError` naming the message and what is wrong when the body
    is not an on-failure record (not JSON, no ``requestContext.functionArn``, no
    ``requestPayload`` object).
    """
    message_id = str(record.get("messageId", ""))
    where = f"SQS message {message_id or '(no messageId)'}"
    body = record.get("body")
    try:
        document = json.loads(body) if isinstance(body, str) else None
    except json.JSONDecodeError as exc:
        raise ParkedRecordError(f"{where}: body is not JSON ({exc})") from exc
    if not isinstance(document, Mapping):
        raise ParkedRecordError(f"{where}: body is not a JSON object (an on-failure record)")
    context = document.get("requestContext")
    if not isinstance(context, Mapping) or not context.get("functionArn"):
        raise ParkedRecordError(
            f"{where}: no requestContext.functionArn; not a Lambda on-failure record"
        )
    payload = document.get("requestPayload")
    if not isinstance(payload, Mapping):
        raise ParkedRecordError(f"{where}: requestPayload is missing or not an object")
    attributes = record.get("attributes") or {}
    response = document.get("responsePayload")
    error = ""
    if isinstance(response, Mapping):
        error = f"{response.get('errorType', '')}: {response.get('errorMessage', '')}".strip(": ")
    try:
        invoke_count = int(context.get("approximateInvokeCount") or 0)
        receive_count = int(attributes.get("ApproximateReceiveCount") or 1)
    except (TypeError, ValueError) as exc:
        raise ParkedRecordError(f"{where}: a count is not a number ({exc})") from exc
    return ParkedEvent(
        message_id=message_id,
        receipt_handle=str(record.get("receiptHandle", "")),
        queue_arn=str(record.get("eventSourceARN", "")),
        receive_count=receive_count,
        function_name=function_name_of(str(context["functionArn"])),
        condition=str(context.get("condition", "")),
        request_id=str(context.get("requestId", "")),
        invoke_count=invoke_count,
        error=error,
        event=payload,
        raw=document,
    )


def handler_of(function_name: str, handlers: Iterable[str]) -> str:
    """The handler a function runs: its name is ``<app>-<stage>-<handler>`` (the longest
    handler that ends the name wins, so ``on_x`` never shadows ``on_root_x``)."""
    matches = [h for h in handlers if function_name.endswith(f"-{h}")]
    if not matches:
        raise ParkedRecordError(f"function {function_name!r} runs none of this app's handlers")
    return max(matches, key=len)


@dataclass(frozen=True)
class Replay:
    """What to do with a parked event: re-run ``rule_id`` on it, or (``rule_id`` empty) nothing."""

    rule_id: str
    reason: str = ""


def plan(parked: ParkedEvent, rules: RuleSet) -> Replay:
    """Pure: which rule's path a parked event goes through again."""
    by_handler = {rule.handler_name: rule.id for rule in rules}
    handler = handler_of(parked.function_name, [*by_handler, *PERIODIC_HANDLERS])
    if handler in PERIODIC_HANDLERS:
        return Replay("", f"{handler} runs periodically; its next run supersedes this one")
    return Replay(by_handler[handler])


def retry_delay(receive_count: int) -> int:
    """Seconds before a failed record is received again (exponential, capped)."""
    exponent = min(max(receive_count, 1) - 1, 20)
    delay: int = FIRST_RETRY_SECONDS * 2**exponent
    return min(delay, MAX_RETRY_SECONDS, SQS_MAX_VISIBILITY_SECONDS)


def batch_response(failed_message_ids: Sequence[str]) -> dict[str, list[dict[str, str]]]:
    """The partial batch response of an SQS event source with ``ReportBatchItemFailures``
    (AWS Lambda Developer Guide, "Handling errors for an SQS event source",
    https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-errorhandling.html): the listed
    messages stay in the queue, the others are deleted. An empty list: the whole batch worked."""
    return {"batchItemFailures": [{"itemIdentifier": i} for i in failed_message_ids]}


# --- the batch loop ---------------------------------------------------------------------------


class Handle(Protocol):
    """:meth:`service.AlertService.handle`."""

    def __call__(self, rule_id: str, event: Mapping[str, Any], now: datetime) -> Any: ...


class Visibility(Protocol):
    """Where a failed record's next attempt is scheduled (:class:`sqs.SqsVisibility`)."""

    def delay(self, queue_arn: str, receipt_handle: str, seconds: int) -> None: ...


class ParkedEvents:
    """Re-runs a batch of parked events through ``handle`` (the rule functions' own path).

    Every record is tried; one that fails is reported in ``batchItemFailures`` and its next
    attempt is pushed back (:func:`retry_delay`). A malformed record fails too: after the
    queue's maxReceiveCount it lands in the final dead-letter queue, where an alarm pages and
    ``mfawatch redrive`` can send it back once fixed.
    """

    def __init__(
        self,
        rules: RuleSet,
        handle: Handle,
        visibility: Visibility,
        metrics: Metrics,
        clock: Callable[[], datetime],
    ) -> None:
        self.rules = rules
        self.handle = handle
        self.visibility = visibility
        self.metrics = metrics
        self.clock = clock

    def consume(
        self,
        records: Sequence[Mapping[str, Any]],
        seconds_left: Callable[[], float] = lambda: float("inf"),
    ) -> dict[str, list[dict[str, str]]]:
        """Replay every record; the partial batch response lists those that failed.
        ``seconds_left``: the invocation's remaining time (Lambda's context)."""
        failed: list[str] = []
        for index, record in enumerate(records):
            message_id = str(record.get("messageId", ""))
            if seconds_left() < RECORD_TIME_BUDGET_SECONDS:
                rest = [str(r.get("messageId", "")) for r in records[index:]]
                logger.warning("out of time: %d parked records left for the next batch", len(rest))
                failed += rest
                break
            try:
                parked = parse_sqs_record(record)
                self._replay(parked)
            except ParkedRecordError:
                logger.exception("malformed parked record %s", message_id)
                self.metrics.count("ParkedErrors")
                failed.append(message_id)
            except MfawatchError as exc:
                # What the rule function raises so that Lambda retries (state store, publish,
                # another invocation on the same event): retried after the backoff.
                logger.warning("parked record %s failed again: %s", message_id, exc)
                self.metrics.count("ParkedErrors")
                failed.append(message_id)
                self._back_off(record)
            except Exception:
                logger.exception("parked record %s failed unexpectedly", message_id)
                self.metrics.count("ParkedErrors")
                failed.append(message_id)
                self._back_off(record)
        return batch_response(failed)

    def _replay(self, parked: ParkedEvent) -> None:
        replay = plan(parked, self.rules)
        if not replay.rule_id:
            logger.info(
                "parked %s invocation %s not replayed: %s",
                parked.function_name,
                parked.request_id,
                replay.reason,
            )
            self.metrics.count("ParkedSkipped")
            return
        logger.info(
            "replaying parked event %s of rule %s (%s after %d attempts: %s; receive %d)",
            parked.event_id,
            replay.rule_id,
            parked.condition,
            parked.invoke_count,
            parked.error or "no error recorded",
            parked.receive_count,
            extra={"rule": replay.rule_id, "event_id": parked.event_id},
        )
        self.handle(replay.rule_id, parked.event, self.clock())
        self.metrics.count("ParkedReplayed", Rule=replay.rule_id)

    def _back_off(self, record: Mapping[str, Any]) -> None:
        attributes = record.get("attributes") or {}
        try:
            receives = int(str(attributes.get("ApproximateReceiveCount") or 1))
        except ValueError:
            receives = 1
        try:
            self.visibility.delay(
                str(record.get("eventSourceARN", "")),
                str(record.get("receiptHandle", "")),
                retry_delay(receives),
            )
        except MfawatchError as exc:
            # The queue's own visibility timeout still brings the record back.
            logger.warning("could not delay parked record %s: %s", record.get("messageId"), exc)
