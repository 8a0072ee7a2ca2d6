"""``mfawatch replay``: CloudTrail files, folders, S3 prefixes, stdin or Athena, through the
service the Lambda runs.

Thin: reading and ordering are :mod:`mfawatch.replay.archive`, the decisions
:mod:`mfawatch.replay.runner`, what is printed :mod:`mfawatch.replay.output`, the Athena
candidates :mod:`mfawatch.athena.backtest`. Results go to stdout; totals, problems and progress
go to stderr.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click

from chalicelib.core.config import Settings, settings_from_env
from chalicelib.core.errors import MfawatchError
from chalicelib.core.rules import RuleSet, load_bundle
from chalicelib.core.suppressions import Suppressions, load_suppressions
from mfawatch.athena.backtest import athena_events
from mfawatch.cli.options import (
    RULES_BUNDLE_OPTION,
    SUPPRESSIONS_BUNDLE_OPTION,
    IsoTime,
    select_rules,
    split_list,
)
from mfawatch.deploy.templates import load_stage_config
from mfawatch.errors import ArchiveReadError
from mfawatch.paths import DEMO_SCENARIO
from mfawatch.replay.archive import (
    DEFAULT_LATENESS,
    ArchiveFile,
    Prefilter,
    TimeRange,
    local_files,
    ordered_events,
    remote_files,
)
from mfawatch.replay.output import (
    STDIN,
    STDIN_NAME,
    notification_document,
    replay_failure,
    sns_documents,
    table_lines,
    totals_lines,
)
from mfawatch.replay.readers import ReadStats
from mfawatch.replay.runner import ReplayResult, TimedEvent, replay_timed
from mfawatch.rules.suppressions import counts_report

if TYPE_CHECKING:
    from mfawatch.replay.s3archive import S3Archive


@click.command()
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
@SUPPRESSIONS_BUNDLE_OPTION
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
    *,
    paths: tuple[str, ...],
    output: str,
    rules_bundle: Path,
    suppressions_bundle: Path,
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
    run = ReplayRun(
        settings=_settings(stage),
        rules_bundle=rules_bundle,
        rule_ids=rule_ids,
        suppressions_bundle=suppressions_bundle,
        time_range=TimeRange(since, until),
        lateness=timedelta(minutes=lateness),
        show_progress=sys.stderr.isatty() if progress is None else progress,
        output=output,
    )
    athena = AthenaOptions(athena_table, athena_output, workgroup, accounts, regions)
    if athena.table is None:
        athena.check_unused()
        _replay_files(run, paths, jobs=jobs, strict=strict)
    else:
        _replay_athena(run, paths, athena.table, athena)


@dataclass(frozen=True)
class AthenaOptions:
    """``--athena TABLE`` and the options that apply only with it."""

    table: str | None
    output: str | None
    workgroup: str | None
    accounts: str | None
    regions: str | None

    def check_unused(self) -> None:
        """A usage error naming the Athena options given without ``--athena``."""
        named = {
            "--athena-output": self.output,
            "--workgroup": self.workgroup,
            "--accounts": self.accounts,
            "--regions": self.regions,
        }
        given = [name for name, value in named.items() if value]
        if given:
            raise click.BadParameter(
                f"{', '.join(given)} only apply with --athena", param_hint="--athena"
            )


@dataclass(frozen=True)
class ReplayRun:
    """What a replay of files and one on Athena share: the rules, the time range, the settings,
    and where the results go."""

    settings: Settings
    rules_bundle: Path
    rule_ids: tuple[str, ...]
    suppressions_bundle: Path
    time_range: TimeRange
    lateness: timedelta
    show_progress: bool
    output: str

    def rules(self) -> RuleSet:
        """The ``--rule`` selection of the bundle; a bad bundle or id is a command error."""
        try:
            return select_rules(load_bundle(self.rules_bundle), self.rule_ids)
        except MfawatchError as exc:
            raise click.ClickException(str(exc)) from exc

    def result(
        self, events: Iterable[TimedEvent], rules: RuleSet, stats: ReadStats
    ) -> ReplayResult:
        """Replay ``events`` (read as they are needed) with the bundle's suppressions."""
        applied = _suppressions(self.suppressions_bundle)
        return replay_timed(events, rules, stats, self.settings, applied)

    def emit(self, result: ReplayResult) -> None:
        """The notifications on stdout in the chosen format, the totals on stderr."""
        _emit(result, self.output, self.settings)


def _replay_files(run: ReplayRun, paths: tuple[str, ...], *, jobs: int, strict: bool) -> None:
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
    rules = run.rules()
    time_range = run.time_range
    since, until = time_range.since, time_range.until
    if since is not None and until is not None and until <= since:
        raise click.BadParameter("--until must be after --since", param_hint="--until")
    stats = ReadStats()
    files, fetch = _inputs(targets, stats, time_range, run.lateness)
    meter = ProgressLine(time.monotonic) if run.show_progress else None
    events = ordered_events(
        files,
        stats,
        prefilter=Prefilter.for_rules(rules),
        time_range=time_range,
        lateness=run.lateness,
        fetch=fetch,
        jobs=jobs,
        progress=meter,
    )
    result = run.result(events, rules, stats)
    if meter is not None:
        meter.clear()
    run.emit(result)
    failure = replay_failure(stats, targets, strict)
    if failure:
        click.echo(f"error: {failure}", err=True)
        sys.exit(1)


def _inputs(
    targets: list[str], stats: ReadStats, time_range: TimeRange, window: timedelta
) -> tuple[list[ArchiveFile], Callable[[ArchiveFile], bytes] | None]:
    """The files to read (local, stdin, S3 listings) and the reader of the remote ones."""
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
    return files, _remote_reader(stdin, s3_read) if stdin is not None else s3_read


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


def _replay_athena(
    run: ReplayRun, paths: tuple[str, ...], table: str, athena: AthenaOptions
) -> None:
    if paths:
        raise click.BadParameter("give either PATHS or --athena, not both", param_hint="--athena")
    time_range = run.time_range
    if time_range.since is None or time_range.until is None:
        raise click.BadParameter("--athena needs --since and --until", param_hint="--athena")
    if time_range.until <= time_range.since:
        raise click.BadParameter("--until must be after --since", param_hint="--until")
    rules = run.rules()
    try:
        if not athena.output:
            raise click.BadParameter(
                "--athena needs --athena-output s3://...", param_hint="--athena"
            )
        stats = ReadStats()
        events = athena_events(
            rules,
            table,
            output=athena.output,
            workgroup=athena.workgroup,
            time_range=time_range,
            accounts=split_list(athena.accounts),
            regions=split_list(athena.regions),
            lateness=run.lateness,
            stats=stats,
            show_progress=run.show_progress,
            write=lambda text: click.echo(text, err=True, nl=False),
        )
    except MfawatchError as exc:
        raise click.ClickException(str(exc)) from exc
    run.emit(run.result(events, rules, stats))


def _emit(result: ReplayResult, output: str, settings: Settings) -> None:
    """The notifications on stdout in the chosen format, the totals on stderr."""
    if output == "jsonl":
        for notification, sent_at in zip(result.notifications, result.sent_at, strict=True):
            click.echo(json.dumps(notification_document(notification, sent_at), sort_keys=True))
    elif output == "sns":
        for document in sns_documents(result, settings):
            click.echo(json.dumps(document, sort_keys=True))
    else:
        for line in table_lines(result.notifications, result.sent_at):
            click.echo(line)
    for line in totals_lines(result):
        click.echo(line, err=True)
    if result.suppressions:
        for line in counts_report(result.suppressed_by, result.suppressions):
            click.echo(line, err=True)


def _suppressions(path: Path) -> Suppressions:
    try:
        return load_suppressions(path)
    except MfawatchError as exc:
        raise click.ClickException(str(exc)) from exc


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


COMMANDS: list[click.Command] = [replay]
