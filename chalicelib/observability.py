"""The operator's view: structured JSON logs and CloudWatch metrics in Embedded Metric Format.

Lambda sends a function's stdout/stderr to its own log group; a JSON log line with an ``_aws``
block in Embedded Metric Format becomes CloudWatch metrics without any API call
(https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html).

Metrics (namespace ``mfawatch``): ``EventsMatched`` (per rule), ``Notifications`` (per kind),
``Repeats`` (counted into an incident, no notification), ``Duplicates`` (redelivered eventIDs),
``Held`` (rate-limited into a storm digest), ``Heartbeats`` (per account and Region),
``StateStoreErrors`` (failed open) and ``PublishErrors`` (per destination).
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, Protocol

NAMESPACE = "mfawatch"
#: Attributes a log record may carry through ``extra=`` and that JSON logs keep.
CONTEXT_FIELDS = ("rule", "event_id", "dedup_key", "kind", "notification", "destination")


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

    def flush(self) -> None:
        """Write and reset what was counted (call at the end of every invocation)."""
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
                            "Dimensions": [["Service", *[k for k, _ in dimensions]]],
                            "Metrics": [{"Name": n, "Unit": "Count"} for n in sorted(values)],
                        }
                    ],
                },
                "Service": self._service,
                **dict(dimensions),
                **values,
            }
            self._write(json.dumps(document, sort_keys=True))
        self.counts.clear()


class JsonFormatter(logging.Formatter):
    """One JSON object per log line, with the alerting context (rule, eventID, dedup key)."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                document[name] = value
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, default=str)


def configure_json_logging(level: int = logging.INFO) -> None:
    """Make every logger write JSON lines (Lambda: call once at import)."""
    root = logging.getLogger()
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root.handlers = [handler]
    root.setLevel(level)
