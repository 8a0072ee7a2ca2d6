"""The Athena table, emulated on DuckDB over local CloudTrail files: the backtest SQL, proven.

DuckDB (an embedded engine, a development dependency) reads ``.json.gz`` CloudTrail files into
a view with the table's columns (:data:`mfawatch.athena.sql.COLUMNS`, lower-case names, the
JSON-string columns as strings, the ``account``/``region``/``date`` partitions taken from the
S3-layout path, ``"$path"`` naming the file). The Trino query that Athena would run is
transpiled by sqlglot and its result written as gzip-compressed JSON lines, as ``UNLOAD`` writes
them, so the rows go back through the same reader as Athena's (:func:`athena.candidate_events`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mfawatch.athena.sql import COLUMNS, Column

if TYPE_CHECKING:
    import duckdb

# .../AWSLogs/[o-xxx/]<account>/CloudTrail/<region>/YYYY/MM/DD/<file>
_ACCOUNT = r"AWSLogs/(?:o-[a-z0-9]+/)?(\d{12})/CloudTrail/"
_REGION = r"/CloudTrail/([a-z0-9-]+)/\d{4}/"
_DATE = r"/CloudTrail/[a-z0-9-]+/(\d{4}/\d{2}/\d{2})/"
# CloudTrail files hold up to thousands of records in one JSON object.
_MAX_OBJECT_BYTES = 256 << 20


def _shape(column: Column) -> Any:
    """A struct column's shape for DuckDB's ``json_transform`` (CloudTrail's member names)."""
    if column.kind in ("struct", "array"):
        members = {field.name: _shape(field) for field in column.fields}
        return [members] if column.kind == "array" else members
    return "JSON" if column.kind == "map" else "VARCHAR"


def _column_sql(column: Column) -> str:
    value = f"r -> {_sql_literal('$.' + json.dumps(column.name))}"
    if column.kind in ("struct", "array"):
        shape = _sql_literal(json.dumps(_shape(column)))
        return f"json_transform({value}, {shape})"
    if column.kind == "json":
        # As Athena's SerDe keeps it: an object's or array's JSON text, a plain value's text.
        return (
            f"CASE WHEN json_type({value}) IN ('OBJECT', 'ARRAY') THEN CAST({value} AS VARCHAR) "
            f"ELSE {value} ->> '$' END"
        )
    return f"{value} ->> '$'"


def create_view(connection: duckdb.DuckDBPyConnection, table: str, files: Sequence[Path]) -> None:
    """Create view ``table`` over ``files`` (CloudTrail ``{"Records": [...]}`` files).

    Each file is read as one JSON value and split into its records (``$.Records[*]``), which
    DuckDB does several times faster than typing whole files with ``read_json``; the columns
    are then taken from each record as the table types them.
    """
    if not files:
        raise ValueError("no files to read")
    selected = [f"{_column_sql(column)} AS {column.sql_name}" for column in COLUMNS]
    paths = ", ".join(_sql_literal(str(path)) for path in files)
    # The names are ours and the paths quoted: nothing to inject.
    connection.execute(
        f"CREATE OR REPLACE VIEW {table} AS SELECT {', '.join(selected)}, "  # noqa: S608
        f"regexp_extract(filename, '{_ACCOUNT}', 1) AS account, "
        f"regexp_extract(filename, '{_REGION}', 1) AS region, "
        f"regexp_extract(filename, '{_DATE}', 1) AS date, "
        'filename AS "$path" '
        "FROM (SELECT unnest(json_extract(json, '$.Records[*]')) AS r, filename "
        f"FROM read_json_objects([{paths}], filename = true, "
        f"maximum_object_size = {_MAX_OBJECT_BYTES}))"
    )


def _sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def to_duckdb(trino_sql: str) -> str:
    """Athena's query, in DuckDB's dialect (sqlglot)."""
    import sqlglot

    return str(sqlglot.transpile(trino_sql, read="trino", write="duckdb")[0])


def unload_locally(connection: duckdb.DuckDBPyConnection, trino_select: str, target: Path) -> int:
    """Run the backtest query and write its rows as ``UNLOAD`` does (gzip JSON lines).

    Returns the number of rows written.
    """
    query = to_duckdb(trino_select)
    target.parent.mkdir(parents=True, exist_ok=True)
    written = connection.execute(
        f"COPY ({query}) TO {_sql_literal(str(target))} (FORMAT JSON, COMPRESSION GZIP)"
    ).fetchone()
    return int(written[0]) if written else 0
