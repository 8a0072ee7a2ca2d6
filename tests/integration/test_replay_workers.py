"""Replay with worker processes (``--jobs``) gives exactly what one process gives.

The unit tier replays in one process; here the files are decompressed and parsed in a pool of
worker processes, as the CLI does by default on a multi-core machine.
"""

from __future__ import annotations

from click.testing import CliRunner

from chalicelib.core.rules import RuleSet
from mfawatch.cli import main
from mfawatch.paths import DEMO_SCENARIO
from mfawatch.replay.archive import Prefilter, local_files, ordered_events
from mfawatch.replay.readers import ReadStats


def _stream(jobs: int, rules: RuleSet) -> tuple[list[tuple[object, str]], ReadStats]:
    stats = ReadStats()
    files = local_files([DEMO_SCENARIO], stats)
    events = ordered_events(files, stats, prefilter=Prefilter.for_rules(rules), jobs=jobs)
    return [(e.moment, e.origin) for e in events], stats


def test_worker_processes_stream_the_same_events_in_the_same_order(rules: RuleSet) -> None:
    one, one_stats = _stream(1, rules)
    two, two_stats = _stream(2, rules)
    assert len(one) > 0
    assert two == one
    assert (two_stats.files, two_stats.records, two_stats.problems) == (
        one_stats.files,
        one_stats.records,
        one_stats.problems,
    )


def test_cli_replay_output_does_not_depend_on_jobs() -> None:
    outputs = []
    for jobs in ("1", "2"):
        result = CliRunner().invoke(main, ["replay", "--jobs", jobs, "--output", "jsonl"])
        assert result.exit_code == 0, result.output
        outputs.append(result.stdout)
    assert outputs[0].count("\n") == 24  # the demo's notifications (README table)
    assert outputs[1] == outputs[0]
