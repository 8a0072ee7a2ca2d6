"""The one place where decisions meet side effects. The Lambda handlers and replay both call it.

Data flows one way: raw event -> :func:`records.parse_event` -> decisions (pure functions in
:mod:`chalicelib.core.decisions`, applied with one conditional or atomic request per item of the
injected :class:`state.StateStore`) -> notifications -> ``publisher.publish``. Lambda injects
DynamoDB and SNS; replay injects memory and a list.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from ..core.config import Settings
from ..core.errors import PublishError
from ..core.notifications import Notification
from ..core.rules import HEARTBEAT_RULE, RuleSet
from ..core.state import MemoryStore, StateStore
from ..core.suppressions import SUPPRESSION_RULE, Suppressions
from .admission import Admission
from .delivery import Delivery, Publisher
from .events import EventHandler
from .heartbeats import Canary, Heartbeats
from .observability import MemoryMetrics, Metrics
from .parts import Parts
from .rates import RateLimits
from .scheduler import Remaining, Scheduler

__all__ = ["AlertService", "MemoryCanary", "MemoryPublisher", "Publisher"]


class MemoryPublisher:
    """Collects notifications in order (replay, tests), routed like SNS by ``settings``.

    ``failing`` names outputs that raise :class:`errors.PublishError` (tests of retries).
    """

    def __init__(self, settings: Settings | None = None, failing: set[str] | None = None) -> None:
        self.settings = settings or Settings()
        self.sent: list[Notification] = []
        """Each notification once, in order (a notification routed to 3 outputs appears once)."""
        self.deliveries: list[tuple[str, Notification]] = []
        """Every publish call: (output, notification)."""
        self.failing: set[str] = failing if failing is not None else set()
        self._lock = threading.Lock()  # concurrency tests share one publisher across threads

    @property
    def published(self) -> list[Notification]:
        """Every publish call's notification (duplicates included: tests look for them)."""
        return [notification for _, notification in self.deliveries]

    def destinations(self, notification: Notification) -> list[str]:
        return self.settings.destinations(notification.severity, notification.kind)

    def publish(self, notification: Notification, destination: str) -> None:
        if destination in self.failing:
            raise PublishError(f"destination {destination} is failing (test)")
        with self._lock:
            self.deliveries.append((destination, notification))
            if not self.sent or self.sent[-1].id != notification.id or not notification.id:
                self.sent.append(notification)


class MemoryCanary:
    """The heartbeat's canary in memory (tests): what was sent; ``failing`` raises instead."""

    def __init__(self, failing: bool = False) -> None:
        self.sent: list[str] = []
        self.failing = failing

    def send(self, message: str) -> str:
        if self.failing:
            raise PublishError("canary topic is failing (test)")
        self.sent.append(message)
        return f"canary-{len(self.sent)}"


class AlertService:
    """Turns matched events into published notifications, exactly once, rate-limited.

    The one entry point for the Lambda handlers and replay; each job lives in its own class:
    :class:`events.EventHandler` (per event), :class:`rates.RateLimits` (the rate windows),
    :class:`admission.Admission` (each notification admitted or held, once),
    :class:`delivery.Delivery` (per-output publishing), :class:`scheduler.Scheduler` (what falls
    due) and :class:`heartbeats.Heartbeats`.
    """

    def __init__(
        self,
        rules: RuleSet,
        publisher: Publisher,
        store: StateStore | None = None,
        settings: Settings | None = None,
        *,
        metrics: Metrics | None = None,
        suppressions: Suppressions | None = None,
        canary: Canary | None = None,
    ) -> None:
        self.rules = rules
        self.store: StateStore = store if store is not None else MemoryStore()
        self.settings = settings or Settings()
        self.metrics: Metrics = metrics if metrics is not None else MemoryMetrics()
        # Heartbeat and expiry notices name built-in rules; outboxes are rebuilt against all.
        builtin = [r for r in (HEARTBEAT_RULE, SUPPRESSION_RULE) if r.id not in rules.ids]
        known = RuleSet([*rules, *builtin])
        self.suppressions = suppressions if suppressions is not None else Suppressions()
        rates = RateLimits(self.store, self.settings, self.metrics)
        self.admission = Admission(rates, publisher.destinations, self.suppressions)
        self.delivery = Delivery(
            self.store,
            publisher,
            self.settings,
            self.metrics,
            known=known,
            admission=self.admission,
        )
        parts = Parts(
            rules=rules,
            store=self.store,
            settings=self.settings,
            metrics=self.metrics,
            rates=rates,
            admission=self.admission,
            delivery=self.delivery,
        )
        self.events = EventHandler(parts)
        self.scheduler = Scheduler(replace(parts, rules=known))
        self.scheduler.events = self.events
        self.heartbeats = Heartbeats(parts, canary)

    def handle(self, rule_id: str, event: Mapping[str, Any], now: datetime) -> list[Notification]:
        """See :meth:`events.EventHandler.handle`."""
        return self.events.handle(rule_id, event, now)

    def tick(
        self, now: datetime, force: bool = False, remaining: Remaining | None = None
    ) -> list[Notification]:
        """See :meth:`scheduler.Scheduler.tick`."""
        return self.scheduler.tick(now, force, remaining)

    def flush(self, now: datetime) -> list[Notification]:
        """See :meth:`scheduler.Scheduler.flush`."""
        return self.scheduler.flush(now)

    def heartbeat(self, event: Mapping[str, Any], now: datetime) -> list[Notification]:
        """See :meth:`heartbeats.Heartbeats.heartbeat`."""
        return self.heartbeats.heartbeat(event, now)

    def pipeline_heartbeat(self, event: Mapping[str, Any], now: datetime) -> list[Notification]:
        """See :meth:`heartbeats.Heartbeats.pipeline`."""
        return self.heartbeats.pipeline(event, now)
