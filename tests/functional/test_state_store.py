"""The StateStore contract, run on both stores: MemoryStore (replay, tests) and DynamoStateStore
(moto in-process). Whatever replay proves with memory holds for DynamoDB only if both agree."""

from __future__ import annotations

import pytest

from chalicelib.aws.dynamo import DynamoStateStore
from chalicelib.core.state import (
    Absent,
    AllOf,
    AnyOf,
    Compare,
    ConditionFailed,
    MemoryStore,
    Missing,
    StateStore,
    due_mark,
    group_mark,
)

TABLE = "mfawatch-test-state"


@pytest.fixture(params=["memory", "dynamodb"])
def store(request: pytest.FixtureRequest) -> StateStore:
    if request.param == "memory":
        return MemoryStore()
    return DynamoStateStore(request.getfixturevalue("dynamodb"), TABLE)


def test_put_absent_then_conditional_failure_returns_the_item(store: StateStore) -> None:
    store.put("k", {"n": 1, "s": "é", "expires_at": 100.0}, 0.0, condition=Absent())
    with pytest.raises(ConditionFailed) as failed:
        store.put("k", {"n": 2, "expires_at": 100.0}, 0.0, condition=Absent())
    assert failed.value.current is not None and failed.value.current["n"] == 1
    assert store.get("k", 0.0) == {"pk": "k", "n": 1, "s": "é", "expires_at": 100.0}
    assert store.calls == 3


def test_expired_item_reads_as_absent_and_absent_condition_accepts_it(store: StateStore) -> None:
    store.put("k", {"n": 1, "expires_at": 50.0}, 0.0)
    assert store.get("k", 49.0) is not None
    assert store.get("k", 50.0) is None
    store.put("k", {"n": 2, "expires_at": 500.0}, 60.0, condition=Absent())
    item = store.get("k", 60.0)
    assert item is not None and item["n"] == 2


def test_update_sets_adds_appends_removes_and_returns_the_new_item(store: StateStore) -> None:
    first = store.update(
        "k",
        0.0,
        set_values={"a": "x", "expires_at": 100.0, "gone": 1},
        add={"count": 2, "marks": frozenset({"m1"})},
        append={"events": ["e1"]},
    )
    assert first["count"] == 2 and first["marks"] == {"m1"} and first["events"] == ["e1"]
    second = store.update(
        "k",
        0.0,
        add={"count": 3, "marks": frozenset({"m2"})},
        append={"events": ["e2", "e3"]},
        remove=["gone"],
    )
    assert second["count"] == 5
    assert second["marks"] == {"m1", "m2"}
    assert second["events"] == ["e1", "e2", "e3"]
    assert "gone" not in second and second["a"] == "x"


def test_conditions_compare_missing_any_all(store: StateStore) -> None:
    store.update("k", 0.0, set_values={"window_end": 10.0, "leader": "a", "expires_at": 99.0})
    opened = AnyOf((Absent(), Compare("window_end", "<=", 20.0), Compare("leader", "=", "b")))
    store.update("k", 20.0, set_values={"leader": "b"}, condition=opened)
    with pytest.raises(ConditionFailed) as failed:
        store.update(
            "k",
            5.0,
            set_values={"leader": "c"},
            condition=AnyOf((Absent(), Compare("window_end", "<=", 5.0))),
        )
    assert failed.value.current is not None and failed.value.current["leader"] == "b"
    store.update("k", 0.0, set_values={"x": 1}, condition=Missing("due_at"))
    store.update(
        "k",
        0.0,
        set_values={"y": 1},
        condition=AllOf((Compare("leader", "<>", ""), Compare("z", "<", 1, or_missing=True))),
    )
    with pytest.raises(ConditionFailed):
        store.update("k", 0.0, set_values={"y": 2}, condition=Compare("z", "<", 1))


def test_not_equal_is_false_on_a_missing_attribute_and_creates_no_item(store: StateStore) -> None:
    # moto evaluates `a <> :v` as true when `a` does not exist; Compare's contract is that a
    # missing attribute satisfies it only with or_missing. An update conditional on "an existing
    # claim" (status <> "") made an item of a stand-in claim that was never written.
    only_existing = Compare("status", "<>", "")
    with pytest.raises(ConditionFailed):
        store.update("absent", 0.0, set_values={"x": 1}, condition=only_existing)
    assert store.get("absent", 0.0) is None
    store.put("k", {"expires_at": 100.0}, 0.0)
    with pytest.raises(ConditionFailed):
        store.update("k", 0.0, set_values={"x": 1}, condition=only_existing)
    store.update("k", 0.0, set_values={"x": 2}, condition=Compare("status", "<>", "", True))
    assert store.get("k", 0.0) == {"pk": "k", "expires_at": 100.0, "x": 2}


def test_due_index_lists_due_keys_including_expired_until_cleared(store: StateStore) -> None:
    store.put("a", {"expires_at": 1000.0, **due_mark(10.0)}, 0.0)
    store.put("b", {"expires_at": 1000.0, **due_mark(20.0)}, 0.0)
    store.put("c", {"expires_at": 15.0, **due_mark(12.0)}, 0.0)  # expires before it is looked at
    store.put("d", {"expires_at": 1000.0}, 0.0)
    assert store.due(until=9.0, now=9.0) == []
    # Expired items are still listed (TTL deletes late): the scheduler takes them out.
    # In due order, the earliest first (a scheduler short of time does the oldest work first).
    assert store.due(until=20.0, now=16.0) == ["a", "c", "b"]
    assert store.due(until=20.0, now=16.0) == ["a", "c", "b"], "handing out does not clear"
    store.update("a", 16.0, remove=["due_pk", "due_at"])
    store.update("b", 16.0, set_values=due_mark(30.0))
    store.update(
        "c", 16.0, remove=["due_pk", "due_at"], condition=Compare("expires_at", "<=", 16.0)
    )
    assert store.due(until=25.0, now=25.0) == []
    assert store.due(until=30.0, now=25.0) == ["b"]


def test_due_index_pages_through_many_keys(store: StateStore) -> None:
    for i in range(120):
        store.put(f"k{i:03d}", {"expires_at": 1e6, "pad": "x" * 300, **due_mark(float(i))}, 0.0)
    assert len(store.due(until=1e9, now=0.0)) == 120


def test_group_query_returns_the_time_range_oldest_first(store: StateStore) -> None:
    for i, at in enumerate([5.0, 1.0, 3.0, 9.0]):
        store.put(f"e{i}", {"t": at, "expires_at": 1e6, **group_mark("inc#r#k#1.0", at)}, 0.0)
    store.put("other", {"expires_at": 1e6, **group_mark("inc#r#k#2.0", 4.0)}, 0.0)
    found = store.query_group("inc#r#k#1.0", after=1.0, until=5.0, now=0.0)
    assert [item["pk"] for item in found] == ["e2", "e0"]
    assert [item["t"] for item in found] == [3.0, 5.0]
    # Moving an item to another group takes it out of the first.
    store.update("e2", 0.0, set_values=group_mark("storm#r", 3.0))
    assert [i["pk"] for i in store.query_group("inc#r#k#1.0", 0.0, 100.0, 0.0)] == [
        "e1",
        "e0",
        "e3",
    ]


def test_group_query_leaves_out_expired_items_that_ttl_has_not_deleted(store: StateStore) -> None:
    # Issue 18, defect 8: DynamoDB's TTL deletes lazily and queries still return expired items.
    store.put("old", {"t": 1.0, "expires_at": 50.0, **group_mark("storm#r", 1.0)}, 0.0)
    store.put("new", {"t": 2.0, "expires_at": 1e6, **group_mark("storm#r", 2.0)}, 0.0)
    assert [i["pk"] for i in store.query_group("storm#r", 0.0, 10.0, now=40.0)] == ["old", "new"]
    assert [i["pk"] for i in store.query_group("storm#r", 0.0, 10.0, now=100.0)] == ["new"]
    assert store.get("old", 100.0) is None
