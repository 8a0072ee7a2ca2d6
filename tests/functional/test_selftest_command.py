"""``mfawatch selftest``: lambda.invoke per deployed function (botocore Stubber at the wire)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from chalicelib.core.selftest import SELFTEST_KEY, selftest_event
from mfawatch.deploy.selftest import (
    HINTS,
    NOT_FOUND,
    NOT_INVOKED,
    NOT_STARTED,
    OTHER_ANSWER,
    RAISED,
    deployed_function_names,
    render_report,
    run_selftest,
)
from mfawatch.paths import CHALICE_CONFIG
from tests.conftest import ROOT
from tests.stubs import stubbed

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
    with stubbed("lambda") as pair:
        yield pair


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
    assert render_report(reports) == [
        "mfawatch-dev-heartbeat 125 ms: ok",
        "mfawatch-dev-on_iam_console_mfa_failure 500 ms: ok, published alerts=m-1, pager=m-2",
        "mfawatch-dev-on_root_console_failure 250 ms: did not start: Runtime.HandlerNotFound: "
        "Handler 'on_root_console_failure' missing on module 'app'",
        f"hint (did not start): {HINTS[NOT_STARTED]}",
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
    assert (report.kind, report.error_type) == (NOT_FOUND, "ResourceNotFoundException")
    assert not report.initialized
    assert "Function not found" in report.error_message


def _one(lambda_client: tuple[Any, Stubber], response: dict[str, Any], function: str = "f") -> Any:
    client, stubber = lambda_client
    _expect(stubber, function, False, response)
    (report,) = run_selftest(client, {"heartbeat": function}, publish=False)
    return report


def test_an_error_raised_at_import_is_did_not_start_with_its_type_and_message(
    lambda_client: tuple[Any, Stubber],
) -> None:
    """awslambdaric reports an exception of app.py's import with an empty requestId."""
    document = {
        "errorType": "ConfigError",
        "errorMessage": "MFAWATCH_TOPIC_ARN ...",
        "requestId": "",
    }
    report = _one(lambda_client, {"FunctionError": "Unhandled", "Payload": _payload(document)})
    assert (report.kind, report.error_type, report.initialized) == (
        NOT_STARTED,
        "ConfigError",
        False,
    )
    assert report.describe() == "did not start: ConfigError: MFAWATCH_TOPIC_ARN ..."


def test_an_error_raised_by_the_handler_is_raised_with_its_request_id(
    lambda_client: tuple[Any, Stubber],
) -> None:
    document = {"errorType": "KeyError", "errorMessage": "'x'", "requestId": "req-1"}
    report = _one(lambda_client, {"FunctionError": "Unhandled", "Payload": _payload(document)})
    assert (report.kind, report.error_type, report.request_id) == (RAISED, "KeyError", "req-1")
    assert report.describe() == "raised: KeyError: 'x' (request id req-1)"
    assert report.initialized and not report.ok


def test_a_function_error_that_is_not_an_error_document_shows_its_first_bytes(
    lambda_client: tuple[Any, Stubber],
) -> None:
    """What moto_server answers without Docker: FunctionError set, plain text payload."""
    text = "error running docker: " + "x" * 300
    data = text.encode()
    payload = StreamingBody(io.BytesIO(data), len(data))
    report = _one(lambda_client, {"FunctionError": "Handled", "Payload": payload})
    assert (report.kind, report.error_type) == (RAISED, "Handled")
    assert report.error_message == text[:200]


def test_an_answer_other_than_the_selftest_shows_its_first_200_bytes(
    lambda_client: tuple[Any, Stubber],
) -> None:
    answer = {"statusCode": 200, "body": "y" * 400}
    report = _one(lambda_client, {"Payload": _payload(answer)})
    assert report.kind == OTHER_ANSWER
    assert report.answer == json.dumps(answer)[:200]
    assert report.describe() == f"answered something else: {json.dumps(answer)[:200]!r}"
    lines = render_report([report])
    assert lines[-1] == f"hint (answered something else): {HINTS[OTHER_ANSWER]}"


def test_a_caller_without_permission_is_could_not_invoke(
    lambda_client: tuple[Any, Stubber],
) -> None:
    client, stubber = lambda_client
    stubber.add_client_error("invoke", "AccessDeniedException", "not authorized", 403)
    (report,) = run_selftest(client, {"heartbeat": "f"}, publish=False)
    assert (report.kind, report.error_type) == (NOT_INVOKED, "AccessDeniedException")
    assert "lambda:InvokeFunction" in report.hint


def test_every_kind_has_a_row_in_the_troubleshooting_table() -> None:
    table = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    for kind in HINTS:
        assert f"| `selftest`: {kind}" in table, kind
