"""Suppressions at build time: read ``suppressions/*.yaml``, validate, compile, check expiry.

Validation, in order, each error naming the file and the JSON path:
1. the file parses (the rules' strict YAML loader; an unquoted ``expires: 2026-03-01`` is read
   as the date it says);
2. it conforms to ``suppressions/schema.json``;
3. ``id`` equals the file name, ``expires`` is a date, each source CIDR is a network
   (``ipaddress``, IPv4 or IPv6, no host bits set), each rule id names a rule;
4. with ``today`` (the build and ``suppressions check``): ``expires`` lies after today and at most
   :data:`chalicelib.core.suppressions.MAX_DAYS` days ahead.

The compiled copy (``chalicelib/suppressions.json``) does not depend on today, so the staleness
test compares it without a date; expiry is :func:`check_suppressions`' job, run by ``make lint``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from chalicelib.core.errors import RuleError
from chalicelib.core.suppressions import (
    BUNDLE_PATH,
    MAX_DAYS,
    WARN_DAYS,
    Suppression,
    bundle_json,
    suppression_from_mapping,
)
from mfawatch.paths import RULES_DIR, SUPPRESSIONS_DIR
from mfawatch.rules.build import read_rule_document, rule_paths, schema_errors

SCHEMA_PATH = SUPPRESSIONS_DIR / "schema.json"
SUFFIXES = (".yaml", ".yml")


def suppression_paths(folder: Path = SUPPRESSIONS_DIR) -> list[Path]:
    """The suppression files of a folder, sorted by name (none when it does not exist)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix in SUFFIXES and p.is_file())


def rule_ids(rules_dir: Path = RULES_DIR) -> set[str]:
    """The rule ids a suppression may name (the rule files' names)."""
    return {path.stem for path in rule_paths(rules_dir)} if rules_dir.is_dir() else set()


def today_utc(given: date | None = None) -> date:
    """The day checks count from: ``given``, else today in UTC (the Lambda's clock is UTC)."""
    return given if given is not None else datetime.now(UTC).date()


def read_suppression(path: Path) -> Any:
    """Parse one file; a date YAML read from ``expires`` goes back to its ISO text."""
    document = read_rule_document(path)
    if isinstance(document, dict) and isinstance(document.get("expires"), date):
        document["expires"] = document["expires"].isoformat()
    return document


def date_errors(suppression: Suppression, source: str, today: date) -> list[RuleError]:
    """Expired (on or after its date), or further ahead than :data:`MAX_DAYS` days."""
    if suppression.expires <= today:
        return [RuleError(source, "$.expires", f"expired on {suppression.expires}: remove it")]
    latest = today + timedelta(days=MAX_DAYS)
    if suppression.expires > latest:
        return [
            RuleError(
                source,
                "$.expires",
                f"{suppression.expires} is more than {MAX_DAYS} days ahead (latest {latest})",
            )
        ]
    return []


def validate_suppression(
    path: Path, rule_ids: Collection[str] | None = None, today: date | None = None
) -> tuple[Suppression | None, list[RuleError]]:
    """One file: the suppression (None when invalid) and every problem found."""
    source = str(path)
    try:
        document = read_suppression(path)
    except RuleError as exc:
        return None, [exc]
    errors = schema_errors(document, path, SCHEMA_PATH)
    if errors:
        return None, errors
    if document["id"] != path.stem:
        message = f"id {document['id']!r} must equal the file name {path.stem!r}"
        errors.append(RuleError(source, "$.id", message))
    try:
        suppression = suppression_from_mapping(document, source)
    except RuleError as exc:
        return None, [*errors, exc]
    if rule_ids is not None:
        for index, rule_id in enumerate(suppression.match.rules):
            if rule_id not in rule_ids:
                errors.append(
                    RuleError(source, f"$.match.rules[{index}]", f"no rule {rule_id!r} in rules/")
                )
    if today is not None:
        errors.extend(date_errors(suppression, source, today))
    return (None if errors else suppression), errors


@dataclass(frozen=True)
class CheckResult:
    """What ``suppressions check`` found: valid suppressions, errors, and warnings."""

    files: int
    suppressions: tuple[Suppression, ...]
    errors: tuple[RuleError, ...]
    warnings: tuple[str, ...]


def check_suppressions(
    folder: Path = SUPPRESSIONS_DIR,
    rule_ids: Collection[str] | None = None,
    today: date | None = None,
) -> CheckResult:
    """Validate every suppression of a folder; with ``today``, expired ones are errors and those
    expiring within :data:`WARN_DAYS` days warnings."""
    found: list[Suppression] = []
    errors: list[RuleError] = []
    warnings: list[str] = []
    paths = suppression_paths(folder)
    for path in paths:
        suppression, file_errors = validate_suppression(path, rule_ids, today)
        errors.extend(file_errors)
        if suppression is None:
            continue
        found.append(suppression)
        if today is not None and (suppression.expires - today).days <= WARN_DAYS:
            warnings.append(
                f"{path}: $.expires: {suppression.id} expires on {suppression.expires} "
                f"(in {(suppression.expires - today).days} days; owner {suppression.owner})"
            )
    return CheckResult(len(paths), tuple(found), tuple(errors), tuple(warnings))


def load_suppressions_dir(
    folder: Path = SUPPRESSIONS_DIR,
    rule_ids: Collection[str] | None = None,
    today: date | None = None,
) -> list[Suppression]:
    """Every suppression of a folder, validated; raises the first :class:`RuleError`."""
    result = check_suppressions(folder, rule_ids, today)
    if result.errors:
        raise result.errors[0]
    return list(result.suppressions)


def build_suppressions(
    folder: Path = SUPPRESSIONS_DIR,
    bundle_path: Path = BUNDLE_PATH,
    rule_ids: Collection[str] | None = None,
    today: date | None = None,
) -> Path:
    """Compile ``folder`` into the bundle the Lambda package carries."""
    suppressions = load_suppressions_dir(folder, rule_ids, today)
    bundle_path.write_text(bundle_json(suppressions), encoding="utf-8")
    return bundle_path


def counts_report(counts: Mapping[str, int], ids: Collection[str]) -> list[str]:
    """Lines for replay's stderr: events matched by each suppression, then the unused ones."""
    lines = [f"suppression {sid}: {counts.get(sid, 0)} events matched" for sid in sorted(ids)]
    unused = sorted(sid for sid in ids if not counts.get(sid))
    if unused:
        lines.append(f"unused suppressions (no event matched): {', '.join(unused)}")
    return lines
