"""The deployable package: `chalice package` offline (tests/integration/test_lambda_zip.py resolves
every handler in the unzipped zip; tests/runtime/ runs them under the Lambda runtime client)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from chalicelib.core.config import settings_from_env
from chalicelib.core.constants import HEARTBEAT_PATTERN
from chalicelib.core.rules import load_bundle
from mfawatch.deploy.templates import load_stage_config
from tests.conftest import ROOT
from tests.support.tools import offline_env, shared_chalice_package

pytestmark = pytest.mark.slow

MAX_ZIP_BYTES = 1024 * 1024
SCHEDULED = {"send_due_summaries": "rate(1 minute)", "heartbeat": "rate(15 minutes)"}
# The consumer of parked events has no event of its own in Chalice's template: its SQS event
# source comes from the deploy templates (mfawatch/deploy/templates/functions.py,
# parked_event_source).
OTHER_HANDLERS = [*SCHEDULED, "on_heartbeat", "consume_parked_events"]


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_chalice_package(tmp_path_factory)


def test_zip_is_small(package: Path) -> None:
    size = (package / "deployment.zip").stat().st_size
    assert size < MAX_ZIP_BYTES, f"deployment.zip is {size} bytes"


def test_template_declares_one_function_and_rule_per_rule_on_python_312_plus(package: Path) -> None:
    template = json.loads((package / "sam.json").read_text())
    functions = {
        name: res
        for name, res in template["Resources"].items()
        if res["Type"] == "AWS::Serverless::Function"
    }
    handlers = {res["Properties"]["Handler"] for res in functions.values()}
    assert handlers == {f"app.{rule.handler_name}" for rule in load_bundle()} | {
        f"app.{name}" for name in OTHER_HANDLERS
    }
    schedules = [
        event["Properties"]["Schedule"]
        for res in functions.values()
        for event in res["Properties"].get("Events", {}).values()
        if event["Type"] == "Schedule"
    ]
    assert sorted(schedules) == sorted(SCHEDULED.values())
    for res in functions.values():
        runtime = res["Properties"]["Runtime"]
        assert runtime.startswith("python3.")
        assert int(runtime.split(".")[1]) >= 12, runtime
    patterns = [
        event["Properties"]["Pattern"]
        for res in functions.values()
        for event in res["Properties"].get("Events", {}).values()
        if event["Type"] == "CloudWatchEvent"
    ]
    assert sorted(json.dumps(p, sort_keys=True) for p in patterns) == sorted(
        json.dumps(dict(p), sort_keys=True)
        for p in [*(r.event_pattern for r in load_bundle()), HEARTBEAT_PATTERN]
    )


def test_every_function_runs_capped_at_the_stages_reserved_concurrency(package: Path) -> None:
    # What bounds the marked copies a DynamoDB outage can publish (docs/outputs.md): at most
    # MFAWATCH_CONCURRENCY environments of each function, the scheduler one.
    concurrency = settings_from_env(load_stage_config("dev").environment()).concurrency
    template = json.loads((package / "sam.json").read_text())
    capped = {
        res["Properties"]["Handler"]: res["Properties"].get("ReservedConcurrentExecutions")
        for res in template["Resources"].values()
        if res["Type"] == "AWS::Serverless::Function"
    }
    assert capped == {
        handler: 1 if handler == "app.send_due_summaries" else concurrency for handler in capped
    }
    assert len(capped) == len(load_bundle()) + len(OTHER_HANDLERS)


def test_importing_the_app_outside_lambda_leaves_logging_and_aws_alone() -> None:
    """`chalice package`/`deploy` import app.py: no root handler replaced, no client built."""
    probe = (
        "import logging, app;"
        "print(len(logging.getLogger().handlers), logging.getLogger().level, app._wiring)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env=offline_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.split() == ["0", str(logging.WARNING), "None"]
    assert result.stderr == ""
