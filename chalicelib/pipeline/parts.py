"""What the pipeline's jobs are built on, and the context one attempt at an event carries.

Both are frozen and passed explicitly: a step reads the parts it uses from :class:`Parts` when
it is built, and what it decides about from :class:`Attempt` when it is called.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from ..core.config import Settings
from ..core.notifications import Notification
from ..core.records import SignInRecord
from ..core.rules import Rule, RuleSet
from ..core.state import Item, StateStore
from .admission import Admission
from .delivery import Delivery
from .observability import Metrics
from .rates import RateLimits


@dataclass(frozen=True)
class Parts:
    """The rules, the store, the stage settings, the metrics, and what counts, admits and
    delivers notifications (rate limits, admission, delivery): one set per service, shared by
    the event handler's steps, the campaign step and the scheduler."""

    rules: RuleSet
    store: StateStore
    settings: Settings
    metrics: Metrics
    rates: RateLimits
    admission: Admission
    delivery: Delivery


@dataclass(frozen=True)
class Attempt:
    """One attempt at deciding a claimed event: its rule, its record (attributed), its claim's
    key, the processing time and the notes its notifications carry."""

    rule: Rule
    record: SignInRecord
    key: str
    now: float
    notes: tuple[str, ...]

    @property
    def t(self) -> float:
        """The event time (seconds)."""
        return self.record.event_time.timestamp()


def horizon(settings: Settings) -> float:
    """How long a principal's failures and successes are kept: the longest window that looks
    back at them (brute force, fatigue success, takeover chain)."""
    s = settings
    return max(s.brute_force.seconds, s.fatigue_success.seconds, s.takeover.seconds)


def retry_horizon(settings: Settings) -> float:
    """How late an event is processed when its first invocations fail: Lambda retries a failed
    invocation 1 and then 2 more minutes later, within the lease and the settle delay (3
    minutes by default)."""
    return settings.lease_seconds + settings.settle_seconds


class Decider(Protocol):
    """The event handler, as the steps that decide an event again see it (a stuck leader, a
    success re-checked by a later failure, a failure that waited for its user's name)."""

    def handle(self, rule_id: str, event: Mapping[str, Any], now: datetime) -> list[Notification]:
        """Decide an event as a Lambda invocation does."""
        ...

    def decide(
        self,
        rule_id: str,
        event: Mapping[str, Any],
        now: datetime,
        *,
        wait: bool,
        stand_in: bool = False,
    ) -> list[Notification]:
        """Decide an event; ``wait``: a failure may still wait for its user's name;
        ``stand_in``: under its stand-in claim."""
        ...

    def resume(
        self, key: str, now: float, item: Item | None = None, wait: bool = True
    ) -> list[Notification]:
        """Decide again an event whose claim keeps it, unless decided or being decided."""
        ...
