"""The DynamoDB edge: :class:`state.StateStore` on one on-demand table, client injected.

Table layout (``deploy/resources.yaml`` creates it; :func:`create_state_table` does the same for
tests and benchmarks):

| attribute | type | meaning |
|---|---|---|
| ``pk`` | S, partition key | ``evt#rule#eventID``, ``inc#rule#dedupkey``, ``fail#acct#who`` |
| ``v`` | N | version, incremented by every write; writes are conditional on it |
| ``doc`` | S | the JSON document the pure transitions work on |
| ``expires_at`` | N | epoch seconds; the table's TTL attribute (deletion lags: reads check it) |
| ``due_pk``/``due_at`` | S/N | set only while the item needs the scheduler: sparse GSI ``due`` |

Every write is a ``PutItem`` with ``ConditionExpression`` ``attribute_not_exists(pk)`` or
``v = :expected``, so two Lambda invocations never overwrite each other's transition.
"""

from __future__ import annotations

import json
import math
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from .errors import StateStoreError
from .state import Document, Versioned

DUE_INDEX = "due"
DUE_PARTITION = "due"


class DynamoStateStore:
    """State in DynamoDB. Raises :class:`StateStoreError` for anything but a lost condition."""

    def __init__(self, client: Any, table_name: str) -> None:
        if not table_name:
            raise StateStoreError("no DynamoDB table configured (MFAWATCH_TABLE_NAME)")
        self._client = client
        self._table = table_name
        self.calls = 0

    def get(self, key: str, now: float) -> Versioned:
        self.calls += 1
        try:
            response = self._client.get_item(
                TableName=self._table,
                Key={"pk": {"S": key}},
                ConsistentRead=True,
                ProjectionExpression="v, doc, expires_at",
            )
        except (ClientError, BotoCoreError) as exc:
            raise StateStoreError(f"DynamoDB GetItem {self._table} {key}: {exc}") from exc
        item = response.get("Item")
        if item is None:
            return Versioned(None, None)
        version = int(item["v"]["N"])
        if float(item["expires_at"]["N"]) <= now:
            return Versioned(None, version)  # expired, TTL has not deleted it yet
        document: Document = json.loads(item["doc"]["S"])
        return Versioned(document, version)

    def put(
        self,
        key: str,
        document: Document,
        expected_version: int | None,
        expires_at: float,
        due_at: float | None,
    ) -> bool:
        self.calls += 1
        item: dict[str, Any] = {
            "pk": {"S": key},
            "v": {"N": str((expected_version or 0) + 1)},
            "doc": {"S": json.dumps(document, sort_keys=True, separators=(",", ":"))},
            "expires_at": {"N": str(math.ceil(expires_at))},
        }
        if due_at is not None:
            item["due_pk"] = {"S": DUE_PARTITION}
            item["due_at"] = {"N": repr(float(due_at))}
        if expected_version is None:
            condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(pk)"}
        else:
            condition = {
                "ConditionExpression": "v = :expected",
                "ExpressionAttributeValues": {":expected": {"N": str(expected_version)}},
            }
        try:
            self._client.put_item(TableName=self._table, Item=item, **condition)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise StateStoreError(f"DynamoDB PutItem {self._table} {key}: {exc}") from exc
        except BotoCoreError as exc:
            raise StateStoreError(f"DynamoDB PutItem {self._table} {key}: {exc}") from exc
        return True

    def due(self, until: float, now: float) -> list[str]:
        # GSI reads are eventually consistent: a key may show up just after it was handled. That
        # is harmless, because every transition re-reads the item with ConsistentRead.
        keys: list[str] = []
        request: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": DUE_INDEX,
            "KeyConditionExpression": "due_pk = :due AND due_at <= :until",
            # Expired items still in the index (TTL lags) are handed out too: harmless, since the
            # transitions read them as absent and clear their due mark.
            "ExpressionAttributeValues": {
                ":due": {"S": DUE_PARTITION},
                ":until": {"N": repr(min(until, 1e15))},
            },
        }
        while True:
            self.calls += 1
            try:
                response = self._client.query(**request)
            except (ClientError, BotoCoreError) as exc:
                raise StateStoreError(f"DynamoDB Query {self._table}/{DUE_INDEX}: {exc}") from exc
            keys += [item["pk"]["S"] for item in response.get("Items", [])]
            if "LastEvaluatedKey" not in response:
                return sorted(set(keys))
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def create_state_table(client: Any, table_name: str) -> None:
    """Create the state table as ``deploy/resources.yaml`` does (tests, benchmarks, dev)."""
    client.create_table(
        TableName=table_name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "due_pk", "AttributeType": "S"},
            {"AttributeName": "due_at", "AttributeType": "N"},
        ],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": DUE_INDEX,
                "KeySchema": [
                    {"AttributeName": "due_pk", "KeyType": "HASH"},
                    {"AttributeName": "due_at", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ],
    )
    client.update_time_to_live(
        TableName=table_name,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"},
    )
