"""Command line: ``python -m chalicelib.cli``. Thin commands over the same code the Lambda runs.

Results go to stdout (a table, or JSON lines for pipes); totals, problems and logs go to stderr.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .errors import MfawatchError
from .notifications import Notification
from .readers import ReadStats, read_paths
from .render import clean_text, render_subject
from .replay import ReplayResult, replay_events
from .rules import BUNDLE_PATH, load_bundle

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_SCENARIO = REPO_ROOT / "scenarios" / "demo"


@click.group()
def main() -> None:
    """mfawatch: failed-MFA sign-in alerting for AWS, offline tools."""


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--output",
    type=click.Choice(["table", "jsonl"]),
    default="table",
    show_default=True,
    help="table: readable; jsonl: one JSON object per notification.",
)
@click.option(
    "--rules-bundle",
    type=click.Path(path_type=Path, dir_okay=False),
    default=BUNDLE_PATH,
    show_default=True,
    help="Compiled rules (what the Lambda package carries).",
)
def replay(paths: tuple[Path, ...], output: str, rules_bundle: Path) -> None:
    """Replay CloudTrail files or folders (default: the bundled demo scenario)."""
    targets = list(paths) or [DEMO_SCENARIO]
    if not paths:
        click.echo(f"Replaying the bundled scenario {DEMO_SCENARIO}", err=True)
    try:
        rules = load_bundle(rules_bundle)
    except MfawatchError as exc:
        raise click.ClickException(str(exc)) from exc
    stats = ReadStats()
    result = replay_events(read_paths(targets, stats), rules, stats)
    if output == "jsonl":
        for notification in result.notifications:
            click.echo(json.dumps(_jsonl(notification), sort_keys=True))
    else:
        _print_table(result.notifications)
    _print_totals(result)


def _jsonl(notification: Notification) -> dict[str, object]:
    document = notification.to_json()
    document["subject"] = render_subject(notification)
    return document


def _print_table(notifications: list[Notification]) -> None:
    if not notifications:
        click.echo("No notifications.")
        return
    header = f"{'TIME (UTC)':<20} {'KIND':<10} {'SEVERITY':<8} {'RULE':<34} {'ACCOUNT':<12} "
    header += f"{'REGION':<14} {'COUNT':>5}  {'SOURCE IP':<15}  SUBJECT"
    click.echo(header)
    for n in notifications:
        click.echo(
            f"{n.first_seen:%Y-%m-%d %H:%M:%S} {n.kind:<10} {n.severity:<8} {n.rule.id:<34} "
            f"{clean_text(n.account, 12):<12} {clean_text(n.region, 14):<14} {n.count:>5}  "
            f"{clean_text(n.source_ip, 15):<15}  {render_subject(n)}"
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
        f"unreadable files {stats.unreadable_files}, malformed records {stats.malformed_records}",
        err=True,
    )


@main.group()
def rules() -> None:
    """Build and check the rules in rules/."""


@rules.command("build")
def rules_build() -> None:
    """Validate rules/ and compile it into chalicelib/rules.json (what the Lambda carries)."""
    from .rulebuild import build_bundle

    try:
        path = build_bundle()
    except MfawatchError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"wrote {path}")


@main.command()
@click.option("--stage", required=True, help="Stage name in .chalice/config.json.")
@click.option(
    "--write", is_flag=True, help="Write .chalice/policy-<stage>.json instead of printing."
)
def policy(stage: str, write: bool) -> None:
    """Print (or write) the least-privilege IAM policy for a stage."""
    from .policy import policy_json, stage_policy

    config_path = REPO_ROOT / ".chalice" / "config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    stages = config.get("stages", {})
    if stage not in stages:
        raise click.ClickException(f"{config_path}: no stage {stage!r}; have {', '.join(stages)}")
    try:
        text = policy_json(stage_policy(config["app_name"], stage, stages[stage]))
    except MfawatchError as exc:
        raise click.ClickException(f"{config_path}: {exc}") from exc
    if write:
        target = REPO_ROOT / ".chalice" / f"policy-{stage}.json"
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


if __name__ == "__main__":
    run()
