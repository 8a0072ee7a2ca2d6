"""A fault-injecting wrapper around any :class:`chalicelib.core.state.StateStore`, and a small
simulation of Lambda's asynchronous retries plus the per-minute scheduler.

One :class:`Fault` names the requests it hits (operation, key prefix, which matching call) and
what happens to them, as DynamoDB and botocore can make it happen:

* ``fail``: the request is not applied and raises :class:`StateStoreError` (throttled or failing
  past botocore's retries);
* ``lost``: the request is applied, then its reply is lost (:class:`StateStoreError`);
* ``ambiguous``: the request is applied, its reply is lost, and botocore's retry sends it again:
  a conditional write then fails its own condition (:class:`ConditionFailed` with the item as
  the first attempt wrote it).

The wrapper delegates everything else to the store it wraps, so the store's own model (index lag,
lazy TTL) stays in effect.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from chalicelib.core.config import Settings
from chalicelib.core.errors import StateStoreError
from chalicelib.core.notifications import KIND_ALERT, KIND_STORM, KIND_SUMMARY, Notification
from chalicelib.core.rules import RuleSet, load_bundle
from chalicelib.core.state import Condition, Item, StateStore
from chalicelib.pipeline.service import AlertService, MemoryPublisher
from tests.support.events import IAM_FAILURE

#: Lambda's asynchronous retries: the second attempt a minute after the first, the third two
#: minutes after the second (https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-error-handling.html).
RETRY_DELAYS = (60.0, 120.0)


@dataclass
class Fault:
    """Hit the ``nth`` (0-based) and following matching requests, ``times`` of them in all
    (``None``: every one)."""

    op: str
    """``get``, ``put``, ``update``, ``query_group`` or ``due``."""
    key_prefix: str = ""
    kind: str = "fail"
    """``fail``, ``lost`` or ``ambiguous`` (see the module)."""
    nth: int = 0
    times: int | None = 1
    when: Callable[[str, Mapping[str, Any]], bool] | None = None
    """An extra test on (key, request arguments and ``now``)."""
    seen: int = 0
    hits: int = 0

    def matches(self, op: str, key: str, request: Mapping[str, Any]) -> bool:
        if op != self.op or not key.startswith(self.key_prefix):
            return False
        if self.when is not None and not self.when(key, request):
            return False
        self.seen += 1
        if self.seen - 1 < self.nth or (self.times is not None and self.hits >= self.times):
            return False
        self.hits += 1
        return True


@dataclass
class FaultyStore:
    """A :class:`StateStore` that injects :class:`Fault` s into the store it wraps."""

    inner: StateStore
    faults: list[Fault] = field(default_factory=list)

    @property
    def calls(self) -> int:
        return self.inner.calls

    @calls.setter
    def calls(self, value: int) -> None:
        self.inner.calls = value

    def _fault(self, op: str, key: str, request: Mapping[str, Any]) -> Fault | None:
        for fault in self.faults:
            if fault.matches(op, key, request):
                return fault
        return None

    def _write(self, op: str, key: str, request: dict[str, Any], apply: Callable[[], Any]) -> Any:
        fault = self._fault(op, key, request)
        if fault is None:
            return apply()
        if fault.kind == "fail":
            raise StateStoreError(f"DynamoDB {op} {key}: throttled (injected)")
        apply()
        if fault.kind == "lost":
            raise StateStoreError(f"DynamoDB {op} {key}: read timeout, reply lost (injected)")
        # "ambiguous": botocore sends the same request again; it meets the first one's write.
        return apply()

    def get(self, key: str, now: float) -> Item | None:
        if self._fault("get", key, {}) is not None:
            raise StateStoreError(f"DynamoDB GetItem {key}: throttled (injected)")
        return self.inner.get(key, now)

    def put(self, key: str, item: Item, now: float, condition: Condition | None = None) -> None:
        self._write(
            "put",
            key,
            {"item": item, "condition": condition, "now": now},
            lambda: self.inner.put(key, item, now, condition=condition),
        )

    def update(self, key: str, now: float, **changes: Any) -> Item:
        # The store's own signature (keyword-only changes), passed through as it is.
        request = {
            "set_values": changes.get("set_values") or {},
            "add": changes.get("add") or {},
            "condition": changes.get("condition"),
            "now": now,
        }
        item: Item = self._write(
            "update", key, request, lambda: self.inner.update(key, now, **changes)
        )
        return item

    def query_group(self, group: str, after: float, until: float, now: float) -> list[Item]:
        if self._fault("query_group", group, {}) is not None:
            raise StateStoreError(f"DynamoDB Query {group}: throttled (injected)")
        return self.inner.query_group(group, after, until, now)

    def due(self, until: float, now: float) -> list[str]:
        if self._fault("due", "", {}) is not None:
            raise StateStoreError("DynamoDB Query due: throttled (injected)")
        return self.inner.due(until, now)


# --- Lambda's asynchronous retries and the per-minute scheduler ----------------------------------


@dataclass
class Run:
    """What a simulated run did."""

    sent: list[Notification]
    """What reached the outputs (the publisher's record: a notification published by an
    invocation that then failed counts too), each notification once, in order."""
    parked: list[str]
    """Event ids whose three attempts all failed (Lambda's on-failure destination)."""
    errors: list[str]


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def run_lambda(
    service: AlertService | Sequence[AlertService],
    deliveries: Sequence[tuple[float, str, dict[str, Any]]],
    until: float,
    tick: bool = True,
) -> Run:
    """Deliver ``(time, rule id, envelope)`` as EventBridge invokes Lambda asynchronously: a failed
    attempt is retried after 1 then 2 more minutes; the scheduler runs every minute (``tick``).

    With several services (execution environments sharing a store), attempt ``n`` of delivery
    ``i`` runs in environment ``(i + n) % len(services)``; the scheduler runs in the first.
    """
    services = [service] if isinstance(service, AlertService) else list(service)
    queue: list[tuple[float, int, int, int]] = []  # (time, order, delivery index, attempt)
    order = 0
    for index, (t, _, _) in enumerate(deliveries):
        heapq.heappush(queue, (t, order, index, 0))
        order += 1
    start = min((t for t, _, _ in deliveries), default=until)
    next_tick = (start // 60 + 1) * 60
    sent: list[Notification] = []
    parked: list[str] = []
    errors: list[str] = []
    while queue or (tick and next_tick <= until):
        if tick and next_tick <= until and (not queue or next_tick <= queue[0][0]):
            try:
                sent += services[0].tick(at(next_tick))
            except Exception as exc:  # the scheduler's failures are retried next minute
                errors.append(f"tick {next_tick}: {exc}")
            next_tick += 60
            continue
        t, _, index, attempt = heapq.heappop(queue)
        _, rule_id, envelope = deliveries[index]
        environment = services[(index + attempt) % len(services)]
        try:
            sent += environment.handle(rule_id, envelope, at(t))
        except Exception as exc:
            errors.append(f"{rule_id} {envelope.get('id')} attempt {attempt + 1}: {exc}")
            if attempt < len(RETRY_DELAYS):
                heapq.heappush(queue, (t + RETRY_DELAYS[attempt], order, index, attempt + 1))
                order += 1
            else:
                parked.append(str(envelope["detail"].get("eventID")))
    publisher = services[0].delivery.publisher
    if isinstance(publisher, MemoryPublisher):
        sent = list(publisher.sent)
    return Run(sent, parked, errors)


RULES: RuleSet = load_bundle()
COUNTED = (KIND_ALERT, KIND_SUMMARY, KIND_STORM)
HOURS = 3600.0


def counted(sent: list[Notification], rule_id: str = IAM_FAILURE) -> int:
    """Events the outputs were told about: alert + summary + storm digest counts."""
    return sum(n.count for n in sent if n.kind in COUNTED and n.rule_id == rule_id)


def service_on(store: FaultyStore, settings: Settings | None = None) -> AlertService:
    """The service on the bundled rules, publishing to memory, with ``store`` as its state."""
    settings = settings or Settings()
    return AlertService(RULES, MemoryPublisher(settings), store, settings)
