"""The one place where decisions meet side effects. The Lambda handlers and replay both call it.

Data flows one way: raw event -> :func:`records.parse_event` -> decisions (pure transitions in
:mod:`chalicelib.decisions`, applied to the injected :class:`state.StateStore`) -> notifications ->
``publisher.publish``. Lambda injects DynamoDB and SNS; replay injects memory and a list.

Per event (``handle``):

1. Attribute Identity Center workflows (who started this sign-in).
2. Claim the eventID (exactly once: a duplicate delivery does nothing, a concurrent one retries).
3. Decide: brute-force/fatigue escalations, the incident's leading alert or a counted repeat.
4. Save what was decided in the claim's outbox, then deliver it; rate limits may hold alerts and
   summaries in a storm digest instead. A failed destination raises (Lambda retries) and the retry
   delivers only what is still in the outbox.

Per minute (``tick``, the scheduled handler; replay calls it at virtual times): close incident
windows that ended into summaries, turn storms into digests, redeliver outboxes that failed.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any, Protocol

from .config import Settings
from .constants import HEARTBEAT_OVERDUE_SECONDS
from .decisions import (
    Claim,
    Held,
    IncidentFacts,
    Observed,
    bucket_key,
    claim_event,
    claim_key,
    close_incident,
    failures_key,
    failures_since,
    flush_storm,
    heartbeat_key,
    heartbeat_overdue,
    heartbeat_seen,
    hold_in_storm,
    incident_key,
    mark_delivered,
    observe_event,
    read_document,
    record_failure,
    remember_workflow,
    save_outbox,
    storm_key,
    take_token,
    workflow_key,
)
from .errors import EventInProgressError, PublishError, StateStoreError
from .notifications import (
    KIND_ALERT,
    KIND_ESCALATION,
    KIND_SUMMARY,
    Notification,
    alert_for,
    brute_force_for,
    fatigue_success_for,
    heartbeat_notice,
    notification_from_state,
    storm_digest_for,
    summary_for,
)
from .observability import MemoryMetrics, Metrics
from .records import PRINCIPAL_IDENTITY_CENTER, UNKNOWN_PRINCIPAL_KEY, SignInRecord, parse_event
from .rules import HEARTBEAT_RULE, Rule, RuleSet
from .state import MemoryStore, StateStore, transact

logger = logging.getLogger(__name__)


class Publisher(Protocol):
    """Where notifications go. ``publish`` raises :class:`errors.PublishError` on failure."""

    def destinations(self, notification: Notification) -> list[str]: ...

    def publish(self, notification: Notification, destination: str) -> None: ...


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


class AlertService:
    """Turns matched events into published notifications, exactly once, rate-limited."""

    def __init__(
        self,
        rules: RuleSet,
        publisher: Publisher,
        store: StateStore | None = None,
        settings: Settings | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.rules = rules
        # Notifications about heartbeats name a built-in rule; outboxes are rebuilt against both.
        self._known = RuleSet([*rules, HEARTBEAT_RULE]) if "heartbeat" not in rules.ids else rules
        self.store: StateStore = store if store is not None else MemoryStore()
        self.settings = settings or Settings()
        self.metrics: Metrics = metrics if metrics is not None else MemoryMetrics()
        self._publisher = publisher

    # --- per event ---------------------------------------------------------------------------

    def handle(self, rule_id: str, event: Mapping[str, Any], now: datetime) -> list[Notification]:
        """Process one event that EventBridge (or replay) matched to ``rule_id``.

        ``now`` is the processing time: the wall clock in Lambda, the event time in replay.
        Returns what was published. Raises :class:`errors.EventParseError` for an event that is
        not a CloudTrail record, :class:`errors.EventInProgressError` when another invocation is
        processing the same event, and :class:`errors.PublishError` when a destination failed.
        """
        rule = self.rules.get(rule_id)
        record = parse_event(event)
        self.metrics.count("EventsMatched", Rule=rule.id)
        clock = now.timestamp()
        try:
            record = self._attribute(record, clock)
            if rule.mode != "alert" and rule.signal != "success":
                return []
            return self._handle(rule, record, clock)
        except StateStoreError as exc:
            return self._fail_open(rule, record, exc)

    def _handle(self, rule: Rule, record: SignInRecord, now: float) -> list[Notification]:
        s = self.settings
        key = claim_key(rule.id, record.event_id or str(record.raw.get("id", "")))
        claim = transact(
            self.store, key, now, claim_event(now, s.lease_seconds, s.claim_ttl_seconds)
        )
        if claim.claim is Claim.DUPLICATE:
            self.metrics.count("Duplicates", Rule=rule.id)
            logger.info(
                "duplicate delivery of %s ignored",
                record.event_id,
                extra={"rule": rule.id, "event_id": record.event_id},
            )
            return []
        if claim.claim is Claim.IN_PROGRESS:
            raise EventInProgressError(
                f"rule {rule.id} event {record.event_id} is being processed by another "
                "invocation; retry later"
            )
        if claim.claim is Claim.PENDING:
            return self._deliver(key, list(claim.outbox), now)
        entries = [self._entry(n) for n in self._decide(rule, record, now)]
        transact(
            self.store,
            key,
            now,
            save_outbox(entries, now, s.lease_seconds, s.claim_ttl_seconds),
        )
        return self._deliver(key, entries, now)

    def _decide(self, rule: Rule, record: SignInRecord, now: float) -> list[Notification]:
        s = self.settings
        t = record.event_time.timestamp()
        decided: list[Notification] = []
        if rule.mode == "alert":
            dedup = rule.dedup_key_of(record)
            facts = IncidentFacts(
                rule_id=rule.id,
                dedup_key=dedup,
                account=record.account,
                region=record.region,
                principal=record.principal,
                principal_type=record.principal_type,
                source_ip=record.source_ip,
            )
            observed = transact(
                self.store,
                incident_key(rule.id, dedup),
                now,
                observe_event(
                    facts, record.event_id, t, now, rule.window_minutes * 60.0, self._summary
                ),
            )
            if observed is Observed.ALERT:
                decided.append(alert_for(rule, record, self._notes(record)))
            else:
                self.metrics.count("Repeats", Rule=rule.id)
            logger.info(
                "decision %s for %s",
                observed.value,
                record.event_id,
                extra={"rule": rule.id, "event_id": record.event_id, "dedup_key": dedup},
            )
        escalation_key = failures_key(record.account, _escalation_principal(record))
        if rule.signal == "failure":
            bf, fs = s.brute_force, s.fatigue_success
            counted = transact(
                self.store,
                escalation_key,
                now,
                record_failure(
                    record.event_id,
                    t,
                    now,
                    bf.count,
                    bf.seconds,
                    horizon=max(bf.seconds, fs.seconds),
                    keep=max(bf.count, fs.count, 50),
                ),
            )
            if counted.escalate:
                escalation = brute_force_for(
                    rule, record, counted.in_window, bf.minutes, counted.event_ids
                )
                decided.append(replace(escalation, notes=self._notes(record)))
        elif rule.signal == "success":
            fs = s.fatigue_success
            failures = transact(self.store, escalation_key, now, failures_since(t - fs.seconds, t))
            if len(failures) >= fs.count:
                escalation = fatigue_success_for(rule, record, failures, fs.minutes)
                decided.append(replace(escalation, notes=self._notes(record)))
        return decided

    def _notes(self, record: SignInRecord) -> tuple[str, ...]:
        note = self.settings.account_note(record.account)
        return (note,) if note else ()

    # --- Identity Center attribution -----------------------------------------------------------

    def _attribute(self, record: SignInRecord, now: float) -> SignInRecord:
        """Name the user of an Identity Center step from earlier steps of the same workflow."""
        if not record.auth_workflow_id:
            return record
        key = workflow_key(record.auth_workflow_id)
        named = (
            record.principal
            if record.principal_type == PRINCIPAL_IDENTITY_CENTER
            and record.principal_key not in (UNKNOWN_PRINCIPAL_KEY, record.identity_store_user_id)
            else ""
        )
        if named or record.identity_store_user_id:
            transact(
                self.store,
                key,
                now,
                remember_workflow(
                    named, record.identity_store_user_id, now, self.settings.workflow_ttl_seconds
                ),
            )
        if named:
            return record
        known = transact(self.store, key, now, read_document()) or {}
        if known.get("user_name"):
            name = str(known["user_name"])
            return replace(
                record, principal=name, principal_key=name, principal_type=PRINCIPAL_IDENTITY_CENTER
            )
        return record

    # --- delivery ------------------------------------------------------------------------------

    def _entry(self, notification: Notification) -> dict[str, Any]:
        return {
            "id": notification.id,
            "destinations": self._publisher.destinations(notification),
            "notification": notification.to_state(),
            # Alerts, summaries and escalations share the rate limits; a CRITICAL escalation (an
            # MFA fatigue success: the account is probably compromised) always goes out.
            "rate_limited": notification.kind in (KIND_ALERT, KIND_SUMMARY)
            or (notification.kind == KIND_ESCALATION and notification.severity != "CRITICAL"),
        }

    # --- heartbeats ----------------------------------------------------------------------------

    def heartbeat(self, event: Mapping[str, Any], now: datetime) -> list[Notification]:
        """A heartbeat from an account x Region (a member's scheduled rule, or our own schedule):
        record it, count it, and announce recovery if it had been reported missing."""
        account = str(event.get("account", ""))
        region = str(event.get("region", ""))
        clock = now.timestamp()
        key = heartbeat_key(account, region)
        self.metrics.count("Heartbeats", Account=account, Region=region)
        recovered = transact(
            self.store,
            key,
            clock,
            heartbeat_seen(account, region, clock, HEARTBEAT_OVERDUE_SECONDS, self._recovered),
        )
        logger.info("heartbeat from %s %s (recovered: %s)", account, region, recovered)
        if not recovered:
            return []
        document = transact(self.store, key, clock, read_document()) or {}
        return self._deliver(key, list(document.get("outbox", [])), clock)

    def _recovered(self, heartbeat: Mapping[str, Any]) -> dict[str, Any]:
        now = float(heartbeat["last_seen"])
        return self._entry(heartbeat_notice(HEARTBEAT_RULE, heartbeat, now, missing=False))

    def _summary(self, incident: Mapping[str, Any]) -> dict[str, Any]:
        return self._entry(summary_for(self.rules.get(str(incident["rule_id"])), incident))

    def _deliver(self, key: str, entries: list[dict[str, Any]], now: float) -> list[Notification]:
        """Publish outbox entries; record what went out; raise if any destination failed."""
        delivered: dict[str, set[str]] = {}
        sent: list[Notification] = []
        errors: list[str] = []
        for entry in entries:
            notification = notification_from_state(entry["notification"], self._known)
            if entry.get("rate_limited") and not self._admit(notification, now):
                delivered[entry["id"]] = set(entry["destinations"])
                continue
            done = delivered.setdefault(entry["id"], set())
            for destination in entry["destinations"]:
                try:
                    self._publisher.publish(notification, destination)
                except PublishError as exc:
                    self.metrics.count("PublishErrors", Destination=destination)
                    logger.error(
                        "publish failed: %s",
                        exc,
                        extra={
                            "rule": notification.rule.id,
                            "notification": notification.id,
                            "destination": destination,
                            "dedup_key": notification.dedup_key,
                        },
                    )
                    errors.append(f"{destination}: {exc}")
                    continue
                done.add(destination)
            if done == set(entry["destinations"]):
                self.metrics.count("Notifications", Kind=notification.kind)
                sent.append(notification)
        transact(
            self.store,
            key,
            now,
            mark_delivered(delivered, now, self.settings.lease_seconds),
        )
        if errors:
            raise PublishError("; ".join(errors))
        return sent

    def _admit(self, notification: Notification, now: float) -> bool:
        """Take a token from the principal's and the topic's bucket, or hold it in a storm."""
        s = self.settings
        principal = bucket_key(f"principal#{notification.account}#{notification.principal}")
        # An escalation comes once per burst and principal: only the topic's bucket applies.
        admitted = (
            notification.kind == KIND_ESCALATION
            or transact(
                self.store,
                principal,
                now,
                take_token(s.principal_rate.count, s.principal_rate.seconds, now),
            )
        ) and transact(
            self.store,
            bucket_key("topic"),
            now,
            take_token(s.topic_rate.count, s.topic_rate.seconds, now),
        )
        if admitted:
            return True
        escalation = notification.kind == KIND_ESCALATION
        held = Held(
            count=0 if escalation else notification.count,
            event_ids=() if escalation else notification.event_ids,
            principal=notification.principal,
            source_ip=notification.source_ip,
            account=notification.account,
            region=notification.region,
            principal_type=notification.principal_type,
            first=notification.first_seen.timestamp(),
            last=notification.last_seen.timestamp(),
            kind=notification.kind,
        )
        transact(
            self.store,
            storm_key(notification.rule.id),
            now,
            hold_in_storm(held, now, s.topic_rate.seconds),
        )
        self.metrics.count("Held", Rule=notification.rule.id)
        logger.info(
            "held by rate limit (a storm digest follows)",
            extra={"rule": notification.rule.id, "notification": notification.id},
        )
        return False

    def _fail_open(
        self, rule: Rule, record: SignInRecord, exc: StateStoreError
    ) -> list[Notification]:
        self.metrics.count("StateStoreErrors", Rule=rule.id)
        logger.error(
            "state store failed, publishing without dedup: %s",
            exc,
            extra={"rule": rule.id, "event_id": record.event_id},
        )
        if rule.mode != "alert":
            return []
        notes = (f"dedup unavailable: {exc}", *self._notes(record))
        notification = alert_for(rule, record, notes=notes)
        for destination in self._publisher.destinations(notification):
            self._publisher.publish(notification, destination)
        return [notification]

    # --- scheduled work --------------------------------------------------------------------------

    def tick(self, now: datetime, force: bool = False) -> list[Notification]:
        """Send what is due: summaries of closed windows, storm digests, failed outboxes.

        ``force`` (end of a replay) closes every open window and storm regardless of time.
        Raises :class:`errors.PublishError` after trying everything if any destination failed.
        """
        clock = now.timestamp()
        sent: list[Notification] = []
        errors: list[str] = []
        for key in self.store.due(math.inf if force else clock, clock):
            try:
                sent += self._due(key, clock, force)
            except PublishError as exc:
                errors.append(str(exc))
        if errors:
            raise PublishError("; ".join(errors))
        return sent

    def flush(self, now: datetime) -> list[Notification]:
        """Close everything that is open (replay's end). Held summaries may open a storm, so
        repeat until nothing more comes out."""
        sent: list[Notification] = []
        clock = now.timestamp()
        for _ in range(8):  # closing may hold summaries into storms, which then need flushing
            if not self.store.due(math.inf, clock):
                break
            sent += self.tick(now, force=True)
        return sent

    def _due(self, key: str, now: float, force: bool) -> list[Notification]:
        if key.startswith("inc#"):
            transact(self.store, key, now, close_incident(now, force, self._summary))
        elif key.startswith("hb#"):

            def missing(doc: Mapping[str, Any]) -> dict[str, Any]:
                return self._entry(heartbeat_notice(HEARTBEAT_RULE, doc, now, missing=True))

            transact(
                self.store, key, now, heartbeat_overdue(now, HEARTBEAT_OVERDUE_SECONDS, missing)
            )
        elif key.startswith("evt#"):
            # An event whose delivery failed: take the claim over (its lease ran out) so that a
            # Lambda retry and the scheduler never deliver the same outbox at once.
            s = self.settings
            claim = transact(
                self.store, key, now, claim_event(now, s.lease_seconds, s.claim_ttl_seconds)
            )
            if claim.claim is not Claim.PENDING:
                return []
            return self._deliver(key, list(claim.outbox), now)
        elif key.startswith("storm#"):
            rule = self.rules.get(key.split("#", 1)[1])

            def digest(doc: Mapping[str, Any]) -> dict[str, Any]:
                entry = self._entry(storm_digest_for(rule, doc))
                entry["rate_limited"] = False  # the digest is the pressure valve
                return entry

            transact(self.store, key, now, flush_storm(now, force, digest))
        document = transact(self.store, key, now, read_document()) or {}
        outbox = list(document.get("outbox", []))
        if not outbox:
            # Nothing to send: clear the due mark so the scheduler stops finding this key.
            transact(self.store, key, now, mark_delivered({}, now, 0.0))
            return []
        return self._deliver(key, outbox, now)


def _escalation_principal(record: SignInRecord) -> str:
    """Who failures are counted for; unnamed Identity Center users are told apart by IP."""
    if record.principal_key == UNKNOWN_PRINCIPAL_KEY:
        return f"{UNKNOWN_PRINCIPAL_KEY}@{record.source_ip}"
    return record.principal_key
