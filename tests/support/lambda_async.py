"""Lambda's asynchronous invocations of capped functions, on a virtual clock: how many marked
copies a DynamoDB outage publishes when each function runs at most its reserved concurrency of
execution environments, and whether the cap loses any event.

Modelled as AWS documents it (AWS Lambda Developer Guide, invocation-async-error-handling):

* An event waits in the function's asynchronous queue. It runs in an idle execution environment
  of the function, or in a new one while the function has fewer than its reserved concurrency
  (``None``: no cap). Otherwise it is throttled: "Lambda returns the event to the queue and
  attempts to run the function again for up to 6 hours ... The retry interval increases
  exponentially from 1 second after the first attempt to a maximum of 5 minutes." Past the
  maximum event age it goes to the on-failure destination (``EventAgeExceeded``).
* A function error is retried after 1, then 2 more minutes (two retries), then the event goes to
  the on-failure destination (``RetriesExhausted``).
* An invocation holds its environment for ``busy`` seconds: long while DynamoDB fails (every
  call waits out botocore's retries), short otherwise.
* The on-failure destination is the failed-events queue: the consumer's event source runs at
  most its maximum concurrency of consumer environments (it polls no more than that, so it is
  never throttled); a record that fails comes back after
  :func:`chalicelib.pipeline.parked.retry_delay` and after ``maxReceiveCount`` receives lands in the
  dead-letter queue.
* The scheduler runs every minute in its one environment.

Every environment is an :class:`AlertService` of its own (its own memory, as execution
environments have) on the shared store and outputs. AWS does not say which idle environment an
invocation gets: here the one idle longest, which spreads invocations over every environment.
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from chalicelib.core.notifications import Notification
from chalicelib.core.rules import RuleSet
from chalicelib.pipeline.parked import retry_delay
from chalicelib.pipeline.service import AlertService, MemoryPublisher
from mfawatch.deploy.templates import MAX_EVENT_AGE_SECONDS, MAX_RETRY_ATTEMPTS, PARKED_HANDLER
from tests.support.simulation import (
    BASE,
    QUIESCENCE,
    Arrival,
    FaultPlan,
    Outcome,
    Scenario,
    SimulatedStore,
    at,
    iam_failure,
)

#: Lambda's retries after a function error (1 minute, then 2 more).
ERROR_RETRY_DELAYS = (60.0, 120.0)
#: Throttled events: retried after 1 s, doubling, at most every 5 minutes.
THROTTLE_FIRST_RETRY = 1.0
THROTTLE_MAX_RETRY = 300.0
#: The failed-events queue's redrive policy (deploy/resources.yaml).
MAX_RECEIVE_COUNT = 10
SCHEDULER = "send_due_summaries"
#: The prefix of a marked copy's id (chalicelib.pipeline.fail_open.fail_open_copy_id).
FAIL_OPEN_PREFIX = "failopen:"


@dataclass(frozen=True)
class Publish:
    """One publish call as it reached an output."""

    function: str
    environment: int
    at: float
    destination: str
    notification: Notification


class _Outputs:
    """An environment's publisher: the shared outputs, each call logged with who made it."""

    def __init__(self, shared: MemoryPublisher, log: list[Publish], function: str) -> None:
        self.shared = shared
        self.log = log
        self.function = function
        self.environment = 0
        self.clock = 0.0

    def destinations(self, notification: Notification) -> list[str]:
        return self.shared.destinations(notification)

    def publish(self, notification: Notification, destination: str) -> None:
        self.shared.publish(notification, destination)
        self.log.append(
            Publish(self.function, self.environment, self.clock, destination, notification)
        )


@dataclass
class _Environment:
    service: AlertService
    outputs: _Outputs
    busy_until: float = 0.0


@dataclass
class Function:
    """One Lambda function: its environments, at most ``cap`` of them (None: uncapped)."""

    name: str
    cap: int | None
    make: Callable[[str], tuple[AlertService, _Outputs]]
    environments: list[_Environment] = field(default_factory=list)
    throttles: int = 0

    def take(self, now: float) -> _Environment | None:
        """An idle environment (the one idle longest), a new one within the cap, or None."""
        idle = [e for e in self.environments if e.busy_until <= now]
        if idle:
            return min(idle, key=lambda e: e.busy_until)
        if self.cap is not None and len(self.environments) >= self.cap:
            return None
        service, outputs = self.make(self.name)
        outputs.environment = len(self.environments)
        environment = _Environment(service, outputs)
        self.environments.append(environment)
        return environment


@dataclass
class Result:
    """What a run did: every publish call, and what became of each event."""

    outcome: Outcome
    publishes: list[Publish]
    environments: dict[str, int]
    """Execution environments each function ran."""
    throttles: dict[str, int]
    """Throttled invocations of each asynchronously invoked function."""
    expired: list[str]
    """Event ids sent to the failed-events queue by the maximum event age (``EventAgeExceeded``)."""
    exhausted: list[str]
    """Event ids sent there after their last retry (``RetriesExhausted``)."""
    dead_letters: list[str]

    def fail_open_publishes(self) -> list[Publish]:
        return [p for p in self.publishes if p.notification.id.startswith(FAIL_OPEN_PREFIX)]

    def fail_opens_per_minute(self) -> Counter[tuple[str, int]]:
        """Marked-copy publishes by (function, minute of the clock)."""
        return Counter((p.function, int(p.at // 60)) for p in self.fail_open_publishes())

    def counted_outcome(self) -> Outcome:
        """The outcome without the marked copies, whose ids are shared on purpose (one copy per
        event, published by each environment the event lands in): the invariants of
        :func:`tests.support.simulation.violations` are about the deduplicated path."""
        kept = [(o, n) for o, n in self.outcome.deliveries if not n.id.startswith(FAIL_OPEN_PREFIX)]
        return Outcome(
            scenario=self.outcome.scenario,
            fault=None,
            faults=(),
            deliveries=kept,
            publish_calls=[],
            calls=[],
            parked=self.outcome.parked,
            lost=self.outcome.lost,
        )


@dataclass
class _Pending:
    arrival: Arrival
    function: str
    first: float
    errors: int = 0
    throttled: int = 0


class CappedLambda:
    """Runs a scenario's arrivals through capped functions while the store fails in ``outage``
    (virtual seconds from :data:`tests.support.simulation.BASE`)."""

    def __init__(
        self,
        rules: RuleSet,
        scenario: Scenario,
        *,
        cap: int | None,
        consumer_cap: int | None,
        outage: tuple[float, float],
        busy: tuple[float, float] = (15.0, 0.3),
        max_event_age: float = MAX_EVENT_AGE_SECONDS,
    ) -> None:
        self.rules = rules
        self.scenario = scenario
        self.plan = FaultPlan(outage=outage)
        self.store = SimulatedStore(self.plan)
        self.shared = MemoryPublisher(scenario.settings)
        self.log: list[Publish] = []
        self.outage = outage
        self.busy = busy
        self.max_event_age = max_event_age
        self.functions: dict[str, Function] = {}
        for rule in rules:
            self.functions[rule.handler_name] = Function(rule.handler_name, cap, self._make)
        self.functions[PARKED_HANDLER] = Function(PARKED_HANDLER, consumer_cap, self._make)
        self.functions[SCHEDULER] = Function(SCHEDULER, 1, self._make)
        assert len(ERROR_RETRY_DELAYS) == MAX_RETRY_ATTEMPTS

    def _make(self, function: str) -> tuple[AlertService, _Outputs]:
        outputs = _Outputs(self.shared, self.log, function)
        service = AlertService(
            self.rules,
            outputs,
            self.store,
            self.scenario.settings,
            suppressions=self.scenario.suppressions,
        )
        return service, outputs

    def _busy_for(self, now: float) -> float:
        return self.busy[0] if self.outage[0] <= now < self.outage[1] else self.busy[1]

    def _run(self, environment: _Environment, now: float, arrival: Arrival | None) -> bool:
        """One invocation in ``environment`` at ``now`` (an event, or the scheduler's tick);
        False when it raised."""
        self.plan.clock = now
        environment.outputs.clock = now
        environment.busy_until = now + self._busy_for(now)
        try:
            if arrival is None:
                environment.service.tick(at(now))
            else:
                environment.service.handle(arrival.rule_id, arrival.envelope, at(now))
        except Exception:  # what Lambda sees as a function error
            return False
        return True

    def run(self) -> Result:
        line = _Queue(next_tick=(min(a.at for a in self.scenario.arrivals) // 60 + 1) * 60)
        for arrival in self.scenario.arrivals:
            handler = self.rules.get(arrival.rule_id).handler_name
            line.push(arrival.at, "invoke", _Pending(arrival, handler, arrival.at))
        while line.heap:
            now, _, kind, item = heapq.heappop(line.heap)
            self._ticks_until(line, now)
            line.clock = now
            if kind == "invoke":
                self._invoke(line, now, item)
            else:  # a record of the failed-events queue, visible now
                self._consume(line, now, *item)
        # The scheduler to quiescence.
        horizon = line.clock + QUIESCENCE
        while line.next_tick <= horizon:
            due = self.store.next_due()
            if due is None:
                break
            self._ticks_until(line, max(line.next_tick, due - BASE.timestamp()))
        outcome = Outcome(
            scenario=self.scenario,
            fault=None,
            faults=(),
            deliveries=list(self.shared.deliveries),
            publish_calls=[],
            calls=[],
            parked=line.parked,
            lost=line.dead,
            clock=line.clock,
        )
        return Result(
            outcome=outcome,
            publishes=list(self.log),
            environments={n: len(f.environments) for n, f in self.functions.items()},
            throttles={n: f.throttles for n, f in self.functions.items()},
            expired=line.expired,
            exhausted=line.exhausted,
            dead_letters=line.dead,
        )

    def _ticks_until(self, line: _Queue, until: float) -> None:
        """The scheduler's runs of every minute up to ``until`` (reserved concurrency 1)."""
        scheduler = self.functions[SCHEDULER]
        while line.next_tick <= until:
            environment = scheduler.take(line.next_tick)
            if environment is not None:
                self._run(environment, line.next_tick, None)
            line.next_tick += 60.0

    def _invoke(self, line: _Queue, now: float, pending: _Pending) -> None:
        """An asynchronous invocation: expired, throttled (retried later), run, or retried
        after an error until its attempts are used up (then parked)."""
        if now - pending.first > self.max_event_age:
            line.park(pending, now, line.expired)
            return
        function = self.functions[pending.function]
        environment = function.take(now)
        if environment is None:
            function.throttles += 1
            pending.throttled += 1
            delay = min(THROTTLE_FIRST_RETRY * 2 ** (pending.throttled - 1), THROTTLE_MAX_RETRY)
            line.push(now + delay, "invoke", pending)
            return
        if self._run(environment, now, pending.arrival):
            return
        if pending.errors < len(ERROR_RETRY_DELAYS):
            delay = ERROR_RETRY_DELAYS[pending.errors]
            pending.errors += 1
            line.push(now + delay, "invoke", pending)
        else:
            line.park(pending, now, line.exhausted)

    def _consume(self, line: _Queue, now: float, pending: _Pending, receives: int) -> None:
        """The consumer's run of a failed-events record; received again after the queue's
        backoff until :data:`MAX_RECEIVE_COUNT`, then dead-lettered."""
        consumer = self.functions[PARKED_HANDLER]
        environment = consumer.take(now)
        if environment is None:  # the event source polls no more than it can run
            free = min(e.busy_until for e in consumer.environments)
            line.push(free, "consume", (pending, receives))
            return
        if self._run(environment, now, pending.arrival):
            return
        if receives >= MAX_RECEIVE_COUNT:
            line.dead.append(pending.arrival.event_id)
        else:
            line.push(now + retry_delay(receives), "consume", (pending, receives + 1))


@dataclass
class _Queue:
    """A run's virtual clock: what is due when (invocations and failed-events records, by time
    then order of scheduling), the scheduler's next minute, and where the events ended up."""

    next_tick: float
    heap: list[tuple[float, int, str, Any]] = field(default_factory=list)
    order: Iterator[int] = field(default_factory=itertools.count)
    clock: float = 0.0
    expired: list[str] = field(default_factory=list)
    exhausted: list[str] = field(default_factory=list)
    dead: list[str] = field(default_factory=list)
    parked: list[str] = field(default_factory=list)

    def push(self, when: float, kind: str, item: Any) -> None:
        heapq.heappush(self.heap, (when, next(self.order), kind, item))

    def park(self, pending: _Pending, now: float, into: list[str]) -> None:
        """To the failed-events queue (``into``: why), visible to the consumer now."""
        into.append(pending.arrival.event_id)
        self.parked.append(pending.arrival.event_id)
        self.push(now, "consume", (pending, 1))


def failed_mfa_flood(count: int = 120, users: int = 40) -> tuple[Arrival, ...]:
    """``count`` failed MFA sign-ins, one a second, of ``users`` IAM users, each from an
    address of its own (no campaign: the flood is of alerts only)."""
    return tuple(
        iam_failure(f"e{i:03d}", float(i), user=f"user{i % users}", ip=f"198.51.100.{i % users}")
        for i in range(count)
    )
