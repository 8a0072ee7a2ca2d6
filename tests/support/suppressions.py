"""Builders of suppressions for tests: files under a temporary ``suppressions/`` and deployed
:class:`chalicelib.core.suppressions.Suppression` values, with dates relative to an injected day."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import yaml

from chalicelib.core.suppressions import Suppression, suppression_from_mapping

OWNER = "secops@example.com"
REASON = "external pen test, ticket SEC-42"


def document(sid: str, expires: date, **fields: Any) -> dict[str, Any]:
    """A suppression document; ``fields`` override or add keys (``match`` defaults to alice)."""
    return {
        "id": sid,
        "reason": REASON,
        "owner": OWNER,
        "expires": expires.isoformat(),
        "match": {"principals": ["alice"]},
        **fields,
    }


def suppression(sid: str, expires: date, **fields: Any) -> Suppression:
    """A deployed suppression, as the compiled bundle gives it."""
    return suppression_from_mapping(document(sid, expires, **fields), f"test {sid}")


def write(folder: Path, data: dict[str, Any], name: str | None = None) -> Path:
    """Write a suppression file (``<id>.yaml`` unless ``name``) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name or data['id']}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path
