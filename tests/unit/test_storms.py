"""Storm mode on the in-memory store (replay's store): holds until quiet, a digest per period,
exact counts."""

from __future__ import annotations

from collections import Counter

from chalicelib.core.config import Settings, Threshold
from chalicelib.core.notifications import KIND_ALERT, KIND_STORM
from chalicelib.core.rules import RuleSet, load_bundle
from chalicelib.core.state import MemoryStore
from chalicelib.pipeline.service import AlertService, MemoryPublisher
from tests.support.properties import IAM_RULE, failed_sign_in
from tests.support.simulation import at

RULES: RuleSet = load_bundle()


def test_storm_mode_holds_until_quiet_with_a_digest_per_period_and_exact_counts() -> None:
    settings = Settings(topic_rate=Threshold(3, 5), principal_rate=Threshold(100, 5))
    publisher = MemoryPublisher(settings)
    store = MemoryStore()
    service = AlertService(RULES, publisher, store, settings)
    clock = 0.0
    # 60 users fail once each, one every 10 seconds for 10 minutes: 60 distinct incidents.
    for i in range(60):
        t = 10.0 * i
        while clock + 60 <= t:
            clock += 60
            service.tick(at(clock))
        service.handle(IAM_RULE, failed_sign_in(IAM_RULE, f"e{i}", t, user=i, ip=i), at(t))
    while store.due(float("inf"), clock) and clock < 4 * 3600:
        clock += 60
        service.tick(at(clock))
    kinds = Counter(n.kind for n in publisher.sent)
    assert kinds[KIND_ALERT] == 3, "the topic's window admits 3, then storm mode"
    storms = [n for n in publisher.sent if n.kind == KIND_STORM]
    # A digest every 5 minutes while holds go on, then the final one.
    assert 2 <= len(storms) <= 4, [n.title for n in storms]
    assert storms[-1].title.startswith("Alert storm ended: ")
    assert all(n.title.startswith("Alert storm: ") for n in storms[:-1])
    assert sum(n.count for n in publisher.sent if n.kind in (KIND_ALERT, KIND_STORM)) == 60
    covered = [e for n in publisher.sent for e in n.event_ids if n.kind != "escalation"]
    assert sorted(covered) == sorted(f"e{i}" for i in range(60))
