"""Environment variables that name a stage's resources, rewritten as references to the resources
the merge template creates (route (b))."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from mfawatch.deploy.templates.names import (
    ALERTS_TOPIC,
    CANARY_TOPIC,
    FAILED_EVENTS_QUEUE,
    KEY_ALIAS,
    PAGER_TOPIC,
    STATE_TABLE,
    StageNames,
)

_ARN = r"arn:aws[a-z-]*:{service}:[a-z0-9-]+:\d{{12}}:{resource}"
_NAME_END = r"(?![A-Za-z0-9_-])"


def _reference_patterns(names: StageNames) -> list[tuple[str, str]]:
    """(regex, Fn::Sub placeholder) for every way a stage config can spell a stage resource.

    ARNs and URLs come before bare names so that an ARN is replaced as a whole.
    """
    queue_url = r"https://sqs\.[a-z0-9-]+\.amazonaws\.com(?:\.cn)?/\d{12}/" + re.escape(
        names.failed_events_queue
    )
    pairs = [
        (_ARN.format(service="sns", resource=re.escape(names.alerts_topic)), ALERTS_TOPIC),
        (_ARN.format(service="sns", resource=re.escape(names.pager_topic)), PAGER_TOPIC),
        (_ARN.format(service="sns", resource=re.escape(names.canary_topic)), CANARY_TOPIC),
        (
            _ARN.format(service="dynamodb", resource="table/" + re.escape(names.table)),
            f"{STATE_TABLE}.Arn",
        ),
        (
            _ARN.format(service="sqs", resource=re.escape(names.failed_events_queue)),
            f"{FAILED_EVENTS_QUEUE}.Arn",
        ),
        (queue_url, FAILED_EVENTS_QUEUE),
        (re.escape(names.key_alias), KEY_ALIAS),
        (re.escape(names.alerts_topic), f"{ALERTS_TOPIC}.TopicName"),
        (re.escape(names.pager_topic), f"{PAGER_TOPIC}.TopicName"),
        (re.escape(names.canary_topic), f"{CANARY_TOPIC}.TopicName"),
        (re.escape(names.failed_events_queue), f"{FAILED_EVENTS_QUEUE}.QueueName"),
        (re.escape(names.table), STATE_TABLE),
    ]
    return [(f"(?:{pattern}){_NAME_END}", placeholder) for pattern, placeholder in pairs]


def reference_created_resources(value: str, names: StageNames) -> Any:
    """``value`` with every literal stage resource replaced by a reference to the created one.

    Returns ``value`` unchanged when it names none; ``{"Ref": ...}`` or ``{"Fn::GetAtt": ...}``
    when it is exactly one resource; otherwise ``{"Fn::Sub": ...}`` (e.g. a JSON routing map
    holding topic ARNs), with any literal ``${`` escaped as ``${!``.
    """
    patterns = _reference_patterns(names)
    combined = re.compile("|".join(f"({pattern})" for pattern, _ in patterns))
    pieces: list[str] = []
    placeholders: list[str] = []
    position = 0
    for match in combined.finditer(value):
        placeholder = patterns[(match.lastindex or 1) - 1][1]
        pieces.append(value[position : match.start()].replace("${", "${!"))
        pieces.append("${" + placeholder + "}")
        placeholders.append(placeholder)
        position = match.end()
    if not placeholders:
        return value
    pieces.append(value[position:].replace("${", "${!"))
    text = "".join(pieces)
    if len(placeholders) == 1 and text == "${" + placeholders[0] + "}":
        logical, _, attribute = placeholders[0].partition(".")
        return {"Fn::GetAtt": [logical, attribute]} if attribute else {"Ref": logical}
    return {"Fn::Sub": text}


def environment_overrides(environment: Mapping[str, str], names: StageNames) -> dict[str, Any]:
    """The variables whose values name stage resources, rewritten to reference them."""
    overrides: dict[str, Any] = {}
    for variable, value in sorted(environment.items()):
        rewritten = reference_created_resources(str(value), names)
        if rewritten != value:
            overrides[variable] = rewritten
    return overrides
