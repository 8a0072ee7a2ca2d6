"""``mfawatch selftest``: lambda.invoke per deployed function (botocore Stubber at the wire)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from chalicelib.selftest import SELFTEST_KEY, selftest_event
from mfawatch.paths import CHALICE_CONFIG
from mfawatch.selftestcommand import (
    deployed_function_names,
    render_report,
    run_selftest,
)

HANDLERS = ["heartbeat", "on_iam_console_mfa_failure", "on_root_console_failure"]
CONFIG = CHALICE_CONFIG


def _payload(document: Any) -> StreamingBody:
    data = json.dumps(document).encode()
    return StreamingBody(io.BytesIO(data), len(data))


def _answer(function: str, published: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        SELFTEST_KEY: 1,
        "function": function,
        "initialized": True,
        "published": published or {},
    }


@pytest.fixture
def lambda_client() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client(
        "lambda", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def _expect(stubber: Stubber, function: str, publish: bool, response: dict[str, Any]) -> None:
    stubber.add_response(
        "invoke",
        {"StatusCode": 200, **response},
        {
            "FunctionName": function,
            "InvocationType": "RequestResponse",
            "Payload": json.dumps(selftest_event(publish=publish)).encode(),
        },
    )


def test_function_names_are_derived_as_chalice_deploy_names_them(tmp_path: Path) -> None:
    assert deployed_function_names("dev", HANDLERS, CONFIG, tmp_path) == {
        h: f"mfawatch-dev-{h}" for h in HANDLERS
    }


def test_function_names_come_from_chalice_deploys_record_when_present(tmp_path: Path) -> None:
    arn = "arn:aws:lambda:eu-west-1:111122223333:function:mfawatch-dev-heartbeat"
    (tmp_path / "dev.json").write_text(
        json.dumps(
            {
                "resources": [
                    {"name": "heartbeat", "resource_type": "lambda_function", "lambda_arn": arn},
                    {"name": "heartbeat-event", "resource_type": "cloudwatch_event"},
                ],
                "schema_version": "2.0",
                "backend": "api",
            }
        )
    )
    names = deployed_function_names("dev", HANDLERS, CONFIG, tmp_path)
    assert names["heartbeat"] == arn
    assert names["on_root_console_failure"] == "mfawatch-dev-on_root_console_failure"


def test_report_per_function_initialized_error_type_and_duration(
    lambda_client: tuple[Any, Stubber],
) -> None:
    client, stubber = lambda_client
    functions = {h: f"mfawatch-dev-{h}" for h in HANDLERS}
    _expect(stubber, functions["heartbeat"], False, {"Payload": _payload(_answer("hb"))})
    _expect(
        stubber,
        functions["on_iam_console_mfa_failure"],
        True,
        {"Payload": _payload(_answer("f", {"alerts": "m-1", "pager": "m-2"}))},
    )
    _expect(
        stubber,
        functions["on_root_console_failure"],
        False,
        {
            "FunctionError": "Unhandled",
            "Payload": _payload(
                {
                    "errorType": "Runtime.HandlerNotFound",
                    "errorMessage": "Handler 'on_root_console_failure' missing on module 'app'",
                }
            ),
        },
    )
    ticks = iter([0.0, 0.125, 1.0, 1.5, 2.0, 2.25])  # seconds: durations 125, 500 and 250 ms
    reports = run_selftest(client, functions, publish=True, clock=lambda: next(ticks))
    assert [(r.handler, r.initialized, r.error_type, r.duration_ms) for r in reports] == [
        ("heartbeat", True, "", 125.0),
        ("on_iam_console_mfa_failure", True, "", 500.0),
        ("on_root_console_failure", False, "Runtime.HandlerNotFound", 250.0),
    ]
    assert reports[1].published == {"alerts": "m-1", "pager": "m-2"}
    assert [r.ok for r in reports] == [True, True, False]
    lines = render_report(reports)
    assert "alerts=m-1, pager=m-2" in lines[2]
    assert lines[3].split()[:3] == [
        "mfawatch-dev-on_root_console_failure",
        "NO",
        "Runtime.HandlerNotFound",
    ]


def test_a_failed_publish_counts_as_initialized_but_failed(
    lambda_client: tuple[Any, Stubber],
) -> None:
    client, stubber = lambda_client
    function = "mfawatch-dev-on_iam_console_mfa_failure"
    _expect(
        stubber,
        function,
        True,
        {
            "FunctionError": "Unhandled",
            "Payload": _payload({"errorType": "PublishError", "errorMessage": "denied"}),
        },
    )
    (report,) = run_selftest(client, {"on_iam_console_mfa_failure": function}, publish=True)
    assert (report.initialized, report.error_type, report.ok) == (True, "PublishError", False)


def test_a_function_that_is_not_deployed_is_reported(lambda_client: tuple[Any, Stubber]) -> None:
    client, stubber = lambda_client
    stubber.add_client_error(
        "invoke", "ResourceNotFoundException", "Function not found", http_status_code=404
    )
    (report,) = run_selftest(client, {"heartbeat": "mfawatch-dev-heartbeat"}, publish=False)
    assert (report.initialized, report.error_type) == (False, "ResourceNotFoundException")
    assert "Function not found" in report.error_message
