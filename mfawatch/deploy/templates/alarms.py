"""The alarms that name functions and rules (the stage-wide ones are in deploy/resources.yaml)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from mfawatch.deploy.templates.names import StageNames, function_logical_id

# Alarms per function and per rule (docs/alarms.md): Lambda's Errors and Throttles
# (AWS/Lambda, dimension FunctionName) and EventBridge's FailedInvocations (AWS/Events, dimension
# RuleName alone for a rule on the default event bus; Amazon EventBridge User Guide,
# eb-monitoring). Errors: 3 in 15 minutes (Lambda retries a single one); Throttles and
# FailedInvocations: any (an event EventBridge could not deliver is lost to the app).
ALARM_PERIOD_SECONDS = 900
FUNCTION_ERRORS_THRESHOLD = 3


@dataclass(frozen=True)
class WatchedMetric:
    """A metric alarmed on for each function or rule: the alarm is ``<logical id><metric>Alarm``
    named ``mfawatch-<stage>-<handler>-<suffix>``."""

    namespace: str
    metric: str
    dimension: str
    threshold: int
    suffix: str
    description: str
    """With ``{handler}``."""


FUNCTION_METRICS = (
    WatchedMetric(
        "AWS/Lambda",
        "Errors",
        "FunctionName",
        FUNCTION_ERRORS_THRESHOLD,
        "errors",
        "Function {handler} fails",
    ),
    WatchedMetric(
        "AWS/Lambda", "Throttles", "FunctionName", 1, "throttles", "Function {handler} is throttled"
    ),
)
RULE_METRICS = (
    WatchedMetric(
        "AWS/Events",
        "FailedInvocations",
        "RuleName",
        1,
        "failed-invocations",
        "EventBridge could not invoke {handler}",
    ),
)


@dataclass(frozen=True)
class AlarmTargets:
    """How a route refers to what the alarms watch and notify: literal names in route (a),
    references in route (b)."""

    function: Callable[[str], Any]
    """A handler's FunctionName dimension value."""
    rule: Callable[[str], Any]
    """A handler's RuleName dimension value."""
    pager_topic: Any


def _alarm(
    names: StageNames, handler: str, watched: WatchedMetric, dimension: Any, pager_topic: Any
) -> dict[str, Any]:
    return {
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "AlarmName": names.alarm(f"{handler}-{watched.suffix}"),
            "AlarmDescription": f"{watched.description.format(handler=handler)} (docs/alarms.md)",
            "Namespace": watched.namespace,
            "MetricName": watched.metric,
            "Dimensions": [{"Name": watched.dimension, "Value": dimension}],
            "Statistic": "Sum",
            "Period": ALARM_PERIOD_SECONDS,
            "EvaluationPeriods": 1,
            "Threshold": watched.threshold,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "TreatMissingData": "notBreaching",
            "AlarmActions": [pager_topic],
        },
    }


def function_alarms(
    names: StageNames,
    handlers: Sequence[str],
    rule_handlers: Sequence[str],
    targets: AlarmTargets,
) -> dict[str, Any]:
    """Errors and Throttles of every function, FailedInvocations of every EventBridge rule."""
    alarms: dict[str, Any] = {}
    watched = [(h, m, targets.function(h)) for h in handlers for m in FUNCTION_METRICS]
    watched += [(h, m, targets.rule(h)) for h in rule_handlers for m in RULE_METRICS]
    for handler, metric, dimension in watched:
        alarms[f"{function_logical_id(handler)}{metric.metric}Alarm"] = _alarm(
            names, handler, metric, dimension, targets.pager_topic
        )
    return alarms
