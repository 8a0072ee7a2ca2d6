"""Failing open: the claim could not be written, so a marked copy of the alert goes out.

This is the only step before which the service may fail open: if the claim cannot be written,
nothing was saved, published or held for the event in this invocation, so a marked copy goes out
("dedup unavailable", :func:`fail_open_copy_id`). After it, a state error raises (Lambda
retries) and the retry finishes what was saved.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import replace

from ..core.errors import FailedOpenError, StateStoreError
from ..core.notifications import Notification, alert_for
from ..core.records import SignInRecord
from ..core.rules import Rule
from .claim import claim_key
from .parts import Parts

logger = logging.getLogger(__name__)

#: Distinct marked copies (published without deduplication) per rule and minute, for the whole
#: stage: see :func:`fail_open_copy_id`.
FAIL_OPEN_PER_MINUTE = 10
#: Marked copies one execution environment publishes per minute (all rules): publishes stay
#: within this times the environments running, for receivers that cannot deduplicate (e-mail).
FAIL_OPEN_PER_ENVIRONMENT = 1


def fail_open_copy_id(rule_id: str, event_id: str, event_time: float) -> str:
    """The id of the marked copy an event falls into when the state store is down.

    Nothing is shared between execution environments while DynamoDB is down, except what every
    one of them computes alike from the event: its id and its time. So the copy's id is derived
    from them: the minute of the event time and one of :data:`FAIL_OPEN_PER_MINUTE` tickets
    drawn by a hash of the event id. Every attempt of an event, in any environment, makes the
    same id (one copy per event across Lambda's retries, for receivers to deduplicate), and a
    rule has at most :data:`FAIL_OPEN_PER_MINUTE` distinct copies per minute, stage-wide.
    """
    digest = hashlib.sha256(f"{rule_id}|{event_id}".encode()).digest()
    ticket = int.from_bytes(digest[:8], "big") % FAIL_OPEN_PER_MINUTE
    return f"failopen:{rule_id}:{int(event_time // 60)}:{ticket}"


class FailOpen:
    """Publishes a marked copy when the claim cannot be written, bounded per environment."""

    def __init__(self, parts: Parts) -> None:
        self.store, self.delivery, self.metrics = parts.store, parts.delivery, parts.metrics
        # The marked copies this execution environment published (id -> minute), recent only.
        self._fail_opens: dict[str, int] = {}

    def first(self, copy_id: str, now: float) -> bool:
        """Whether this environment publishes ``copy_id``: not published here yet (recent ids
        kept), and within :data:`FAIL_OPEN_PER_ENVIRONMENT` this minute."""
        minute = int(now // 60)
        self._fail_opens = {k: m for k, m in self._fail_opens.items() if m >= minute - 10}
        this_minute = sum(1 for m in self._fail_opens.values() if m == minute)
        if copy_id in self._fail_opens or this_minute >= FAIL_OPEN_PER_ENVIRONMENT:
            return False
        self._fail_opens[copy_id] = minute
        return True

    def fail_open(
        self,
        rule: Rule,
        record: SignInRecord,
        now: float,
        exc: StateStoreError,
        notes: tuple[str, ...],
    ) -> list[Notification]:
        """The claim could not be written. If the store cannot say that an earlier attempt saved
        anything either, publish a marked copy of the alert now rather than risk missing it, then
        raise: Lambda's retry (or the failed-events queue) still takes the event through the
        deduplicated path, which alone counts it. The copy counts no event. Its id
        (:func:`fail_open_copy_id`) is the same for every attempt of the event and shared by
        the events of its ticket: at most :data:`FAIL_OPEN_PER_MINUTE` distinct copies per rule
        and minute for the whole stage, each published once per execution environment; an
        outage during a storm must not become a flood. ``notes``: the account's."""
        self.metrics.count("StateStoreErrors", Rule=rule.id)
        key = claim_key(rule.id, record.event_id)
        try:
            saved = self.store.get(key, now) is not None
        except StateStoreError:
            saved = False  # unknown: the store is failing
        if saved:
            raise StateStoreError(f"{key}: an earlier attempt saved state; retry ({exc})") from exc
        copy_id = fail_open_copy_id(rule.id, record.event_id, record.event_time.timestamp())
        if rule.mode != "alert" or not self.first(copy_id, now):
            raise exc
        self.metrics.count("FailOpens", Rule=rule.id)
        logger.error(
            "state store failed before the claim, publishing marked copy %s: %s",
            copy_id,
            exc,
            extra={"rule": rule.id, "event_id": record.event_id},
        )
        copy = replace(
            alert_for(rule, record, notes=marked(copy_id, exc, notes)), id=copy_id, count=0
        )
        for destination in self.delivery.publisher.destinations(copy):
            self.delivery.publisher.publish(copy, destination)
        self.metrics.count("Notifications", Kind=copy.kind)
        raise FailedOpenError(
            f"rule {rule.id} event {record.event_id}: published without dedup ({exc}); the "
            "retry takes it through the deduplicated path"
        ) from exc


def marked(copy_id: str, exc: StateStoreError, notes: tuple[str, ...]) -> tuple[str, ...]:
    """The notes of a marked copy: why it was sent and what follows, then the account's."""
    return (
        f"dedup unavailable: {exc}",
        "sent before deduplication and counting no event; the deduplicated alert or "
        "summary follows once the state store answers",
        f"other failures of the same minute may share this copy ({copy_id}): at most "
        f"{FAIL_OPEN_PER_MINUTE} copies a minute per rule",
        *notes,
    )
