"""Rules at run time: the compiled bundle ``chalicelib/rules.json`` and what a rule derives.

``rules/*.yaml`` is the source of truth. :mod:`mfawatch.rules.build` validates those files and
compiles them into ``chalicelib/rules.json`` (:data:`BUNDLE_PATH`), because Chalice packages only
``app.py``,
``chalicelib/`` and ``vendor/``; a test fails when the compiled copy is stale. This module needs
neither YAML nor jsonschema, so the Lambda package carries no third-party dependency.
"""

from __future__ import annotations

import json
import string
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from . import constants as c
from .errors import RuleError
from .records import RECORD_FIELDS, SignInRecord

BUNDLE_PATH = Path(__file__).parent.parent / "rules.json"
BUNDLE_FORMAT = 1

DEFAULT_DEDUP_KEY: tuple[str, ...] = ("account", "principal", "source_ip")
DEFAULT_WINDOW_MINUTES = 15
SEVERITIES: tuple[str, ...] = ("LOW", "MEDIUM", "HIGH", "CRITICAL")
KEY_SEPARATOR = "|"


@dataclass(frozen=True)
class Rule:
    """One detection rule, as deployed."""

    id: str
    title: str
    description: str
    severity: str
    runbook: tuple[str, ...]
    event_pattern: Mapping[str, Any]
    dedup_key: tuple[str, ...] = DEFAULT_DEDUP_KEY
    window_minutes: int = DEFAULT_WINDOW_MINUTES
    mode: str = "alert"
    """``alert``: matches notify. ``context``: matches only feed state (workflows, successes)."""
    signal: str = "none"
    """``failure``: counts toward brute-force escalation; ``success``: checked for MFA fatigue."""
    noun: str = "matching events"
    """Plural noun for summaries: "12 more <noun> for ops-admin from 203.0.113.7 ..."."""
    noun_one: str = ""
    """Singular noun ("1 more <noun_one>"); default: ``noun`` without its last word's s."""
    read_only_events: bool = False
    """It matches read-only management events (``readOnly`` true, e.g. ``aws login``), which
    EventBridge gives only to rules in the state :data:`constants.RULE_STATE_WITH_READ_ONLY`."""

    @property
    def eventbridge_state(self) -> str:
        """The state of the EventBridge rules that deliver this rule's events (forwarding rules
        in the member accounts, the central rule)."""
        return c.RULE_STATE_WITH_READ_ONLY if self.read_only_events else c.RULE_STATE_ENABLED

    def counted(self, count: int) -> str:
        """``12 failed MFA attempts`` / ``1 failed MFA attempt``."""
        if count != 1:
            return f"{count} {self.noun}"
        if self.noun_one:
            return f"1 {self.noun_one}"
        head, _, last = self.noun.rpartition(" ")
        last = last[:-1] if last.endswith("s") else last
        return f"1 {head} {last}".replace("  ", " ")

    @property
    def handler_name(self) -> str:
        """The Chalice handler (and Lambda function suffix) for this rule."""
        return "on_" + self.id.replace("-", "_")

    def render_title(self, record: SignInRecord) -> str:
        """The alert title: the template with record fields filled in (unsanitized)."""
        values = {name: record.title_value(name) or "?" for name in template_fields(self.title)}
        return self.title.format_map(values)

    def dedup_key_of(self, record: SignInRecord) -> str:
        """The incident key: the rule's key fields joined with ``|`` (empty fields stay empty)."""
        return KEY_SEPARATOR.join(record.key_value(name) for name in self.dedup_key)

    def to_json(self) -> dict[str, Any]:
        """The bundle form of this rule (what ``rules.json`` holds)."""
        return {
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "severity": self.severity,
            "mode": self.mode,
            "signal": self.signal,
            "noun": self.noun,
            "noun_one": self.noun_one,
            "runbook": list(self.runbook),
            "event_pattern": self.event_pattern,
            "dedup": {"key": list(self.dedup_key), "window_minutes": self.window_minutes},
            **({"read_only_events": True} if self.read_only_events else {}),
        }


def template_fields(template: str) -> list[str]:
    """The ``{field}`` names a title template uses; raises ValueError on a malformed template."""
    names: list[str] = []
    for _, field_name, format_spec, conversion in string.Formatter().parse(template):
        if field_name is None:
            continue
        if not field_name.isidentifier() or format_spec or conversion:
            raise ValueError(f"placeholder {{{field_name}}} must be a plain field name")
        names.append(field_name)
    return names


def rule_from_mapping(data: Mapping[str, Any], source: str) -> Rule:
    """Build a :class:`Rule` from a schema-valid mapping, checking what the schema cannot."""
    try:
        fields = template_fields(str(data["title"]))
    except ValueError as exc:
        raise RuleError(source, "$.title", str(exc)) from exc
    unknown = sorted(set(fields) - set(RECORD_FIELDS))
    if unknown:
        raise RuleError(
            source,
            "$.title",
            f"unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(RECORD_FIELDS))}",
        )
    dedup = data.get("dedup") or {}
    key = tuple(dedup.get("key") or DEFAULT_DEDUP_KEY)
    unknown_keys = sorted(set(key) - set(RECORD_FIELDS))
    if unknown_keys:
        raise RuleError(source, "$.dedup.key", f"unknown field(s) {', '.join(unknown_keys)}")
    severity = str(data["severity"])
    if severity not in SEVERITIES:
        raise RuleError(source, "$.severity", f"{severity!r} is not one of {', '.join(SEVERITIES)}")
    return Rule(
        id=str(data["id"]),
        title=str(data["title"]),
        description=str(data["description"]),
        severity=severity,
        runbook=tuple(str(line) for line in data["runbook"]),
        event_pattern=data["event_pattern"],
        dedup_key=key,
        window_minutes=int(dedup.get("window_minutes") or DEFAULT_WINDOW_MINUTES),
        mode=str(data.get("mode") or "alert"),
        signal=str(data.get("signal") or "none"),
        noun=str(data.get("noun") or "matching events"),
        noun_one=str(data.get("noun_one") or ""),
        read_only_events=bool(data.get("read_only_events", False)),
    )


class _Identified(Protocol):
    @property
    def id(self) -> str: ...


_T = TypeVar("_T", bound=_Identified)


class ById(Sequence[_T]):
    """Deployed items (rules, suppressions) in a stable order, each id once: a sequence that
    finds an item by its id. ``source`` and ``duplicate`` (``{}``: the ids given twice) make
    the :class:`RuleError` of an id given twice."""

    source = "items"
    duplicate = "duplicate id(s): {}"

    def __init__(self, items: Iterable[_T]) -> None:
        self._items = tuple(items)
        self._by_id = {item.id: item for item in self._items}
        if len(self._by_id) != len(self._items):
            counts = Counter(item.id for item in self._items)
            dupes = sorted(item_id for item_id, n in counts.items() if n > 1)
            raise RuleError(self.source, "$.id", self.duplicate.format(", ".join(dupes)))

    def __getitem__(self, index: int) -> _T:  # type: ignore[override]
        return self._items[index]

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[_T]:
        return iter(self._items)


class RuleSet(ById[Rule]):
    """The deployed rules, addressable by id, in a stable order."""

    source = "rules"
    duplicate = "duplicate rule id(s): {}"

    def get(self, rule_id: str) -> Rule:
        """The rule with this id; KeyError names the known ids."""
        try:
            return self._by_id[rule_id]
        except KeyError:
            raise KeyError(f"no rule {rule_id!r}; known: {', '.join(self._by_id)}") from None

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(self._by_id)


class _Bundled(_Identified, Protocol):
    def to_json(self) -> dict[str, Any]: ...


def bundle_text(items: Iterable[_Bundled], bundle_format: int, what: str) -> str:
    """A compiled bundle's exact text (sorted keys, id order), so staleness is a diff:
    ``items`` under ``what`` ("rules", "suppressions", the folder they are built from)."""
    document = {
        "format": bundle_format,
        "generated_by": f"python -m mfawatch rules build (do not edit; edit {what}/ instead)",
        what: [item.to_json() for item in sorted(items, key=lambda i: i.id)],
    }
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def bundle_json(rules: Sequence[Rule]) -> str:
    """The compiled rules' exact text (:func:`bundle_text`)."""
    return bundle_text(rules, BUNDLE_FORMAT, "rules")


def bundle_entries(path: Path, bundle_format: int, what: str) -> list[tuple[Any, str]]:
    """A compiled bundle's entries under ``what`` ("rules", "suppressions"), each with where it
    is (``<path> rules[3]``), the bundle's format checked."""
    source = str(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RuleError(
            source, "", f"compiled {what} missing: run `python -m mfawatch rules build`"
        ) from None
    except json.JSONDecodeError as exc:
        raise RuleError(source, "", f"not valid JSON: {exc}") from exc
    if not isinstance(document, dict) or document.get("format") != bundle_format:
        raise RuleError(source, "$.format", f"expected bundle format {bundle_format}")
    return [(item, f"{source} {what}[{i}]") for i, item in enumerate(document.get(what, []))]


def load_bundle(path: Path = BUNDLE_PATH) -> RuleSet:
    """Load the compiled rules that ship in the Lambda package."""
    entries = bundle_entries(path, BUNDLE_FORMAT, "rules")
    return RuleSet([rule_from_mapping(item, where) for item, where in entries])


#: The built-in rule behind heartbeat notices (not a CloudTrail rule: it matches the scheduled
#: events member accounts send; see constants.HEARTBEAT_PATTERN).
HEARTBEAT_RULE = Rule(
    id="heartbeat",
    title="Heartbeat of account {account} in {region}",
    description=(
        "Every member account and Region sends a scheduled heartbeat along the same path as its "
        "sign-in events. When one stops, failed MFA sign-ins there would go unnoticed."
    ),
    severity="HIGH",
    runbook=(
        "Run `python -m mfawatch audit` for the account and Region: is each forwarding "
        "rule there, enabled and targeting the central bus?",
        "Check the StackSet instance for the account and Region (drift, deletion, failed update).",
        "Check the central bus policy still allows the Organization (aws:PrincipalOrgID).",
    ),
    event_pattern={},
    mode="heartbeat",
)
