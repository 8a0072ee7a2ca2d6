"""The exceptions mfawatch raises, in one small hierarchy."""

from __future__ import annotations


class MfawatchError(Exception):
    """Base class of every error mfawatch raises on purpose."""


class RuleError(MfawatchError):
    """A rule file is invalid. The message names the file and the JSON path of the field."""

    def __init__(self, source: str, path: str, message: str) -> None:
        self.source = source
        self.path = path
        self.message = message
        super().__init__(f"{source}: {path}: {message}" if path else f"{source}: {message}")


class EventParseError(MfawatchError):
    """An event is not a CloudTrail record nor an EventBridge envelope of one."""


class ConfigError(MfawatchError):
    """The stage configuration (environment or .chalice/config.json) is missing or wrong."""


class PublishError(MfawatchError):
    """Publishing a notification failed; the Lambda invocation must fail so that it is retried."""


class StateStoreError(MfawatchError):
    """The state store failed or throttled (after the client's retries). Raised so that Lambda
    retries; before anything is decided, a marked copy is published first (FailedOpenError)."""


class FailedOpenError(StateStoreError):
    """The state store failed before the claim: a marked copy of the alert was published without
    deduplication, and the invocation fails so that Lambda's retry takes the event through the
    deduplicated path (which alone counts it)."""


class EventInProgressError(MfawatchError):
    """Another invocation is processing the same event right now; the handler raises so that
    Lambda retries the delivery later (by then it is a duplicate or its lease has run out)."""


class UnknownReferenceError(MfawatchError):
    """Stored state names a rule or output this deployment does not have (renamed or removed
    since it was written): the scheduler reports and parks the item instead of stalling on it."""


class ParkedRecordError(MfawatchError):
    """A message on the failed-events queue is not a Lambda on-failure record this app can
    replay (not JSON, no function ARN or payload, a function of no known handler)."""


class QueueError(MfawatchError):
    """An SQS call failed (after the client's retries)."""
