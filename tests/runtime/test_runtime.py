"""The packaged app under AWS's own runtime client, against moto_server: what Lambda would do."""

from __future__ import annotations

import io
import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from chalicelib.core.records import envelope_of
from chalicelib.core.rules import load_bundle
from chalicelib.core.selftest import selftest_event
from chalicelib.pipeline.heartbeats import heartbeat_key
from mfawatch.deploy.handlers import app_handler_names
from mfawatch.deploy.selftest import (
    NOT_FOUND,
    NOT_STARTED,
    OTHER_ANSWER,
    RAISED,
    deployed_function_names,
    render_report,
    run_selftest,
)
from tests.conftest import load_event
from tests.factory import on_failure_record, sqs_event_record
from tests.support.lambdaric import ACCOUNT, REGION, Invocation, LambdaFunction, lambda_environment
from tests.support.runtime import (
    PYTHON,
    Package,
    Stack,
    create_stack,
    running,
    unzipped_package,
)

pytestmark = pytest.mark.slow

FAILED_MFA = "mfawatch-dev-on_iam_console_mfa_failure"
ROOT_FAILURE = "mfawatch-dev-on_root_console_failure"
SCHEDULER = "mfawatch-dev-send_due_summaries"
CONSUMER = "mfawatch-dev-consume_parked_events"
HEARTBEAT = "mfawatch-dev-heartbeat"
#: One function per rule of the bundle, plus send_due_summaries, on_heartbeat, heartbeat and
#: consume_parked_events.
EXPECTED_FUNCTIONS = len(load_bundle()) + 4


def scheduled_event(rule: str) -> dict[str, Any]:
    """What an EventBridge schedule delivers (a "Scheduled Event" envelope)."""
    return {
        "version": "0",
        "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT,
        "time": "2026-11-30T12:00:00Z",
        "region": REGION,
        "resources": [f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{rule}"],
        "detail": {},
    }


def _initialized(functions: dict[str, LambdaFunction]) -> dict[str, str]:
    """Function -> "ok" or the init error the runtime reported."""
    return {
        name: "ok"
        if function.wait_initialized()
        else f"{function.init_error_type}: {(function.init_error or {}).get('errorMessage')}"
        for name, function in functions.items()
    }


def test_only_the_package_awslambdaric_and_boto3_are_importable(
    package: Package, runtime_packages: Path
) -> None:
    probe = (
        "import importlib.util, json, sys;"
        "names = ['app', 'chalicelib', 'chalice', 'awslambdaric', 'boto3', 'botocore',"
        " 'moto', 'pytest', 'click', 'yaml', 'jsonschema', 'mypy', 'hypothesis'];"
        "specs = {n: importlib.util.find_spec(n) for n in names};"
        "found = {n: s and s.origin for n, s in specs.items()};"
        "print(json.dumps({'path': sys.path, 'found': found}))"
    )
    result = subprocess.run(
        [PYTHON, "-S", "-c", probe],
        cwd=package.task,
        env={"PYTHONPATH": f"{package.task}:{runtime_packages}", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    seen = json.loads(result.stdout)
    found = seen["found"]
    for name in ("app", "chalicelib", "chalice"):
        assert found[name].startswith(str(package.task)), (name, found[name])
    for name in ("awslambdaric", "boto3", "botocore"):
        assert found[name].startswith(str(runtime_packages)), (name, found[name])
    assert [n for n in ("moto", "pytest", "click", "yaml", "jsonschema", "mypy") if found[n]] == []
    assert not [p for p in seen["path"] if "site-packages" in p], seen["path"]


def test_every_function_of_the_template_initializes(
    package: Package, functions: dict[str, LambdaFunction]
) -> None:
    assert len(functions) == len(package.functions()) == EXPECTED_FUNCTIONS
    failed = {name: state for name, state in _initialized(functions).items() if state != "ok"}
    assert failed == {}, "\n".join(f"{name}: {state}" for name, state in sorted(failed.items()))


def test_failed_mfa_reaches_the_alerts_subscriber(
    functions: dict[str, LambdaFunction], stack: Stack
) -> None:
    stack.received()  # start from an empty queue
    invocation = functions[FAILED_MFA].invoke(
        envelope_of(load_event("iam-consolelogin-failure-mfa-yes"))
    )
    assert invocation.ok, (invocation.body, functions[FAILED_MFA].output())
    (body,) = stack.received()
    assert body["TopicArn"] == stack.outputs["AlertsTopicArn"]
    assert body["Subject"] == "[HIGH] Failed MFA sign-in for IAM user ops-admin from 203.0.113.7"
    document = json.loads(body["Message"])
    assert document["event"]["event_id"] == "0b6a3c1e-5a7d-4c43-9f1e-6f4d2a9b8c01"


def test_the_consumer_replays_a_parked_event_from_its_on_failure_record(
    functions: dict[str, LambdaFunction], stack: Stack
) -> None:
    # What Lambda's on-failure destination wrote after the failed-MFA function's last attempt,
    # as the SQS event source hands it to the consumer (a batch with a malformed record too).
    record = load_event("iam-consolelogin-failure-mfa-yes")
    record["eventID"] = "parked-0b6a3c1e-5a7d-4c43-9f1e-6f4d2a9b8c01"
    record["userIdentity"]["userName"] = "parked-admin"  # not a repeat of another test's alert
    function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{FAILED_MFA}"
    queue_arn = stack.outputs["FailedEventsQueueArn"]
    body = json.dumps(on_failure_record(envelope_of(record), function_arn))
    event = {
        "Records": [
            sqs_event_record(body, queue_arn, "9f0c2b1e-parked"),
            sqs_event_record("not an on-failure record", queue_arn, "9f0c2b1e-garbage"),
        ]
    }
    stack.received()
    invocation = functions[CONSUMER].invoke(event)
    assert invocation.ok, (invocation.body, functions[CONSUMER].output())
    assert invocation.body == {"batchItemFailures": [{"itemIdentifier": "9f0c2b1e-garbage"}]}
    (alert,) = stack.received()
    assert alert["TopicArn"] == stack.outputs["AlertsTopicArn"]
    assert alert["Subject"] == (
        "[HIGH] Failed MFA sign-in for IAM user parked-admin from 203.0.113.7"
    )
    assert json.loads(alert["Message"])["event"]["event_id"] == record["eventID"]
    # SQS delivers at least once: the same record again publishes nothing.
    again = functions[CONSUMER].invoke({"Records": event["Records"][:1]})
    assert again.body == {"batchItemFailures": []}
    assert stack.received() == []


def test_the_consumer_rejects_what_is_not_an_sqs_event(
    functions: dict[str, LambdaFunction],
) -> None:
    invocation = functions[CONSUMER].invoke(
        envelope_of(load_event("iam-consolelogin-failure-mfa-yes"))
    )
    assert invocation.kind == "error"
    assert invocation.body["errorType"] == "EventParseError"
    assert "not an SQS event (missing Records)" in invocation.body["errorMessage"]


def test_scheduled_function_returns_success(functions: dict[str, LambdaFunction]) -> None:
    invocation = functions[SCHEDULER].invoke(scheduled_event("mfawatch-dev-send_due_summaries"))
    assert (invocation.kind, invocation.body) == ("response", None), functions[SCHEDULER].output()


def test_the_scheduled_heartbeat_writes_its_item_publishes_its_canary_and_counts(
    functions: dict[str, LambdaFunction], stack: Stack
) -> None:
    # An observer on the canary topic, for this test only: the deployed topic has none.
    sqs = stack.client("sqs")
    queue_url = sqs.create_queue(QueueName="dev-canary-observer")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    stack.client("sns").subscribe(
        TopicArn=stack.outputs["CanaryTopicArn"],
        Protocol="sqs",
        Endpoint=queue_arn["Attributes"]["QueueArn"],
    )
    function = functions[HEARTBEAT]
    invocation = function.invoke(scheduled_event("mfawatch-dev-heartbeat-event"))
    assert invocation.ok, (invocation.body, function.output())
    (message,) = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    body = json.loads(message["Body"])
    assert body["TopicArn"] == stack.outputs["CanaryTopicArn"]
    assert json.loads(body["Message"])["mfawatch"] == "canary"
    documents = _app_lines(function, invocation)
    assert [d for d in documents if d.get("PipelineHeartbeats") == 1], documents
    item = stack.client("dynamodb").get_item(
        TableName=stack.outputs["StateTableName"],
        Key={"pk": {"S": heartbeat_key(ACCOUNT, REGION)}},
    )
    assert "Item" in item


def test_malformed_events_get_a_clear_error_and_the_next_event_is_served(
    functions: dict[str, LambdaFunction], stack: Stack
) -> None:
    function = functions[ROOT_FAILURE]
    not_eventbridge = function.invoke({"hello": "world"})
    assert not_eventbridge.kind == "error"
    assert not_eventbridge.body["errorType"] == "EventParseError"
    assert "not an EventBridge event" in not_eventbridge.body["errorMessage"]
    assert "detail" in not_eventbridge.body["errorMessage"]
    no_cloudtrail = function.invoke(scheduled_event("someone-elses-rule"))
    assert no_cloudtrail.kind == "error"
    assert no_cloudtrail.body["errorType"] == "EventParseError"
    stack.received()
    served = function.invoke(envelope_of(load_event("root-consolelogin-failure-mfa-yes")))
    assert served.ok, function.output()
    assert [b["Subject"][:27] for b in stack.received()] == ["[HIGH] Failed root sign-in "]


def _app_lines(function: LambdaFunction, invocation: Invocation) -> list[dict[str, Any]]:
    """The invocation's log lines, each parsed as JSON (a line that is not JSON fails).

    The one exception is the runtime's own report of an unhandled error: in Lambda's text log
    format awslambdaric writes ``[ERROR] <type>: <message>`` lines without a request id
    (bootstrap.log_error); the platform's START/END lines frame them in CloudWatch.
    """
    documents = []
    for line in function.log_lines(invocation):
        if line.startswith("[ERROR]") and invocation.kind == "error":
            continue
        documents.append(json.loads(line))
    return documents


def test_every_log_line_of_an_invocation_carries_its_request_id(
    functions: dict[str, LambdaFunction], stack: Stack
) -> None:
    function = functions[FAILED_MFA]
    record = dict(load_event("iam-consolelogin-failure-mfa-yes"), eventID="request-id-test")
    first = function.invoke(envelope_of(record))
    second = function.invoke({"hello": "world"})
    third = function.invoke(selftest_event(publish=False))
    stack.received()
    lines = {i.request_id: _app_lines(function, i) for i in (first, second, third)}
    for request_id, documents in lines.items():
        assert documents, f"no log line for {request_id}"
        assert {d.get("requestId") for d in documents} == {request_id}, documents
    messages = [d.get("message", "") for d in lines[first.request_id]]
    assert any(m.startswith("decision ") and m.endswith(" request-id-test") for m in messages)
    assert any(
        "self-test of mfawatch-dev-on_iam_console_mfa_failure" in d["message"]
        for d in lines[third.request_id]
        if "message" in d
    )
    assert [d["level"] for d in lines[second.request_id]] == ["ERROR"]


def test_selftest_answers_from_every_function_without_touching_state(
    functions: dict[str, LambdaFunction], stack: Stack
) -> None:
    dynamodb = stack.client("dynamodb")
    table = stack.outputs["StateTableName"]
    items_before = dynamodb.scan(TableName=table)["Items"]
    stack.received()
    answers = {name: f.invoke(selftest_event(publish=False)) for name, f in functions.items()}
    assert {name: a.kind for name, a in answers.items()} == dict.fromkeys(functions, "response")
    assert {name: a.body["function"] for name, a in answers.items()} == {n: n for n in functions}
    assert [name for name, a in answers.items() if a.body["published"]] == []
    assert dynamodb.scan(TableName=table)["Items"] == items_before
    assert stack.received() == []


def test_selftest_publish_sends_one_low_notification_per_output(
    functions: dict[str, LambdaFunction], stack: Stack
) -> None:
    stack.received()
    invocation = functions[FAILED_MFA].invoke(selftest_event(publish=True))
    assert invocation.ok, functions[FAILED_MFA].output()
    published = invocation.body["published"]
    assert sorted(published) == ["alerts", "pager"]  # the dev stage's outputs
    (body,) = stack.received()  # the subscriber of the alerts topic
    assert body["Subject"] == "[LOW] mfawatch self-test"
    assert body["MessageId"] == published["alerts"]


def test_every_prod_function_initializes_and_answers_the_selftest(
    tmp_path_factory: pytest.TempPathFactory, runtime_packages: Path, moto_server: str
) -> None:
    prod = unzipped_package("prod", tmp_path_factory)
    create_stack(moto_server, "prod")
    with running(prod, runtime_packages, moto_server) as started:
        assert len(started) == EXPECTED_FUNCTIONS
        assert _initialized(started) == dict.fromkeys(started, "ok")
        answers = {name: f.invoke(selftest_event()).kind for name, f in started.items()}
    assert answers == dict.fromkeys(started, "response")


class RuntimeTierLambda:
    """``lambda.invoke`` (RequestResponse) answered by this tier's execution environments, the
    way the Lambda service answers it: the function's result, or its error document with
    ``FunctionError: Unhandled`` (an init error is returned for every invoke, with the empty
    requestId the runtime reported it with); an unknown name is ``ResourceNotFoundException``."""

    def __init__(self, functions: dict[str, LambdaFunction]) -> None:
        self.functions = functions

    def invoke(self, FunctionName: str, InvocationType: str, Payload: bytes) -> dict[str, Any]:
        assert InvocationType == "RequestResponse"
        function = self.functions.get(FunctionName)
        if function is None:
            message = f"Function not found: {FunctionName}"
            raise ClientError(
                {"Error": {"Code": "ResourceNotFoundException", "Message": message}}, "Invoke"
            )
        if not function.wait_initialized():
            return {
                "StatusCode": 200,
                "FunctionError": "Unhandled",
                "Payload": io.BytesIO(json.dumps(function.init_error).encode()),
                "ResponseMetadata": {"RequestId": str(uuid.uuid4())},
            }
        invocation = function.invoke(json.loads(Payload))
        response: dict[str, Any] = {
            "StatusCode": 200,
            "Payload": io.BytesIO(json.dumps(invocation.body).encode()),
            "ResponseMetadata": {"RequestId": invocation.request_id},
        }
        if not invocation.ok:
            response["FunctionError"] = "Unhandled"
        return response


def test_selftest_command_against_the_running_functions(
    functions: dict[str, LambdaFunction], stack: Stack, tmp_path: Path
) -> None:
    names = deployed_function_names("dev", app_handler_names(), deployed_dir=tmp_path)
    assert sorted(names.values()) == sorted(functions)
    stack.received()
    reports = run_selftest(RuntimeTierLambda(functions), names, publish=True)
    print("\n".join(render_report(reports)))  # the figures of the closing note (pytest -s)
    assert [r.function for r in reports if not r.ok] == []
    published = {r.handler: sorted(r.published) for r in reports if r.published}
    assert published == {"on_iam_console_mfa_failure": ["alerts", "pager"]}
    assert [b["Subject"] for b in stack.received()] == ["[LOW] mfawatch self-test"]


def test_lambda_json_log_format_keeps_the_request_id_on_every_line(
    package: Package, runtime_packages: Path, stack: Stack
) -> None:
    """With the function's log format set to JSON the runtime's own formatter writes every line,
    its error report included, with ``requestId``; app.py leaves it in place."""
    props = package.functions()[FAILED_MFA]
    env = lambda_environment(
        FAILED_MFA,
        props["Environment"]["Variables"],
        [package.task, runtime_packages],
        stack.endpoint_url,
    )
    json_env = env | {"AWS_LAMBDA_LOG_FORMAT": "JSON", "AWS_LAMBDA_LOG_LEVEL": "INFO"}
    function = LambdaFunction(FAILED_MFA, props["Handler"], package.task, json_env, "-json")
    try:
        function.start(PYTHON)
        record = dict(load_event("iam-consolelogin-failure-mfa-yes"), eventID="json-format-test")
        handled = function.invoke(envelope_of(record))
        failed = function.invoke({"hello": "world"})
        stack.received()
        for invocation in (handled, failed):
            documents = [json.loads(line) for line in function.log_lines(invocation)]
            assert documents, function.output()
            assert {d.get("requestId") for d in documents} == {invocation.request_id}
        assert failed.kind == "error"
        report = [json.loads(line) for line in function.log_lines(failed)]
        assert [d["errorType"] for d in report if "errorType" in d] == ["EventParseError"]
    finally:
        function.stop()


def test_selftest_reports_a_function_that_fails_to_initialize(
    package: Package, runtime_packages: Path, stack: Stack
) -> None:
    """A bad stage setting fails the init phase (clients and settings are built there), the
    runtime reports it on /runtime/init/error, and the self-test says "not initialized"."""
    props = package.functions()[SCHEDULER]
    env = lambda_environment(
        SCHEDULER,
        props["Environment"]["Variables"] | {"MFAWATCH_TOPIC_ARN": "not-an-arn"},
        [package.task, runtime_packages],
        stack.endpoint_url,
    )
    function = LambdaFunction(SCHEDULER, props["Handler"], package.task, env, "-broken")
    try:
        function.start(PYTHON)
        assert not function.wait_initialized()
        assert function.init_error_type == "ConfigError"
        (report,) = run_selftest(
            RuntimeTierLambda({SCHEDULER: function}), {"send_due_summaries": SCHEDULER}, False
        )
    finally:
        function.stop()
    assert (report.initialized, report.error_type) == (False, "ConfigError")
    assert "MFAWATCH_TOPIC_ARN must be an SNS topic ARN" in report.error_message


def test_selftest_tells_each_failure_kind_apart_on_real_runtime_processes(
    package: Package, runtime_packages: Path, stack: Stack, tmp_path: Path
) -> None:
    """Four execution environments, each failing the self-test its own way under awslambdaric:
    a handler module that is not in the package (init error), a publish to a topic that does not
    exist (the handler raises), a function that is not mfawatch's (another answer); and a name
    that nothing runs."""
    props = package.functions()[FAILED_MFA]
    variables = props["Environment"]["Variables"]
    missing_topic = f"arn:aws:sns:{REGION}:{ACCOUNT}:mfawatch-dev-no-such-topic"
    other_task = tmp_path / "other"
    other_task.mkdir()
    (other_task / "other.py").write_text(
        "def handler(event, context):\n    return {'statusCode': 200, 'body': 'hello ' * 60}\n"
    )
    setups = {
        "mfawatch-dev-heartbeat": ("app.nowhere", package.task, variables),
        "mfawatch-dev-on_heartbeat": ("not_in_the_package.handler", package.task, variables),
        FAILED_MFA: (
            props["Handler"],
            package.task,
            variables | {"MFAWATCH_OUTPUTS": json.dumps({"alerts": {"topic_arn": missing_topic}})},
        ),
        ROOT_FAILURE: ("other.handler", other_task, {}),
    }
    started: dict[str, LambdaFunction] = {}
    try:
        for name, (handler, task, env) in setups.items():
            environment = lambda_environment(
                name, env, [task, runtime_packages], stack.endpoint_url
            )
            started[name] = LambdaFunction(name, handler, task, environment, "-kinds")
            started[name].start(PYTHON)
        names = {name.removeprefix("mfawatch-dev-"): name for name in setups}
        names["on_mfa_device_removed"] = "mfawatch-dev-on_mfa_device_removed"  # not running
        reports = {
            r.function: r for r in run_selftest(RuntimeTierLambda(started), names, publish=True)
        }
    finally:
        for function in started.values():
            function.stop()
    print("\n".join(render_report(list(reports.values()))))  # pytest -s shows the report
    by_kind = {name: (r.kind, r.error_type) for name, r in reports.items()}
    assert by_kind == {
        "mfawatch-dev-heartbeat": (NOT_STARTED, "Runtime.HandlerNotFound"),
        "mfawatch-dev-on_heartbeat": (NOT_STARTED, "Runtime.ImportModuleError"),
        FAILED_MFA: (RAISED, "PublishError"),
        ROOT_FAILURE: (OTHER_ANSWER, ""),
        "mfawatch-dev-on_mfa_device_removed": (NOT_FOUND, "ResourceNotFoundException"),
    }
    assert "not_in_the_package" in reports["mfawatch-dev-on_heartbeat"].error_message
    raised = reports[FAILED_MFA]
    assert missing_topic in raised.error_message
    assert raised.request_id and raised.describe().endswith(f"(request id {raised.request_id})")
    assert (
        reports[ROOT_FAILURE].answer == json.dumps({"statusCode": 200, "body": "hello " * 60})[:200]
    )
    assert not any(r.ok for r in reports.values())
