"""Observability: EMF metric lines, JSON logs with the alerting context, and logging in Lambda on
top of the runtime's handler (request id kept), configured only there."""

from __future__ import annotations

import io
import json
import logging

from chalicelib.pipeline.observability import (
    EmfMetrics,
    JsonFormatter,
    configure_lambda_logging,
    in_lambda,
)


class RuntimeLikeHandler(logging.Handler):
    """Like the Python runtime's root handler: a filter stamps the request id on each record and
    the formatted text is written as is (no newline added)."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[str] = []
        self.request_id = ""
        self.setFormatter(logging.Formatter("[%(levelname)s]\t%(aws_request_id)s\t%(message)s\n"))
        self.addFilter(self._stamp)

    def _stamp(self, record: logging.LogRecord) -> bool:
        record.aws_request_id = self.request_id
        return True

    def emit(self, record: logging.LogRecord) -> None:
        self.written.append(self.format(record))


def _root_with(handler: logging.Handler) -> logging.Logger:
    root = logging.Logger("test-root", logging.WARNING)
    root.addHandler(handler)
    return root


def test_text_format_keeps_the_runtime_handler_and_adds_json_with_the_request_id() -> None:
    runtime = RuntimeLikeHandler()
    root = _root_with(runtime)
    configure_lambda_logging(root, {"AWS_LAMBDA_FUNCTION_NAME": "mfawatch-dev-x"})
    assert root.handlers == [runtime]
    assert root.level == logging.INFO
    runtime.request_id = "8476a536-e9f4-11e8-9739-2dfe598c3fcd"
    root.info("decision %s", "alert", extra={"rule": "root-console-failure", "event_id": "e1"})
    (line,) = runtime.written
    assert line.endswith("}\n") and line.count("\n") == 1
    document = json.loads(line)
    assert document["requestId"] == "8476a536-e9f4-11e8-9739-2dfe598c3fcd"
    assert (document["message"], document["level"], document["rule"], document["event_id"]) == (
        "decision alert",
        "INFO",
        "root-console-failure",
        "e1",
    )
    assert document["timestamp"].endswith("Z")


def test_json_format_and_log_level_of_the_function_are_left_to_the_runtime() -> None:
    runtime = RuntimeLikeHandler()
    formatter = runtime.formatter
    root = _root_with(runtime)
    root.setLevel(logging.DEBUG)  # the runtime applies AWS_LAMBDA_LOG_LEVEL itself
    configure_lambda_logging(
        root,
        {
            "AWS_LAMBDA_FUNCTION_NAME": "f",
            "AWS_LAMBDA_LOG_FORMAT": "JSON",
            "AWS_LAMBDA_LOG_LEVEL": "DEBUG",
        },
    )
    assert runtime.formatter is formatter
    assert root.level == logging.DEBUG


def test_without_a_runtime_handler_json_goes_to_a_stream() -> None:
    root = logging.Logger("bare", logging.WARNING)
    configure_lambda_logging(root, {"AWS_LAMBDA_FUNCTION_NAME": "f"})
    (handler,) = root.handlers
    assert isinstance(handler, logging.StreamHandler)
    stream = io.StringIO()
    handler.setStream(stream)
    root.warning("careful")
    assert json.loads(stream.getvalue())["message"] == "careful"
    assert stream.getvalue().count("\n") == 1


def test_only_a_lambda_environment_counts_as_lambda() -> None:
    assert in_lambda({"AWS_LAMBDA_FUNCTION_NAME": "mfawatch-dev-heartbeat"})
    assert not in_lambda({})
    assert not in_lambda({"AWS_LAMBDA_FUNCTION_NAME": ""})


def test_json_formatter_outside_lambda_has_no_request_id() -> None:
    record = logging.LogRecord(
        "chalicelib.aws.sns", logging.INFO, __file__, 1, "published", (), None
    )
    assert "requestId" not in json.loads(JsonFormatter().format(record))


def test_metric_lines_carry_the_request_id_as_a_property_not_a_dimension() -> None:
    lines: list[str] = []
    metrics = EmfMetrics(write=lines.append, clock=lambda: 1_700_000_000.0)
    metrics.count("EventsMatched", Rule="root-console-failure")
    metrics.flush(request_id="req-9")
    (document,) = [json.loads(line) for line in lines]
    assert document["requestId"] == "req-9"
    assert document["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [
        ["Service"],
        ["Service", "Rule"],
    ]


def test_emf_lines_are_cloudwatch_metrics() -> None:
    lines: list[str] = []
    metrics = EmfMetrics(write=lines.append, clock=lambda: 1_700_000_000.0)
    metrics.count("Notifications", Kind="alert")
    metrics.count("Notifications", Kind="alert")
    metrics.count("EventsMatched", Rule="root-console-failure")
    metrics.flush()
    documents = [json.loads(line) for line in lines]
    assert len(documents) == 2
    alert = next(d for d in documents if d.get("Kind") == "alert")
    assert alert["Notifications"] == 2 and alert["Service"] == "mfawatch"
    (directive,) = alert["_aws"]["CloudWatchMetrics"]
    assert directive == {
        "Namespace": "mfawatch",
        "Dimensions": [["Service"], ["Service", "Kind"]],
        "Metrics": [{"Name": "Notifications", "Unit": "Count"}],
    }
    assert alert["_aws"]["Timestamp"] == 1_700_000_000_000
    metrics.flush()
    assert len(lines) == 2, "flush resets the counters"


def test_json_logs_carry_the_alerting_context() -> None:
    record = logging.LogRecord(
        "chalicelib.pipeline.service", logging.INFO, __file__, 1, "decision %s", ("alert",), None
    )
    record.rule = "iam-console-mfa-failure"
    record.event_id = "e1"
    record.dedup_key = "111122223333|ops-admin|203.0.113.7"
    document = json.loads(JsonFormatter().format(record))
    assert document["message"] == "decision alert"
    assert document["level"] == "INFO"
    assert (document["rule"], document["event_id"], document["dedup_key"]) == (
        "iam-console-mfa-failure",
        "e1",
        "111122223333|ops-admin|203.0.113.7",
    )
