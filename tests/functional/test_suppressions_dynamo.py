"""Suppressions on DynamoDB (moto in-process), requests counted at the wire: a suppressed alert
costs no more than an alert, is counted in the digest, and the expiry notice is sent once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.aws.dynamo import DynamoStateStore
from chalicelib.core.rules import load_bundle
from chalicelib.core.suppressions import Suppressions
from chalicelib.pipeline.service import AlertService, MemoryPublisher
from tests.support.events import BASE, IAM_FAILURE, failed_mfa
from tests.support.suppressions import OWNER, REASON, suppression
from tests.support.wire import Wire, dev_settings

TABLE = "mfawatch-dev-state"
RULE = IAM_FAILURE
EXPIRES = (BASE + timedelta(days=30)).date()


def service_on(dynamodb: Any, publisher: MemoryPublisher, **match: list[str]) -> AlertService:
    suppressions = Suppressions([suppression("pentest", EXPIRES, match=match)])
    return AlertService(
        load_bundle(),
        publisher,
        DynamoStateStore(dynamodb, TABLE),
        dev_settings(),
        suppressions=suppressions,
    )


def test_a_suppressed_alert_costs_no_more_requests_and_is_counted_in_the_digest(
    dynamodb: Any,
) -> None:
    wire = Wire(dynamodb)
    publisher = MemoryPublisher(dev_settings())
    service = service_on(dynamodb, publisher, principals=["alice"])
    at = BASE + timedelta(seconds=30)
    suppressed = wire.count(lambda: service.handle(RULE, failed_mfa("e1", 0), at))
    repeat = wire.count(lambda: service.handle(RULE, failed_mfa("e2", 1), at))
    assert suppressed <= 7, f"the alert budget holds: {suppressed} requests"
    assert repeat <= 4, f"the repeat budget holds: {repeat} requests"
    assert publisher.deliveries == []
    service.flush(BASE + timedelta(hours=1))
    digests = [n for n in publisher.sent if n.kind == "storm"]
    assert sum(n.count for n in digests) == 2
    assert {n.severity for n in digests} == {"LOW"}
    assert all(f"suppressed by pentest ({OWNER}, {REASON})" in n.summary for n in digests)
    # LOW: the pager (min_severity HIGH) never receives a suppressed-only digest.
    assert {o for o, _ in publisher.deliveries} == {"alerts"}


def test_the_expiry_notice_is_sent_once_across_environments(dynamodb: Any) -> None:
    publisher = MemoryPublisher(dev_settings())
    week_before = datetime.combine(EXPIRES - timedelta(days=7), datetime.min.time(), UTC)
    for minute in range(3):
        fresh = service_on(dynamodb, publisher, principals=["alice"])
        fresh.tick(week_before + timedelta(minutes=minute))
    assert [(o, n.kind, n.severity) for o, n in publisher.deliveries] == [
        ("alerts", "notice", "LOW")
    ]
