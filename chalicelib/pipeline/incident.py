"""The incident step: a conditional write opens a new window if none is open for the event time
(the ALERT; the incident keeps the event); otherwise the failed condition returns the open window
(a REPEAT, counted on the event's own claim, in the window's group, merged into the summary by
the scheduler)."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

from ..core.decisions import incident_expiry, window_for
from ..core.documents import EVENT, FINISH_TRIES, MAX_IP, Incident
from ..core.errors import StateStoreError
from ..core.state import (
    DUE_AT,
    EXPIRES_AT,
    Absent,
    AllOf,
    AnyOf,
    Compare,
    ConditionFailed,
    Item,
    KeyKind,
    Missing,
    due_mark,
    group_mark,
    make_key,
)
from .claim import event_attribute, stand_in_key
from .parts import Attempt, Parts

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Opened:
    """Where an event falls: its incident and window (``window``: the open window another
    event leads, None when this event leads its own), and whether its stand-in leads it."""

    incident: str
    dedup: str
    start: float
    end: float
    group: str
    window: Incident | None
    stood_in: bool = False

    @property
    def alert(self) -> bool:
        return self.window is None


class Incidents:
    """Opens an event's incident window or finds the open one; marks late repeats."""

    def __init__(self, parts: Parts) -> None:
        self.store, self.settings, self.metrics = parts.store, parts.settings, parts.metrics

    def open(self, attempt: Attempt) -> Opened:
        """The incident step of one attempt (see the module docstring)."""
        rule, record = attempt.rule, attempt.record
        dedup = rule.dedup_key_of(record)
        incident = make_key(KeyKind.INCIDENT, rule.id, dedup)
        start, end = window_for(attempt.t, rule.window_minutes)
        group = f"{incident}#{start!r}"
        window, led = self.lead(incident, attempt.key, attempt, start, end)
        if window is not None and window.leader == stand_in_key(rule.id, record.event_id):
            # Its stand-in leads its window and counts it (stuck leaders): not a repeat of it.
            return Opened(incident, dedup, start, end, group, window, stood_in=True)
        if led is not None:  # its own window, written by an earlier attempt
            start, end, group = led.window_start, led.window_end, led.group
        if window is not None:
            self.metrics.count("Repeats", Rule=rule.id)
        logger.info(
            "decision %s for %s",
            "alert" if window is None else "repeat",
            record.event_id,
            extra={"rule": rule.id, "event_id": record.event_id, "dedup_key": dedup},
        )
        return Opened(incident, dedup, start, end, group, window)

    def lead(
        self, incident: str, key: str, attempt: Attempt, start: float, end: float
    ) -> tuple[Incident | None, Incident | None]:
        """Open the incident window of an event at ``t``, or find the open one.

        Returns ``(window, led)``: ``window`` is the open window another event leads (this one
        is a repeat), else None; ``led`` is this event's own window when an earlier attempt of
        it opened it (a retry, or its own write re-sent by botocore), read back unchanged.

        The incident keeps the leading event itself: if the leader never gets to save its
        decision (every attempt fails or is killed), its claim is still due after its lease
        and the scheduler decides it again from here (stuck leaders), so its incident is late,
        never silent. Timeline::

            claim (due at lease + settle) -> incident (leader, its event) -> decision saved
            (due moved: redelivery, or the window's summary) -> published
            stuck: still due at lease + settle -> the scheduler decides the leader again
        """
        group, t, now = f"{incident}#{start!r}", attempt.t, attempt.now
        for _ in range(3):
            try:
                self.store.update(
                    incident,
                    now,
                    set_values={
                        "window_start": start,
                        "window_end": end,
                        "leader": key,
                        "group": group,
                        EVENT: event_attribute(attempt.record),
                        FINISH_TRIES: 0,
                        EXPIRES_AT: incident_expiry(end, now),
                    },
                    condition=AnyOf((Absent(), Compare("window_end", "<=", t))),
                )
                return None, None
            except ConditionFailed as failed:
                if failed.current is None:
                    # The condition failed on an item that is gone again (an emulator's
                    # non-atomic update; DynamoDB returns the item): try again.
                    continue
                window = Incident.from_item(failed.current)
            if window.leader == key:
                return None, window
            return window, None
        raise StateStoreError(f"{incident}: conditional write failed without an item")

    def repeat(self, attempt: Attempt, window: Incident) -> Item:
        """What a repeat saves on its own claim: the window's group, and its own address (a
        summary says which of its repeats a suppression covers, and its rule's key may leave
        the IP out)."""
        record, now = attempt.record, attempt.now
        attributes: Item = dict(group_mark(window.group, now))
        ip = record.source_ip[:MAX_IP]
        attributes.update({"t": attempt.t, "event_id": record.event_id, "source_ip": ip})
        if now > window.window_end:
            # Processed after its window ended: the summary may have been cut already, so ask
            # the leading event for another look (a late batch, never lost).
            self.late_batch(window.leader, now)
        return attributes

    def late_batch(self, leader: str, now: float) -> None:
        at = now + self.settings.settle_seconds
        with contextlib.suppress(ConditionFailed):
            self.store.update(
                leader,
                now,
                set_values=due_mark(at),
                # Only an existing claim, and never bring an even later look forward.
                condition=AllOf(
                    (
                        Compare("status", "<>", ""),
                        AnyOf((Missing(DUE_AT), Compare(DUE_AT, "<", at))),
                    )
                ),
            )
