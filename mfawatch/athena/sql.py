"""The Organization-scale backtest on Athena, pure part: the table, the query, rows -> records.

Athena finds the *candidates* (records that may match a rule) where the trail lives, scanning
in parallel and pruning by account, region and date; the decisions stay in our one code path
(:func:`mfawatch.replay.runner.replay_timed`). Three pieces, no AWS SDK (the calls are in
:mod:`mfawatch.athena.client`):

* :func:`create_table_ddl` - AWS's documented CloudTrail table with partition projection
  (https://docs.aws.amazon.com/athena/latest/ug/create-cloudtrail-table-partition-projection.html),
  its location template spread over the account and region folders of a trail so that one
  table covers an Organization trail (``AWSLogs/<org-id>/<account>/...``) or an account trail.
* :func:`backtest_select` - the query, in Athena's dialect (Trino). Its rule part is generated
  from the compiled rule patterns (:mod:`mfawatch.patterns.requirements`), never written per rule.
* :func:`record_from_row` - a CloudTrail record rebuilt from one result row, for the engine.

The table keeps the columns of :data:`COLUMNS`: every field of AWS's table, which includes
every field the rules and :mod:`chalicelib.core.records` read (a test checks it). Objects whose
shape varies by service (``requestParameters``, ``responseElements``, ``additionalEventData``,
``serviceEventDetails``, ``edgeDeviceDetails``) are kept as JSON strings, read in SQL with
``json_extract_scalar``; the rebuilt record decodes them back.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.core.records import is_cloudtrail_record
from chalicelib.core.rules import Rule
from mfawatch.errors import AthenaError
from mfawatch.patterns.requirements import (
    AllOf,
    AnyOf,
    Condition,
    OneOf,
    StartsWith,
    pattern_condition,
)
from mfawatch.replay.archive import DEFAULT_LATENESS, TimeRange
from mfawatch.replay.readers import ReadStats, SourcedEvent, documents_in, items_of
from mfawatch.replay.runner import TimedEvent, timed

# ---------------------------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """One field of a CloudTrail record as the table keeps it.

    ``name`` is CloudTrail's spelling (the table's column is its lower case: Athena names are
    case-insensitive and the JSON SerDe matches keys that way). ``kind`` is ``string``,
    ``json`` (an object kept as its JSON text), ``struct``, ``array`` (of a struct) or ``map``.
    """

    name: str
    kind: str = "string"
    fields: tuple[Column, ...] = ()

    @property
    def sql_name(self) -> str:
        return self.name.lower()

    def member(self, name: str) -> Column | None:
        return next((field for field in self.fields if field.name == name), None)


def _s(*names: str) -> tuple[Column, ...]:
    return tuple(Column(name) for name in names)


# AWS's table (the page cited in the module docstring), field for field, in its order.
COLUMNS: tuple[Column, ...] = (
    Column("eventVersion"),
    Column(
        "userIdentity",
        "struct",
        (
            *_s("type", "principalId", "arn", "accountId", "invokedBy", "accessKeyId", "userName"),
            Column("onBehalfOf", "struct", _s("userId", "identityStoreArn")),
            Column(
                "sessionContext",
                "struct",
                (
                    Column("attributes", "struct", _s("mfaAuthenticated", "creationDate")),
                    Column(
                        "sessionIssuer",
                        "struct",
                        _s("type", "principalId", "arn", "accountId", "userName"),
                    ),
                    Column("ec2RoleDelivery"),
                    Column(
                        "webIdFederationData",
                        "struct",
                        (Column("federatedProvider"), Column("attributes", "map")),
                    ),
                ),
            ),
        ),
    ),
    *_s(
        "eventTime",
        "eventSource",
        "eventName",
        "awsRegion",
        "sourceIPAddress",
        "userAgent",
        "errorCode",
        "errorMessage",
    ),
    Column("requestParameters", "json"),
    Column("responseElements", "json"),
    Column("additionalEventData", "json"),
    *_s("requestID", "eventID", "readOnly"),
    Column("resources", "array", _s("ARN", "accountId", "type")),
    *_s("eventType", "apiVersion", "recipientAccountId"),
    Column("serviceEventDetails", "json"),
    *_s("sharedEventID", "vpcEndpointId", "vpcEndpointAccountId", "eventCategory"),
    Column(
        "addendum", "struct", _s("reason", "updatedFields", "originalRequestID", "originalEventID")
    ),
    Column("sessionCredentialFromConsole"),
    Column("edgeDeviceDetails", "json"),
    Column("tlsDetails", "struct", _s("tlsVersion", "cipherSuite", "clientProvidedHostHeader")),
)
_BY_SQL_NAME = {column.sql_name: column for column in COLUMNS}

# Partition columns (projected from the S3 path, never read from the files) and the pseudo
# column that names the log file each row came from (reported with problems).
PARTITIONS = ("account", "region", "date")
SOURCE_COLUMN = "mfawatch_source_file"

_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_PREFIX = re.compile(r"^[A-Za-z0-9!_.*'()/-]*$")
_ORG_ID = re.compile(r"^o-[a-z0-9]{10,32}$")
_ACCOUNT = re.compile(r"^\d{12}$")
_REGION = re.compile(r"^[a-z]{2}(?:-[a-z]+)+-\d$")
_JSON_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _checked(kind: str, value: str, pattern: re.Pattern[str]) -> str:
    if not pattern.match(value):
        raise AthenaError(f"{kind} {value!r} is not valid (expected {pattern.pattern})")
    return value


def _column_type(column: Column) -> str:
    if column.kind == "struct":
        members = ", ".join(f"{f.sql_name}: {_column_type(f)}" for f in column.fields)
        return f"STRUCT<{members}>"
    if column.kind == "array":
        members = ", ".join(f"{f.sql_name}: {_column_type(f)}" for f in column.fields)
        return f"ARRAY<STRUCT<{members}>>"
    if column.kind == "map":
        return "MAP<STRING, STRING>"
    return "STRING"


def trail_location(bucket: str, prefix: str, org_id: str | None) -> str:
    """``s3://bucket/[prefix/]AWSLogs/[org-id/]``: where a trail's account folders are."""
    _checked("bucket", bucket, _BUCKET)
    _checked("prefix", prefix, _PREFIX)
    parts = [bucket, *[p for p in prefix.strip("/").split("/") if p], "AWSLogs"]
    if org_id:
        parts.append(_checked("Organization id", org_id, _ORG_ID))
    return "s3://" + "/".join(parts) + "/"


def create_table_ddl(
    table: str,
    bucket: str,
    prefix: str = "",
    *,
    org_id: str | None = None,
    regions: Sequence[str],
    accounts: Sequence[str] = (),
    first_day: str = "2020/01/01",
) -> str:
    """The ``CREATE EXTERNAL TABLE`` for a trail, with partition projection.

    ``region`` is an ``enum`` of ``regions``. ``account`` is an ``enum`` of ``accounts`` when
    given, else ``injected``: Athena then requires every query to name its accounts
    (``--accounts``), which suits an Organization whose accounts come and go. ``date`` is a
    daily ``date`` projection from ``first_day`` to now, in CloudTrail's ``yyyy/MM/dd`` folders.
    """
    _checked("table", table, _TABLE)
    if not regions:
        raise AthenaError("the table needs the trail's regions (--regions)")
    for region in regions:
        _checked("region", region, _REGION)
    for account in accounts:
        _checked("account", account, _ACCOUNT)
    _checked("first day", first_day, re.compile(r"^\d{4}/\d{2}/\d{2}$"))
    location = trail_location(bucket, prefix, org_id)
    columns = ",\n".join(f"  `{c.sql_name}` {_column_type(c)}" for c in COLUMNS)
    account_projection = (
        "  'projection.account.type'='enum',\n"
        f"  'projection.account.values'='{','.join(accounts)}',"
        if accounts
        else "  'projection.account.type'='injected',"
    )
    return (
        f"CREATE EXTERNAL TABLE IF NOT EXISTS {table} (\n{columns}\n)\n"
        "PARTITIONED BY (`account` STRING, `region` STRING, `date` STRING)\n"
        "ROW FORMAT SERDE 'org.apache.hive.hcatalog.data.JsonSerDe'\n"
        "STORED AS INPUTFORMAT 'com.amazon.emr.cloudtrail.CloudTrailInputFormat'\n"
        "OUTPUTFORMAT 'org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat'\n"
        f"LOCATION '{location}'\n"
        "TBLPROPERTIES (\n"
        "  'projection.enabled'='true',\n"
        f"{account_projection}\n"
        "  'projection.region.type'='enum',\n"
        f"  'projection.region.values'='{','.join(regions)}',\n"
        "  'projection.date.type'='date',\n"
        "  'projection.date.format'='yyyy/MM/dd',\n"
        f"  'projection.date.range'='{first_day},NOW',\n"
        "  'projection.date.interval'='1',\n"
        "  'projection.date.interval.unit'='DAYS',\n"
        f"  'storage.location.template'='{location}${{account}}/CloudTrail/${{region}}/${{date}}'\n"
        ")\n"
    )


# ---------------------------------------------------------------------------------------------
# The query
# ---------------------------------------------------------------------------------------------


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _in_list(values: Iterable[str]) -> str:
    return "(" + ", ".join(_literal(v) for v in sorted(values)) + ")"


@dataclass(frozen=True)
class _Field:
    """Where a pattern path lives in the table: an expression, and for a field inside a JSON
    column, the column and the JSON paths of the field and of each object above it."""

    expression: str
    json_column: str | None = None
    json_paths: tuple[str, ...] = ()


def _field(path: Sequence[str]) -> _Field | None:
    """The SQL for a pattern path, or None when the table cannot say (the condition widens)."""
    # Patterns address the EventBridge envelope; the record is its "detail". Envelope fields
    # (source, detail-type, account, ...) are derived from the record: widen on them.
    if len(path) < 2 or path[0] != "detail":
        return None
    column = _BY_SQL_NAME.get(path[1].lower())
    if column is None or column.name != path[1]:
        return None  # not a column, or another spelling that CloudTrail never writes
    rest = path[2:]
    if column.kind == "json":
        if not rest or not all(_JSON_KEY.match(key) for key in rest):
            return None
        paths = tuple("$." + ".".join(rest[: n + 1]) for n in range(len(rest)))
        return _Field(
            f"json_extract_scalar({column.sql_name}, {_literal(paths[-1])})",
            column.sql_name,
            paths,
        )
    expression = column.sql_name
    for key in rest:
        member = column.member(key) if column.kind == "struct" else None
        if member is None:
            return None
        column = member
        expression += f".{column.sql_name}"
    return _Field(expression) if column.kind == "string" else None


def condition_sql(condition: Condition) -> str:
    """A condition as a Trino boolean expression; ``TRUE`` where it widens."""
    if isinstance(condition, (AnyOf, StartsWith)):
        return _value_sql(condition)
    if isinstance(condition, (AllOf, OneOf)):
        parts = [condition_sql(part) for part in condition.parts]
        if isinstance(condition, OneOf):
            return "TRUE" if "TRUE" in parts else "(" + " OR ".join(parts) + ")"
        # Plain columns first (eventsource, eventname: cheap and selective), JSON reads after.
        kept = sorted((part for part in parts if part != "TRUE"), key=lambda p: "json_" in p)
        kept = kept or ["TRUE"]
        return kept[0] if len(kept) == 1 else "(" + " AND ".join(kept) + ")"
    return "TRUE"


def _value_sql(condition: AnyOf | StartsWith) -> str:
    """A field's values or prefix as SQL (``TRUE`` when the field is not a string column)."""
    field = _field(condition.path)
    if field is None:
        return "TRUE"
    if isinstance(condition, StartsWith):
        test = f"starts_with({field.expression}, {_literal(condition.prefix)})"
    elif condition.ignore_case:
        test = f"lower({field.expression}) IN {_in_list(condition.values)}"
    else:
        test = f"{field.expression} IN {_in_list(condition.values)}"
    if field.json_column is None:
        return test
    # The engine also matches an array holding the value, or an array of objects on the
    # way to it; json_extract_scalar gives NULL there, so an array at the field or above
    # it keeps the row (a superset, never a miss).
    arrays = [
        f"json_format(json_extract({field.json_column}, {_literal(path)})) LIKE '[%'"
        for path in field.json_paths
    ]
    return "(" + " OR ".join([test, *arrays]) + ")"


def _event_time_bound(moment: datetime, *, upper: bool = False) -> str:
    # CloudTrail writes eventTime as 2026-11-02T09:05:12Z (sometimes with a fraction). Without
    # the "Z", the bound sorts before every spelling of the same second: the string comparison
    # keeps the records at or after `since` and before `until`. A fraction of a second in a
    # bound widens it to the whole second (replay then applies the exact range).
    moment = moment.astimezone(UTC)
    if upper and moment.microsecond:
        moment = moment.replace(microsecond=0) + timedelta(seconds=1)
    return _literal(moment.strftime("%Y-%m-%dT%H:%M:%S"))


def backtest_select(
    rules: Iterable[Rule],
    table: str,
    time_range: TimeRange,
    *,
    accounts: Sequence[str] = (),
    regions: Sequence[str] = (),
    lateness: timedelta = DEFAULT_LATENESS,
) -> str:
    """The backtest query: every column of the records that may match one of ``rules``.

    Partitions: the accounts and regions given, and the delivery-date folders that can hold
    events of the range (events precede their file's delivery by up to ``lateness``, as in
    file replay). Event time is then filtered exactly; the rule part is the OR of each rule's
    necessary condition (:func:`mfawatch.patterns.requirements.pattern_condition`).
    """
    _checked("table", table, _TABLE)
    for account in accounts:
        _checked("account", account, _ACCOUNT)
    for region in regions:
        _checked("region", region, _REGION)
    days = time_range.days(lateness)
    if days is None or time_range.since is None or time_range.until is None:
        raise AthenaError("a backtest needs both --since and --until (they bound the scan)")
    where = []
    if accounts:
        where.append(f'"account" IN {_in_list(set(accounts))}')
    if regions:
        where.append(f'"region" IN {_in_list(set(regions))}')
    where.append(
        f'"date" BETWEEN {_literal(f"{days[0]:%Y/%m/%d}")} AND {_literal(f"{days[-1]:%Y/%m/%d}")}'
    )
    where.append(f"eventtime >= {_event_time_bound(time_range.since)}")
    where.append(f"eventtime < {_event_time_bound(time_range.until, upper=True)}")
    rule_parts = [(rule.id, condition_sql(pattern_condition(rule.event_pattern))) for rule in rules]
    if rule_parts and all(sql != "TRUE" for _, sql in rule_parts):
        lines = [f"    -- {rule_id}\n    {sql}" for rule_id, sql in rule_parts]
        where.append("(\n" + "\n    OR\n".join(lines) + "\n  )")
    columns = ",\n  ".join(column.sql_name for column in COLUMNS)
    return (
        f'SELECT\n  {columns},\n  "$path" AS {SOURCE_COLUMN}\n'
        f"FROM {table}\nWHERE " + "\n  AND ".join(where)
    )


def unload_statement(select: str, destination: str) -> str:
    """``UNLOAD`` the query to gzip-compressed JSON lines under ``destination`` (an empty
    ``s3://`` prefix): Athena writes the files in parallel, however many rows there are
    (https://docs.aws.amazon.com/athena/latest/ug/unload.html)."""
    if not destination.startswith("s3://") or "'" in destination:
        raise AthenaError(f"{destination!r}: the UNLOAD destination must be an s3:// URL")
    return (
        f"UNLOAD (\n{select}\n)\nTO {_literal(destination)}\n"
        "WITH (format = 'JSON', compression = 'GZIP')"
    )


# ---------------------------------------------------------------------------------------------
# Rows -> records
# ---------------------------------------------------------------------------------------------


def record_from_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """The CloudTrail record a result row holds, with CloudTrail's field names.

    Null columns are left out (the table cannot tell a null from an absent field); JSON-string
    columns are decoded. Raises :class:`AthenaError` for a JSON column that is not JSON.
    """
    record: dict[str, Any] = {}
    for key, value in row.items():
        column = _BY_SQL_NAME.get(key.lower())
        if column is None or value is None:
            continue
        record[column.name] = _value(column, value)
    return record


def _value(column: Column, value: Any) -> Any:
    if column.kind == "json":
        if isinstance(value, str) and value[:1] in ("{", "["):
            try:
                return json.loads(value)
            except ValueError as exc:
                raise AthenaError(f"column {column.sql_name}: not valid JSON: {exc}") from exc
        return value
    if column.kind == "struct" and isinstance(value, Mapping):
        return _members(column, value)
    if column.kind == "array" and isinstance(value, list):
        return [_members(column, item) if isinstance(item, Mapping) else item for item in value]
    return value


def _members(column: Column, value: Mapping[str, Any]) -> dict[str, Any]:
    by_name = {field.sql_name: field for field in column.fields}
    out: dict[str, Any] = {}
    for key, item in value.items():
        field = by_name.get(key.lower())
        if field is not None and item is not None:
            out[field.name] = _value(field, item)
    return out


# ---------------------------------------------------------------------------------------------
# Cost
# ---------------------------------------------------------------------------------------------

# Athena SQL queries cost $5 per TB scanned, billed by the megabyte rounded up with a 10 MB
# minimum per query (https://aws.amazon.com/athena/pricing/; us-east-1, the public price).
PRICE_PER_TB_USD = 5.0
_MB = 1024**2
_TB = 1024**4
_MINIMUM_MB = 10


def scan_cost_usd(scanned_bytes: int) -> float:
    """What Athena charges for a query that scanned ``scanned_bytes``."""
    billed_mb = max(math.ceil(scanned_bytes / _MB), _MINIMUM_MB)
    return billed_mb * _MB / _TB * PRICE_PER_TB_USD


# ---------------------------------------------------------------------------------------------
# Result files -> events
# ---------------------------------------------------------------------------------------------


def candidate_events(
    results: Iterable[tuple[str, bytes]], stats: ReadStats, time_range: TimeRange
) -> list[TimedEvent]:
    """The records in ``UNLOAD`` result files (name, bytes), in event-time order.

    Each row is rebuilt into its CloudTrail record and timed as file replay times records, so
    problems are reported the same way, naming the trail's log file the row came from (the
    ``$path`` column) and the result file and line. ``UNLOAD`` writes files in parallel with no
    order between them, so the candidates are sorted here (memory proportional to the
    candidates, not to the trail); ties are broken by log file and eventID, which makes the
    order independent of how Athena split the result.
    """
    keyed: list[tuple[datetime, str, str, TimedEvent]] = []
    for name, raw in results:
        stats.files += 1
        for origin, document in documents_in(raw, name, stats, gzipped=name.endswith(".gz")):
            for row in items_of(document):
                if not isinstance(row, Mapping):
                    stats.problem(f"{origin}: not a result row (a JSON object)", file_level=False)
                    continue
                source = str(row.get(SOURCE_COLUMN) or "")
                where = f"{source} (result {origin})" if source else origin
                try:
                    record = record_from_row(row)
                except AthenaError as exc:
                    stats.problem(f"{where}: {exc}", file_level=False)
                    continue
                if not is_cloudtrail_record(record):
                    stats.problem(
                        f"{where}: not a CloudTrail record (no eventName/eventSource)",
                        file_level=False,
                    )
                    continue
                stats.records += 1
                for event in timed([SourcedEvent(where, record)], stats):
                    if time_range.contains(event.moment):
                        event_id = str(record.get("eventID", ""))
                        keyed.append((event.moment, source, event_id, event))
    keyed.sort(key=lambda item: item[:3])
    return [item[3] for item in keyed]
