"""What each function gets beside its code: the asynchronous invocation settings (retries,
maximum event age, on-failure destination) and, for the consumer of parked events, its SQS
event source, in the form of each deploy route."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chalicelib.core.errors import ConfigError
from mfawatch.deploy.templates.names import function_logical_id

# Asynchronous invocation settings (AWS::Lambda::EventInvokeConfig). Lambda allows 0-2 retries
# and a maximum event age of 60-21600 s (AWS Lambda Developer Guide, invocation-async-error-
# handling). Two retries ride out a throttle or an SNS blip; after an hour an alert about a
# sign-in is stale, and the record goes to the failed-events queue for a human instead.
MAX_RETRY_ATTEMPTS = 2
MAX_EVENT_AGE_SECONDS = 3600
QUALIFIER = "$LATEST"  # Chalice deploys unpublished functions: no versions, no aliases.

# The consumer of the failed-events queue (app.py). It is invoked synchronously by its SQS event
# source, so it gets no EventInvokeConfig; it is declared as a plain function because Chalice
# 1.34's on_sqs_message cannot set FunctionResponseTypes, and without ReportBatchItemFailures
# Lambda ignores a partial batch response and deletes every message of a batch that returned
# (AWS Lambda Developer Guide, services-sqs-errorhandling, "Implementing partial batch
# responses"). The generated templates declare the event source instead: an
# AWS::Lambda::EventSourceMapping in route (a) (parked_event_source), an SQS event merged into
# the SAM function in route (b) (parked_sam_event).
PARKED_HANDLER = "consume_parked_events"
PARKED_BATCH_SIZE = 10
# The consumer's event source is capped at the consumer's reserved concurrency (ScalingConfig
# MaximumConcurrency): it then never invokes more instances than the function may run, so it is
# never throttled. A throttled SQS invocation returns its messages to the queue and counts a
# receive, which would move a record to the dead-letter queue before the consumer tried it
# (AWS Lambda Developer Guide, services-sqs-scaling, "Configuring maximum concurrency": keep the
# reserved concurrency at least the event sources' maximum concurrency, or Lambda may throttle
# the messages).

PARKED_EVENT_SOURCE = "ConsumeParkedEventsSource"


def select_rule_handlers(handlers: Sequence[str], rule_handlers: Sequence[str] | None) -> list[str]:
    """The handlers with an EventBridge rule: ``rule_handlers`` (each one of ``handlers``), or by
    default every handler but the consumer of parked events."""
    if rule_handlers is None:
        return [h for h in handlers if h != PARKED_HANDLER]
    unknown = sorted(set(rule_handlers) - set(handlers))
    if unknown:
        raise ConfigError(f"rule handlers {unknown} are not among the handlers")
    return sorted(rule_handlers)


def checked_handlers(handlers: Sequence[str]) -> list[str]:
    """``handlers`` sorted and unique; :class:`ConfigError` when there are none or two share a
    logical id."""
    if not handlers:
        raise ConfigError("no Lambda handlers: the app registers none")
    ids: dict[str, str] = {}
    for handler in handlers:
        logical = function_logical_id(handler)
        if logical in ids and ids[logical] != handler:
            raise ConfigError(f"handlers {ids[logical]!r} and {handler!r} share id {logical}")
        ids[logical] = handler
    return sorted(set(handlers))


def parked_event_source_settings(concurrency: int) -> dict[str, Any]:
    """The consumer's event source settings, one definition for both routes; ``concurrency``:
    the consumer's reserved concurrency, also the event source's maximum concurrency."""
    return {
        "BatchSize": PARKED_BATCH_SIZE,
        "Enabled": True,
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
        "ScalingConfig": {"MaximumConcurrency": concurrency},
    }


def parked_event_source(function_name: Any, queue_arn: Any, concurrency: int) -> dict[str, Any]:
    """Route (a): the consumer's SQS event source (``AWS::Lambda::EventSourceMapping``)."""
    return {
        "Type": "AWS::Lambda::EventSourceMapping",
        "Properties": {
            "FunctionName": function_name,
            "EventSourceArn": queue_arn,
            **parked_event_source_settings(concurrency),
        },
    }


def parked_sam_event(queue_arn: Any, concurrency: int) -> dict[str, Any]:
    """Route (b): the same event source as an ``SQS`` event of the SAM function Chalice
    packages (AWS SAM Developer Guide, sam-property-function-sqs: ``FunctionResponseTypes``,
    ``ScalingConfig``), merged into the function: Chalice 1.34 cannot write it, the merge
    template can."""
    return {
        "Type": "SQS",
        "Properties": {"Queue": queue_arn, **parked_event_source_settings(concurrency)},
    }


def event_invoke_config(function_name: Any, destination: Any) -> dict[str, Any]:
    """A function's ``AWS::Lambda::EventInvokeConfig``: retries, maximum event age and the
    on-failure destination (the failed-events queue)."""
    return {
        "Type": "AWS::Lambda::EventInvokeConfig",
        "Properties": {
            "FunctionName": function_name,
            "Qualifier": QUALIFIER,
            "MaximumRetryAttempts": MAX_RETRY_ATTEMPTS,
            "MaximumEventAgeInSeconds": MAX_EVENT_AGE_SECONDS,
            "DestinationConfig": {"OnFailure": {"Destination": destination}},
        },
    }
