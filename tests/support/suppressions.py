"""Builders of suppressions for tests: files under a temporary ``suppressions/`` and deployed
:class:`chalicelib.core.suppressions.Suppression` values, with dates relative to an injected day;
and the service run over events with suppressions in effect (:func:`run`)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import yaml

from chalicelib.core.notifications import (
    KIND_ALERT,
    KIND_NOTICE,
    KIND_STORM,
    KIND_SUMMARY,
    Notification,
)
from chalicelib.core.rules import RuleSet, load_bundle
from chalicelib.core.suppressions import Suppression, Suppressions, suppression_from_mapping
from chalicelib.pipeline.service import AlertService, MemoryPublisher
from tests.support.events import BASE, IAM_FAILURE

OWNER = "secops@example.com"
REASON = "external pen test, ticket SEC-42"
RULES: RuleSet = load_bundle()
ACCOUNT = "111122223333"
#: Expires 30 days after the events' day: active for every event of a test unless it says
#: otherwise.
LATER = BASE.date() + timedelta(days=30)


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


def pentest(expires: date = LATER, **fields: object) -> Suppressions:
    """The pen test's suppression: alice's failed MFA from its ranges, in the events' account."""
    match = {
        "rules": [IAM_FAILURE],
        "principals": ["alice"],
        "accounts": [ACCOUNT],
        "source_cidrs": ["203.0.113.0/24", "2001:db8::/32"],
    }
    return Suppressions([suppression("pentest-q4", expires, match=match, **fields)])


def run(
    suppressions: Suppressions, events: list[tuple[str, dict[str, object], float]]
) -> list[Notification]:
    """Deliver each (rule, event, offset) at its event time, then settle everything."""
    publisher = MemoryPublisher()
    service = AlertService(RULES, publisher, suppressions=suppressions)
    for rule_id, event, offset in events:
        service.handle(rule_id, event, BASE + timedelta(seconds=offset))
    service.flush(BASE + timedelta(hours=2))
    return publisher.sent


def counted(sent: list[Notification]) -> int:
    """Events the outputs were told about, any rule: alert + summary + storm digest counts."""
    return sum(n.count for n in sent if n.kind in (KIND_ALERT, KIND_SUMMARY, KIND_STORM))


def notices(sent: list[Notification]) -> list[Notification]:
    """The suppressions' expiry notices among ``sent``."""
    return [n for n in sent if n.kind == KIND_NOTICE]
