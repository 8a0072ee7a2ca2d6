"""The deployable package: `chalice package` offline, then import the unzipped app like Lambda."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from chalicelib.constants import HEARTBEAT_PATTERN
from chalicelib.rules import load_bundle
from tests.conftest import ROOT

pytestmark = pytest.mark.slow

MAX_ZIP_BYTES = 1024 * 1024
SCHEDULED = {"send_due_summaries": "rate(1 minute)", "heartbeat": "rate(15 minutes)"}
OTHER_HANDLERS = [*SCHEDULED, "on_heartbeat"]


def _offline_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["AWS_DEFAULT_REGION"] = "us-east-1"  # chalice package needs a region, no credentials
    return env


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if sys.version_info < (3, 12):
        pytest.skip("Chalice sets the Lambda runtime from this Python; package with 3.12+")
    chalice = shutil.which("chalice", path=str(Path(sys.executable).parent)) or shutil.which(
        "chalice"
    )
    assert chalice, "chalice CLI not installed (pip install -r requirements-dev.txt)"
    out = tmp_path_factory.mktemp("package") / "out"
    result = subprocess.run(
        [chalice, "package", "--stage", "dev", str(out)],
        cwd=ROOT,
        env=_offline_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return out


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


def test_unzipped_package_imports_with_every_handler(package: Path, tmp_path: Path) -> None:
    target = tmp_path / "task"
    target.mkdir()
    with zipfile.ZipFile(package / "deployment.zip") as archive:
        archive.extractall(target)
    assert (target / "chalicelib" / "rules.json").is_file()
    probe = (
        "import json, sys; sys.path.insert(0, sys.argv[1]);"
        "import app, chalicelib, chalice;"
        "assert chalicelib.__file__.startswith(sys.argv[1]), chalicelib.__file__;"
        "assert chalice.__file__.startswith(sys.argv[1]), chalice.__file__;"
        "print(json.dumps(sorted(app.app.handler_map)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, str(target)],
        cwd=target,
        env=_offline_env() | {"PYTHONPATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    handlers = json.loads(result.stdout)
    assert handlers == sorted([rule.handler_name for rule in load_bundle()] + OTHER_HANDLERS)
