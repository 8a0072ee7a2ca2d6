"""Rate limits' state: the topic's and a principal's rate items stay small whatever the time
between alerts."""

from __future__ import annotations

from collections import Counter

from chalicelib.core.notifications import KIND_ALERT
from chalicelib.core.state import MemoryStore
from chalicelib.pipeline.rates import RATE_KEY
from chalicelib.pipeline.service import AlertService, MemoryPublisher
from tests.conftest import examples
from tests.support.simulation import (
    RULES,
    at,
    iam_failure,
    settings,
)


def test_rate_items_stay_small_over_months_of_sparse_alerts() -> None:
    # One alert every 17 minutes (a new incident window each time, a rate window skipped each
    # time) for 10 days (one under make quick): on main the topic's rate item kept one counter per
    # alert (~850).
    store = MemoryStore()
    publisher = MemoryPublisher(settings())
    service = AlertService(RULES, publisher, store, settings())
    gap, alerts = 17 * 60.0, examples(850)
    for n in range(alerts):
        arrival = iam_failure(f"sparse-{n}", gap * n, user="sparse", ip="192.0.2.9")
        service.handle(arrival.rule_id, arrival.envelope, at(arrival.at))
        service.tick(at(arrival.at + 60.0))
    assert Counter(n.kind for n in publisher.sent)[KIND_ALERT] == alerts
    items = store.items()
    rate = items[RATE_KEY]
    counters = [name for name in rate if name.startswith("sent_")]
    assert len(counters) <= 2, counters
    principal = next(item for key, item in items.items() if key.startswith("prn#"))
    assert len([name for name in principal if name.startswith("sent_")]) <= 2
