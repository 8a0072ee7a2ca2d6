"""Command line: ``python -m mfawatch``. Thin commands over the same code the Lambda runs.

Results go to stdout (a table, or JSON lines for pipes); totals, problems and logs go to stderr.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from chalicelib.channels import publish_params
from chalicelib.config import Settings, settings_from_env
from chalicelib.errors import MfawatchError
from chalicelib.notifications import Notification
from chalicelib.records import as_envelope, parse_time
from chalicelib.render import clean_text, render_subject
from chalicelib.rules import BUNDLE_PATH, RuleSet, load_bundle
from mfawatch.cli.athena import COMMANDS as ATHENA_COMMANDS
from mfawatch.cli.athena import athena_events, split_list
from mfawatch.cli.deploy import COMMANDS as DEPLOY_RUN_COMMANDS
from mfawatch.cli.org import COMMANDS as ORG_COMMANDS
from mfawatch.cli.stage import COMMANDS as DEPLOY_COMMANDS
from mfawatch.cli.stage import CONFIG_OPTION
from mfawatch.deploy.init import COMMANDS as INIT_COMMANDS
from mfawatch.deploy.selftest import COMMANDS as SELFTEST_COMMANDS
from mfawatch.deploy.templates import load_stage_config
from mfawatch.errors import ArchiveReadError
from mfawatch.paths import DEMO_SCENARIO, RULES_DIR
from mfawatch.replay.archive import (
    DEFAULT_LATENESS,
    ArchiveFile,
    Prefilter,
    TimeRange,
    local_files,
    ordered_events,
    remote_files,
)
from mfawatch.replay.readers import ReadStats
from mfawatch.replay.runner import ReplayResult, replay_timed

if TYPE_CHECKING:
    from mfawatch.replay.s3archive import S3Archive
    from mfawatch.rules.build import RuleFile


RULES_BUNDLE_OPTION = click.option(
    "--rules-bundle",
    type=click.Path(path_type=Path, dir_okay=False),
    default=BUNDLE_PATH,
    show_default=True,
    help="Compiled rules (what the Lambda package carries; make rules rebuilds it).",
)


@click.group()
def main() -> None:
    """mfawatch: failed-MFA sign-in alerting for AWS, offline tools."""


class IsoTime(click.ParamType[datetime, Any]):
    """An ISO-8601 time or date (``2026-11-02``, ``2026-11-02T09:00Z``); naive means UTC."""

    name = "ISO-8601 time"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            return parse_time(str(value))
        except ValueError:
            self.fail(f"{value!r} is not an ISO-8601 time (e.g. 2026-11-02T09:00:00Z)", param, ctx)


@main.command()
@click.argument("paths", nargs=-1)
@click.option(
    "--output",
    type=click.Choice(["table", "jsonl", "sns"]),
    default="table",
    show_default=True,
    help="table: readable; jsonl: one JSON object per notification; sns: the exact SNS Publish "
    "parameters of every publish (dry run).",
)
@click.option(
    "--stage",
    default=None,
    help="Use this stage's settings from .chalice/config.json (outputs, thresholds, names).",
)
@RULES_BUNDLE_OPTION
@click.option("--since", type=IsoTime(), help="Only events at or after this time (UTC).")
@click.option("--until", type=IsoTime(), help="Only events before this time (UTC).")
@click.option("--rule", "rule_ids", multiple=True, help="Only this rule (repeatable).")
@click.option(
    "--lateness",
    type=click.IntRange(min=0),
    default=int(DEFAULT_LATENESS.total_seconds() // 60),
    show_default=True,
    help="Minutes an event may precede its file's delivery stamp (ordering window).",
)
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    default=min(os.cpu_count() or 1, 8),
    show_default="CPU count",
    help="Worker processes that decompress and parse files.",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Progress line on stderr (default: when stderr is a terminal).",
)
@click.option(
    "--athena",
    "athena_table",
    metavar="TABLE",
    help="Backtest on Athena instead of files: find the candidates in this table (see "
    "athena-ddl), replay them here. Needs --since, --until and --athena-output.",
)
@click.option("--athena-output", help="s3://bucket/prefix for Athena's results (--athena).")
@click.option("--workgroup", help="Athena workgroup (--athena; default: the account's primary).")
@click.option("--accounts", help="Comma-separated accounts to backtest (--athena).")
@click.option("--regions", help="Comma-separated regions to backtest (--athena).")
@click.option(
    "--strict",
    is_flag=True,
    help="Exit 1 when a file is unreadable or a record malformed (default: count them).",
)
def replay(
    paths: tuple[str, ...],
    output: str,
    rules_bundle: Path,
    since: datetime | None,
    until: datetime | None,
    rule_ids: tuple[str, ...],
    lateness: int,
    jobs: int,
    progress: bool | None,
    stage: str | None,
    athena_table: str | None,
    athena_output: str | None,
    workgroup: str | None,
    accounts: str | None,
    regions: str | None,
    strict: bool,
) -> None:
    """Replay CloudTrail files, folders or s3://bucket/prefix URLs (default: the demo scenario).

    Events are replayed in event-time order through the production decision path. S3-layout
    archives stream with bounded memory (see mfawatch/replay/archive.py for the ordering bound).
    `-` reads records or EventBridge envelopes from stdin (a CloudTrail file, a JSON list, one
    document, or JSON lines). With --athena, Athena finds the candidate records in the whole
    trail and they are replayed the same way.

    Exits 2 when a named path does not exist, 1 when nothing readable was found (or, with
    --strict, when a file was unreadable or a record malformed).

    \b
    Example:
      mfawatch replay ~/trail/AWSLogs/ --since 2026-11-02 --until 2026-11-03
      mfawatch replay s3://my-trail/AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/02/
      jq -c '.Records[]' trail.json | mfawatch replay - --output jsonl
    """
    settings = _settings(stage)
    athena_only = {
        "--athena-output": athena_output,
        "--workgroup": workgroup,
        "--accounts": accounts,
        "--regions": regions,
    }
    given = [name for name, value in athena_only.items() if value]
    if athena_table is None and given:
        raise click.BadParameter(
            f"{', '.join(given)} only apply with --athena", param_hint="--athena"
        )
    if athena_table is not None:
        _replay_athena(
            paths,
            athena_table,
            athena_output,
            workgroup,
            rules_bundle=rules_bundle,
            rule_ids=rule_ids,
            time_range=TimeRange(since, until),
            accounts=accounts,
            regions=regions,
            lateness=timedelta(minutes=lateness),
            show=sys.stderr.isatty() if progress is None else progress,
            output=output,
            settings=settings,
        )
        return
    targets = list(paths) or [str(DEMO_SCENARIO)]
    if not paths:
        click.echo(f"Replaying the bundled scenario {DEMO_SCENARIO}", err=True)
    missing = [
        t for t in targets if t != STDIN and not t.startswith("s3://") and not Path(t).exists()
    ]
    if missing:
        raise click.BadParameter(
            f"{', '.join(missing)}: no such file or folder; give CloudTrail files, folders, "
            "s3://bucket/prefix URLs, or - to read stdin",
            param_hint="PATHS",
        )
    try:
        rules = _select_rules(load_bundle(rules_bundle), rule_ids)
    except MfawatchError as exc:
        raise click.ClickException(str(exc)) from exc
    time_range = TimeRange(since, until)
    if since is not None and until is not None and until <= since:
        raise click.BadParameter("--until must be after --since", param_hint="--until")
    window = timedelta(minutes=lateness)
    stats = ReadStats()
    local = [Path(t) for t in targets if not t.startswith("s3://") and t != STDIN]
    files = local_files(local, stats, time_range, window)
    stdin = sys.stdin.buffer.read() if STDIN in targets else None
    if stdin is not None:
        # Read like a remote file: the same content-sniffing reader as every other input.
        files.append(ArchiveFile(STDIN_NAME, len(files), None, remote=True))
    s3_read: Callable[[ArchiveFile], bytes] | None = None
    urls = [t for t in targets if t.startswith("s3://")]
    if urls:
        s3 = _s3_archive()
        s3_read = s3.read
        for url in urls:
            try:
                listed = s3.list_urls(url, time_range, window)
            except ArchiveReadError as exc:
                stats.problem(str(exc), file_level=True)
                continue
            files += remote_files(listed, stats, time_range, window, first_rank=len(files))
    fetch = _remote_reader(stdin, s3_read) if stdin is not None else s3_read
    show = sys.stderr.isatty() if progress is None else progress
    meter = ProgressLine(time.monotonic) if show else None
    events = ordered_events(
        files,
        stats,
        prefilter=Prefilter.for_rules(rules),
        time_range=time_range,
        lateness=window,
        fetch=fetch,
        jobs=jobs,
        progress=meter,
    )
    result = replay_timed(events, rules, stats, settings)
    if meter is not None:
        meter.clear()
    _emit(result, output, settings)
    failure = replay_failure(stats, targets, strict)
    if failure:
        click.echo(f"error: {failure}", err=True)
        sys.exit(1)


STDIN = "-"
STDIN_NAME = "<stdin>"


def _remote_reader(
    stdin: bytes, s3_read: Callable[[ArchiveFile], bytes] | None
) -> Callable[[ArchiveFile], bytes]:
    """The bytes of a remote input: stdin's (read once, up front) or an S3 object's."""

    def read(file: ArchiveFile) -> bytes:
        if file.name == STDIN_NAME:
            return stdin
        if s3_read is None:
            raise ArchiveReadError(f"{file.name}: no reader")
        return s3_read(file)

    return read


def replay_failure(stats: ReadStats, targets: list[str], strict: bool) -> str:
    """Why a replay must exit non-zero, or "" (pure: the counts and the inputs).

    Nothing read at all is a failure (a typo, an empty folder, the wrong prefix) unless files
    were skipped by --since/--until; with ``strict`` any unreadable file or malformed record is.
    """
    inputs = ", ".join(STDIN_NAME if t == STDIN else t for t in targets)
    if stats.records == 0 and not stats.skipped_files:
        return (
            f"nothing readable in {inputs}: {stats.files} file(s), {stats.unreadable_files} "
            "unreadable; replay reads CloudTrail files (.json, .json.gz), JSON lists, records, "
            "EventBridge envelopes and JSON lines"
        )
    if strict and (stats.unreadable_files or stats.malformed_records):
        return (
            f"--strict: {stats.unreadable_files} unreadable file(s) and "
            f"{stats.malformed_records} malformed record(s) in {inputs} (each named above)"
        )
    return ""


def _replay_athena(
    paths: tuple[str, ...],
    table: str,
    athena_output: str | None,
    workgroup: str | None,
    *,
    rules_bundle: Path,
    rule_ids: tuple[str, ...],
    time_range: TimeRange,
    accounts: str | None,
    regions: str | None,
    lateness: timedelta,
    show: bool,
    output: str,
    settings: Settings,
) -> None:
    if paths:
        raise click.BadParameter("give either PATHS or --athena, not both", param_hint="--athena")
    if time_range.since is None or time_range.until is None:
        raise click.BadParameter("--athena needs --since and --until", param_hint="--athena")
    if time_range.until <= time_range.since:
        raise click.BadParameter("--until must be after --since", param_hint="--until")
    try:
        rules = _select_rules(load_bundle(rules_bundle), rule_ids)
        stats = ReadStats()
        events = athena_events(
            rules,
            table,
            output=athena_output,
            workgroup=workgroup,
            time_range=time_range,
            accounts=split_list(accounts),
            regions=split_list(regions),
            lateness=lateness,
            stats=stats,
            show_progress=show,
        )
    except MfawatchError as exc:
        raise click.ClickException(str(exc)) from exc
    _emit(replay_timed(events, rules, stats, settings), output, settings)


def _emit(result: ReplayResult, output: str, settings: Settings) -> None:
    """The notifications on stdout in the chosen format, the totals on stderr."""
    if output == "jsonl":
        for notification, sent_at in zip(result.notifications, result.sent_at, strict=True):
            click.echo(json.dumps(_jsonl(notification, sent_at), sort_keys=True))
    elif output == "sns":
        for destination, notification in result.deliveries:
            params = publish_params(notification, settings.output(destination), settings)
            click.echo(json.dumps({"Output": destination, **params}, sort_keys=True))
    else:
        _print_table(result.notifications, result.sent_at)
    _print_totals(result)


def _select_rules(rules: RuleSet, rule_ids: tuple[str, ...]) -> RuleSet:
    if not rule_ids:
        return rules
    unknown = [rule_id for rule_id in rule_ids if rule_id not in rules.ids]
    if unknown:
        raise click.BadParameter(
            f"no rule {', '.join(map(repr, unknown))}; known: {', '.join(rules.ids)}",
            param_hint="--rule",
        )
    return RuleSet([rules.get(rule_id) for rule_id in dict.fromkeys(rule_ids)])


def _s3_archive() -> S3Archive:
    import boto3  # only for s3:// inputs; the pure core never imports it

    from mfawatch.replay.s3archive import S3Archive

    return S3Archive(boto3.client("s3"))


class ProgressLine:
    """A one-line progress display on stderr (files, records, records/s), at most 5 a second."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._start = clock()
        self._shown = 0.0

    def __call__(self, stats: ReadStats, done: int, total: int) -> None:
        now = self._clock()
        if now - self._shown < 0.2 and done < total:
            return
        self._shown = now
        rate = stats.records / max(now - self._start, 1e-9)
        click.echo(
            f"\r  files {done}/{total}, records {stats.records:,}, {rate:,.0f} records/s   ",
            err=True,
            nl=False,
        )

    def clear(self) -> None:
        click.echo("\r" + " " * 70 + "\r", err=True, nl=False)


def _settings(stage: str | None) -> Settings:
    """Replay settings: a stage's (as deployed), or the defaults."""
    if stage is None:
        return Settings()
    try:
        return settings_from_env(load_stage_config(stage).environment())
    except MfawatchError as exc:
        raise click.BadParameter(str(exc), param_hint="--stage") from exc


def _jsonl(notification: Notification, sent_at: datetime) -> dict[str, object]:
    document = notification.to_json()
    document["subject"] = render_subject(notification)
    document["sent_at"] = sent_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    return document


def _print_table(notifications: list[Notification], sent_at: list[datetime]) -> None:
    if not notifications:
        click.echo("No notifications.")
        return
    header = f"{'SENT (UTC)':<19} {'KIND':<10} {'SEVERITY':<8} {'RULE':<32} {'ACCOUNT':<12} "
    header += f"{'REGION':<10} {'COUNT':>5}  {'SOURCE IP':<15} SUBJECT"
    click.echo(header)
    for n, moment in zip(notifications, sent_at, strict=True):
        click.echo(
            f"{moment:%Y-%m-%d %H:%M:%S} {n.kind:<10} {n.severity:<8} {n.rule.id:<32} "
            f"{clean_text(n.account, 12):<12} {clean_text(n.region, 10):<10} {n.count:>5}  "
            f"{clean_text(n.source_ip, 15):<15} {render_subject(n)}"
        )


def _print_totals(result: ReplayResult) -> None:
    stats = result.stats
    for problem in stats.problems:
        click.echo(f"problem: {clean_text(problem, 500)}", err=True)
    kinds: dict[str, int] = {}
    for n in result.notifications:
        kinds[n.kind] = kinds.get(n.kind, 0) + 1
    by_kind = ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())) or "none"
    click.echo(
        f"files {stats.files}, records {stats.records}, matched {result.matched}, "
        f"notifications {len(result.notifications)} ({by_kind}), "
        f"unreadable files {stats.unreadable_files}, malformed records {stats.malformed_records}"
        + (f", skipped files {stats.skipped_files}" if stats.skipped_files else "")
        + (f", late records {stats.late_records}" if stats.late_records else ""),
        err=True,
    )


@main.group()
def rules() -> None:
    """Build and check the rules in rules/."""


@rules.command("build")
def rules_build() -> None:
    """Validate rules/ and compile it into chalicelib/rules.json (what the Lambda carries).

    \b
    Example:
      mfawatch rules build        # after editing rules/*.yaml
    """
    from mfawatch.rules.build import build_bundle

    try:
        path = build_bundle()
    except MfawatchError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"wrote {path}")


RULES_DIR_OPTION = click.option(
    "--rules-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=RULES_DIR,
    show_default=True,
    help="Folder of rule files (YAML or JSON, one rule each).",
)


def _rule_files(rules_dir: Path) -> list[RuleFile]:
    """Load a rules folder for the rule commands; prints every validation error and exits 1."""
    from mfawatch.rules.build import load_rules_dir, validate_rules_dir

    if not rules_dir.is_dir():
        click.echo(f"error: {rules_dir}: no such folder", err=True)
        sys.exit(2)
    errors = validate_rules_dir(rules_dir)
    if errors:
        for error in errors:
            click.echo(str(error))
        click.echo(f"{len(errors)} error(s): fix them first (rules validate)", err=True)
        sys.exit(1)
    return load_rules_dir(rules_dir)


@rules.command("validate")
@RULES_DIR_OPTION
def rules_validate(rules_dir: Path) -> None:
    """Check schema, pattern validity and unique ids; one `file: $.path: message` per error.

    \b
    Example:
      mfawatch rules validate
      mfawatch rules validate --rules-dir my-rules/
    """
    from mfawatch.rules.build import rule_paths, validate_rules_dir

    if not rules_dir.is_dir():
        click.echo(f"error: {rules_dir}: no such folder", err=True)
        sys.exit(2)
    errors = validate_rules_dir(rules_dir)
    for error in errors:
        click.echo(str(error))
    count = len(rule_paths(rules_dir))
    if errors:
        files = len({error.source for error in errors})
        click.echo(f"{len(errors)} error(s) in {files} of {count} rule file(s)", err=True)
        sys.exit(1)
    click.echo(f"{count} rule file(s) valid in {rules_dir}")


@rules.command("test")
@RULES_DIR_OPTION
def rules_test(rules_dir: Path) -> None:
    """Run every rule's cases: match or not, expected title and dedup key.

    \b
    Example:
      mfawatch rules test
    """
    from mfawatch.rules.build import run_rule_cases

    files = _rule_files(rules_dir)
    results = run_rule_cases(files)
    for outcome in results:
        label = f"{outcome.case.rule_id}: {outcome.case.name}"
        if outcome.passed:
            click.echo(f"PASS {label}")
        else:
            click.echo(f"FAIL {label}: {'; '.join(outcome.failures)}")
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


@main.command("test-pattern")
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
    from chalicelib.records import is_cloudtrail_record, is_envelope
    from mfawatch.patterns.engine import InvalidPatternError, compile_pattern

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


@main.command()
@click.option("--stage", required=True, help="Stage name in .chalice/config.json.")
@click.option(
    "--write", is_flag=True, help="Write .chalice/policy-<stage>.json instead of printing."
)
@CONFIG_OPTION
def policy(stage: str, write: bool, config_path: Path) -> None:
    """Print (or write) the least-privilege IAM policy for a stage (beside the config file).

    \b
    Example:
      mfawatch policy --stage dev            # print it
      mfawatch policy --stage dev --write    # .chalice/policy-dev.json
    """
    from mfawatch.cli.stage import checked_stage
    from mfawatch.deploy.policy import policy_json, stage_policy

    try:
        stage_config = load_stage_config(stage, config_path)
    except MfawatchError as exc:
        raise click.ClickException(str(exc)) from exc
    checked_stage(stage_config.app_name, stage)
    try:
        text = policy_json(stage_policy(stage_config))
    except MfawatchError as exc:
        raise click.ClickException(str(exc)) from exc
    if write:
        target = config_path.parent / f"policy-{stage}.json"
        target.write_text(text, encoding="utf-8")
        click.echo(f"wrote {target}")
    else:
        click.echo(text, nl=False)


def run() -> None:
    """Entry point that turns our errors into a clean exit instead of a traceback."""
    try:
        main(standalone_mode=True)
    except MfawatchError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)


# Commands defined in other modules: each module exports COMMANDS, a list of click commands;
# add the list here to put them on the `mfawatch` command.
for _command in (
    *ORG_COMMANDS,
    *DEPLOY_COMMANDS,
    *INIT_COMMANDS,
    *DEPLOY_RUN_COMMANDS,
    *ATHENA_COMMANDS,
    *SELFTEST_COMMANDS,
):
    main.add_command(_command)
