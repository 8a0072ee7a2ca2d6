"""Suppressions about to expire: one LOW notice each, sent exactly once, even when its first
publish failed."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from chalicelib.core.notifications import KIND_NOTICE
from chalicelib.core.state import MemoryStore
from chalicelib.pipeline.service import AlertService, MemoryPublisher
from tests.support.events import BASE
from tests.support.suppressions import OWNER, REASON, RULES, notices, pentest


def test_one_low_notice_per_suppression_7_days_before_it_expires() -> None:
    expires = date(2026, 11, 20)
    store = MemoryStore()
    publisher = MemoryPublisher()
    service = AlertService(RULES, publisher, store, suppressions=pentest(expires))
    eve = datetime(2026, 11, 12, 23, 59, tzinfo=BASE.tzinfo)
    assert notices(service.tick(eve)) == [], "8 days before: nothing yet"
    (notice,) = notices(service.tick(eve + timedelta(minutes=1)))
    assert (notice.severity, notice.title) == (
        "LOW",
        "Suppression pentest-q4 expires on 2026-11-20 (in 7 days)",
    )
    assert f"pentest-q4 ({OWNER}, {REASON}) stops applying" in notice.summary
    # Later runs, in this environment or a fresh one on the same table: the mark holds.
    assert notices(service.tick(eve + timedelta(minutes=2))) == []
    again = AlertService(RULES, publisher, store, suppressions=pentest(expires))
    assert notices(again.tick(eve + timedelta(days=1))) == []
    assert [n.id for n in publisher.published if n.kind == KIND_NOTICE] == [notice.id]


def test_an_expiry_notice_whose_publish_failed_is_sent_once_by_a_later_run() -> None:
    from chalicelib.core.errors import PublishError

    expires = date(2026, 11, 20)
    store = MemoryStore()
    publisher = MemoryPublisher(failing={"alerts"})
    service = AlertService(RULES, publisher, store, suppressions=pentest(expires))
    week_before = datetime(2026, 11, 13, 9, tzinfo=BASE.tzinfo)
    with pytest.raises(PublishError):
        service.tick(week_before)
    publisher.failing.clear()
    fresh = AlertService(RULES, publisher, store, suppressions=pentest(expires))
    for minute in range(1, 5):
        fresh.tick(week_before + timedelta(minutes=minute))
    assert [n.kind for n in publisher.published] == [KIND_NOTICE]
