"""The operator's view: the service's counts, the SNS dry run."""

from __future__ import annotations

import json

from click.testing import CliRunner

from chalicelib.core.records import envelope_of
from chalicelib.core.rules import RuleSet
from chalicelib.pipeline.observability import MemoryMetrics
from chalicelib.pipeline.service import AlertService, MemoryPublisher
from mfawatch.cli import main
from tests.conftest import load_event
from tests.support.events import BASE as T0


def test_service_counts_matches_repeats_duplicates_and_notifications(rules: RuleSet) -> None:
    metrics = MemoryMetrics()
    service = AlertService(rules, MemoryPublisher(), metrics=metrics)
    base = load_event("iam-consolelogin-failure-mfa-yes")
    for i in (0, 1, 1):  # event 1 is delivered twice
        record = dict(base, eventID=f"e{i}", eventTime=f"2026-11-02T09:00:0{i}Z")
        service.handle("iam-console-mfa-failure", envelope_of(record), T0)
    assert metrics.total("EventsMatched") == 3
    assert metrics.total("Repeats") == 1
    assert metrics.total("Duplicates") == 1
    assert metrics.counts[("Notifications", (("Kind", "alert"),))] == 1


def test_sns_dry_run_prints_the_exact_publish_parameters() -> None:
    result = CliRunner().invoke(
        main, ["replay", "--jobs", "1", "--output", "sns", "--stage", "dev"]
    )
    assert result.exit_code == 0, result.output
    publishes = [json.loads(line) for line in result.stdout.splitlines()]
    first = publishes[0]
    assert set(first) == {
        "Output",
        "TopicArn",
        "Subject",
        "Message",
        "MessageStructure",
        "MessageAttributes",
    }
    assert first["Output"] == "alerts"
    assert first["TopicArn"] == "arn:aws:sns:us-east-1:111122223333:mfawatch-dev-alerts"
    assert first["MessageStructure"] == "json"
    bodies = json.loads(first["Message"])
    assert bodies["email"].startswith("[HIGH] Failed MFA sign-in for IAM user ops-admin")
    assert json.loads(bodies["sqs"])["schema_version"] == "1"
    outputs = [p["Output"] for p in publishes]
    assert outputs.count("alerts") == 24  # every notification of the demo
    assert "pager" in outputs  # HIGH alerts and escalations, not summaries
    pager_kinds = {
        p["MessageAttributes"]["kind"]["StringValue"] for p in publishes if p["Output"] == "pager"
    }
    assert pager_kinds == {"alert", "escalation"}


def test_unknown_stage_is_a_clear_error() -> None:
    result = CliRunner().invoke(main, ["replay", "--stage", "nope"])
    assert result.exit_code == 2
    assert "no stage 'nope'" in result.output
