"""Heartbeats: is every member account x Region still forwarding its sign-in events, and can the
stage itself still write its state and publish?

Each account x Region sends a scheduled event every 15 minutes along the same path as its sign-in
events (see ``constants.HEARTBEAT_PATTERN``). Seeing one pushes the item's due time to "overdue";
the scheduler reports an overdue one once (:mod:`chalicelib.pipeline.scheduler`), and the next
heartbeat announces the recovery. One item per account x Region, written every 15 minutes: no
contention, so a version check is enough.

The stage's own scheduled heartbeat (:meth:`Heartbeats.pipeline`) also publishes a small canary
message to the stage's canary topic, which is encrypted with the same key as the alert topics and
has no subscribers: a publish there needs what every alert needs (``sns:Publish``, the key usable
by the function, SNS up) and pages nobody. ``PipelineHeartbeats``, the metric the stage's heartbeat
alarm watches (missing data is breaching), is counted only once the state write and the canary
publish both succeeded, so the alarm pages when the table, the key or SNS is broken, every 15
minutes at no one's expense.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from ..core.constants import HEARTBEAT_OVERDUE_SECONDS
from ..core.documents import VERSION, Heartbeat, Outbox, OutboxEntry
from ..core.errors import ConfigError
from ..core.notifications import Notification, heartbeat_notice
from ..core.rules import HEARTBEAT_RULE
from ..core.state import (
    EXPIRES_AT,
    Absent,
    Compare,
    ConditionFailed,
    KeyKind,
    due_mark,
    make_key,
)
from .parts import Parts

logger = logging.getLogger(__name__)

#: How long an account x Region is remembered without a heartbeat.
HEARTBEAT_RETENTION = 30 * 24 * 3600.0
#: The metric the stage's heartbeat alarm watches: the store written and the canary published.
PIPELINE_HEARTBEATS = "PipelineHeartbeats"


class Canary(Protocol):
    """Where the scheduled heartbeat proves that the function can publish (the SNS edge:
    :class:`chalicelib.aws.sns.SnsCanary`; tests:
    :class:`chalicelib.pipeline.service.MemoryCanary`)."""

    def send(self, message: str) -> str:
        """Publish ``message``; return its message id, or raise :class:`errors.PublishError`."""
        ...


def canary_message(account: str, region: str, now: float) -> str:
    """The canary's text: small, and saying what it is to anyone who finds it."""
    return json.dumps(
        {
            "mfawatch": "canary",
            "account": account,
            "region": region,
            "time": datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "purpose": "proves that the stage's functions can publish with the stage key; "
            "the topic has no subscribers",
        },
        sort_keys=True,
    )


def heartbeat_key(account: str, region: str) -> str:
    return make_key(KeyKind.HEARTBEAT, account, region)


class Heartbeats:
    """Records heartbeats, announces recoveries, and proves the stage's own pipeline."""

    def __init__(self, parts: Parts, canary: Canary | None = None) -> None:
        self.store, self.metrics = parts.store, parts.metrics
        self.admission, self.delivery = parts.admission, parts.delivery
        self.canary = canary

    def pipeline(self, event: Mapping[str, Any], now: datetime) -> list[Notification]:
        """The stage's own scheduled heartbeat: recorded like any other (:meth:`heartbeat`, the
        state store), then the canary is published (SNS with the stage key). Counts
        ``PipelineHeartbeats`` only when both succeeded; otherwise raises (Lambda retries the
        invocation) and the metric stays missing, so the heartbeat alarm pages.

        Raises :class:`errors.ConfigError` when no canary topic is configured: a stage that
        cannot prove SNS does not pretend to."""
        sent = self.heartbeat(event, now)
        if self.canary is None:
            raise ConfigError(
                "no canary topic (MFAWATCH_CANARY_TOPIC_ARN): the heartbeat cannot prove that "
                "SNS works; set it to the stage's mfawatch-<stage>-canary topic"
            )
        account = str(event.get("account", ""))
        region = str(event.get("region", ""))
        message_id = self.canary.send(canary_message(account, region, now.timestamp()))
        logger.info("canary published as SNS message %s", message_id)
        self.metrics.count(PIPELINE_HEARTBEATS)
        return sent

    def heartbeat(self, event: Mapping[str, Any], now: datetime) -> list[Notification]:
        """A heartbeat from an account x Region (a member's scheduled rule, or our own
        schedule): record it, announce recovery if it had been reported missing, and count it.

        The ``Heartbeats`` metric is counted last, only once the state write and any publish
        have succeeded: a heartbeat that reaches the function while the table or SNS is failing
        raises instead. The stage's own heartbeat goes through :meth:`pipeline`, which also
        proves SNS."""
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
            outbox = outbox.with_entries(self._recovery(current, clock))
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
                key,
                outbox,
                clock,
                finish=due_mark(clock + HEARTBEAT_OVERDUE_SECONDS),
                finish_remove=[],
            )
            if outbox.pending()
            else []
        )
        self.metrics.count("Heartbeats", Account=account, Region=region)
        return sent

    def _recovery(self, current: Heartbeat, clock: float) -> list[OutboxEntry]:
        """The recovery notice of an account x Region that had been reported missing."""
        notice = heartbeat_notice(
            HEARTBEAT_RULE,
            {
                "account": current.account,
                "region": current.region,
                "last_seen": clock,
                "missing_since": current.missing_since,
            },
            clock,
            missing=False,
        )
        return self.admission.decide([notice], clock).entries
