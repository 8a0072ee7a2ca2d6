"""The DynamoDB edge: :class:`state.StateStore` on one on-demand table, client injected.

Table layout (``deploy/resources.yaml`` creates it; :func:`create_state_table` does the same for
tests and benchmarks):

| attribute | type | meaning |
|---|---|---|
| ``pk`` | S, partition key | ``<kind>#...`` (see :class:`state.KeyKind`) |
| ``expires_at`` | N | epoch seconds; the table's TTL attribute (deletion lags: reads check it) |
| ``due_pk``/``due_at`` | S/N | set only while the item needs the scheduler: sparse GSI ``due`` |
| ``grp_pk``/``grp_at`` | S/N | items the scheduler merges (repeats, held ones): GSI ``group`` |
| others | any | the item's fields (:mod:`chalicelib.core.documents`) |

Every request is one ``GetItem`` (consistent), ``PutItem``, ``UpdateItem`` or ``Query``. Conditional
writes ask for the item on a failed condition (``ReturnValuesOnConditionCheckFailure=ALL_OLD``,
https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_UpdateItem.html), so a
conflict costs no second read.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..core.errors import StateStoreError
from ..core.state import (
    DUE_AT,
    DUE_PARTITION,
    DUE_PK,
    EXPIRES_AT,
    GROUP_AT,
    GROUP_PK,
    Absent,
    AllOf,
    AnyOf,
    Compare,
    Condition,
    ConditionFailed,
    Item,
    Missing,
    expired,
)

DUE_INDEX = "due"
GROUP_INDEX = "group"


def _number(value: float | Decimal) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        raise StateStoreError(f"cannot store the number {value!r}")
    return repr(value) if isinstance(value, float) else str(value)


#: Python types and their AttributeValue tags, in the order tried (a bool is an int too).
_ATTRIBUTES: tuple[tuple[Any, str, Callable[[Any], Any]], ...] = (
    (bool, "BOOL", lambda value: value),
    (int | float | Decimal, "N", _number),
    (str, "S", lambda value: value),
    (set | frozenset, "SS", lambda value: sorted(str(v) for v in value)),
    (Mapping, "M", lambda value: {str(k): to_attribute(v) for k, v in value.items()}),
    (list | tuple, "L", lambda value: [to_attribute(v) for v in value]),
    (type(None), "NULL", lambda _: True),
)


def to_attribute(value: Any) -> dict[str, Any]:
    """A Python value as a DynamoDB AttributeValue."""
    for kind, tag, convert in _ATTRIBUTES:
        if isinstance(value, kind):
            return {tag: convert(value)}
    raise StateStoreError(f"cannot store a {type(value).__name__}")


def from_attribute(attribute: Mapping[str, Any]) -> Any:
    """A DynamoDB AttributeValue as a Python value."""
    (tag, value), *_ = attribute.items()
    if tag == "N":
        text = str(value)
        return int(text) if text.lstrip("-").isdigit() else float(text)
    if tag in {"S", "BOOL"}:
        return value
    if tag == "SS":
        return set(value)
    if tag == "M":
        return {k: from_attribute(v) for k, v in value.items()}
    if tag == "L":
        return [from_attribute(v) for v in value]
    if tag == "NULL":
        return None
    raise StateStoreError(f"unexpected attribute type {tag}")


def from_item(item: Mapping[str, Any]) -> Item:
    return {name: from_attribute(value) for name, value in item.items()}


class _Expression:
    """Placeholders for names and values of one request."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.values: dict[str, Any] = {}

    def name(self, attribute: str) -> str:
        for placeholder, known in self.names.items():
            if known == attribute:
                return placeholder
        placeholder = f"#n{len(self.names)}"
        self.names[placeholder] = attribute
        return placeholder

    def value(self, value: Any) -> str:
        placeholder = f":v{len(self.values)}"
        self.values[placeholder] = to_attribute(value)
        return placeholder

    def condition(self, condition: Condition, now: float) -> str:
        if isinstance(condition, Absent):
            return (
                f"(attribute_not_exists({self.name('pk')}) OR "
                f"{self.name(EXPIRES_AT)} <= {self.value(now)})"
            )
        if isinstance(condition, Missing):
            return f"attribute_not_exists({self.name(condition.attribute)})"
        if isinstance(condition, AnyOf | AllOf):
            joint = " OR " if isinstance(condition, AnyOf) else " AND "
            return "(" + joint.join(self.condition(c, now) for c in condition.conditions) + ")"
        return self._compare(condition)

    def _compare(self, condition: Compare) -> str:
        name = self.name(condition.attribute)
        compare = f"{name} {condition.op} {self.value(condition.value)}"
        if condition.or_missing:
            return f"(attribute_not_exists({name}) OR {compare})"
        if condition.op == "<>":
            # moto evaluates `a <> :v` as true when `a` does not exist (DynamoDB's reference
            # does not say): spelled out, "an existing claim" never creates one on either.
            return f"(attribute_exists({name}) AND {compare})"
        return compare

    def request(self) -> dict[str, Any]:
        request: dict[str, Any] = {}
        if self.names:
            request["ExpressionAttributeNames"] = self.names
        if self.values:
            request["ExpressionAttributeValues"] = self.values
        return request


class DynamoStateStore:
    """State in DynamoDB. Raises :class:`StateStoreError` for anything but a failed condition."""

    def __init__(self, client: Any, table_name: str) -> None:
        if not table_name:
            raise StateStoreError("no DynamoDB table configured (MFAWATCH_TABLE_NAME)")
        self._client = client
        self._table = table_name
        self.calls = 0

    def _call(self, operation: str, key: str, **request: Any) -> dict[str, Any]:
        self.calls += 1
        try:
            response: dict[str, Any] = getattr(self._client, operation)(
                TableName=self._table, **request
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                raise ConditionFailed(key, self._failed_item(exc)) from exc
            raise StateStoreError(f"DynamoDB {_api(operation)} {self._table} {key}: {exc}") from exc
        except BotoCoreError as exc:
            raise StateStoreError(f"DynamoDB {_api(operation)} {self._table} {key}: {exc}") from exc
        return response

    def _failed_item(self, exc: ClientError) -> Item | None:
        raw: Mapping[str, Any] | None = exc.response.get("Item")  # type: ignore[assignment]
        return from_item(raw) if raw else None

    def _current(self, failed: ConditionFailed, now: float) -> Item | None:
        """The item a failed condition returned; read it when the response carried none (DynamoDB
        returns it whenever the item exists; emulators may not), so callers can rely on it."""
        if failed.current is not None:
            return self._live(failed.current, now)
        return self.get(failed.key, now)

    def _live(self, item: Item | None, now: float) -> Item | None:
        if item is None or expired(item, now):
            return None
        return item

    def get(self, key: str, now: float) -> Item | None:
        response = self._call("get_item", key, Key={"pk": {"S": key}}, ConsistentRead=True)
        raw = response.get("Item")
        return self._live(from_item(raw), now) if raw else None

    def put(self, key: str, item: Item, now: float, condition: Condition | None = None) -> None:
        expression = _Expression()
        request: dict[str, Any] = {
            "Item": {"pk": {"S": key}, **{k: to_attribute(v) for k, v in item.items() if k != "pk"}}
        }
        if condition is not None:
            request["ConditionExpression"] = expression.condition(condition, now)
            request["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
            request.update(expression.request())
        try:
            self._call("put_item", key, **request)
        except ConditionFailed as failed:
            raise ConditionFailed(key, self._current(failed, now)) from None

    def update(
        self,
        key: str,
        now: float,
        *,
        set_values: Mapping[str, Any] | None = None,
        add: Mapping[str, int | float | frozenset[str]] | None = None,
        append: Mapping[str, list[Any]] | None = None,
        remove: Sequence[str] = (),
        condition: Condition | None = None,
    ) -> Item:
        e = _Expression()
        sets = [f"{e.name(n)} = {e.value(v)}" for n, v in (set_values or {}).items()]
        sets += [
            f"{e.name(n)} = list_append(if_not_exists({e.name(n)}, {e.value([])}), {e.value(v)})"
            for n, v in (append or {}).items()
        ]
        adds = [
            f"{e.name(n)} {e.value(set(v) if isinstance(v, frozenset) else v)}"
            for n, v in (add or {}).items()
            if not (isinstance(v, frozenset) and not v)
        ]
        removes = [e.name(n) for n in remove if n not in (set_values or {})]
        clauses = []
        if sets:
            clauses.append("SET " + ", ".join(sets))
        if adds:
            clauses.append("ADD " + ", ".join(adds))
        if removes:
            clauses.append("REMOVE " + ", ".join(removes))
        if not clauses:
            clauses.append(f"SET {e.name('touched_at')} = {e.value(now)}")
        request: dict[str, Any] = {
            "Key": {"pk": {"S": key}},
            "UpdateExpression": " ".join(clauses),
            "ReturnValues": "ALL_NEW",
        }
        if condition is not None:
            request["ConditionExpression"] = e.condition(condition, now)
            request["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        request.update(e.request())
        try:
            response = self._call("update_item", key, **request)
        except ConditionFailed as failed:
            raise ConditionFailed(key, self._current(failed, now)) from None
        return from_item(response.get("Attributes", {}))

    def query_group(self, group: str, after: float, until: float, now: float) -> list[Item]:
        # Index reads are eventually consistent: the scheduler compares what it finds with what
        # it counted before (chalicelib.pipeline.scheduler, "band"). BETWEEN is inclusive; ``after``
        # is excluded below. Expired items are still returned until TTL deletes them (typically
        # within a few days; https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/
        # ttl-expired-items.html): the filter leaves them out, and the client checks again.
        request: dict[str, Any] = {
            "IndexName": GROUP_INDEX,
            "KeyConditionExpression": "#g = :g AND #a BETWEEN :after AND :until",
            "FilterExpression": "attribute_not_exists(#x) OR #x > :now",
            "ExpressionAttributeNames": {"#g": GROUP_PK, "#a": GROUP_AT, "#x": EXPIRES_AT},
            "ExpressionAttributeValues": {
                ":g": {"S": group},
                ":after": {"N": repr(float(max(after, 0.0)))},
                ":until": {"N": repr(float(min(until, 1e15)))},
                ":now": {"N": repr(float(now))},
            },
        }
        found = [
            i
            for i in self._query(group, request)
            if float(i[GROUP_AT]) > after and not expired(i, now)
        ]
        return sorted(found, key=lambda i: (float(i[GROUP_AT]), str(i["pk"])))

    def due(self, until: float, now: float) -> list[str]:
        # Index reads are eventually consistent: a key may show up just after it was handled.
        # That is harmless, because the scheduler re-reads every item consistently. Expired items
        # are still listed (TTL lags; the index projects keys only, so it cannot filter on the
        # expiry): the scheduler takes them out. The index returns them in due order (its sort
        # key), which the scheduler keeps: the earliest due first.
        request: dict[str, Any] = {
            "IndexName": DUE_INDEX,
            "KeyConditionExpression": "#p = :due AND #a <= :until",
            "ExpressionAttributeNames": {"#p": DUE_PK, "#a": DUE_AT},
            "ExpressionAttributeValues": {
                ":due": {"S": DUE_PARTITION},
                ":until": {"N": repr(float(min(until, 1e15)))},
            },
        }
        ordered = sorted(
            self._query(DUE_INDEX, request), key=lambda i: (float(i[DUE_AT]), str(i["pk"]))
        )
        return list(dict.fromkeys(str(item["pk"]) for item in ordered))

    def _query(self, what: str, request: dict[str, Any]) -> list[Item]:
        """Every page of a query (1 MB each)."""
        items: list[Item] = []
        while True:
            response = self._call("query", what, **request)
            items += [from_item(i) for i in response.get("Items", [])]
            if "LastEvaluatedKey" not in response:
                return items
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def _api(operation: str) -> str:
    """``put_item`` -> ``PutItem``, as AWS names the API in its docs and errors."""
    return "".join(part.title() for part in operation.split("_"))


#: The table's key and index definitions, shared by :func:`create_state_table` and the test that
#: keeps ``deploy/resources.yaml`` equal to them.
ATTRIBUTE_DEFINITIONS = [
    {"AttributeName": "pk", "AttributeType": "S"},
    {"AttributeName": DUE_PK, "AttributeType": "S"},
    {"AttributeName": DUE_AT, "AttributeType": "N"},
    {"AttributeName": GROUP_PK, "AttributeType": "S"},
    {"AttributeName": GROUP_AT, "AttributeType": "N"},
]
GLOBAL_SECONDARY_INDEXES = [
    {
        "IndexName": DUE_INDEX,
        "KeySchema": [
            {"AttributeName": DUE_PK, "KeyType": "HASH"},
            {"AttributeName": DUE_AT, "KeyType": "RANGE"},
        ],
        "Projection": {"ProjectionType": "KEYS_ONLY"},
    },
    {
        "IndexName": GROUP_INDEX,
        "KeySchema": [
            {"AttributeName": GROUP_PK, "KeyType": "HASH"},
            {"AttributeName": GROUP_AT, "KeyType": "RANGE"},
        ],
        "Projection": {"ProjectionType": "ALL"},
    },
]


def create_state_table(client: Any, table_name: str) -> None:
    """Create the state table as ``deploy/resources.yaml`` does (tests, benchmarks, dev)."""
    client.create_table(
        TableName=table_name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=ATTRIBUTE_DEFINITIONS,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        GlobalSecondaryIndexes=GLOBAL_SECONDARY_INDEXES,
    )
    client.update_time_to_live(
        TableName=table_name,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": EXPIRES_AT},
    )
