"""``mfawatch rules build|validate|test|list`` and ``mfawatch test-pattern``.

Thin: the rule toolchain is :mod:`mfawatch.rules.build` (it imports YAML and JSON Schema only
when it reads rule files), the pattern engine :mod:`mfawatch.patterns.engine`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import NoReturn

import click

from chalicelib.core.errors import MfawatchError
from chalicelib.core.records import as_envelope, is_cloudtrail_record, is_envelope
from chalicelib.core.rules import load_bundle
from mfawatch.cli.options import RULES_BUNDLE_OPTION, RULES_DIR_OPTION, exit_on_errors
from mfawatch.patterns.describe import describe_pattern
from mfawatch.patterns.engine import InvalidPatternError, compile_pattern
from mfawatch.rules.build import (
    RuleFile,
    build_bundle,
    check_rules_dir,
    missing_cases,
    rule_paths,
    run_rule_cases,
    validate_rules_dir,
)
from mfawatch.rules.suppressions import build_suppressions, rule_ids, today_utc


@click.group()
def rules() -> None:
    """Build and check the rules in rules/."""


@rules.command("build")
def rules_build() -> None:
    """Validate rules/ and suppressions/ and compile them into chalicelib/rules.json and
    chalicelib/suppressions.json (what the Lambda carries).

    \b
    Example:
      mfawatch rules build        # after editing rules/*.yaml or suppressions/*.yaml
    """
    try:
        path = build_bundle()
        compiled = build_suppressions(rule_ids=rule_ids(), today=today_utc())
    except MfawatchError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"wrote {path}")
    click.echo(f"wrote {compiled}")


def _rule_files(rules_dir: Path) -> list[RuleFile]:
    """Load a rules folder for the rule commands; prints every validation error and exits 1."""
    if not rules_dir.is_dir():
        click.echo(f"error: {rules_dir}: no such folder", err=True)
        sys.exit(2)
    errors, files = check_rules_dir(rules_dir)
    if errors:
        for error in errors:
            click.echo(str(error))
        click.echo(f"{len(errors)} error(s): fix them first (rules validate)", err=True)
        sys.exit(1)
    return files


@rules.command("validate")
@RULES_DIR_OPTION
def rules_validate(rules_dir: Path) -> None:
    """Check schema, pattern validity and unique ids; one `file: $.path: message` per error.

    \b
    Example:
      mfawatch rules validate
      mfawatch rules validate --rules-dir my-rules/
    """
    if not rules_dir.is_dir():
        click.echo(f"error: {rules_dir}: no such folder", err=True)
        sys.exit(2)
    errors = validate_rules_dir(rules_dir)
    for error in errors:
        click.echo(str(error))
    count = len(rule_paths(rules_dir))
    exit_on_errors([error.source for error in errors], count, "rule file(s)")
    click.echo(f"{count} rule file(s) valid in {rules_dir}")


@rules.command("test")
@RULES_DIR_OPTION
def rules_test(rules_dir: Path) -> None:
    """Run every rule's cases: match or not, expected title and dedup key.

    \b
    Example:
      mfawatch rules test
    """
    files = _rule_files(rules_dir)
    results = run_rule_cases(files)
    for outcome in results:
        label = f"{outcome.case.rule_id}: {outcome.case.name}"
        if outcome.passed:
            click.echo(f"PASS {label}")
        else:
            click.echo(f"FAIL {label}: {'; '.join(outcome.failures)}")
    missing = missing_cases(files)
    for line in missing:
        click.echo(f"MISSING {line}")
    failed = sum(1 for outcome in results if not outcome.passed)
    click.echo(
        f"{len(results)} case(s) in {len(files)} rule(s): {len(results) - failed} passed, "
        f"{failed} failed; {len(missing)} missing case(s)"
    )
    if failed or missing:
        sys.exit(1)


@rules.command("list")
@RULES_DIR_OPTION
def rules_list(rules_dir: Path) -> None:
    """One line per rule: id, severity, mode and what it matches.

    \b
    Example:
      mfawatch rules list
    """
    files = _rule_files(rules_dir)
    for rule_file in files:
        rule = rule_file.rule
        matches = describe_pattern(rule.event_pattern)
        click.echo(f"{rule.id:<36} {rule.severity:<8} {rule.mode:<7} {matches}")


@click.command("test-pattern")
@click.option("--pattern", "pattern_arg", help="Event pattern: JSON or @file.")
@click.option("--rule", "rule_id", help="Test this rule's pattern (an id of rules/).")
@click.option("--event", "event_arg", required=True, help="Event: JSON or @file.")
@RULES_BUNDLE_OPTION
def test_pattern(
    pattern_arg: str | None, rule_id: str | None, event_arg: str, rules_bundle: Path
) -> None:
    """Like `aws events test-event-pattern`, offline: print true or false (exit 0 or 1).

    Give the pattern (--pattern) or a rule whose pattern to use (--rule). An invalid pattern
    exits 2 with EventBridge's reason. A bare CloudTrail record is wrapped in the envelope
    EventBridge would deliver (a note says so on stderr).

    \b
    Example:
      mfawatch test-pattern --rule iam-console-mfa-failure \
        --event @tests/events/iam-consolelogin-failure-mfa-yes.json
      mfawatch test-pattern --pattern '{"source": ["aws.signin"]}' --event @event.json
    """
    if (pattern_arg is None) == (rule_id is None):
        _fail("give either --pattern or --rule (one of them)")
    if rule_id is not None:
        try:
            ruleset = load_bundle(rules_bundle)
        except MfawatchError as exc:
            _fail(f"--rules-bundle {rules_bundle}: {exc} (make rules rebuilds it)")
        if rule_id not in ruleset.ids:
            _fail(f"--rule {rule_id!r}: no such rule; known: {', '.join(ruleset.ids)}")
        pattern_text = json.dumps(ruleset.get(rule_id).event_pattern)
        source = f"--rule {rule_id}"
    else:
        assert pattern_arg is not None
        if pattern_arg.startswith("@") and pattern_arg.endswith((".yaml", ".yml")):
            _fail(
                f"--pattern {_named(pattern_arg)}: a rule file, not an event pattern: "
                "use --rule <its id>"
            )
        pattern_text = _argument_text(pattern_arg, "--pattern")
        source = f"--pattern {_named(pattern_arg)}"
    event_text = _argument_text(event_arg, "--event")
    try:
        matcher = compile_pattern(pattern_text)
    except InvalidPatternError as exc:
        _fail(f"{source}: {exc}")
    try:
        event = json.loads(event_text)
    except json.JSONDecodeError as exc:
        _fail(f"--event {_named(event_arg)}: not valid JSON: {exc}")
    if not isinstance(event, dict):
        _fail(f"--event {_named(event_arg)}: must be a JSON object, got {type(event).__name__}")
    if is_cloudtrail_record(event) and not is_envelope(event):
        click.echo("note: wrapped a bare CloudTrail record in its EventBridge envelope", err=True)
        event = as_envelope(event)
    matched = matcher.matches(event)
    click.echo("true" if matched else "false")
    sys.exit(0 if matched else 1)


def _argument_text(value: str, option: str) -> str:
    if not value.startswith("@"):
        return value
    path = Path(value[1:])
    try:
        return path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        _fail(f"{option} {path}: cannot read: {exc}")


def _named(value: str) -> str:
    return value[1:] if value.startswith("@") else "(inline JSON)"


def _fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


COMMANDS: list[click.Command] = [rules, test_pattern]
