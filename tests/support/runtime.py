"""The runtime tier: the unzipped ``chalice package`` under awslambdaric, as Lambda runs it.

Fixtures: the packaged dev stage (template + unzipped ``deployment.zip``), the stage resources
created from ``deploy/resources.yaml`` through CloudFormation on moto_server, and one running
execution environment per function (:class:`tests.support.lambdaric.LambdaFunction`).
"""

from __future__ import annotations

import compileall
import json
import os
import sys
import time
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.conftest import ROOT
from tests.support.lambdaric import REGION, LambdaFunction, lambda_environment
from tests.support.tools import shared_chalice_package

STAGE = "dev"
#: Built by `make` from tests/runtime/requirements.txt (pip install --target).
RUNTIME_PACKAGES = ROOT / ".venv" / "lambda-runtime"
#: The interpreter itself, not the virtualenv's wrapper (with -S neither adds site-packages).
PYTHON = os.path.realpath(sys.executable)


@dataclass(frozen=True)
class Package:
    """``chalice package --stage dev``: the SAM template and the unzipped deployment.zip."""

    stage: str
    template: dict[str, Any]
    task: Path

    def functions(self) -> dict[str, dict[str, Any]]:
        """Function name (as Chalice deploys it) -> the template's function properties."""
        found = {}
        for resource in self.template["Resources"].values():
            if resource["Type"] == "AWS::Serverless::Function":
                props = resource["Properties"]
                handler = props["Handler"].split(".", 1)[1]
                found[f"mfawatch-{self.stage}-{handler}"] = props
        return found


@pytest.fixture(scope="session")
def runtime_packages() -> Path:
    if not (RUNTIME_PACKAGES / "awslambdaric").is_dir():
        pytest.fail(f"{RUNTIME_PACKAGES} missing: run `make test` (it installs the runtime tier)")
    return RUNTIME_PACKAGES


def unzipped_package(stage: str, tmp_path_factory: pytest.TempPathFactory) -> Package:
    """``chalice package --stage STAGE`` (the run's shared build) with deployment.zip unzipped
    into an empty folder of its own."""
    if sys.version_info[:2] != (3, 12):
        pytest.skip("the functions run on python3.12: run the runtime tier with Python 3.12")
    out = shared_chalice_package(tmp_path_factory, stage)
    task = tmp_path_factory.mktemp(f"package-{stage}") / "task"
    task.mkdir()  # an empty folder, like /var/task
    with zipfile.ZipFile(out / "deployment.zip") as archive:
        archive.extractall(task)
    # Bytecode once for the package, beside its sources (__pycache__/), as a zip that ships .pyc
    # files brings it: every execution environment of the session (about forty) then loads it
    # instead of compiling app.py, chalicelib and chalice again, a tenth of a second of CPU each.
    # The processes still write no bytecode (PYTHONDONTWRITEBYTECODE, /var/task is read-only),
    # and a source that does not compile fails here, naming its file.
    assert compileall.compile_dir(task, quiet=1), f"the package in {task} does not compile"
    return Package(stage, json.loads((out / "sam.json").read_text()), task)


@pytest.fixture(scope="session")
def package(tmp_path_factory: pytest.TempPathFactory) -> Package:
    return unzipped_package(STAGE, tmp_path_factory)


@dataclass(frozen=True)
class Stack:
    endpoint_url: str
    outputs: dict[str, str]
    subscriber_url: str
    """An SQS queue subscribed to the alerts topic (SNS envelope, so Subject is visible)."""

    def client(self, service: str) -> Any:
        return boto3.client(  # type: ignore[call-overload]  # boto3-stubs take literal names
            service,
            region_name=REGION,
            endpoint_url=self.endpoint_url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def received(self) -> list[dict[str, Any]]:
        sqs = self.client("sqs")
        bodies: list[dict[str, Any]] = []
        while True:
            batch = sqs.receive_message(QueueUrl=self.subscriber_url, MaxNumberOfMessages=10).get(
                "Messages", []
            )
            if not batch:
                return bodies
            for message in batch:
                bodies.append(json.loads(message["Body"]))
                sqs.delete_message(
                    QueueUrl=self.subscriber_url, ReceiptHandle=message["ReceiptHandle"]
                )


@pytest.fixture(scope="session")
def stack(moto_server: str) -> Stack:
    """deploy/resources.yaml created through CloudFormation (moto), as route (a) deploys it."""
    return create_stack(moto_server, STAGE)


def create_stack(endpoint_url: str, stage: str) -> Stack:
    """The stage's resources stack, and an SQS queue subscribed to its alerts topic.

    moto's CloudFormation (moto 5.2.5) creates the key, alias, table (both indexes), topics and
    queue of deploy/resources.yaml; it leaves out what the functions never touch: the
    ``AWS::CloudWatch::Alarm`` (no alarm exists afterwards) and the table's TTL specification
    (``describe_time_to_live`` says DISABLED). Nothing else is created by hand.
    """
    stack = Stack(endpoint_url, {}, "")
    cloudformation = stack.client("cloudformation")
    name = f"mfawatch-{stage}-resources"
    cloudformation.create_stack(
        StackName=name,
        TemplateBody=(ROOT / "deploy" / "resources.yaml").read_text(),
        Parameters=[{"ParameterKey": "Stage", "ParameterValue": stage}],
    )
    deadline = time.monotonic() + 60
    while True:
        described = cloudformation.describe_stacks(StackName=name)["Stacks"][0]
        if not described["StackStatus"].endswith("IN_PROGRESS") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert described["StackStatus"] == "CREATE_COMPLETE", described
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
    sqs = stack.client("sqs")
    queue_url = sqs.create_queue(QueueName=f"{stage}-alerts-subscriber")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    stack.client("sns").subscribe(
        TopicArn=outputs["AlertsTopicArn"], Protocol="sqs", Endpoint=queue_arn
    )
    return Stack(endpoint_url, outputs, queue_url)


@contextmanager
def running(
    package: Package, runtime_packages: Path, endpoint_url: str
) -> Iterator[dict[str, LambdaFunction]]:
    """Every function of the template in its own execution environment, started in parallel."""
    started: dict[str, LambdaFunction] = {}
    try:
        for name, props in sorted(package.functions().items()):
            env = lambda_environment(
                name,
                props.get("Environment", {}).get("Variables", {}),
                [package.task, runtime_packages],
                endpoint_url,
            )
            function = LambdaFunction(name, props["Handler"], package.task, env)
            started[name] = function
            function.start(PYTHON)
        yield started
    finally:
        # Together: each stop waits for its process and its Runtime API server's poll (up to
        # half a second), which one after the other added seconds to every run's end.
        with ThreadPoolExecutor(max_workers=max(1, len(started))) as pool:
            list(pool.map(LambdaFunction.stop, started.values()))


@pytest.fixture(scope="session")
def functions(
    package: Package, runtime_packages: Path, stack: Stack
) -> Iterator[dict[str, LambdaFunction]]:
    with running(package, runtime_packages, stack.endpoint_url) as started:
        yield started
