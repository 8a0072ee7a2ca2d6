"""DynamoStateStore alone (moto in-process): what it adds to the StateStore contract, which
tests/functional/test_state_store.py runs on both stores."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.aws.dynamo import DynamoStateStore
from chalicelib.core.errors import StateStoreError

TABLE = "mfawatch-test-state"  # the dynamodb fixture creates it; this test reads another


def test_dynamo_failures_are_state_store_errors(dynamodb: Any) -> None:
    store = DynamoStateStore(dynamodb, "no-such-table")
    with pytest.raises(StateStoreError, match="DynamoDB GetItem no-such-table"):
        store.get("k", 0.0)
    with pytest.raises(StateStoreError, match="MFAWATCH_TABLE_NAME"):
        DynamoStateStore(dynamodb, "")
