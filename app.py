"""mfawatch Lambda wiring: one EventBridge rule and handler per rule in ``rules/``, a scheduled
handler that sends due summaries and storm digests, and the consumer of parked events (the
failed-events queue that every function's on-failure destination writes to).

Only wiring lives here. Each handler hands the raw EventBridge event to the same
:class:`chalicelib.pipeline.service.AlertService` that ``python -m mfawatch replay`` uses.

What Lambda calls is the module attribute named by the function's ``Handler`` (``app.<name>``):
the Python runtime resolves it with ``getattr(module, name)`` (awslambdaric
``bootstrap._get_handler``; a missing attribute is ``Runtime.HandlerNotFound``). So every
registered handler is bound here under its name, as :func:`lambda_entry`, which answers the
post-deploy self-test and rejects what is not an EventBridge event before Chalice's handler runs.
``tests/runtime/`` runs the packaged functions under awslambdaric to prove it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from chalice.app import Chalice, CloudWatchEvent, Rate

from chalicelib.aws.dynamo import DynamoStateStore
from chalicelib.aws.sns import SnsCanary, SnsPublisher
from chalicelib.aws.sqs import SqsVisibility
from chalicelib.core import selftest
from chalicelib.core.config import Settings, settings_from_env
from chalicelib.core.constants import (
    HEARTBEAT_INTERVAL_MINUTES,
    HEARTBEAT_PATTERN,
    PIPELINE_HEARTBEAT_HANDLER,
)
from chalicelib.core.errors import EventParseError
from chalicelib.core.records import now_utc
from chalicelib.core.rules import Rule, load_bundle
from chalicelib.core.suppressions import load_suppressions
from chalicelib.pipeline.observability import EmfMetrics, configure_lambda_logging, in_lambda
from chalicelib.pipeline.parked import ParkedEvents
from chalicelib.pipeline.service import AlertService

app = Chalice(app_name="mfawatch")
logger = logging.getLogger(__name__)

RULES = load_bundle()
SUPPRESSIONS = load_suppressions()
METRICS = EmfMetrics()
#: The keys Chalice's CloudWatchEvent reads from every event (a missing one is a KeyError).
ENVELOPE_KEYS = (
    "version",
    "id",
    "detail-type",
    "source",
    "account",
    "time",
    "region",
    "resources",
    "detail",
)
#: The function that consumes the failed-events queue, and the keys of the SQS event it takes.
PARKED_HANDLER = "consume_parked_events"
SQS_EVENT_KEYS = ("Records",)

LambdaHandler = Callable[[Any, Any], Any]

#: boto3's "standard" retry mode: throttling and transient errors are retried with exponential
#: backoff and jitter (https://docs.aws.amazon.com/boto3/latest/guide/retries.html; the default
#: "legacy" mode retries fewer errors). Timeouts well under the Lambda timeout, so a stuck call
#: fails and is retried instead of timing the whole invocation out.
CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 4}, connect_timeout=3, read_timeout=10
)
#: SNS publishes are never retried by the client: a standard topic does not deduplicate, and
#: botocore re-sends a Publish whose reply was lost (a read timeout), so a client retry can
#: deliver a message twice without anyone knowing. The outbox retries instead
#: (chalicelib/pipeline/delivery.py): an output whose publish did not confirm is published again by
#: the Lambda retry or the scheduler, with the same notification id. In a ``Config`` object
#: ``max_attempts`` counts *retries* (botocore adds one); ``total_max_attempts`` counts every
#: attempt, the first included, so 1 means one attempt
#: (tests/functional/test_sns_retries.py counts them at the wire).
SNS_CLIENT_CONFIG = Config(
    retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=3, read_timeout=10
)


@dataclass(frozen=True)
class Wiring:
    """The clients and the service of one Lambda execution environment."""

    settings: Settings
    publisher: SnsPublisher
    service: AlertService


_wiring: Wiring | None = None


def wiring() -> Wiring:
    """Built once per execution environment: at init in Lambda (below), else on first use, so
    that importing the app (``chalice package``, tests) needs no AWS settings."""
    global _wiring  # noqa: PLW0603 - one per Lambda execution environment, reused across calls
    if _wiring is None:
        settings = settings_from_env()
        sns = boto3.client("sns", config=SNS_CLIENT_CONFIG)
        publisher = SnsPublisher(sns, settings)
        canary = SnsCanary(sns, settings.canary_topic_arn) if settings.canary_topic_arn else None
        store = DynamoStateStore(
            boto3.client("dynamodb", config=CLIENT_CONFIG), settings.table_name
        )
        service = AlertService(
            RULES,
            publisher,
            store,
            settings,
            metrics=METRICS,
            suppressions=SUPPRESSIONS,
            canary=canary,
        )
        _wiring = Wiring(settings, publisher, service)
    return _wiring


def service() -> AlertService:
    return wiring().service


_parked: ParkedEvents | None = None


def parked_events() -> ParkedEvents:
    """The consumer's batch loop over the same service (its SQS client only where it runs)."""
    global _parked  # noqa: PLW0603 - one per Lambda execution environment, reused across calls
    if _parked is None:
        _parked = ParkedEvents(
            RULES,
            service().handle,
            SqsVisibility(boto3.client("sqs", config=CLIENT_CONFIG)),
            METRICS,
            now_utc,
        )
    return _parked


@contextmanager
def metrics_flushed(event: CloudWatchEvent) -> Iterator[None]:
    """Write this invocation's metrics (Embedded Metric Format) even when it fails."""
    try:
        yield
    finally:
        METRICS.flush(request_id=getattr(event.context, "aws_request_id", ""))


def _handler_for(rule: Rule) -> Callable[[CloudWatchEvent], None]:
    def handler(event: CloudWatchEvent) -> None:
        with metrics_flushed(event):
            service().handle(rule.id, event.to_dict(), now=now_utc())

    handler.__name__ = rule.handler_name
    handler.__doc__ = f"EventBridge rule {rule.id}: {rule.title}"
    return handler


for _rule in RULES:
    app.on_cw_event(dict(_rule.event_pattern), name=_rule.handler_name)(_handler_for(_rule))


def remaining_time(context: Any) -> Callable[[], float] | None:
    """Seconds left in this invocation, from the Lambda context (None without one)."""
    millis = getattr(context, "get_remaining_time_in_millis", None)
    if not callable(millis):
        return None
    return lambda: float(millis()) / 1000.0


@app.schedule(Rate(1, unit=Rate.MINUTES), name="send_due_summaries")
def send_due_summaries(event: CloudWatchEvent) -> None:
    """Every minute: summaries of closed incident windows, storm digests, failed redeliveries."""
    with metrics_flushed(event):
        service().tick(now_utc(), remaining=remaining_time(event.context))


@app.on_cw_event(dict(HEARTBEAT_PATTERN), name="on_heartbeat")
def on_heartbeat(event: CloudWatchEvent) -> None:
    """A member account x Region's scheduled heartbeat reached the central bus."""
    with metrics_flushed(event):
        service().heartbeat(event.to_dict(), now_utc())


@app.schedule(Rate(HEARTBEAT_INTERVAL_MINUTES, unit=Rate.MINUTES), name=PIPELINE_HEARTBEAT_HANDLER)
def heartbeat(event: CloudWatchEvent) -> None:
    """The central account's own heartbeat (its events reach this bus without forwarding): the
    state write and the canary publish, which the stage's heartbeat alarm watches."""
    with metrics_flushed(event):
        service().pipeline_heartbeat(event.to_dict(), now_utc())


# Not @app.on_sqs_message: Chalice 1.34 cannot set the event source's FunctionResponseTypes
# (without ReportBatchItemFailures Lambda ignores the batchItemFailures below and deletes the
# whole batch, failed records included), and it needs the queue's name here, which depends on
# the stage. The templates of both deploy routes declare the event source instead
# (mfawatch/deploy/templates/functions.py, parked_event_source and parked_sam_event).
@app.lambda_function(name=PARKED_HANDLER)
def consume_parked_events(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The failed-events queue: re-run each parked event through its rule's path; the records
    that fail again are returned in ``batchItemFailures`` and come back after a backoff."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    try:
        return parked_events().consume(
            event.get("Records") or [],
            (lambda: remaining() / 1000) if callable(remaining) else (lambda: float("inf")),
        )
    finally:
        METRICS.flush(request_id=getattr(context, "aws_request_id", ""))


def lambda_entry(name: str, handler: LambdaHandler) -> LambdaHandler:
    """What Lambda calls for the function ``name``: the self-test is answered here, before the
    service; anything that is not the function's kind of event (an EventBridge event, or an SQS
    batch for the consumer) gets a clear error instead of Chalice's ``KeyError``; everything
    else goes to Chalice's handler (``handler``)."""
    keys, kind = (
        (SQS_EVENT_KEYS, "SQS event")
        if name == PARKED_HANDLER
        else (ENVELOPE_KEYS, "EventBridge event")
    )

    def entry(event: Any, context: Any) -> Any:
        if selftest.is_selftest(event):
            wired = wiring()
            return selftest.answer(
                event,
                function_name=getattr(context, "function_name", name),
                function_arn=getattr(context, "invoked_function_arn", ""),
                request_id=getattr(context, "aws_request_id", ""),
                publisher=wired.publisher,
                outputs=[output.name for output in wired.settings.routes],
                now=now_utc(),
            )
        missing = (
            [key for key in keys if key not in event] if isinstance(event, dict) else list(keys)
        )
        if missing:
            logger.error("function %s: not an %s (missing %s)", name, kind, ", ".join(missing))
            raise EventParseError(
                f"function {name}: not an {kind} (missing {', '.join(missing)}); "
                "it takes the events of its source, or the self-test payload"
            )
        try:
            return handler(event, context)
        except Exception as exc:
            # The runtime reports the error too, but in Lambda's text log format without the
            # request id; this line carries it and the event's id.
            logger.exception(
                "function %s failed on event %s: %s", name, event.get("id"), type(exc).__name__
            )
            raise

    entry.__name__ = name
    entry.__doc__ = getattr(handler, "func", handler).__doc__
    return entry


# Bind every function's Handler (app.<name>) on this module, as the runtime resolves it.
for _name, _handler in list(app.handler_map.items()):
    globals()[_name] = lambda_entry(_name, _handler)

if in_lambda():
    # Init phase (once per execution environment, before the first event): logging on top of
    # the runtime's handler, and the boto3 clients, so that the first event does not pay for them.
    configure_lambda_logging()
    wiring()
