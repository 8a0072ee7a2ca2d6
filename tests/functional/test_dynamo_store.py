"""DynamoStateStore against moto in-process: conditional writes, expiry on read, the due index."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws

from chalicelib.config import Settings
from chalicelib.decisions import Claim, claim_event, save_outbox
from chalicelib.dynamo import DynamoStateStore, create_state_table
from chalicelib.errors import StateStoreError
from chalicelib.records import envelope_of
from chalicelib.rules import load_bundle
from chalicelib.service import AlertService, MemoryPublisher
from chalicelib.state import Versioned, transact
from tests.conftest import load_event

TABLE = "mfawatch-test-state"


@pytest.fixture
def dynamodb(aws_credentials: None) -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_state_table(client, TABLE)
        yield client


@pytest.fixture
def store(dynamodb: Any) -> DynamoStateStore:
    return DynamoStateStore(dynamodb, TABLE)


def test_conditional_put_and_version(store: DynamoStateStore, dynamodb: Any) -> None:
    assert store.get("k", 0.0) == Versioned(None, None)
    assert store.put("k", {"n": 1, "s": "é"}, None, expires_at=100.5, due_at=None)
    assert store.get("k", 0.0) == Versioned({"n": 1, "s": "é"}, 1)
    assert not store.put("k", {"n": 2}, None, 100.0, None), "exists: 'absent' condition fails"
    assert not store.put("k", {"n": 2}, 5, 100.0, None), "stale version fails"
    assert store.put("k", {"n": 2}, 1, 100.0, None)
    assert store.get("k", 0.0) == Versioned({"n": 2}, 2)
    item = dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": "k"}})["Item"]
    assert item["v"] == {"N": "2"} and item["expires_at"] == {"N": "100"}
    assert "due_pk" not in item
    assert store.calls == 7


def test_expired_item_reads_as_absent_and_is_replaced_on_its_version(
    store: DynamoStateStore,
) -> None:
    store.put("k", {"n": 1}, None, expires_at=50.0, due_at=None)
    assert store.get("k", 49.0).document == {"n": 1}
    assert store.get("k", 50.0) == Versioned(None, 1), "TTL has not deleted it: still expired"
    assert not store.put("k", {"n": 9}, None, 500.0, None)
    assert store.put("k", {"n": 9}, 1, 500.0, None)
    assert store.get("k", 60.0) == Versioned({"n": 9}, 2)


def test_due_index_lists_due_keys_and_forgets_them_when_rewritten(
    store: DynamoStateStore,
) -> None:
    store.put("a", {}, None, 1e10, due_at=10.0)
    store.put("b", {}, None, 1e10, due_at=20.5)
    store.put("c", {}, None, 1e10, due_at=None)
    assert store.due(until=9.0, now=9.0) == []
    assert store.due(until=10.0, now=10.0) == ["a"]
    assert store.due(until=float("inf"), now=10.0) == ["a", "b"]
    store.put("a", {}, 1, 1e10, due_at=None)  # sparse index: the rewrite removes it
    assert store.due(until=30.0, now=30.0) == ["b"]


def test_due_index_pages_through_many_keys(store: DynamoStateStore, dynamodb: Any) -> None:
    big = {"pad": "x" * 3000}
    for i in range(400):  # ~1.2 MB of items; the KEYS_ONLY index still pages at 1 MB of keys
        store.put(f"k{i:04d}", big, None, 1e10, due_at=float(i))
    calls = store.calls
    keys = store.due(until=1e9, now=0.0)
    assert keys == [f"k{i:04d}" for i in range(400)]
    assert store.calls >= calls + 1


def test_transitions_race_free_through_the_store(store: DynamoStateStore) -> None:
    claim = transact(store, "evt#r#e1", 0.0, claim_event(0.0, 90.0, 3600.0))
    assert claim.claim is Claim.NEW
    busy = transact(store, "evt#r#e1", 10.0, claim_event(10.0, 90.0, 3600.0))
    assert busy.claim is Claim.IN_PROGRESS
    transact(store, "evt#r#e1", 11.0, save_outbox([], 11.0, 90.0, 3600.0))
    done = transact(store, "evt#r#e1", 12.0, claim_event(12.0, 90.0, 3600.0))
    assert done.claim is Claim.DUPLICATE


def test_missing_table_raises_state_store_error(dynamodb: Any) -> None:
    store = DynamoStateStore(dynamodb, "no-such-table")
    with pytest.raises(StateStoreError, match="DynamoDB GetItem no-such-table k"):
        store.get("k", 0.0)
    with pytest.raises(StateStoreError, match="DynamoDB PutItem no-such-table k"):
        store.put("k", {}, None, 1.0, None)
    with pytest.raises(StateStoreError, match="DynamoDB Query no-such-table/due"):
        store.due(1.0, 1.0)


def test_no_table_name_is_a_clear_error(dynamodb: Any) -> None:
    with pytest.raises(StateStoreError, match="MFAWATCH_TABLE_NAME"):
        DynamoStateStore(dynamodb, "")


def test_service_on_dynamodb_alerts_once_and_summarizes(store: DynamoStateStore) -> None:
    publisher = MemoryPublisher()
    service = AlertService(load_bundle(), publisher, store, Settings())
    for i in range(4):
        record = load_event("iam-consolelogin-failure-mfa-yes")
        record["eventID"] = f"e{i}"
        record["eventTime"] = f"2026-11-02T09:00:0{i}Z"
        for _ in range(2):  # every event delivered twice
            service.handle(
                "iam-console-mfa-failure",
                envelope_of(record),
                datetime(2026, 11, 2, 9, 0, 10, tzinfo=UTC),
            )
    assert [n.kind for n in publisher.sent] == ["alert"]
    assert service.tick(datetime(2026, 11, 2, 9, 14, 59, tzinfo=UTC)) == []
    (summary,) = service.tick(datetime(2026, 11, 2, 9, 15, 1, tzinfo=UTC))
    assert summary.title == "3 more failed MFA attempts for ops-admin from 203.0.113.7"
    assert summary.event_ids == ("e1", "e2", "e3")
    assert service.tick(datetime(2026, 11, 2, 9, 16, 1, tzinfo=UTC)) == []
