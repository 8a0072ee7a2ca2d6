"""``mfawatch init``, ``deploy`` and ``destroy`` as a user runs them, against moto_server.

The commands run as processes (the ``mfawatch`` of this venv) on a temporary copy of the project,
with ``AWS_ENDPOINT_URL`` pointing at moto_server and a PATH that has no ``aws`` binary: the
deploy must need nothing but boto3 and Chalice. moto cannot run function code (no Docker), so the
self-test step is checked for what it reports there: every function failed, named, with moto's
answer, and a non-zero exit naming the step.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from chalicelib.core.constants import RULE_STATE_WITH_READ_ONLY
from mfawatch.deploy.handlers import app_handler_names
from tests.conftest import MOTO_ACCOUNT, ROOT, STAGE_DIR

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STAGE = "t1"
REGION = "us-east-1"
BIN = Path(sys.executable).parent
SIGN_IN_FUNCTION = f"mfawatch-{STAGE}-on_sign_in_success"


def _tracked_chalice_files() -> dict[str, str]:
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted((ROOT / ".chalice").glob("*.json"))
    }


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    """A copy of what Chalice deploys: app.py, chalicelib/, requirements.txt, .chalice/*.json."""
    before = _tracked_chalice_files()
    copy = tmp_path / "project"
    copy.mkdir()
    shutil.copy2(ROOT / "app.py", copy / "app.py")
    shutil.copy2(ROOT / "requirements.txt", copy / "requirements.txt")
    shutil.copytree(
        ROOT / "chalicelib", copy / "chalicelib", ignore=shutil.ignore_patterns("__pycache__")
    )
    (copy / ".chalice").mkdir()
    for path in STAGE_DIR.glob("*.json"):  # the tests' stages, not the user's
        shutil.copy2(path, copy / ".chalice" / path.name)
    yield copy
    assert _tracked_chalice_files() == before, "the tracked .chalice files must not change"


@pytest.fixture
def environment(moto_server: str) -> dict[str, str]:
    path = os.pathsep.join([str(BIN), "/usr/bin", "/bin"])
    assert shutil.which("aws", path=path) is None, f"an aws binary is on {path}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return env | {
        "PATH": path,
        "AWS_ENDPOINT_URL": moto_server,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }


def mfawatch(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "mfawatch"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def client(env: dict[str, str], service: str) -> Any:
    return boto3.client(  # type: ignore[call-overload]  # boto3-stubs take literal names
        service,
        region_name=REGION,
        endpoint_url=env["AWS_ENDPOINT_URL"],
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def stacks(env: dict[str, str]) -> dict[str, str]:
    summaries = client(env, "cloudformation").list_stacks()["StackSummaries"]
    live = {s["StackName"]: s["StackStatus"] for s in summaries}
    return {
        name: status
        for name, status in live.items()
        if name.startswith(f"mfawatch-{STAGE}-") and status != "DELETE_COMPLETE"
    }


def functions(env: dict[str, str]) -> set[str]:
    listed = client(env, "lambda").list_functions()["Functions"]
    return {f["FunctionName"] for f in listed if f["FunctionName"].startswith(f"mfawatch-{STAGE}-")}


def invoke_config_stack(env: dict[str, str], expected: set[str]) -> dict[str, Any]:
    """The consumer's event source, after checking the stack's other resources."""
    cloudformation = client(env, "cloudformation")
    # moto's CloudFormation keeps these resources unmodelled (no type, no id in
    # ListStackResources, and Lambda says the functions have no EventInvokeConfig), so what is
    # checked is the template the stack was given: one per function, on the created functions.
    body = cloudformation.get_template(StackName=f"mfawatch-{STAGE}-invoke-config")["TemplateBody"]
    resources = (json.loads(body) if isinstance(body, str) else body)["Resources"]
    by_type: dict[str, list[dict[str, Any]]] = {}
    for resource in resources.values():
        by_type.setdefault(resource["Type"], []).append(resource["Properties"])
    # One invoke config per asynchronously invoked function, the parked-event consumer's SQS
    # event source, and the per-function and per-rule alarms (issue 18).
    assert set(by_type) == {
        "AWS::Lambda::EventInvokeConfig",
        "AWS::Lambda::EventSourceMapping",
        "AWS::CloudWatch::Alarm",
    }
    consumer = f"mfawatch-{STAGE}-consume_parked_events"
    invoked = {p["FunctionName"] for p in by_type["AWS::Lambda::EventInvokeConfig"]}
    assert invoked == expected - {consumer}
    (mapping,) = by_type["AWS::Lambda::EventSourceMapping"]
    assert mapping["FunctionName"] == consumer
    return mapping


def read_only_rule(env: dict[str, str]) -> tuple[str, list[str]]:
    """The state of sign-in-success's EventBridge rule and the functions it targets."""
    events = client(env, "events")
    rule = f"mfawatch-{STAGE}-on_sign_in_success-event"
    targets = events.list_targets_by_rule(Rule=rule)["Targets"]
    return events.describe_rule(Name=rule)["State"], [t["Arn"].split(":")[-1] for t in targets]


def test_init_deploy_again_and_destroy_on_moto_server_without_the_aws_cli(
    project: Path, environment: dict[str, str]
) -> None:
    where = ("--project-dir", str(project))
    expected = {f"mfawatch-{STAGE}-{handler}" for handler in app_handler_names()}

    init = mfawatch(
        environment,
        "init",
        "--stage",
        STAGE,
        "--region",
        REGION,
        "--account",
        f"{MOTO_ACCOUNT}=tooling",
        "--email",
        "secops@example.com",
        "--no-input",
        *where,
    )
    assert init.returncode == 0, init.stderr
    assert f'+    "{STAGE}": {{' in init.stdout  # the diff shows the new stage

    first = mfawatch(environment, "deploy", "--stage", STAGE, "--no-selftest", *where)
    assert first.returncode == 0, first.stderr + first.stdout
    assert (
        "deploy: changed resources, config, subscriptions, app, rule-state, invoke-config"
        in first.stdout
    )
    assert f"mfawatch-{STAGE}-resources CREATE_COMPLETE" in first.stderr  # events as progress
    # moto 5.2 does not serve GetAccountSettings (404 "Not yet implemented"): the preflight says
    # it could not check and goes on; tests/unit/test_concurrency.py checks the figures.
    assert "warning: cannot check the account's concurrency" in first.stderr
    assert read_only_rule(environment) == (RULE_STATE_WITH_READ_ONLY, [SIGN_IN_FUNCTION])
    assert stacks(environment) == {
        f"mfawatch-{STAGE}-resources": "CREATE_COMPLETE",
        f"mfawatch-{STAGE}-invoke-config": "CREATE_COMPLETE",
    }
    assert functions(environment) == expected
    mapping = invoke_config_stack(environment, expected)
    # Every function is capped: chalice deploy applies reserved_concurrency, and the consumer's
    # event source invokes no more than its cap (the bound of docs/outputs.md).
    cap = json.loads((project / ".chalice" / "config.json").read_text())["reserved_concurrency"]
    lambda_client = client(environment, "lambda")
    reserved = {
        name: lambda_client.get_function_concurrency(FunctionName=name).get(
            "ReservedConcurrentExecutions"
        )
        for name in expected
    }
    assert reserved == {
        name: 1 if name.endswith("-send_due_summaries") else cap for name in expected
    }
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": cap}
    assert (project / ".chalice" / f"policy-{STAGE}.json").is_file()
    # Only this stage's topics: other test files on this worker share the session's moto_server.
    topics = client(environment, "sns").list_subscriptions()["Subscriptions"]
    ours = [s for s in topics if s["TopicArn"].rsplit(":", 1)[1].startswith(f"mfawatch-{STAGE}-")]
    assert [(s["TopicArn"].rsplit(":", 1)[1], s["Endpoint"]) for s in ours] == [
        (f"mfawatch-{STAGE}-alerts", "secops@example.com")
    ]

    second = mfawatch(environment, "deploy", "--stage", STAGE, "--no-selftest", *where)
    assert second.returncode == 0, second.stderr
    assert second.stdout.startswith("deploy: no changes (8 steps checked)"), second.stdout
    assert "Creating" not in second.stderr and "Updating" not in second.stderr
    assert read_only_rule(environment) == (RULE_STATE_WITH_READ_ONLY, [SIGN_IN_FUNCTION])

    # chalice deploy puts every rule back to ENABLED; the step after it sets the state again.
    forced = mfawatch(environment, "deploy", "--stage", STAGE, "--no-selftest", "--force", *where)
    assert forced.returncode == 0, forced.stderr
    assert forced.stdout.startswith("deploy: changed app, rule-state"), forced.stdout
    assert read_only_rule(environment) == (RULE_STATE_WITH_READ_ONLY, [SIGN_IN_FUNCTION])

    # moto keeps the functions but cannot run them: the self-test step must say so and fail.
    checked = mfawatch(environment, "deploy", "--stage", STAGE, *where)
    assert checked.returncode == 1
    assert "step selftest failed" in checked.stderr
    assert f"{len(expected)} of {len(expected)} functions failed the self-test" in checked.stderr
    assert "docker" in checked.stderr  # moto's own answer is shown, not hidden

    destroyed = mfawatch(environment, "destroy", "--stage", STAGE, *where)
    assert destroyed.returncode == 0, destroyed.stderr
    assert functions(environment) == set()
    assert stacks(environment) == {f"mfawatch-{STAGE}-resources": "CREATE_COMPLETE"}
    assert f"kept stack mfawatch-{STAGE}-resources" in destroyed.stderr

    deleted = mfawatch(environment, "destroy", "--stage", STAGE, "--delete-data", *where)
    assert deleted.returncode == 0, deleted.stderr
    assert stacks(environment) == {}
    assert "destroy: changed resources" in deleted.stdout


def test_route_merged_uploads_by_content_and_deploys_one_stack_idempotently(
    project: Path, environment: dict[str, str]
) -> None:
    """Route (b) as far as moto goes: ``chalice package --merge-template``, the upload and the
    stack (through ``TemplateURL``: the merged template is larger than CloudFormation takes
    inline). moto's CloudFormation does not expand the ``AWS::Serverless`` transform, so no
    function exists afterwards and the self-test is skipped; the template itself is linted in
    test_deploy_templates.py."""
    if sys.version_info < (3, 12):
        pytest.skip("Chalice sets the Lambda runtime from this Python; package with 3.12+")
    stage, bucket = "t2", "artifacts"
    where = ("--project-dir", str(project), "--stage", stage)
    client(environment, "s3").create_bucket(Bucket=bucket)
    init = mfawatch(
        environment, "init", "--region", REGION, "--account", MOTO_ACCOUNT, "--no-input", *where
    )
    assert init.returncode == 0, init.stderr
    merged = ("--route", "merged", "--bucket", bucket, "--no-selftest")

    first = mfawatch(environment, "deploy", *merged, *where)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("deploy: changed upload, stack"), first.stdout
    keys = sorted(
        o["Key"] for o in client(environment, "s3").list_objects_v2(Bucket=bucket)["Contents"]
    )
    assert [k.split("-")[0] for k in keys] == [
        f"mfawatch/{stage}/deployment",
        f"mfawatch/{stage}/template",
    ]
    status = client(environment, "cloudformation").describe_stacks(StackName=f"mfawatch-{stage}")
    assert status["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"

    second = mfawatch(environment, "deploy", *merged, *where)
    assert second.returncode == 0, second.stderr
    assert second.stdout.startswith("deploy: no changes (6 steps checked)"), second.stdout

    refused = mfawatch(environment, "destroy", "--route", "merged", *where)
    assert refused.returncode == 2
    assert "holds the table and the key with the functions" in refused.stderr
    deleted = mfawatch(environment, "destroy", "--route", "merged", "--delete-data", *where)
    assert deleted.returncode == 0, deleted.stderr
    summaries = client(environment, "cloudformation").list_stacks()["StackSummaries"]
    assert {s["StackStatus"] for s in summaries if s["StackName"] == f"mfawatch-{stage}"} == {
        "DELETE_COMPLETE"
    }
