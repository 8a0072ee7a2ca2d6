"""Rules at build time: read ``rules/*.yaml``, validate, compile into ``chalicelib/rules.json``.

Validation, in order, each error naming the file and the JSON path:
1. the file parses (YAML with a strict loader: duplicate keys are errors, and only
   ``true``/``false`` are booleans, so ``MFAUsed: Yes`` in a test event stays the string
   CloudTrail sends);
2. it conforms to ``rules/schema.json``;
3. ``id`` equals the file name, title placeholders and dedup fields exist, ids are unique;
4. ``event_pattern`` is a valid EventBridge pattern (our engine applies AWS's validation);
5. each test case's event file exists and parses.

PyYAML and jsonschema are development dependencies: the Lambda only reads the compiled bundle.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chalicelib.core.errors import EventParseError, RuleError
from chalicelib.core.records import as_envelope, parse_event
from chalicelib.core.rules import BUNDLE_PATH, Rule, RuleSet, bundle_json, rule_from_mapping
from mfawatch.paths import RULES_DIR
from mfawatch.patterns.engine import EventPattern, InvalidPatternError, compile_pattern

SCHEMA_PATH = RULES_DIR / "schema.json"
RULE_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True)
class RuleCase:
    """One test case of a rule, with its event loaded."""

    rule_id: str
    name: str
    expect: str
    event: Mapping[str, Any]
    title: str | None
    dedup_key: str | None


@dataclass(frozen=True)
class RuleFile:
    """A validated rule file: the deployable rule plus its test cases."""

    path: Path
    rule: Rule
    cases: tuple[RuleCase, ...]


@functools.cache
def _strict_yaml_loader() -> type:
    import yaml  # a development dependency, imported only when building

    # libyaml's parser when PyYAML was built with it (the wheels are): the same documents, about
    # five times faster to parse than the pure-Python one (rules are read by every rule command).
    base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class StrictLoader(base):  # type: ignore[misc]
        """SafeLoader with YAML 1.2 booleans and duplicate-key errors."""

    # YAML 1.1 resolves yes/no/on/off to booleans: "MFAUsed: Yes" would become True. Keep only
    # true/false as booleans, as YAML 1.2 and JSON do.
    StrictLoader.yaml_implicit_resolvers = {
        key: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
        for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    StrictLoader.add_implicit_resolver(
        "tag:yaml.org,2002:bool",
        re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
        list("tTfF"),
    )

    def construct_mapping(loader: Any, node: Any, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return dict(yaml.SafeLoader.construct_mapping(loader, node, deep=deep))

    StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    return StrictLoader


def read_rule_document(path: Path) -> Any:
    """Parse one rule file (YAML or JSON) with the strict loader."""
    import yaml

    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise RuleError(str(path), "", f"not valid JSON: {exc}") from exc
    try:
        return yaml.load(text, Loader=_strict_yaml_loader())  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as exc:
        raise RuleError(str(path), "", f"not valid YAML: {exc}") from exc


def json_path(parts: Iterable[Any]) -> str:
    """``$.tests[0].event_file``: a jsonschema error path as the errors name fields."""
    out = "$"
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def schema_errors(document: Any, path: Path, schema_path: Path = SCHEMA_PATH) -> list[RuleError]:
    """Every way ``document`` (read from ``path``) breaks the JSON Schema at ``schema_path``."""
    validator = _validator(schema_path.read_text(encoding="utf-8"))
    errors = sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.path)))
    return [RuleError(str(path), json_path(error.path), error.message) for error in errors]


@functools.lru_cache(maxsize=8)
def _validator(schema_text: str) -> Any:
    """The validator of a schema, built once per schema text (building one costs more than
    validating a rule file with it)."""
    import jsonschema

    return jsonschema.Draft202012Validator(json.loads(schema_text))


def _load_case(rule_id: str, index: int, raw: Mapping[str, Any], path: Path) -> RuleCase:
    where = f"$.tests[{index}]"
    if "event_file" in raw:
        event_path = (path.parent / str(raw["event_file"])).resolve()
        try:
            event = json.loads(event_path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise RuleError(str(path), f"{where}.event_file", f"cannot read: {exc}") from exc
        except json.JSONDecodeError as exc:
            raise RuleError(str(path), f"{where}.event_file", f"not valid JSON: {exc}") from exc
    else:
        event = raw["event"]
    try:
        parse_event(event)
    except EventParseError as exc:
        raise RuleError(str(path), f"{where}.event", str(exc)) from exc
    return RuleCase(
        rule_id=rule_id,
        name=str(raw["name"]),
        expect=str(raw["expect"]),
        event=event,
        title=raw.get("title"),
        dedup_key=raw.get("dedup_key"),
    )


def _build_rule_file(path: Path, document: Mapping[str, Any]) -> RuleFile:
    rule = rule_from_mapping(document, str(path))
    cases = tuple(
        _load_case(rule.id, index, case, path) for index, case in enumerate(document["tests"])
    )
    return RuleFile(path=path, rule=rule, cases=cases)


def validate_rule_file(path: Path) -> list[RuleError]:
    """Every problem with one rule file (empty when it is valid)."""
    return _check_rule_file(path)[0]


def _check_rule_file(path: Path) -> tuple[list[RuleError], RuleFile | None]:
    """Every problem with one rule file, and the file built when there is none (each file is
    read and built once, whether the caller validates or loads)."""
    try:
        document = read_rule_document(path)
    except RuleError as exc:
        return [exc], None
    errors = schema_errors(document, path)
    if errors:
        return errors, None
    if document["id"] != path.stem:
        errors.append(
            RuleError(
                str(path), "$.id", f"id {document['id']!r} must equal the file name {path.stem!r}"
            )
        )
    try:
        compile_pattern(document["event_pattern"])
    except InvalidPatternError as exc:
        errors.append(RuleError(str(path), "$.event_pattern", str(exc)))
    try:
        built = _build_rule_file(path, document)
    except RuleError as exc:
        errors.append(exc)
        return errors, None
    return errors, None if errors else built


def rule_paths(rules_dir: Path = RULES_DIR) -> list[Path]:
    """The rule files in a folder (``schema.json`` excluded), sorted by name."""
    return sorted(
        p
        for p in rules_dir.iterdir()
        if p.suffix in RULE_SUFFIXES and p.name != SCHEMA_PATH.name and p.is_file()
    )


def check_rules_dir(rules_dir: Path = RULES_DIR) -> tuple[list[RuleError], list[RuleFile]]:
    """Every problem in a rules folder, including duplicate ids across files, and the valid
    files built (all of them when there is no problem)."""
    errors: list[RuleError] = []
    files: list[RuleFile] = []
    ids: dict[str, Path] = {}
    paths = rule_paths(rules_dir)
    if not paths:
        return [RuleError(str(rules_dir), "", "no rule files (*.yaml, *.yml, *.json)")], []
    for path in paths:
        file_errors, built = _check_rule_file(path)
        errors.extend(file_errors)
        if built is None:
            continue
        files.append(built)
        rule_id = built.rule.id
        if rule_id in ids:
            errors.append(RuleError(str(path), "$.id", f"duplicate id, also in {ids[rule_id]}"))
        ids[rule_id] = path
    return errors, files


def validate_rules_dir(rules_dir: Path = RULES_DIR) -> list[RuleError]:
    """Every problem in a rules folder, including duplicate ids across files."""
    return check_rules_dir(rules_dir)[0]


def load_rules_dir(rules_dir: Path = RULES_DIR) -> list[RuleFile]:
    """All rule files of a folder, validated; raises the first :class:`RuleError`."""
    errors, files = check_rules_dir(rules_dir)
    if errors:
        raise errors[0]
    return files


def build_bundle(rules_dir: Path = RULES_DIR, bundle_path: Path = BUNDLE_PATH) -> Path:
    """Compile ``rules_dir`` into the bundle the Lambda package carries."""
    files = load_rules_dir(rules_dir)
    bundle_path.write_text(bundle_json([f.rule for f in files]), encoding="utf-8")
    return bundle_path


@dataclass(frozen=True)
class CaseResult:
    """The outcome of one rule test case; ``failures`` is empty when it passed."""

    case: RuleCase
    matched: bool
    title: str | None
    dedup_key: str | None
    failures: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.failures


def run_case(rule: Rule, case: RuleCase, pattern: EventPattern | None = None) -> CaseResult:
    """Run one case through the deployed pattern and, on a match, the production alert path.

    Title and dedup key come from the rule; for alert rules the production service must also
    publish exactly one alert with that title and key, once settled (a fresh in-memory state
    per case). ``pattern`` is the rule's pattern compiled, when the caller has it.
    """
    from chalicelib.pipeline.service import (  # the same path the Lambda takes
        AlertService,
        MemoryPublisher,
    )

    envelope = as_envelope(case.event)
    matched = (pattern or compile_pattern(rule.event_pattern)).matches(envelope)
    failures: list[str] = []
    title = dedup_key = None
    if matched != (case.expect == "match"):
        failures.append(
            f"expected {case.expect}, pattern {'matched' if matched else 'did not match'}"
        )
    if matched:
        record = parse_event(envelope)
        title, dedup_key = rule.render_title(record), rule.dedup_key_of(record)
        if rule.mode == "alert":
            publisher = MemoryPublisher()
            service = AlertService(RuleSet([rule]), publisher)
            service.handle(rule.id, envelope, record.event_time)
            # Then what the scheduler finishes (a failure that waited for its user's name).
            service.flush(record.event_time)
            alerts = [(n.title, n.dedup_key) for n in publisher.sent if n.kind == "alert"]
            if alerts != [(title, dedup_key)]:
                failures.append(f"expected one alert {(title, dedup_key)}, published {alerts}")
    if case.expect == "match":
        if case.title is not None and title != case.title:
            failures.append(f"title {title!r} != expected {case.title!r}")
        if case.dedup_key is not None and dedup_key != case.dedup_key:
            failures.append(f"dedup key {dedup_key!r} != expected {case.dedup_key!r}")
    return CaseResult(case, matched, title, dedup_key, tuple(failures))


def run_rule_cases(files: Sequence[RuleFile]) -> list[CaseResult]:
    """Every case of every rule file (each rule's pattern compiled once)."""
    results: list[CaseResult] = []
    for f in files:
        pattern = compile_pattern(f.rule.event_pattern)
        results.extend(run_case(f.rule, case, pattern) for case in f.cases)
    return results


def missing_cases(files: Sequence[RuleFile]) -> list[str]:
    """The rules without a test case, a positive case or a negative case, one line each.

    Every rule ships both kinds: a positive alone cannot show a near miss is ignored.
    """
    missing: list[str] = []
    for rule_file in files:
        expects = {case.expect for case in rule_file.cases}
        if not rule_file.cases:
            missing.append(f"{rule_file.rule.id}: no test cases")
            continue
        if "match" not in expects:
            missing.append(f"{rule_file.rule.id}: no positive case (expect: match)")
        if "no_match" not in expects:
            missing.append(f"{rule_file.rule.id}: no negative case (expect: no_match)")
    return missing
