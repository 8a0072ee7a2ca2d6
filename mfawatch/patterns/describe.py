"""An event pattern on one line, for people: what ``mfawatch rules list`` shows per rule."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def describe_pattern(pattern: Mapping[str, Any]) -> str:
    """A pattern on one line: ``source=aws.signin detail.eventName=ConsoleLogin ...``."""
    return " ".join(_describe(pattern, ""))


def _describe(value: Any, prefix: str) -> list[str]:
    parts: list[str] = []
    if not isinstance(value, Mapping):
        return [f"{prefix}={_values(value)}"]
    for key, item in value.items():
        if key == "$or" and isinstance(item, list):
            branches = [" ".join(_describe(branch, prefix)) for branch in item]
            parts.append("(" + " | ".join(branches) + ")")
            continue
        name = f"{prefix}.{key}" if prefix else str(key)
        parts.extend(_describe(item, name))
    return parts


def _values(value: Any) -> str:
    items = value if isinstance(value, list) else [value]
    return ",".join(
        item if isinstance(item, str) else json.dumps(item, separators=(",", ":")) for item in items
    )
