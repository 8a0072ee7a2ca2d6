"""Heartbeats: is every member account x Region still forwarding its sign-in events?

Each account x Region sends a scheduled event every 15 minutes along the same path as its sign-in
events (see ``constants.HEARTBEAT_PATTERN``). Seeing one pushes the item's due time to "overdue";
the scheduler reports an overdue one once (:mod:`chalicelib.scheduler`), and the next heartbeat
announces the recovery. One item per account x Region, written every 15 minutes: no contention, so
a version check is enough.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from .constants import HEARTBEAT_OVERDUE_SECONDS
from .delivery import Delivery
from .documents import VERSION, Heartbeat, Outbox
from .notifications import Notification, heartbeat_notice
from .observability import Metrics
from .rules import HEARTBEAT_RULE
from .state import (
    EXPIRES_AT,
    Absent,
    Compare,
    ConditionFailed,
    KeyKind,
    StateStore,
    due_mark,
    make_key,
)

logger = logging.getLogger(__name__)

#: How long an account x Region is remembered without a heartbeat.
HEARTBEAT_RETENTION = 30 * 24 * 3600.0


def heartbeat_key(account: str, region: str) -> str:
    return make_key(KeyKind.HEARTBEAT, account, region)


class Heartbeats:
    """Records heartbeats and announces recoveries."""

    def __init__(self, store: StateStore, delivery: Delivery, metrics: Metrics) -> None:
        self.store = store
        self.delivery = delivery
        self.metrics = metrics

    def heartbeat(self, event: Mapping[str, Any], now: datetime) -> list[Notification]:
        """A heartbeat from an account x Region (a member's scheduled rule, or our own
        schedule): record it, announce recovery if it had been reported missing, and count it.

        The ``Heartbeats`` metric (which the stage's heartbeat alarm watches) is counted last,
        only once the state write and any publish have succeeded: a heartbeat that reaches the
        function while the table or SNS is failing raises instead, so the metric stops and the
        alarm pages, rather than proving only that the function ran."""
        account = str(event.get("account", ""))
        region = str(event.get("region", ""))
        clock = now.timestamp()
        key = heartbeat_key(account, region)
        item = self.store.get(key, clock)
        previous = Heartbeat.from_item(item) if item else None
        recovered = previous is not None and previous.missing_reported
        outbox = previous.outbox if previous else Outbox()
        current = Heartbeat(
            account=account,
            region=region,
            last_seen=clock,
            missing_since=previous.last_seen if recovered and previous else 0.0,
        )
        if recovered:
            notice = heartbeat_notice(
                HEARTBEAT_RULE,
                {
                    "account": account,
                    "region": region,
                    "last_seen": clock,
                    "missing_since": current.missing_since,
                },
                clock,
                missing=False,
            )
            outbox = outbox.with_entries(self.delivery.decide([notice], clock).entries)
        due = clock if outbox.pending() else clock + HEARTBEAT_OVERDUE_SECONDS
        values = {
            **Heartbeat(account, region, clock, False, current.missing_since, outbox).to_item(),
            EXPIRES_AT: clock + HEARTBEAT_RETENTION,
            VERSION: (previous.version if previous else 0) + 1,
            **due_mark(due),
        }
        condition = (
            Compare(VERSION, "=", previous.version, or_missing=previous.version == 0)
            if previous
            else Absent()
        )
        try:
            self.store.put(key, values, clock, condition=condition)
        except ConditionFailed:
            logger.info("heartbeat from %s %s raced another; that one counts", account, region)
            return []
        logger.info("heartbeat from %s %s (recovered: %s)", account, region, recovered)
        sent = (
            self.delivery.deliver(
                key, outbox, clock, due_mark(clock + HEARTBEAT_OVERDUE_SECONDS), []
            )
            if outbox.pending()
            else []
        )
        self.metrics.count("Heartbeats", Account=account, Region=region)
        return sent
