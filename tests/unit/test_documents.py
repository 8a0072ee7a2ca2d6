"""The typed items of chalicelib.core.documents: outboxes, bounded stored values."""

from __future__ import annotations

from chalicelib.core.documents import (
    MAX_STORED_STRING,
    Outbox,
    OutboxEntry,
    bounded,
    delivery_mark,
)


def test_outbox_pending_skips_held_and_confirmed_and_drops_delivered_entries() -> None:
    a = OutboxEntry("alert:a", {"kind": "alert"}, ("alerts", "pager"))
    held = OutboxEntry("alert:b", {"kind": "alert"}, ("alerts",), held=True)
    outbox = Outbox((a, held), frozenset({delivery_mark("alert:a", "alerts")}))
    assert outbox.pending() == [(a, "pager")]
    done = Outbox((a,), frozenset({delivery_mark("alert:a", "alerts"), "alert:a@pager"}))
    summary = OutboxEntry("summary:a", {"kind": "summary"}, ("alerts",))
    grown = done.with_entries([summary])
    assert grown.entries == (summary,) and grown.delivered == frozenset()
    assert Outbox.from_item(grown.to_item()) == grown


def test_stored_values_are_bounded_whatever_the_input() -> None:
    huge = {"userAgent": "A" * 200 * 1024, "ids": [str(i) for i in range(5000)]}
    small = bounded(huge)
    assert len(small["userAgent"]) == MAX_STORED_STRING
    assert small["userAgent"].endswith("…")
    assert len(small["ids"]) == 200
