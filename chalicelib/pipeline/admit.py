"""The admission step: a new incident's alert through the topic's rate window and storm mode
(:meth:`chalicelib.pipeline.admission.Admission.decide`), with the window it opened as what its
claim saves (the scheduler's summary reads it)."""

from __future__ import annotations

from dataclasses import dataclass

from ..core.documents import WindowRef, window_attribute
from ..core.notifications import Notification
from ..core.state import Item
from .admission import Admission, Decided
from .incident import Opened
from .parts import Attempt


@dataclass(frozen=True)
class Admitted:
    """What the save step writes on the claim: the decision, the window the event leads (an
    alert), and the claim's other attributes."""

    result: Decided
    window: WindowRef | None
    attributes: Item


def admit(
    admission: Admission,
    attempt: Attempt,
    opened: Opened,
    alert: Notification,
    principal_admitted: bool,
) -> Admitted:
    """Admit the alert of the incident ``attempt`` opened (``principal_admitted``: the
    principal's own rate window has room)."""
    record, now = attempt.record, attempt.now
    result = admission.decide([alert], now, principal_admitted)
    window = WindowRef(
        group=opened.group,
        rule_id=attempt.rule.id,
        dedup_key=opened.dedup,
        window_start=opened.start,
        window_end=opened.end,
        account=record.account,
        region=record.region,
        principal=record.principal,
        principal_key=record.principal_key,
        principal_type=record.principal_type,
        source_ip=record.source_ip,
    )
    attributes: Item = {"window": window_attribute(window)}
    attributes.update(result.held_attributes(attempt.rule.id, now))
    return Admitted(result, window, attributes)
