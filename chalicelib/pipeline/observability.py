"""The operator's view: structured JSON logs and CloudWatch metrics in Embedded Metric Format.

Lambda sends a function's stdout/stderr to its own log group; a JSON log line with an ``_aws``
block in Embedded Metric Format becomes CloudWatch metrics without any API call
(https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html).

Metrics (namespace ``mfawatch``): ``EventsMatched`` (per rule), ``Notifications`` (per kind),
``Repeats`` (counted into an incident, no notification), ``Duplicates`` (redelivered eventIDs),
``Held`` (rate-limited into a storm digest), ``Heartbeats`` (per account and Region),
``PipelineHeartbeats`` (the stage's own heartbeat: state written and canary published),
``StateStoreErrors`` (failed open), ``PublishErrors`` (per destination), ``SchedulerErrors`` and
``Parked`` (the scheduler), ``ParkedReplayed``, ``ParkedSkipped`` and ``ParkedErrors`` (the
consumer of the failed-events queue, :mod:`chalicelib.pipeline.parked`). Each is also published with
the
``Service`` dimension alone, which the alarms of ``docs/alarms.md`` watch.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any, Protocol

NAMESPACE = "mfawatch"
#: Attributes a log record may carry through ``extra=`` and that JSON logs keep.
CONTEXT_FIELDS = ("rule", "event_id", "dedup_key", "kind", "notification", "destination")
#: Set by Lambda in every execution environment; the function's log settings.
ENV_FUNCTION_NAME = "AWS_LAMBDA_FUNCTION_NAME"
ENV_LOG_FORMAT = "AWS_LAMBDA_LOG_FORMAT"
ENV_LOG_LEVEL = "AWS_LAMBDA_LOG_LEVEL"


class Metrics(Protocol):
    """Where the service counts what happened."""

    def count(self, name: str, value: int = 1, **dimensions: str) -> None: ...


class MemoryMetrics:
    """Counters in memory (replay, tests): ``counts[(name, (("Kind", "alert"),))]``."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, tuple[tuple[str, str], ...]]] = Counter()

    def count(self, name: str, value: int = 1, **dimensions: str) -> None:
        self.counts[(name, tuple(sorted(dimensions.items())))] += value

    def total(self, name: str) -> int:
        return sum(v for (metric, _), v in self.counts.items() if metric == name)


class EmfMetrics(MemoryMetrics):
    """Counters flushed as Embedded Metric Format lines (one per dimension set) to ``write``."""

    def __init__(
        self,
        write: Callable[[str], None] = print,
        clock: Callable[[], float] = time.time,
        service: str = "mfawatch",
    ) -> None:
        super().__init__()
        self._write = write
        self._clock = clock
        self._service = service

    def flush(self, request_id: str = "") -> None:
        """Write and reset what was counted (call at the end of every invocation).

        ``request_id`` becomes a ``requestId`` property (not a dimension), so that the metric
        line belongs to its invocation like every log line.
        """
        by_dimensions: dict[tuple[tuple[str, str], ...], dict[str, int]] = {}
        for (name, dimensions), value in self.counts.items():
            by_dimensions.setdefault(dimensions, {})[name] = value
        for dimensions, values in sorted(by_dimensions.items()):
            document: dict[str, Any] = {
                "_aws": {
                    "Timestamp": int(self._clock() * 1000),
                    "CloudWatchMetrics": [
                        {
                            "Namespace": NAMESPACE,
                            # Every metric also rolls up to the service alone, so that
                            # an alarm can watch e.g. PublishErrors of every destination
                            # (alarms match dimensions exactly; docs/alarms.md).
                            "Dimensions": _dimension_sets([k for k, _ in dimensions]),
                            "Metrics": [{"Name": n, "Unit": "Count"} for n in sorted(values)],
                        }
                    ],
                },
                "Service": self._service,
                **({"requestId": request_id} if request_id else {}),
                **dict(dimensions),
                **values,
            }
            self._write(json.dumps(document, sort_keys=True))
        self.counts.clear()


def _dimension_sets(keys: list[str]) -> list[list[str]]:
    """EMF dimension sets: ``[Service]`` and, when there are more, ``[Service, *keys]``."""
    return [["Service"], ["Service", *keys]] if keys else [["Service"]]


class JsonFormatter(logging.Formatter):
    """One JSON object per log line: Lambda's JSON log fields (``timestamp``, ``level``,
    ``message``, ``logger``, ``requestId``) plus the alerting context (rule, eventID, dedup key).

    ``requestId`` comes from ``record.aws_request_id``, which the Lambda runtime's own root
    handler sets through its filter on every record (awslambdaric ``bootstrap.LambdaLoggerFilter``)
    before formatting. ``terminator`` ends each line: the runtime's handler writes the formatted
    text as is (its own text format ends in a newline), a ``StreamHandler`` adds its own.
    """

    def __init__(self, terminator: str = "") -> None:
        super().__init__()
        self._terminator = terminator

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "aws_request_id", None)
        if request_id:
            document["requestId"] = request_id
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                document[name] = value
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, default=str) + self._terminator


def in_lambda(environ: Mapping[str, str] | None = None) -> bool:
    """True inside a Lambda execution environment (the runtime sets the function name;
    docs.aws.amazon.com/lambda/latest/dg/configuration-envvars-runtime.html)."""
    env = os.environ if environ is None else environ
    return bool(env.get(ENV_FUNCTION_NAME))


def configure_lambda_logging(
    root: logging.Logger | None = None, environ: Mapping[str, str] | None = None
) -> None:
    """Lambda only (``app.py`` calls it at init when :func:`in_lambda`): JSON lines that keep the
    runtime's handler, and with it the request id on every line.

    The Python runtime installs one root handler before it imports the handler module
    (awslambdaric ``bootstrap.run``: ``_setup_logging`` then ``_get_handler``). With the
    function's log format set to JSON (``AWS_LAMBDA_LOG_FORMAT``) that handler already writes
    JSON with ``requestId`` and our ``extra=`` fields, so it is left alone; with the default text
    format it gets :class:`JsonFormatter`. Replacing the root handlers instead (what a plain
    ``StreamHandler`` setup does) loses the request id and the runtime's log framing. The level is
    INFO unless the function sets ``AWS_LAMBDA_LOG_LEVEL`` (then the runtime has set it).
    Powertools Logger likewise leaves the runtime's handler alone and adds the request id from
    the invocation context. Tools that import ``app.py`` (``chalice package``, ``deploy``) are not
    in Lambda and see no change to their logging.
    """
    env = os.environ if environ is None else environ
    logger = root if root is not None else logging.getLogger()
    if not env.get(ENV_LOG_LEVEL):
        logger.setLevel(logging.INFO)
    if env.get(ENV_LOG_FORMAT, "").upper() == "JSON":
        return
    if not logger.handlers:  # a runtime that installs no handler: write to stdout ourselves
        logger.addHandler(logging.StreamHandler(sys.stdout))
    for handler in logger.handlers:
        plain_stream = isinstance(handler, logging.StreamHandler)
        handler.setFormatter(JsonFormatter(terminator="" if plain_stream else "\n"))
