"""mfawatch Lambda wiring: one EventBridge rule and handler per rule in ``rules/``, plus a
scheduled handler that sends due summaries and storm digests.

Only wiring lives here. Each handler hands the raw EventBridge event to the same
:class:`chalicelib.service.AlertService` that ``python -m mfawatch replay`` uses.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import boto3
from chalice.app import Chalice, CloudWatchEvent, Rate

from chalicelib.config import settings_from_env
from chalicelib.constants import HEARTBEAT_INTERVAL_MINUTES, HEARTBEAT_PATTERN
from chalicelib.dynamo import DynamoStateStore
from chalicelib.observability import EmfMetrics, configure_json_logging
from chalicelib.records import now_utc
from chalicelib.rules import Rule, load_bundle
from chalicelib.service import AlertService
from chalicelib.sns import SnsPublisher

app = Chalice(app_name="mfawatch")
configure_json_logging(logging.INFO)

RULES = load_bundle()
METRICS = EmfMetrics()
_service: AlertService | None = None


def service() -> AlertService:
    """The service, built on first use so that importing the app needs no AWS settings."""
    global _service  # noqa: PLW0603 - one per Lambda execution environment, reused across calls
    if _service is None:
        settings = settings_from_env()
        _service = AlertService(
            RULES,
            SnsPublisher(boto3.client("sns"), settings),
            DynamoStateStore(boto3.client("dynamodb"), settings.table_name),
            settings,
            METRICS,
        )
    return _service


@contextmanager
def metrics_flushed() -> Iterator[None]:
    """Write this invocation's metrics (Embedded Metric Format) even when it fails."""
    try:
        yield
    finally:
        METRICS.flush()


def _handler_for(rule: Rule) -> Callable[[CloudWatchEvent], None]:
    def handler(event: CloudWatchEvent) -> None:
        with metrics_flushed():
            service().handle(rule.id, event.to_dict(), now=now_utc())

    handler.__name__ = rule.handler_name
    handler.__doc__ = f"EventBridge rule {rule.id}: {rule.title}"
    return handler


for _rule in RULES:
    app.on_cw_event(dict(_rule.event_pattern), name=_rule.handler_name)(_handler_for(_rule))


@app.schedule(Rate(1, unit=Rate.MINUTES), name="send_due_summaries")
def send_due_summaries(event: CloudWatchEvent) -> None:
    """Every minute: summaries of closed incident windows, storm digests, failed redeliveries."""
    with metrics_flushed():
        service().tick(now_utc())


@app.on_cw_event(dict(HEARTBEAT_PATTERN), name="on_heartbeat")
def on_heartbeat(event: CloudWatchEvent) -> None:
    """A member account x Region's scheduled heartbeat reached the central bus."""
    with metrics_flushed():
        service().heartbeat(event.to_dict(), now_utc())


@app.schedule(Rate(HEARTBEAT_INTERVAL_MINUTES, unit=Rate.MINUTES), name="heartbeat")
def heartbeat(event: CloudWatchEvent) -> None:
    """The central account's own heartbeat (its events reach this bus without forwarding)."""
    with metrics_flushed():
        service().heartbeat(event.to_dict(), now_utc())
