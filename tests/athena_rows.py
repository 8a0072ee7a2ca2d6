"""Test-data builder: a CloudTrail record as a row of the Athena table (what UNLOAD writes)."""

from __future__ import annotations

import json
from typing import Any

from mfawatch.athena.sql import COLUMNS, Column


def row_of(record: dict[str, Any]) -> dict[str, Any]:
    """What Athena's JSON SerDe makes of a record: the table's columns only, lower-case names,
    objects of the JSON-string columns as their JSON text."""
    by_name = {column.name: column for column in COLUMNS}
    return {
        column.sql_name: _cell(column, record[name])
        for name, column in by_name.items()
        if record.get(name) is not None
    }


def _cell(column: Column, value: Any) -> Any:
    if column.kind == "json":
        return json.dumps(value) if isinstance(value, (dict, list)) else value
    if column.kind == "struct" and isinstance(value, dict):
        members = {field.name: field for field in column.fields}
        return {
            members[key].sql_name: _cell(members[key], item)
            for key, item in value.items()
            if key in members
        }
    if column.kind == "array" and isinstance(value, list):
        return [_cell(Column(column.name, "struct", column.fields), item) for item in value]
    return value
