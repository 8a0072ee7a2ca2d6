"""Deterministic simulation of the alerting pipeline (FoundationDB-style): one fault or one
process kill at every store and publish call, every arrival order, then invariants.

The pieces, all pure (no moto, no threads, no wall clock):

* :class:`SimulatedStore` is :class:`chalicelib.core.state.MemoryStore` (which already models
DynamoDB's
  lazy TTL, ``group`` index lag and the 2048-byte key limit) plus a :class:`FaultPlan`: every call
  is numbered, and the planned call fails (``error``: nothing applied), is applied but its reply
  is lost (``lost-reply``: applied, then the call raises as after botocore's retries), is applied
  twice (``resent``: the reply was lost and botocore's retry sent it again), or kills the process
  (``kill``: a :class:`Killed`, a ``BaseException`` like a Lambda timeout or an out-of-memory,
  before the request is sent).
* :class:`SimulatedPublisher` is :class:`chalicelib.pipeline.service.MemoryPublisher` on the same
plan
  (a lost reply is an SNS ``Publish`` that went out while the caller saw an error).
* :class:`Simulation` drives one :class:`Scenario` on a virtual clock as Lambda would: each event
  is an asynchronous invocation, retried twice, 1 and 2 minutes apart
  (https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-error-handling.html); an event
  that fails every attempt is parked (the on-failure destination) and re-run through the same
  handler after the outage, as the failed-events consumer does; the scheduler ticks every
  minute until nothing is due.
* :class:`Forks` keeps a run without faults as it was before each of its steps: a run with a
  fault at call ``k`` starts from a copy of it taken before the step that makes call ``k``, which
  is what a run from the start would have done up to there (the enumerations make thousands).
* :func:`violations` checks the invariants on what reached the outputs: every accepted event
  counted exactly once across alerts, summaries and storm digests; no notification id published
  twice to an output except in the documented ambiguous cases (the faulted call was that publish,
  or the store call right after it); no expected escalation lost; no MFA fatigue success lost,
  exactly one CRITICAL per success, and its count plus its trailing corrections equal to the
  failures before the success.
"""

from __future__ import annotations

import bisect
import contextlib
import heapq
import io
import itertools
import math
import os
import pickle
import random
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from chalicelib.core.config import Output, Settings, Threshold
from chalicelib.core.errors import PublishError, StateStoreError
from chalicelib.core.notifications import (
    FATIGUE_ID_PREFIX,
    KIND_ALERT,
    KIND_ESCALATION,
    KIND_STORM,
    KIND_SUMMARY,
    Notification,
    is_fatigue_correction,
)
from chalicelib.core.records import envelope_of, parse_event
from chalicelib.core.rules import RuleSet, load_bundle
from chalicelib.core.state import Condition, IndexLag, Item, MemoryStore
from chalicelib.core.suppressions import Suppressions, suppression_from_mapping
from chalicelib.pipeline.service import AlertService, MemoryPublisher
from tests.conftest import load_event

T = TypeVar("T")

RULES: RuleSet = load_bundle()
BASE = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
IAM_FAILURE = "iam-console-mfa-failure"
IC_FAILURE = "identity-center-mfa-failure"
IC_STEP = "identity-center-sign-in-steps"
SUCCESS = "sign-in-success"
ROOT_FAILURE = "root-console-failure"
TAKEOVER = "mfa-takeover-steps"
COUNTED = (KIND_ALERT, KIND_SUMMARY, KIND_STORM)
#: Lambda's asynchronous retries: the second attempt a minute after the first, the third two
#: minutes after that.
RETRY_DELAYS = (60.0, 120.0)
#: When the failed-events consumer re-runs the parked events (after the outage), and how often it
#: tries each (visibility timeout backoff).
CONSUMER_DELAY = 600.0
CONSUMER_ATTEMPTS = 3
#: The scheduler ticks until nothing is due, or this long after the last arrival.
QUIESCENCE = 6 * 3600.0
FAULT_KINDS = ("error", "lost-reply", "kill")
#: A write whose reply was lost and that botocore's retry sent again (issue 18, defect 6).
RESENT = "resent"

#: Two outputs as the stages configure them: ``alerts`` gets everything, ``pager`` HIGH and up.
OUTPUTS = (
    Output("alerts", "arn:aws:sns:us-east-1:111122223333:mfawatch-sim-alerts"),
    Output(
        "pager",
        "arn:aws:sns:us-east-1:111122223333:mfawatch-sim-pager",
        min_severity="HIGH",
        kinds=(KIND_ALERT, KIND_ESCALATION, KIND_STORM),
    ),
)


class Killed(BaseException):
    """The process died mid-invocation (Lambda timeout, out of memory): nothing catches it."""


@dataclass(frozen=True)
class Fault:
    """One planned failure: the ``at``-th call (0-based, store and publisher together)."""

    at: int
    kind: str  # error | lost-reply | kill

    def __str__(self) -> str:
        return f"{self.kind}@{self.at}"


class FaultPlan:
    """Numbers every store and publish call and injects the planned fault at its number."""

    def __init__(
        self,
        fault: Fault | None = None,
        outage: tuple[float, float] | None = None,
        more: Sequence[Fault] = (),
        refuse: Mapping[str, float] | None = None,
    ) -> None:
        self.fault: Fault | None = None
        self.faults: dict[int, Fault] = {}
        """Every planned fault by call number (``more``: a second, third... fault)."""
        self.outage = outage
        """A regional brown-out: every call fails from its start to its end (virtual seconds)."""
        self.refuse = dict(refuse or {})
        """Items that refuse every update until a virtual time (key -> until): a hot partition,
        or an item whose writes fail whoever makes them."""
        self.clock = 0.0
        """The virtual time of the invocation in progress (set by :class:`Simulation`)."""
        self.calls: list[str] = []
        """Each call's operation and key, in order (``update evt#...``, ``publish alerts ...``)."""
        self.gate: Callable[[str], None] | None = None
        """Called before every call (:class:`Interleaving` waits there for the call's turn)."""
        self.inject(fault, more)

    def inject(self, fault: Fault | None, more: Sequence[Fault] = ()) -> None:
        """Plan ``fault`` and ``more`` (before any call they name is made)."""
        self.fault = fault
        self.faults = {f.at: f for f in (*([fault] if fault else []), *more)}
        assert all(at >= len(self.calls) for at in self.faults), "a fault at a call made already"

    def call(self, what: str, apply: Callable[[], T], error: Callable[[str], Exception]) -> T:
        if self.gate is not None:
            self.gate(what)
        index = len(self.calls)
        self.calls.append(what)
        if self.outage is not None and self.outage[0] <= self.clock < self.outage[1]:
            raise error(f"outage at call {index}: {what}")
        op, _, key = what.partition(" ")
        if op == "update" and self.clock < self.refuse.get(key, -math.inf):
            raise error(f"the item refuses updates at call {index}: {what}")
        fault = self.faults.get(index)
        effect = NO_EFFECT if fault is None else fault_effect(fault.kind, what)
        if effect == NO_EFFECT:
            return apply()
        if effect == "kill":
            raise Killed(f"killed at call {index}: {what}")
        if effect == "lost-reply":
            apply()  # applied; the reply never arrives
            raise error(f"reply lost at call {index}: {what} (applied)")
        if effect == "twice":
            # The reply was lost and botocore's standard retry sent the request again: applied
            # twice, and the caller sees the second answer (a conditional write fails its own
            # condition and returns the item as the first attempt left it).
            apply()
            return apply()
        raise error(f"injected failure at call {index}: {what}")


#: The effect of a fault that changes nothing (:func:`fault_effect`).
NO_EFFECT = "none"


def fault_effect(kind: str, what: str) -> str:
    """What a fault of ``kind`` does to the call ``what`` (:meth:`FaultPlan.call` does it):
    ``kill``; ``fail`` (nothing applied); ``lost-reply`` (applied, then it fails); ``twice``
    (applied twice); :data:`NO_EFFECT`. Two faults with the same effect at the same call make
    the same run: the enumerations run it once (:func:`fault_runs`)."""
    if kind == "kill":
        return "kill"
    if what.startswith(("get ", "query ", "due")):
        # A read has no side effect: a lost reply is a failure, and a read sent twice answers
        # the same.
        return NO_EFFECT if kind == RESENT else "fail"
    if kind in ("lost-reply", RESENT):
        return "twice" if kind == RESENT else "lost-reply"
    return "fail"


def _store_error(message: str) -> Exception:
    return StateStoreError(f"DynamoDB (simulated): {message}")


def _publish_error(message: str) -> Exception:
    return PublishError(f"SNS (simulated): {message}")


class SimulatedStore(MemoryStore):
    """:class:`MemoryStore` with every call going through a :class:`FaultPlan`."""

    def __init__(self, plan: FaultPlan, index_lag: IndexLag | None = None) -> None:
        if index_lag is None:
            super().__init__(check_sizes=True)
        else:
            super().__init__(index_lag, check_sizes=True)
        self.plan = plan

    def get(self, key: str, now: float) -> Item | None:
        return self.plan.call(
            f"get {key}", lambda: super(SimulatedStore, self).get(key, now), _store_error
        )

    def put(self, key: str, item: Item, now: float, condition: Condition | None = None) -> None:
        self.plan.call(
            f"put {key}",
            lambda: super(SimulatedStore, self).put(key, item, now, condition),
            _store_error,
        )

    def update(self, key: str, now: float, **changes: Any) -> Item:
        return self.plan.call(
            f"update {key}",
            lambda: super(SimulatedStore, self).update(key, now, **changes),
            _store_error,
        )

    def query_group(self, group: str, after: float, until: float, now: float) -> list[Item]:
        return self.plan.call(
            f"query {group}",
            lambda: super(SimulatedStore, self).query_group(group, after, until, now),
            _store_error,
        )

    def due(self, until: float, now: float) -> list[str]:
        return self.plan.call(
            "due", lambda: super(SimulatedStore, self).due(until, now), _store_error
        )


class SimulatedPublisher(MemoryPublisher):
    """:class:`MemoryPublisher` whose publish calls go through the same :class:`FaultPlan`."""

    def __init__(self, settings: Settings, plan: FaultPlan) -> None:
        super().__init__(settings)
        self.plan = plan
        self.calls: list[tuple[int, str, str]] = []
        """(call number, output, notification id) of every publish attempt."""

    def publish(self, notification: Notification, destination: str) -> None:
        self.calls.append((len(self.plan.calls), destination, notification.id))
        self.plan.call(
            f"publish {destination} {notification.id}",
            lambda: super(SimulatedPublisher, self).publish(notification, destination),
            _publish_error,
        )


# --- scenarios -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Arrival:
    """One event as EventBridge delivers it: ``at`` seconds after :data:`BASE`."""

    at: float
    rule_id: str
    envelope: Mapping[str, Any]

    @property
    def event_id(self) -> str:
        return str(self.envelope["detail"]["eventID"])


@dataclass(frozen=True)
class Scenario:
    name: str
    arrivals: tuple[Arrival, ...]
    settings: Settings
    brute_force: frozenset[str] = frozenset()
    """Principals whose failures must escalate (published, or held in a storm digest)."""
    fatigue: frozenset[str] = frozenset()
    """Successful sign-ins (event ids) that must raise the CRITICAL MFA fatigue success."""
    campaigns: frozenset[tuple[str, str, int, int]] = frozenset()
    """The campaign and takeover escalations that must go out, each exactly once:
    ``(dedup key, severity, fewest, most)``; any other is a false positive. The count is what the
    deciding event saw: the threshold when the events come one by one; more when a fault delays
    the event that completed the set and a later one decides (never more than the campaign's
    events)."""
    campaign_summaries: frozenset[tuple[str, int]] = frozenset()
    """The trailing summary of each campaign, exactly once: ``(dedup key, exact count)``."""
    first_come: bool = False
    """A rate limit admits whichever events come first: which principals the admitted alerts
    name depends on the arrival order (kinds and counts do not)."""
    suppressions: Suppressions = field(default_factory=Suppressions)
    """What the deployment suppresses (held and counted in digests, never alerted)."""
    refuse: Mapping[str, float] = field(default_factory=dict)
    """Items that refuse every update until a virtual time (:attr:`FaultPlan.refuse`)."""

    def fatigue_failures(self, success_id: str) -> int:
        """How many failures of the success's principal happened within the fatigue window
        before it: what its escalation and corrections must add up to."""
        records = {a.event_id: (a, parse_event(a.envelope)) for a in self.arrivals}
        success = records[success_id][1]
        t = success.event_time.timestamp()
        window = self.settings.fatigue_success.seconds
        return sum(
            1
            for arrival, record in records.values()
            if RULES.get(arrival.rule_id).signal == "failure"
            and (record.account, record.principal_key) == (success.account, success.principal_key)
            and t - window < record.event_time.timestamp() <= t
        )

    @property
    def accepted(self) -> dict[str, set[str]]:
        """Per counting rule, the distinct event ids that must be counted exactly once."""
        found: dict[str, set[str]] = defaultdict(set)
        for arrival in self.arrivals:
            if RULES.get(arrival.rule_id).mode == "alert":
                found[arrival.rule_id].add(arrival.event_id)
        return dict(found)

    def reordered(self, order: Sequence[int], spacing: float = 5.0) -> Scenario:
        """The same events arriving in ``order``, ``spacing`` seconds apart from the first
        arrival (all after the last event happened, event times unchanged: the reorder stays
        within the retry horizon)."""
        start = max(a.at for a in self.arrivals)
        moved = tuple(
            replace(self.arrivals[i], at=start + spacing * n) for n, i in enumerate(order)
        )
        return replace(self, arrivals=moved)


def settings(**overrides: Any) -> Settings:
    return Settings(outputs=OUTPUTS, **overrides)


def _stamp(record: dict[str, Any], event_id: str, t: float) -> dict[str, Any]:
    record["eventID"] = event_id
    record["eventTime"] = (BASE + timedelta(seconds=t)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return record


def iam_failure(event_id: str, t: float, user: str = "alice", ip: str = "203.0.113.7") -> Arrival:
    """A failed MFA console sign-in of an IAM user, delivered 2 s after it happened."""
    record = _stamp(load_event("iam-consolelogin-failure-mfa-yes"), event_id, t)
    record["userIdentity"]["userName"] = user
    record["sourceIPAddress"] = ip
    return Arrival(t + 2.0, IAM_FAILURE, envelope_of(record))


def iam_success(event_id: str, t: float, user: str = "alice", ip: str = "203.0.113.7") -> Arrival:
    record = _stamp(load_event("iam-consolelogin-success-mfa-yes"), event_id, t)
    record["userIdentity"]["userName"] = user
    record["sourceIPAddress"] = ip
    return Arrival(t + 2.0, SUCCESS, envelope_of(record))


IC_WORKFLOW = "6d1e7c2a-9f3b-4e8d-a1c5-000000000001"

#: alice's failed MFA from the pen test's range, suppressed for 30 days after :data:`BASE`.
PENTEST = Suppressions(
    [
        suppression_from_mapping(
            {
                "id": "pentest",
                "reason": "external pen test, ticket SEC-42",
                "owner": "secops@example.com",
                "expires": (BASE + timedelta(days=30)).date().isoformat(),
                "match": {"principals": ["alice"], "source_cidrs": ["203.0.113.0/24"]},
            },
            "simulation",
        )
    ]
)


def ic_step(event_id: str, t: float, user: str, workflow: str = IC_WORKFLOW) -> Arrival:
    """The password step of an Identity Center sign-in: it names the workflow's user."""
    record = _stamp(load_event("idc-new-credentialchallenge-password"), event_id, t)
    record["additionalEventData"].update(AuthWorkflowID=workflow, UserName=user)
    record["sourceIPAddress"] = "198.51.100.4"
    return Arrival(t + 2.0, IC_STEP, envelope_of(record))


def ic_failure(event_id: str, t: float, workflow: str = IC_WORKFLOW) -> Arrival:
    """A TOTP failure of an Identity Center sign-in: it names nobody."""
    record = _stamp(load_event("idc-new-credentialverification-totp-failure"), event_id, t)
    record["additionalEventData"]["AuthWorkflowID"] = workflow
    record["sourceIPAddress"] = "198.51.100.4"
    return Arrival(t + 2.0, IC_FAILURE, envelope_of(record))


def root_failure(event_id: str, t: float, account: str, ip: str = "203.0.113.66") -> Arrival:
    """A failed root console sign-in in ``account``."""
    record = _stamp(load_event("root-consolelogin-failure-mfa-yes"), event_id, t)
    identity = record["userIdentity"]
    identity.update(accountId=account, principalId=account, arn=f"arn:aws:iam::{account}:root")
    record["recipientAccountId"] = account
    record["sourceIPAddress"] = ip
    return Arrival(t + 2.0, ROOT_FAILURE, envelope_of(record))


def device_enabled(event_id: str, t: float, user: str = "alice") -> Arrival:
    """An MFA device enabled for ``user`` (from another address than the failures)."""
    record = _stamp(load_event("iam-enablemfadevice"), event_id, t)
    record["requestParameters"]["userName"] = user
    record["sourceIPAddress"] = "198.51.100.99"
    return Arrival(t + 2.0, TAKEOVER, envelope_of(record))


ORG = ("111122223333", "444455556666", "777788889999")
SPRAY_IP = "203.0.113.50"


def campaign_scenarios() -> list[Scenario]:
    """Issue 16's campaigns and their near misses (``campaigns`` empty: none may go out)."""
    return [
        Scenario(
            "mfa-spray",
            tuple(iam_failure(f"sp-{i}", 30.0 * i, user=f"u{i}", ip=SPRAY_IP) for i in range(4)),
            settings(),
            campaigns=frozenset({(f"campaign:mfa-spray|{SPRAY_IP}", "HIGH", 3, 4)}),
            campaign_summaries=frozenset({(f"campaign-summary:mfa-spray|{SPRAY_IP}", 4)}),
        ),
        Scenario(
            "mfa-spray-near-miss",
            (
                iam_failure("nm-0", 0.0, user="u0", ip=SPRAY_IP),
                iam_failure("nm-1", 30.0, user="u1", ip=SPRAY_IP),
                iam_failure("nm-2", 60.0, user="u2", ip="203.0.113.51"),
                iam_failure("nm-3", 901.0, user="u3", ip=SPRAY_IP),
            ),
            settings(),
        ),
        Scenario(
            "root-in-three-accounts",
            tuple(root_failure(f"rt-{i}", 300.0 * i, account) for i, account in enumerate(ORG)),
            settings(),
            campaigns=frozenset({("campaign:root-across-accounts|203.0.113.66", "CRITICAL", 2, 3)}),
            campaign_summaries=frozenset(
                {("campaign-summary:root-across-accounts|203.0.113.66", 3)}
            ),
        ),
        Scenario(
            "failed-mfa-then-new-device",
            (iam_failure("tk-0", 0.0), device_enabled("tk-dev", 120.0)),
            settings(),
            campaigns=frozenset({("takeover:111122223333|alice", "CRITICAL", 1, 1)}),
        ),
        Scenario(
            "new-device-near-miss",
            (iam_failure("tn-0", 0.0), device_enabled("tn-dev", 120.0, user="bob")),
            settings(),
        ),
        Scenario(
            # The MFA step fails at one address, the sign-in succeeds at another (twice).
            "failed-mfa-then-sign-in-elsewhere",
            (
                iam_failure("te-0", 0.0),
                iam_success("te-ok-1", 120.0, ip=ELSEWHERE),
                iam_success("te-ok-2", 180.0, ip=ELSEWHERE),
            ),
            settings(),
            campaigns=frozenset({("takeover:111122223333|alice", "CRITICAL", 1, 1)}),
        ),
        Scenario(
            "sign-in-from-the-failures-address-near-miss",
            (iam_failure("ts-0", 0.0), iam_success("ts-ok", 120.0)),
            settings(),
        ),
        Scenario(
            "identity-center-failed-mfa-then-device",
            (
                ic_step("id-name", 0.0, "carol@example.com"),
                ic_user_id_step("id-uid", 5.0, CAROL_ID),
                ic_failure("id-fail", 10.0),
                ic_device_registered("id-dev", 300.0, CAROL_ID),
            ),
            settings(),
            campaigns=frozenset({(f"takeover:111122223333|{CAROL_ID}", "CRITICAL", 1, 1)}),
        ),
    ]


ELSEWHERE = "198.51.100.99"
CAROL_ID = "94d00cd8-e9e6-4810-b177-0000000000c0"


def ic_user_id_step(event_id: str, t: float, user_id: str, workflow: str = IC_WORKFLOW) -> Arrival:
    """The TOTP challenge of an Identity Center sign-in: it carries the identity-store user id."""
    record = _stamp(load_event("idc-new-credentialchallenge-totp"), event_id, t)
    record["additionalEventData"]["AuthWorkflowID"] = workflow
    record["userIdentity"]["onBehalfOf"]["userId"] = user_id
    record["sourceIPAddress"] = "198.51.100.4"
    return Arrival(t + 2.0, IC_STEP, envelope_of(record))


def ic_device_registered(event_id: str, t: float, user_id: str) -> Arrival:
    """An Identity Center user registers a virtual MFA device in the access portal."""
    record = _stamp(load_event("idc-completevirtualmfadeviceregistration"), event_id, t)
    record["userIdentity"]["onBehalfOf"]["userId"] = user_id
    return Arrival(t + 2.0, TAKEOVER, envelope_of(record))


def scenarios(size: str = "ci") -> list[Scenario]:
    """The scenarios of issue 18 and a suppressed one; ``full`` makes the bursts and storms
    larger."""
    full = size == "full"
    burst = 30 if full else 10
    storm_users = 30 if full else 6
    failures = 6 if full else 3
    bf = Threshold(4, 5)
    return [
        Scenario("alert", (iam_failure("a-1", 0),), settings()),
        Scenario(
            # alice's failures are suppressed (held, counted in digests), bob's alert beside them.
            "suppressed",
            (
                *(iam_failure(f"sup-{i}", 20.0 * i) for i in range(3)),
                iam_failure("sup-bob", 30.0, user="bob"),
            ),
            settings(),
            suppressions=PENTEST,
        ),
        Scenario(
            "summary",
            tuple(iam_failure(f"s-{i}", 20.0 * i) for i in range(3)),
            settings(),
        ),
        Scenario(
            "repeat-burst-escalation",
            tuple(iam_failure(f"b-{i:02d}", 10.0 * i) for i in range(burst)),
            settings(brute_force=bf),
            brute_force=frozenset({"alice"}),
        ),
        Scenario(
            "fatigue-success",
            (
                *(iam_failure(f"f-{i}", 10.0 * i) for i in range(failures)),
                iam_success("f-ok", 10.0 * failures + 10.0),
            ),
            settings(),
            fatigue=frozenset({"f-ok"}),
        ),
        Scenario(
            "identity-center-attribution",
            (
                ic_step("ic-step", 0.0, "carol@example.com"),
                *(ic_failure(f"ic-{i}", 10.0 * (i + 1)) for i in range(failures)),
            ),
            settings(),
        ),
        Scenario(
            "storm-digests",
            tuple(
                iam_failure(f"st-{i:02d}", 10.0 * i, user=f"user{i}", ip=f"192.0.2.{i + 1}")
                for i in range(storm_users)
            ),
            settings(topic_rate=Threshold(2, 5), principal_rate=Threshold(100, 5)),
            first_come=True,
        ),
        stuck_leader()[0],
    ]


# --- the driver ----------------------------------------------------------------------------------


def at(seconds: float) -> datetime:
    return BASE + timedelta(seconds=seconds)


@dataclass
class Outcome:
    """What one simulated run did and published."""

    scenario: Scenario
    fault: Fault | None
    faults: tuple[Fault, ...]
    """Every fault planned (the first is ``fault``)."""
    deliveries: list[tuple[str, Notification]]
    publish_calls: list[tuple[int, str, str]]
    calls: list[str]
    parked: list[str] = field(default_factory=list)
    """Event ids that failed every Lambda attempt (re-run by the consumer)."""
    lost: list[str] = field(default_factory=list)
    """Event ids that the consumer could not process either."""
    failed_attempts: list[str] = field(default_factory=list)
    """Event ids of every invocation that raised or was killed (one entry per attempt)."""
    clock: float = 0.0

    def on(self, output: str) -> list[Notification]:
        return [n for o, n in self.deliveries if o == output]

    def notifications(self) -> list[Notification]:
        """Each notification id once, in the order first published (on any output)."""
        seen: dict[str, Notification] = {}
        for _, notification in self.deliveries:
            seen.setdefault(notification.id, notification)
        return list(seen.values())

    def fatigue_totals(self) -> dict[str, tuple[int, int]]:
        """Per MFA fatigue success (its escalation id): how many CRITICAL escalations, and the
        count they and their trailing corrections add up to."""
        totals: dict[str, tuple[int, int]] = {}
        # Each id once: a publish whose outcome was lost is sent again with the same id.
        for n in {n.id: n for n in self.on("alerts")}.values():
            if not n.id.startswith(FATIGUE_ID_PREFIX):
                continue
            escalation = n.id.split(":late:", 1)[0]
            critical, count = totals.get(escalation, (0, 0))
            critical += n.severity == "CRITICAL"
            totals[escalation] = (critical, count + n.count)
        return totals

    def shape(self) -> list[tuple[str, str, int]]:
        """(kind, title, count) of every notification, sorted: what permutations must keep
        (without the titles of alerts when the scenario's rate limit admits first come).

        An MFA fatigue success says how many failures it followed as known when it was decided;
        failures processed later come in a trailing correction. What must not depend on the
        order is the total: the escalation and its corrections are one entry with the count
        they add up to."""
        first_come = self.scenario.first_come
        totals = self.fatigue_totals()
        return sorted(
            (n.kind, "" if first_come and n.kind == KIND_ALERT else n.title, n.count)
            if not n.id.startswith(FATIGUE_ID_PREFIX)
            else (n.kind, f"{n.dedup_key} after {totals[n.id][1]}", totals[n.id][1])
            for n in self.notifications()
            if not is_fatigue_correction(n)
        )


# --- two invocations side by side ---------------------------------------------------------------

#: How long (real seconds) an interleaved invocation may take to reach its next call: far more
#: than any does; past it the interleaving is stuck (a lock held across a call) and says so.
STEP_TIMEOUT = 10.0


class Interleaving:
    """Runs invocations side by side, one store or publish call at a time, in an order the test
    chooses (FoundationDB's simulator and Jepsen do this with whole processes).

    Each invocation runs in a thread of its own that waits at every call of the
    :class:`FaultPlan` for its turn, so exactly one runs at any time and a run is as
    deterministic as a sequential one. ``order`` names, call by call, which invocation makes
    the next call (an index into ``invocations``); an invocation that has finished is skipped,
    and once ``order`` is used up the invocations still running finish one after the other.
    """

    def __init__(self, plan: FaultPlan) -> None:
        self.plan = plan
        self._cond = threading.Condition()
        self._index: dict[int, int] = {}
        self._turn: int | None = None
        self._waiting: set[int] = set()
        self._done: set[int] = set()
        self.steps: list[tuple[int, str]] = []
        """(invocation, call) in the order the calls were made."""

    def _gate(self, what: str) -> None:
        me = self._index.get(threading.get_ident())
        if me is None:
            return  # not an interleaved invocation
        with self._cond:
            self._waiting.add(me)
            self._cond.notify_all()
            if not self._cond.wait_for(lambda: self._turn == me, STEP_TIMEOUT):
                raise RuntimeError(f"invocation {me} never got its turn for {what}")
            self._turn = None
            self._waiting.discard(me)
            self.steps.append((me, what))

    def _settled(self, index: int) -> bool:
        return self._turn is None and (index in self._waiting or index in self._done)

    def _wait(self, index: int) -> None:
        """Until ``index`` waits at its next call or has finished."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._settled(index), STEP_TIMEOUT):
                raise RuntimeError(f"invocation {index} did not come back")

    def _grant(self, index: int) -> None:
        """Let ``index`` make its next call (and run up to the one after), unless it is done."""
        with self._cond:
            if index in self._done:
                return
            self._turn = index
            self._cond.notify_all()
        self._wait(index)

    def run(self, invocations: Sequence[Callable[[], object]], order: Sequence[int]) -> list[str]:
        """Run ``invocations`` side by side in ``order``; what each did: ``ok`` or the name of
        what it raised."""
        outcomes = [""] * len(invocations)

        def body(index: int, invocation: Callable[[], object]) -> None:
            with self._cond:
                self._index[threading.get_ident()] = index
            try:
                invocation()
                outcomes[index] = "ok"
            except (Exception, Killed) as exc:
                outcomes[index] = type(exc).__name__
            finally:
                with self._cond:
                    self._done.add(index)
                    self._cond.notify_all()

        self.plan.gate = self._gate
        threads = [
            threading.Thread(target=body, args=(i, f), daemon=True)
            for i, f in enumerate(invocations)
        ]
        try:
            for index, thread in enumerate(threads):
                thread.start()
                self._wait(index)  # each waits at its first call before the next starts
            for index in order:
                self._grant(index)
            while len(self._done) < len(invocations):
                self._grant(min(set(range(len(invocations))) - self._done))
        finally:
            self.plan.gate = None
            for thread in threads:
                thread.join(STEP_TIMEOUT)
        return outcomes


@dataclass(frozen=True)
class SideBySide:
    """At the scheduler's run of minute ``at`` (virtual seconds), one more invocation of
    ``arrival`` (a Lambda retry, or the failed-events consumer re-running it) runs side by side
    with the scheduler, interleaved call by call in ``order`` (0: the scheduler, 1: the
    invocation; see :class:`Interleaving`)."""

    at: float
    arrival: Arrival
    order: tuple[int, ...]


#: "Until it finishes" in an order: more calls than any invocation makes.
TO_THE_END = 1000


def one_switch(first: int, calls: int) -> tuple[int, ...]:
    """``first`` makes ``calls`` calls, then the other runs to its end, then ``first`` finishes."""
    return (*([first] * calls), *([1 - first] * TO_THE_END))


class Simulation:
    """Runs a scenario on a virtual clock: Lambda invocations with retries, parked events re-run
    by the consumer after the outage, the scheduler every minute until quiescence."""

    def __init__(
        self,
        scenario: Scenario,
        fault: Fault | None = None,
        *,
        index_lag: IndexLag | None = None,
        sweep_every: float | None = None,
        outage: tuple[float, float] | None = None,
        more: Sequence[Fault] = (),
        side_by_side: SideBySide | None = None,
    ) -> None:
        self.scenario = scenario
        self.plan = FaultPlan(fault, outage, more, scenario.refuse)
        self.side_by_side = side_by_side
        self.interleaved: list[tuple[int, str]] = []
        """The calls of the side-by-side run, (0: scheduler / 1: invocation, call), in order."""
        self.store = SimulatedStore(self.plan, index_lag)
        self.publisher = SimulatedPublisher(scenario.settings, self.plan)
        self.service = AlertService(
            RULES, self.publisher, self.store, scenario.settings, suppressions=scenario.suppressions
        )
        self.sweep_every = sweep_every
        self.failed_attempts: list[str] = []
        self.line = _Timeline()

    def _invoke(self, arrival: Arrival, now: float) -> bool:
        """One Lambda invocation; False when it failed (raised or was killed)."""
        self.plan.clock = now
        try:
            self.service.handle(arrival.rule_id, arrival.envelope, at(now))
        except (Exception, Killed):
            self.failed_attempts.append(arrival.event_id)
            return False
        return True

    def _tick(self, now: float) -> None:
        self.plan.clock = now
        # A failed or killed run is picked up by the next one, a minute later.
        with contextlib.suppress(Exception, Killed):
            self.service.tick(at(now))

    def _side_by_side(self, together: SideBySide) -> None:
        """The scheduler's run and one more invocation, interleaved call by call. Whatever
        either raises is picked up as usual: the scheduler's next run, the event's later
        attempts (or the consumer's re-run of it once it is parked)."""
        self.plan.clock = together.at
        arrival = together.arrival
        interleaving = Interleaving(self.plan)
        outcomes = interleaving.run(
            (
                lambda: self.service.tick(at(together.at)),
                lambda: self.service.handle(arrival.rule_id, arrival.envelope, at(together.at)),
            ),
            together.order,
        )
        self.interleaved = interleaving.steps
        if outcomes[1] != "ok":
            self.failed_attempts.append(arrival.event_id)

    def run(self) -> Outcome:
        self.begin()
        while self.step():
            pass
        return self.outcome()

    def begin(self) -> None:
        """Queue the arrivals: :meth:`step` runs the rest one invocation or tick at a time."""
        for arrival in self.scenario.arrivals:
            self.line.push(arrival.at, arrival, 1)

    def step(self) -> bool:
        """One scheduler minute or one invocation (a Lambda attempt, or the consumer's re-run of
        a parked event), whichever comes first; False once the scheduler is quiescent.

        The run's phases: the events with Lambda's retries; the failed-events consumer re-runs
        what was parked, once the outage is over; the scheduler to quiescence. Everything a
        run has done is in the simulation's attributes between two steps, so a copy taken there
        goes on exactly as the run would (:class:`Forks`)."""
        line = self.line
        while line.phase < _QUIESCENCE:
            if line.queue:
                when = line.queue[0][0]
                if line.next_tick <= when:  # the minutes before the next invocation
                    self._advance_tick(line)
                else:
                    self._next_invocation(line)
                return True
            if line.phase == _EVENTS:
                # The outage is over: the failed-events consumer re-runs what was parked.
                line.parked, line.failed = line.failed, []
                start = line.clock + CONSUMER_DELAY
                for n, arrival in enumerate(line.parked):
                    line.push(start + n, arrival, 1)
                line.phase = _CONSUMER
            else:
                line.lost, line.failed = line.failed, []
                line.horizon = line.clock + QUIESCENCE
                line.phase = _QUIESCENCE
        # The scheduler to quiescence: each time, up to the next due time (every minute).
        if line.until is None or line.next_tick > line.until:
            due = self.store.next_due() if line.next_tick <= line.horizon else None
            if due is None:
                return False
            line.until = max(line.next_tick, due - BASE.timestamp())
        self._advance_tick(line)
        return True

    def outcome(self) -> Outcome:
        """What the run did, once :meth:`step` says it is over."""
        line = self.line
        return Outcome(
            scenario=self.scenario,
            fault=self.plan.fault,
            faults=tuple(self.plan.faults.values()),
            deliveries=list(self.publisher.deliveries),
            publish_calls=list(self.publisher.calls),
            calls=list(self.plan.calls),
            parked=[a.event_id for a in line.parked],
            lost=[a.event_id for a in line.lost],
            failed_attempts=list(self.failed_attempts),
            clock=max(line.clock, line.next_tick - 60.0),
        )

    def _advance_tick(self, line: _Timeline) -> None:
        """The scheduler's next minute (and the TTL sweep due by then)."""
        if self.sweep_every is not None and line.next_tick - line.last_sweep >= self.sweep_every:
            self.store.sweep(line.next_tick)
            line.last_sweep = line.next_tick
        if self.side_by_side is not None and line.next_tick == self.side_by_side.at:
            self._side_by_side(self.side_by_side)
        else:
            self._tick(line.next_tick)
        line.next_tick += 60.0

    def _next_invocation(self, line: _Timeline) -> None:
        """The earliest pending invocation, retried as Lambda does up to the phase's attempts
        (3; the consumer's :data:`CONSUMER_ATTEMPTS`); one that fails its last is set aside."""
        when, _, _, arrival, attempt = heapq.heappop(line.queue)
        line.clock = when
        if self._invoke(arrival, when):
            return
        if attempt < (3 if line.phase == _EVENTS else CONSUMER_ATTEMPTS):
            delay = RETRY_DELAYS[min(attempt - 1, len(RETRY_DELAYS) - 1)]
            line.push(when + delay, arrival, attempt + 1)
        else:
            line.failed.append(arrival)


class Forks:
    """A run without faults, kept as it was before each of its steps: a run with faults starts
    from a copy of the run just before the step that makes its first faulty call, instead of
    replaying the calls before it from the start.

    It does what a run from the start does: a run is deterministic (a virtual clock, and no
    threads but those of :class:`SideBySide`, which forks do not take); a fault plan changes
    nothing before its first planned call (no outage here; the items that refuse updates are the
    scenario's, the same in the run without faults); and between two steps everything a run has
    done is in the simulation's attributes, which a snapshot (a pickle) holds all the way down.
    It shares only what no run changes: the scenario (its arrivals), the rules, the settings,
    the suppressions, the index lag, and the notifications published (frozen). (The random lease
    tokens drawn before the fork are the same in each fork; a run draws new ones.)
    """

    def __init__(self, scenario: Scenario, index_lag: IndexLag | None = None) -> None:
        run = Simulation(scenario, index_lag=index_lag)
        self._shared: list[Any] = [
            scenario,
            *scenario.arrivals,
            scenario.settings,
            scenario.suppressions,
            RULES,
            run.service.scheduler.rules,  # the rules and the built-in ones
            run.store._index_lag,  # may be a closure (lag_everything): it cannot be pickled
        ]
        self._shared_ids = {id(value): n for n, value in enumerate(self._shared)}
        run.begin()
        self._calls: list[int] = []
        """Calls made before each snapshot (ascending)."""
        self._snapshots: list[bytes] = []
        while True:
            self._calls.append(len(run.plan.calls))
            self._snapshots.append(self._snapshot(run))
            if not run.step():
                break
        self.baseline = run.outcome()
        """The run without faults (it numbers the calls)."""

    def _snapshot(self, run: Simulation) -> bytes:
        buffer = io.BytesIO()
        _Snapshot(buffer, self._persistent_id).dump(run)
        return buffer.getvalue()

    def _persistent_id(self, value: Any) -> int | str | None:
        if isinstance(value, _LOCK):
            return "lock"  # a lock cannot be pickled: each copy gets its own
        shared = self._shared_ids.get(id(value))
        if shared is None and isinstance(value, Notification):
            shared = self._shared_ids[id(value)] = len(self._shared)
            self._shared.append(value)
        return shared

    def _persistent_load(self, pid: int | str) -> Any:
        return threading.Lock() if pid == "lock" else self._shared[int(pid)]

    def run(self, faults: Sequence[Fault]) -> Outcome:
        """The scenario with ``faults`` (ascending call numbers; the first is the plan's
        ``fault``), as ``Simulation(scenario, faults[0], more=faults[1:]).run()`` gives it."""
        snapshot = self._snapshots[bisect.bisect_right(self._calls, faults[0].at) - 1]
        run: Simulation = _Restore(io.BytesIO(snapshot), self._persistent_load).load()
        run.plan.inject(faults[0], faults[1:])
        while run.step():
            pass
        return run.outcome()


_LOCK = type(threading.Lock())


class _Snapshot(pickle.Pickler):
    """Pickles a run; what ``persistent_id`` names is kept out (shared, or made anew)."""

    def __init__(self, file: io.BytesIO, persistent_id: Callable[[Any], int | str | None]) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._persistent = persistent_id

    def persistent_id(self, obj: Any) -> int | str | None:
        return self._persistent(obj)


class _Restore(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, persistent_load: Callable[[int | str], Any]) -> None:
        super().__init__(file)
        self._load = persistent_load

    def persistent_load(self, pid: Any) -> Any:
        return self._load(pid)


#: The phases of a run (:meth:`Simulation.step`).
_EVENTS, _CONSUMER, _QUIESCENCE = 0, 1, 2


@dataclass
class _Timeline:
    """A run's virtual clock: the pending invocations (time, order, sequence, arrival, attempt),
    which go before the scheduler's tick of the same minute, and the next tick."""

    queue: list[tuple[float, int, int, Arrival, int]] = field(default_factory=list)
    pushed: int = 0
    """Invocations queued so far (the sequence that keeps equal times in push order)."""
    clock: float = 0.0
    next_tick: float = 60.0
    last_sweep: float = 0.0
    phase: int = _EVENTS
    failed: list[Arrival] = field(default_factory=list)
    """What failed every attempt in this phase."""
    parked: list[Arrival] = field(default_factory=list)
    lost: list[Arrival] = field(default_factory=list)
    horizon: float = math.inf
    """The scheduler ticks no later than this (set once the consumer is done)."""
    until: float | None = None
    """Once quiescing: the minute the scheduler ticks up to before it reads the due time again."""

    def push(self, when: float, arrival: Arrival, attempt: int) -> None:
        heapq.heappush(self.queue, (when, 0, self.pushed, arrival, attempt))
        self.pushed += 1


# --- invariants ----------------------------------------------------------------------------------


def ambiguous_ids(outcome: Outcome) -> set[tuple[str, str]]:
    """(output, id) pairs that may be published twice by design: the publish whose reply was
    lost, or the one just before a store failure or kill (its confirmation was lost)."""
    near = {at for fault in outcome.faults for at in (fault.at, fault.at - 1)}
    return {(output, nid) for index, output, nid in outcome.publish_calls if index in near}


Alerts = dict[str, Notification]
"""The notifications published to the alerts output, by id."""


def violations(outcome: Outcome) -> list[str]:
    """Every invariant that does not hold, as readable lines (empty: all hold)."""
    alerts = {n.id: n for n in outcome.on("alerts")}
    return [line for check in INVARIANTS for line in check(outcome, alerts)]


def nothing_lost(outcome: Outcome, _: Alerts) -> list[str]:
    """0. No event is left unprocessed after the consumer."""
    return [f"events lost after the consumer: {sorted(outcome.lost)}"] if outcome.lost else []


def counted_exactly_once(outcome: Outcome, alerts: Alerts) -> list[str]:
    """1. Every accepted event counted exactly once (alerts + summaries + storm digests)."""
    found: list[str] = []
    counts: Counter[str] = Counter()
    covered: Counter[tuple[str, str]] = Counter()
    for n in alerts.values():
        if n.kind in COUNTED:
            counts[n.rule_id] += n.count
            if len(n.event_ids) == n.count:
                covered.update((n.rule_id, e) for e in n.event_ids)
    expected = {rule: len(ids) for rule, ids in outcome.scenario.accepted.items()}
    if dict(counts) != expected:
        found.append(f"counted {dict(counts)} != accepted {expected}")
    twice_covered = sorted(k for k, c in covered.items() if c > 1)
    if twice_covered:
        found.append(f"events counted twice: {twice_covered}")
    return found


def published_once(outcome: Outcome, _: Alerts) -> list[str]:
    """2. No id published twice to an output, except the ambiguous cases."""
    allowed = ambiguous_ids(outcome)
    per_output = Counter((o, n.id) for o, n in outcome.deliveries)
    twice = sorted(k for k, c in per_output.items() if c > 1 and k not in allowed)
    return [f"published twice: {twice}"] if twice else []


def no_escalation_lost(outcome: Outcome, alerts: Alerts) -> list[str]:
    """3. No escalation lost (published, or held into a storm digest)."""
    escalated = {
        n.principal
        for n in alerts.values()
        if n.kind == KIND_ESCALATION and n.dedup_key.startswith("brute-force:")
    }
    held = [
        n.summary.split("escalations (brute force / fatigue) for ", 1)[1]
        for n in alerts.values()
        if n.kind == KIND_STORM and "escalations (brute force / fatigue) for " in n.summary
    ]
    return [
        f"brute-force escalation of {principal} lost"
        for principal in sorted(outcome.scenario.brute_force)
        if principal not in escalated and not any(f"{principal} (" in h for h in held)
    ]


def resent_write_is_ones_own(outcome: Outcome, _: Alerts) -> list[str]:
    """3b. A write applied twice (botocore re-sent it) is still one's own: no attempt fails
    (unless the scenario has an item refuse updates: its event's attempts fail anyway)."""
    only_resent = (
        outcome.faults
        and all(f.kind == RESENT for f in outcome.faults)
        and not outcome.scenario.refuse
    )
    if only_resent and outcome.failed_attempts:
        return [
            f"a re-sent write was taken for another invocation's: attempts of "
            f"{sorted(set(outcome.failed_attempts))} failed and were retried"
        ]
    return []


def campaigns_once(outcome: Outcome, alerts: Alerts) -> list[str]:
    """5. Campaigns and takeover chains: each expected one exactly once (one id), nothing else."""
    found: list[str] = []
    scenario = outcome.scenario
    decided: dict[str, set[str]] = defaultdict(set)
    shapes: dict[str, tuple[str, int]] = {}
    for n in alerts.values():
        if n.kind == KIND_ESCALATION and n.dedup_key.startswith(("campaign:", "takeover:")):
            decided[n.dedup_key].add(n.id)
            shapes[n.dedup_key] = (n.severity, n.count)
    expected_keys = {key for key, *_ in scenario.campaigns}
    if set(shapes) != expected_keys:
        found.append(f"campaigns {sorted(shapes)} != expected {sorted(expected_keys)}")
    for key, severity, fewest, most in sorted(scenario.campaigns):
        shape = shapes.get(key)
        if shape is not None and (shape[0] != severity or not fewest <= shape[1] <= most):
            found.append(f"campaign {key}: {shape} is not {severity} with {fewest}-{most}")
    summaries: dict[str, set[tuple[str, int]]] = defaultdict(set)
    for n in alerts.values():
        if n.dedup_key.startswith("campaign-summary:"):
            # A trailing summary counts no event (its members' alerts do): it names them.
            summaries[n.dedup_key].add((n.id, int(n.principal.split()[0])))
    got = {(key, count) for key, sent in summaries.items() for _, count in sent}
    if got != set(scenario.campaign_summaries) or any(len(s) > 1 for s in summaries.values()):
        found.append(f"campaign summaries {sorted(got)} != {sorted(scenario.campaign_summaries)}")
    several = sorted(key for key, ids in decided.items() if len(ids) > 1)
    if several:
        found.append(f"campaigns escalated more than once: {several}")
    return found


def no_fatigue_success_lost(outcome: Outcome, alerts: Alerts) -> list[str]:
    """4. No MFA fatigue success lost; exactly one CRITICAL for it, whose count and trailing
    corrections add up to the failures before it, whatever the order and the faults."""
    found: list[str] = []
    scenario = outcome.scenario
    totals = outcome.fatigue_totals()
    for event_id in sorted(scenario.fatigue):
        escalation = f"{FATIGUE_ID_PREFIX}:{event_id}"
        if escalation not in alerts:
            found.append(f"MFA fatigue success {event_id} lost")
            continue
        expected_total = scenario.fatigue_failures(event_id)
        if totals[escalation] != (1, expected_total):
            found.append(
                f"MFA fatigue success {event_id}: {totals[escalation]} (CRITICAL escalations, "
                f"failures counted) != (1, {expected_total})"
            )
    unexpected = sorted(set(totals) - {f"{FATIGUE_ID_PREFIX}:{e}" for e in scenario.fatigue})
    if unexpected:
        found.append(f"unexpected MFA fatigue successes: {unexpected}")
    return found


#: The invariants, in the order their lines are reported.
INVARIANTS: tuple[Callable[[Outcome, Alerts], list[str]], ...] = (
    nothing_lost,
    counted_exactly_once,
    published_once,
    no_escalation_lost,
    resent_write_is_ones_own,
    campaigns_once,
    no_fatigue_success_lost,
)


# --- enumeration ---------------------------------------------------------------------------------


@dataclass
class Report:
    """Figures of an enumeration (the benchmark prints them)."""

    runs: int = 0
    fault_points: int = 0
    """Store and publish calls a fault was injected at (each with every fault kind)."""
    permutations: int = 0
    failures: dict[str, list[str]] = field(default_factory=dict)
    seconds: float = 0.0

    def add(self, label: str, problems: Sequence[str]) -> None:
        self.runs += 1
        if problems:
            self.failures[label] = list(problems)


def fault_runs(
    scenario: Scenario, kinds: Iterable[str] = FAULT_KINDS, index_lag: IndexLag | None = None
) -> Iterable[tuple[Fault, Outcome]]:
    """One outcome per (call number, fault kind): the baseline run numbers the calls; kinds
    with the same effect on the call (:func:`fault_effect`) share one run. Under
    ``MFAWATCH_QUICK=1`` (``make quick`` leaves the enumerations out; ``-m enumeration`` runs
    them) every fifth call, first and last included; ``make test`` and the benchmark take all."""
    forks = Forks(scenario, index_lag)
    made = len(forks.baseline.calls)
    calls: Sequence[int] = range(made)
    if os.environ.get("MFAWATCH_QUICK") == "1":
        calls = sorted({*range(0, made, 5), made - 1})
    for index in calls:
        # Runs by effect: a read's lost reply is its failure, a read re-sent is no fault.
        runs: dict[str, Outcome] = {NO_EFFECT: forks.baseline}
        for kind in kinds:
            fault = Fault(index, kind)
            effect = fault_effect(kind, forks.baseline.calls[index])
            if effect not in runs:
                runs[effect] = forks.run((fault,))
            yield fault, replace(runs[effect], fault=fault, faults=(fault,))


def lag_everything(lag: float) -> IndexLag:
    """Every ``group`` index entry shows up ``lag`` seconds after its write."""

    def index_lag(key: str, at: float) -> float:
        return lag

    return index_lag


def enumerate_faults(
    scenario: Scenario, kinds: Iterable[str] = FAULT_KINDS, index_lag: IndexLag | None = None
) -> Report:
    """Inject every fault kind at every call of the scenario; collect the violations."""
    started = time.perf_counter()
    report = Report()
    points: set[int] = set()
    for fault, outcome in fault_runs(scenario, kinds, index_lag):
        points.add(fault.at)
        report.add(f"{scenario.name} {fault}", violations(outcome))
    report.fault_points = len(points)
    report.seconds = time.perf_counter() - started
    return report


def orders(n: int, sample: int, seed: int) -> list[tuple[int, ...]]:
    """Every order of ``n`` arrivals when there are at most ``sample`` (or 24), else a seeded
    random sample of ``sample`` of them."""
    if math.factorial(n) <= max(sample, 24):
        return list(itertools.permutations(range(n)))
    rng = random.Random(seed)
    found = {tuple(range(n))}
    while len(found) < sample:
        order = list(range(n))
        rng.shuffle(order)
        found.add(tuple(order))
    return sorted(found)


def outage_run(scenario: Scenario, until: float = 400.0) -> Outcome:
    """Every call fails for the first ``until`` seconds: the early events fail all three Lambda
    attempts and are parked; the consumer re-runs them after the outage."""
    return Simulation(scenario, outage=(0.0, until)).run()


def random_fault_sets(scenario: Scenario, runs: int, per_run: int = 2, seed: int = 18) -> Report:
    """``runs`` runs, each with ``per_run`` faults of random kinds at random calls (seeded)."""
    started = time.perf_counter()
    report = Report()
    forks = Forks(scenario)
    calls = len(forks.baseline.calls)
    rng = random.Random(f"{seed}-{scenario.name}")
    points: set[int] = set()
    for _ in range(runs):
        faults = [
            Fault(at, rng.choice(FAULT_KINDS))
            for at in sorted(rng.sample(range(calls), min(per_run, calls)))
        ]
        points.update(f.at for f in faults)
        outcome = forks.run(faults)
        report.add(f"{scenario.name} {' '.join(map(str, faults))}", violations(outcome))
    report.fault_points = len(points)
    report.seconds = time.perf_counter() - started
    return report


def enumerate_orders(scenario: Scenario, sample: int = 40, seed: int = 18) -> Report:
    """Every arrival order (a seeded sample for long scenarios) within the retry horizon must
    give the same notifications (kinds, titles, counts) as the order of the events."""
    started = time.perf_counter()
    report = Report()
    # The reference: the same arrival times, the events in their own order.
    reference = Simulation(scenario.reordered(range(len(scenario.arrivals)))).run().shape()
    for order in orders(len(scenario.arrivals), sample, seed):
        outcome = Simulation(scenario.reordered(order)).run()
        report.permutations += 1
        problems = violations(outcome)
        if outcome.shape() != reference:
            problems.append(f"order {order}: {outcome.shape()} != {reference}")
        report.add(f"{scenario.name} order {order}", problems)
    report.seconds = time.perf_counter() - started
    return report


def stuck_leader() -> tuple[Scenario, float, Arrival]:
    """A window whose leading event is stuck, and the minute its stand-in takes over.

    Four failed MFA sign-ins of alice; the first one's claim refuses every update for five and a
    half minutes, so its three Lambda attempts (2, 62 and 182 s) and the scheduler's two tries
    (240 and 300 s) fail: the scheduler's run at 360 s hands the window to a stand-in. Returns
    the scenario, that minute and the stuck event (to run once more beside it, as the
    failed-events consumer or a late Lambda retry may)."""
    arrivals = tuple(iam_failure(f"k-{i}", 10.0 * i) for i in range(4))
    refuse = {f"evt#{IAM_FAILURE}#{arrivals[0].event_id}": 330.0}
    return Scenario("stuck-leader", arrivals, settings(), refuse=refuse), 360.0, arrivals[0]


def enumerate_side_by_side(scenario: Scenario, minute: float, arrival: Arrival) -> Report:
    """The scheduler's run of ``minute`` and one more invocation of ``arrival``, side by side
    (:class:`SideBySide`): every order with one switch (:func:`one_switch`: either runs for
    ``n`` calls, for every ``n``, then the other runs to its end), each run to quiescence and
    its invariants checked. ``make quick`` takes every fifth ``n``."""
    started = time.perf_counter()
    report = Report()
    stride = 5 if os.environ.get("MFAWATCH_QUICK") == "1" else 1
    names = ("scheduler", arrival.event_id)
    for first in (0, 1):
        alone = Simulation(
            scenario, side_by_side=SideBySide(minute, arrival, one_switch(first, TO_THE_END))
        )
        report.add(f"{scenario.name}: {names[first]} alone first", violations(alone.run()))
        calls = sum(1 for who, _ in alone.interleaved if who == first)
        report.fault_points += calls
        for n in sorted({*range(0, calls, stride), calls - 1}):
            run = Simulation(
                scenario, side_by_side=SideBySide(minute, arrival, one_switch(first, n))
            )
            problems = violations(run.run())
            report.add(f"{scenario.name}: {names[first]} makes {n} calls first", problems)
    report.seconds = time.perf_counter() - started
    return report
