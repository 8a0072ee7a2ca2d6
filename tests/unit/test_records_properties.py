"""Whatever JSON arrives, parse_event returns a usable record or raises EventParseError.

Two generators: arbitrary JSON values (biased towards objects with the fields the parser reads),
and the real fixtures of tests/events/ with fields deleted or replaced by arbitrary values. No
KeyError, TypeError, ValueError or OverflowError may escape, and a record always has a non-empty
id and an aware UTC event time inside the documented range.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.core.errors import EventParseError
from chalicelib.core.records import (
    EVENT_TIME_MAX,
    EVENT_TIME_MIN,
    RECORD_FIELDS,
    SignInRecord,
    envelope_of,
    parse_event,
    record_event_id,
)
from tests.conftest import EVENTS, examples

FIXTURES = [json.loads(path.read_text(encoding="utf-8")) for path in sorted(EVENTS.glob("*.json"))]

# Field names the parser reads, so that generated objects reach its deeper branches.
FIELDS = [
    "detail",
    "detail-type",
    "source",
    "time",
    "account",
    "region",
    "id",
    "eventID",
    "eventName",
    "eventSource",
    "eventTime",
    "eventType",
    "userIdentity",
    "type",
    "arn",
    "userName",
    "principalId",
    "onBehalfOf",
    "userId",
    "sessionContext",
    "sessionIssuer",
    "additionalEventData",
    "MFAUsed",
    "MFAIdentifier",
    "MfaType",
    "CredentialType",
    "AuthWorkflowID",
    "UserName",
    "responseElements",
    "ConsoleLogin",
    "serviceEventDetails",
    "CredentialVerification",
    "requestParameters",
    "serialNumber",
    "errorMessage",
    "errorCode",
    "recipientAccountId",
    "awsRegion",
    "sourceIPAddress",
    "userAgent",
]

# Times that have broken parsers: overflow on UTC conversion, out of range, not ISO at all.
TIMES = st.sampled_from(
    [
        "9999-12-31T23:59:59Z",
        "9999-12-31T23:59:59-01:00",
        "0001-01-01T00:00:00+01:00",
        "0001-01-01T00:00:00Z",
        "1970-01-01T00:00:00Z",
        "2026-11-02T09:00:08Z",
        "2026-11-02T09:00:08.123456+05:30",
        "2026-02-30T00:00:00Z",
        "",
        "Z",
        "XXXX",
    ]
)

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
    | TIMES
)
KEYS = st.sampled_from(FIELDS) | st.text(max_size=12)
JSON = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=6),
    max_leaves=25,
)

PROPERTIES = settings(
    max_examples=examples(200), deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def check_parse(event: Any) -> SignInRecord | None:
    """Parse ``event``; assert the record's invariants, or that the error is EventParseError."""
    try:
        record = parse_event(event)
    except EventParseError as exc:
        assert str(exc)
        return None
    assert isinstance(record.event_id, str) and record.event_id.strip()
    assert record.event_time.tzinfo is UTC
    assert EVENT_TIME_MIN <= record.event_time < EVENT_TIME_MAX
    record.event_time.timestamp()  # never overflows
    assert isinstance(record.time_problem, str)
    for name in RECORD_FIELDS:
        assert isinstance(record.title_value(name), str)
    assert record.console_url.endswith(record.event_id)
    return record


@PROPERTIES
@given(JSON)
def test_any_json_value_parses_or_raises_event_parse_error(event: Any) -> None:
    check_parse(event)


@PROPERTIES
@given(st.dictionaries(KEYS, JSON, max_size=8), st.dictionaries(KEYS, JSON, max_size=8))
def test_any_envelope_shape_parses_or_raises_event_parse_error(
    envelope: dict[str, Any], detail: dict[str, Any]
) -> None:
    check_parse({**envelope, "source": "aws.signin", "detail": detail})


def _mutate(document: Any, path: list[int], action: int, value: Any) -> Any:
    """Walk ``path`` (indexes into each level's keys/items), then delete or replace there."""
    node = document
    for step in path:
        if not isinstance(node, (dict, list)) or not node:
            break
        children = list(node) if isinstance(node, dict) else list(range(len(node)))
        key = children[step % len(children)]
        child = node[key]
        if not isinstance(child, (dict, list)) or action % 3 == 0:
            if action % 2 and isinstance(node, dict):
                del node[key]
            else:
                node[key] = value
            return document
        node = child
    return value if action % 5 == 0 else document


@PROPERTIES
@given(
    st.sampled_from(FIXTURES),
    st.lists(
        st.tuples(st.lists(st.integers(0, 50), max_size=5), st.integers(0, 30), JSON),
        min_size=1,
        max_size=6,
    ),
)
def test_mutated_real_events_parse_or_raise_event_parse_error(
    fixture: dict[str, Any], mutations: list[tuple[list[int], int, Any]]
) -> None:
    event: Any = copy.deepcopy(fixture)
    for path, action, value in mutations:
        event = _mutate(event, path, action, value)
    check_parse(event)


@PROPERTIES
@given(st.sampled_from(FIXTURES), st.dictionaries(KEYS, JSON, max_size=4))
def test_derived_ids_are_stable_and_follow_the_content(
    fixture: dict[str, Any], changes: dict[str, Any]
) -> None:
    record = {k: v for k, v in fixture.get("detail", fixture).items() if k != "eventID"}
    changed = {k: v for k, v in (record | changes).items() if k != "eventID"}
    first = record_event_id(record)
    assert first.startswith("derived-")
    assert record_event_id(dict(reversed(list(record.items())))) == first
    assert record_event_id(copy.deepcopy(record)) == first
    if json.dumps(changed, sort_keys=True, default=str) != json.dumps(
        record, sort_keys=True, default=str
    ):
        assert record_event_id(changed) != first
    assert envelope_of(record)["id"] == envelope_of(copy.deepcopy(record))["id"]
