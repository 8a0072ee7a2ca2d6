"""Deployment templates for a stage, generated from the stage config and the app's handlers.

Pure: no boto3, no chalice; the click commands live in :mod:`mfawatch.cli.stage`.

Two routes (docs/deploy.md):

(a) ``deploy/resources.yaml`` (a static stack: table, topics, queues, key, the stage-wide
    alarms), then ``chalice deploy --stage S``, then :func:`invoke_config_template`: one
    ``AWS::Lambda::EventInvokeConfig`` per function, because Chalice cannot set retries, maximum
    event age or an on-failure destination; the parked-event consumer's SQS event source
    (:func:`parked_event_source`); and the alarms that name functions and rules
    (:func:`function_alarms`).
(b) ``chalice package --stage S --merge-template <merge.json>`` with :func:`merge_template`: the
    resources of ``deploy/resources.yaml`` with the stage bound, an EventInvokeConfig per SAM
    function, the consumer's event source and the per-function alarms, environment variables
    rewritten to reference the created resources, and each function role's policy replaced by
    least-privilege statements on those resources.

The merge template is generated rather than static because its keys are the logical ids Chalice
gives each function and role, and those follow the handlers (one per rule, plus scheduled ones).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chalicelib.aws.dynamo import DUE_INDEX, GROUP_INDEX
from chalicelib.core.config import (
    ENV_CANARY_TOPIC_ARN,
    ENV_CONCURRENCY,
    ENV_OUTPUTS,
    ENV_TABLE_NAME,
    ENV_TOPIC_ARN,
    MIN_CONCURRENCY,
    parse_outputs,
    settings_from_env,
)
from chalicelib.core.constants import PIPELINE_HEARTBEAT_HANDLER
from chalicelib.core.errors import ConfigError
from chalicelib.core.rules import Rule, load_bundle
from mfawatch.paths import CHALICE_CONFIG, DEPLOY_DIR

RESOURCES_TEMPLATE = DEPLOY_DIR / "resources.yaml"

RESOURCE_PREFIX = "mfawatch"
"""Resource names in deploy/resources.yaml are ``mfawatch-<stage>-...`` whatever the app name."""

# Asynchronous invocation settings (AWS::Lambda::EventInvokeConfig). Lambda allows 0-2 retries
# and a maximum event age of 60-21600 s (AWS Lambda Developer Guide, invocation-async-error-
# handling). Two retries ride out a throttle or an SNS blip; after an hour an alert about a
# sign-in is stale, and the record goes to the failed-events queue for a human instead.
MAX_RETRY_ATTEMPTS = 2
MAX_EVENT_AGE_SECONDS = 3600
QUALIFIER = "$LATEST"  # Chalice deploys unpublished functions: no versions, no aliases.

# The consumer of the failed-events queue (app.py). It is invoked synchronously by its SQS event
# source, so it gets no EventInvokeConfig; it is declared as a plain function because Chalice
# 1.34's on_sqs_message cannot set FunctionResponseTypes, and without ReportBatchItemFailures
# Lambda ignores a partial batch response and deletes every message of a batch that returned
# (AWS Lambda Developer Guide, services-sqs-errorhandling, "Implementing partial batch
# responses"). The generated templates declare the event source instead: an
# AWS::Lambda::EventSourceMapping in route (a) (parked_event_source), an SQS event merged into
# the SAM function in route (b) (parked_sam_event).
PARKED_HANDLER = "consume_parked_events"
PARKED_BATCH_SIZE = 10
# The consumer's event source is capped at the consumer's reserved concurrency (ScalingConfig
# MaximumConcurrency): it then never invokes more instances than the function may run, so it is
# never throttled. A throttled SQS invocation returns its messages to the queue and counts a
# receive, which would move a record to the dead-letter queue before the consumer tried it
# (AWS Lambda Developer Guide, services-sqs-scaling, "Configuring maximum concurrency": keep the
# reserved concurrency at least the event sources' maximum concurrency, or Lambda may throttle
# the messages).
# Alarms per function and per rule (docs/alarms.md): Lambda's Errors and Throttles
# (AWS/Lambda, dimension FunctionName) and EventBridge's FailedInvocations (AWS/Events, dimension
# RuleName alone for a rule on the default event bus; Amazon EventBridge User Guide,
# eb-monitoring). Errors: 3 in 15 minutes (Lambda retries a single one); Throttles and
# FailedInvocations: any (an event EventBridge could not deliver is lost to the app).
ALARM_PERIOD_SECONDS = 900
FUNCTION_ERRORS_THRESHOLD = 3
LAMBDA_FUNCTION_NAME_MAX = 64

# Chalice names each handler's EventBridge rule ``<app>-<stage>-<handler>-event``
# (aws/chalice, chalice/deploy/appgraph.py, ``_create_cwe_subscription`` and
# ``_create_scheduled_model``: ``resource_name = event_source.name + '-event'``, ``rule_name =
# '%s-%s-%s' % (config.app_name, config.chalice_stage, resource_name)``), and EventBridge rule
# names are 1-64 of ``[.-_A-Za-z0-9]`` (Amazon EventBridge API Reference, Rule, Name:
# https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_Rule.html). The rule name is
# longer than the function and role names (``<app>-<stage>-<handler>``), so it sets the limit.
EVENT_RULE_NAME_MAX = 64
EVENT_RULE_SUFFIX = "-event"
STAGE_NAME_PATTERN = "[A-Za-z0-9][A-Za-z0-9_-]*"
"""Letters, digits, ``-`` and ``_``, starting with a letter or digit: valid in every name the
stage is part of (rule, function, role, table, topic, queue, key alias, stack)."""

# Logical ids of deploy/resources.yaml (the merge template references them).
KEY = "Key"
KEY_ALIAS = "KeyAlias"
STATE_TABLE = "StateTable"
ALERTS_TOPIC = "AlertsTopic"
PAGER_TOPIC = "PagerTopic"
CANARY_TOPIC = "CanaryTopic"
FAILED_EVENTS_QUEUE = "FailedEventsQueue"
FINAL_DEAD_LETTER_QUEUE = "FinalDeadLetterQueue"

STAGE_PARAMETER = "Stage"

SUBSCRIPTIONS_KEY = "mfawatch_subscriptions"
"""A stage's e-mail subscriptions, ``{"alerts": [address, ...], "pager": [...]}`` by output name,
in ``.chalice/config.json`` beside Chalice's keys (Chalice ignores keys it does not know);
``mfawatch init`` writes them and ``mfawatch deploy`` subscribes them."""

# What the deployed code calls on the stage's resources: chalicelib/aws/dynamo.py reads with
# GetItem, writes with conditional PutItem and UpdateItem, and queries its two sparse indexes
# ("due", "group"). policy.py builds the route (a) policy file from these same statements.
TABLE_ACTIONS = ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Query")
INDEX_SUFFIXES = tuple(f"/index/{name}" for name in (DUE_INDEX, GROUP_INDEX))
LOG_ACTIONS = ("logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents")
# SNS to an SSE-KMS topic needs both of the publisher; DynamoDB with a customer managed key
# decrypts the table key with the caller's kms:Decrypt (Amazon SNS Developer Guide,
# sns-key-management; Amazon DynamoDB Developer Guide, encryption.howitworks).
KEY_ACTIONS = ("kms:GenerateDataKey", "kms:Decrypt")
# What the consumer's SQS event source polls with (the function's role: AWS Lambda Developer
# Guide, with-sqs, "Execution role permissions"), and the backoff's ChangeMessageVisibility.
CONSUME_ACTIONS = (
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
    "sqs:ChangeMessageVisibility",
)


@dataclass(frozen=True)
class StageNames:
    """The fixed names of a stage's resources and functions."""

    app_name: str
    stage: str

    @property
    def table(self) -> str:
        return f"{RESOURCE_PREFIX}-{self.stage}-state"

    @property
    def alerts_topic(self) -> str:
        return f"{RESOURCE_PREFIX}-{self.stage}-alerts"

    @property
    def pager_topic(self) -> str:
        return f"{RESOURCE_PREFIX}-{self.stage}-pager"

    @property
    def canary_topic(self) -> str:
        """The heartbeat's canary topic: the stage key, no subscribers."""
        return f"{RESOURCE_PREFIX}-{self.stage}-canary"

    @property
    def failed_events_queue(self) -> str:
        return f"{RESOURCE_PREFIX}-{self.stage}-failed-events"

    @property
    def dead_letter_queue(self) -> str:
        return f"{RESOURCE_PREFIX}-{self.stage}-dead-letters"

    def alarm(self, what: str) -> str:
        """An alarm's name; the key policy lets CloudWatch publish for ``mfawatch-<stage>-*``."""
        return f"{RESOURCE_PREFIX}-{self.stage}-{what}"

    def event_rule(self, handler: str) -> str:
        """The EventBridge rule ``chalice deploy`` creates for a handler (route (a))."""
        return f"{self.app_name}-{self.stage}-{handler}{EVENT_RULE_SUFFIX}"

    @property
    def key_alias(self) -> str:
        return f"alias/{RESOURCE_PREFIX}-{self.stage}"

    @property
    def resources_stack(self) -> str:
        """The stack ``make deploy-resources`` creates from deploy/resources.yaml."""
        return f"{RESOURCE_PREFIX}-{self.stage}-resources"

    def export(self, output: str) -> str:
        """The export name of a deploy/resources.yaml output (``mfawatch-<stage>-<Output>``)."""
        return f"{RESOURCE_PREFIX}-{self.stage}-{output}"

    def function(self, handler: str) -> str:
        """The Lambda function name Chalice gives a handler: ``<app>-<stage>-<handler>``."""
        name = f"{self.app_name}-{self.stage}-{handler}"
        if len(name) > LAMBDA_FUNCTION_NAME_MAX:
            raise ConfigError(
                f"Lambda function name {name!r} is {len(name)} characters; the limit is "
                f"{LAMBDA_FUNCTION_NAME_MAX}: use a shorter stage name"
            )
        return name


def stage_name_limit(app_name: str, handlers: Iterable[str]) -> tuple[int, str]:
    """(the longest stage name every Chalice-made name fits with, the handler that limits it).

    ``handlers`` are the app's handlers (derived from the rules), so the limit follows them: a
    rule with a longer id lowers it.
    """
    longest = max(handlers, key=len, default="")
    if not longest:
        raise ConfigError("no Lambda handlers: the app registers none")
    fixed = len(f"{app_name}--{longest}")  # <app>-<stage>-<handler> without the stage
    limit = min(
        LAMBDA_FUNCTION_NAME_MAX - fixed, EVENT_RULE_NAME_MAX - fixed - len(EVENT_RULE_SUFFIX)
    )
    return limit, longest


def check_stage_name(app_name: str, stage: str, handlers: Iterable[str]) -> None:
    """Raise :class:`ConfigError` naming the stage, its length and the limit when AWS would
    reject a name Chalice builds from it (after creating some resources, not before)."""
    if not re.fullmatch(STAGE_NAME_PATTERN, stage):
        raise ConfigError(
            f"stage {stage!r}: use letters, digits, '-' and '_', starting with a letter or digit"
        )
    limit, longest = stage_name_limit(app_name, handlers)
    if len(stage) > limit:
        raise ConfigError(
            f"stage {stage!r} is {len(stage)} characters; the limit is {limit}: Chalice names "
            f"the EventBridge rule of handler {longest} "
            f"{app_name}-{stage}-{longest}{EVENT_RULE_SUFFIX} "
            f"({len(app_name) + len(stage) + len(longest) + len(EVENT_RULE_SUFFIX) + 2} "
            f"characters) and EventBridge allows {EVENT_RULE_NAME_MAX}"
        )


def cfn_logical_id(name: str) -> str:
    """The CloudFormation logical id Chalice derives from a resource name.

    Mirrors ``chalice.utils.to_cfn_resource_name`` (chalice 1.34): split on ``-`` and ``_``,
    capitalize the first letter of each part, drop anything not alphanumeric.
    """
    if not name:
        raise ValueError("empty name")
    for separator in ("-", "_"):
        name = "".join(part[0].upper() + part[1:] for part in name.split(separator) if part)
    return re.sub(r"[^A-Za-z0-9]+", "", name)


def function_logical_id(handler: str) -> str:
    """The SAM function's logical id in ``chalice package`` output (``on_x`` -> ``OnX``)."""
    return cfn_logical_id(handler)


def role_logical_id(handler: str, autogen_policy: bool) -> str:
    """The logical id of the role Chalice creates for a handler's function.

    With ``autogen_policy`` off Chalice gives every function its own role ``<handler>_role``
    with the stage's policy file; with it on, all functions share ``default-role``
    (chalice/deploy/appgraph.py, ``_create_role_reference``).
    """
    return cfn_logical_id("default-role" if autogen_policy else f"{handler}_role")


def sam_rule_logical_id(handler: str) -> str:
    """The EventBridge rule SAM generates for a handler's event in ``chalice package`` output."""
    logical = function_logical_id(handler)
    return f"{logical}{logical}Event"


def invoke_config_logical_id(handler: str) -> str:
    return f"{function_logical_id(handler)}InvokeConfig"


PARKED_EVENT_SOURCE = "ConsumeParkedEventsSource"


def _rule_handlers(handlers: Sequence[str], rule_handlers: Sequence[str] | None) -> list[str]:
    if rule_handlers is None:
        return [h for h in handlers if h != PARKED_HANDLER]
    unknown = sorted(set(rule_handlers) - set(handlers))
    if unknown:
        raise ConfigError(f"rule handlers {unknown} are not among the handlers")
    return sorted(rule_handlers)


def _check_handlers(handlers: Sequence[str]) -> list[str]:
    if not handlers:
        raise ConfigError("no Lambda handlers: the app registers none")
    ids: dict[str, str] = {}
    for handler in handlers:
        logical = function_logical_id(handler)
        if logical in ids and ids[logical] != handler:
            raise ConfigError(f"handlers {ids[logical]!r} and {handler!r} share id {logical}")
        ids[logical] = handler
    return sorted(set(handlers))


def parked_event_source_settings(concurrency: int) -> dict[str, Any]:
    """The consumer's event source settings, one definition for both routes; ``concurrency``:
    the consumer's reserved concurrency, also the event source's maximum concurrency."""
    return {
        "BatchSize": PARKED_BATCH_SIZE,
        "Enabled": True,
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
        "ScalingConfig": {"MaximumConcurrency": concurrency},
    }


def parked_event_source(function_name: Any, queue_arn: Any, concurrency: int) -> dict[str, Any]:
    """Route (a): the consumer's SQS event source (``AWS::Lambda::EventSourceMapping``)."""
    return {
        "Type": "AWS::Lambda::EventSourceMapping",
        "Properties": {
            "FunctionName": function_name,
            "EventSourceArn": queue_arn,
            **parked_event_source_settings(concurrency),
        },
    }


def parked_sam_event(queue_arn: Any, concurrency: int) -> dict[str, Any]:
    """Route (b): the same event source as an ``SQS`` event of the SAM function Chalice
    packages (AWS SAM Developer Guide, sam-property-function-sqs: ``FunctionResponseTypes``,
    ``ScalingConfig``), merged into the function: Chalice 1.34 cannot write it, the merge
    template can."""
    return {
        "Type": "SQS",
        "Properties": {"Queue": queue_arn, **parked_event_source_settings(concurrency)},
    }


def _alarm(
    name: str,
    description: str,
    namespace: str,
    metric: str,
    dimension: tuple[str, Any],
    threshold: int,
    pager_topic: Any,
) -> dict[str, Any]:
    return {
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "AlarmName": name,
            "AlarmDescription": f"{description} (docs/alarms.md)",
            "Namespace": namespace,
            "MetricName": metric,
            "Dimensions": [{"Name": dimension[0], "Value": dimension[1]}],
            "Statistic": "Sum",
            "Period": ALARM_PERIOD_SECONDS,
            "EvaluationPeriods": 1,
            "Threshold": threshold,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "TreatMissingData": "notBreaching",
            "AlarmActions": [pager_topic],
        },
    }


def function_alarms(
    names: StageNames,
    handlers: Sequence[str],
    function: Callable[[str], Any],
    rule: Callable[[str], Any],
    rule_handlers: Sequence[str],
    pager_topic: Any,
) -> dict[str, Any]:
    """Errors and Throttles of every function, FailedInvocations of every EventBridge rule.

    ``function(handler)`` and ``rule(handler)`` give the FunctionName and RuleName dimension
    values (literal names in route (a), references in route (b)).
    """
    alarms: dict[str, Any] = {}
    for handler in handlers:
        logical = function_logical_id(handler)
        alarms[f"{logical}ErrorsAlarm"] = _alarm(
            names.alarm(f"{handler}-errors"),
            f"Function {handler} fails",
            "AWS/Lambda",
            "Errors",
            ("FunctionName", function(handler)),
            FUNCTION_ERRORS_THRESHOLD,
            pager_topic,
        )
        alarms[f"{logical}ThrottlesAlarm"] = _alarm(
            names.alarm(f"{handler}-throttles"),
            f"Function {handler} is throttled",
            "AWS/Lambda",
            "Throttles",
            ("FunctionName", function(handler)),
            1,
            pager_topic,
        )
    for handler in rule_handlers:
        alarms[f"{function_logical_id(handler)}FailedInvocationsAlarm"] = _alarm(
            names.alarm(f"{handler}-failed-invocations"),
            f"EventBridge could not invoke {handler}",
            "AWS/Events",
            "FailedInvocations",
            ("RuleName", rule(handler)),
            1,
            pager_topic,
        )
    return alarms


def _event_invoke_config(function_name: Any, destination: Any) -> dict[str, Any]:
    return {
        "Type": "AWS::Lambda::EventInvokeConfig",
        "Properties": {
            "FunctionName": function_name,
            "Qualifier": QUALIFIER,
            "MaximumRetryAttempts": MAX_RETRY_ATTEMPTS,
            "MaximumEventAgeInSeconds": MAX_EVENT_AGE_SECONDS,
            "DestinationConfig": {"OnFailure": {"Destination": destination}},
        },
    }


def invoke_config_template(
    app_name: str,
    stage: str,
    handlers: Sequence[str],
    rule_handlers: Sequence[str] | None = None,
    *,
    consumer_concurrency: int,
) -> dict[str, Any]:
    """Route (a): one EventInvokeConfig per function that ``chalice deploy --stage`` created,
    the consumer's event source on the failed-events queue, and the per-function alarms.

    The queue and pager topic ARNs are imported from the resources stack's exports, so this
    stack needs no parameters, and the resources stack cannot be deleted while it is in use.
    ``rule_handlers``: the handlers with an EventBridge rule (default: every handler but the
    consumer). ``consumer_concurrency``: the consumer's reserved concurrency
    (:meth:`StageConfig.consumer_concurrency`), its event source's maximum concurrency.
    """
    names = StageNames(app_name, stage)
    checked = _check_handlers(handlers)
    queue = {"Fn::ImportValue": names.export("FailedEventsQueueArn")}
    resources: dict[str, Any] = {
        invoke_config_logical_id(handler): _event_invoke_config(names.function(handler), queue)
        for handler in checked
        if handler != PARKED_HANDLER
    }
    if PARKED_HANDLER in checked:
        # The queue's ARN from its fixed name rather than the export: CloudFormation resolves
        # either, but moto's change sets (what `mfawatch deploy` runs) cannot resolve
        # Fn::ImportValue. The invoke configs above still import it, so the resources stack
        # cannot be deleted under this one.
        arn = (
            "arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:"
            + names.failed_events_queue
        )
        resources[PARKED_EVENT_SOURCE] = parked_event_source(
            names.function(PARKED_HANDLER), {"Fn::Sub": arn}, consumer_concurrency
        )
    resources.update(
        function_alarms(
            names,
            checked,
            names.function,
            names.event_rule,
            _rule_handlers(checked, rule_handlers),
            {"Fn::ImportValue": names.export("PagerTopicArn")},
        )
    )
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": (
            f"mfawatch {stage}: retries, maximum event age and on-failure destination of the "
            "functions chalice deploy created (generated by "
            f"`python -m mfawatch deploy-template invoke-config --stage {stage}`)"
        ),
        "Resources": resources,
    }


# --- IAM statements --------------------------------------------------------------------------


PUBLISH_ALERTS_SID = "PublishAlerts"
PUBLISH_CANARY_SID = "PublishCanary"


def _statements(
    log_groups: Sequence[Any],
    topics: Sequence[Any],
    table: Sequence[Any],
    queue: Any,
    key: Any,
    key_condition: Mapping[str, Any] | None = None,
    consume: bool = True,
    canary: Any = None,
) -> list[dict[str, Any]]:
    key_statement: dict[str, Any] = {
        "Sid": "UseStageKey",
        "Effect": "Allow",
        "Action": list(KEY_ACTIONS),
        "Resource": [key],
    }
    if key_condition:
        key_statement["Condition"] = dict(key_condition)
    consume_statement: list[dict[str, Any]] = [
        {
            # The consumer's SQS event source polls and deletes with the function's role.
            "Sid": "ConsumeParkedEvents",
            "Effect": "Allow",
            "Action": list(CONSUME_ACTIONS),
            "Resource": [queue],
        }
    ]
    canary_statement: list[dict[str, Any]] = [
        {
            # The heartbeat's canary (chalicelib/pipeline/heartbeats.py): this topic only.
            "Sid": PUBLISH_CANARY_SID,
            "Effect": "Allow",
            "Action": ["sns:Publish"],
            "Resource": [canary],
        }
    ]
    return [
        {
            "Sid": "WriteOwnLogs",
            "Effect": "Allow",
            "Action": list(LOG_ACTIONS),
            "Resource": list(log_groups),
        },
        {
            "Sid": PUBLISH_ALERTS_SID,
            "Effect": "Allow",
            "Action": ["sns:Publish"],
            "Resource": topics,
        },
        *(canary_statement if canary is not None else []),
        {
            "Sid": "UseStateTable",
            "Effect": "Allow",
            "Action": list(TABLE_ACTIONS),
            "Resource": list(table),
        },
        {
            # Lambda sends on-failure records of asynchronous invocations with the function's
            # execution role (AWS Lambda Developer Guide, invocation-async-retain-records).
            "Sid": "RecordFailedInvocations",
            "Effect": "Allow",
            "Action": ["sqs:SendMessage"],
            "Resource": [queue],
        },
        *(consume_statement if consume else []),
        key_statement,
    ]


def stage_policy_statements(
    partition: str, region: str, account: str, app_name: str, stage: str
) -> list[dict[str, Any]]:
    """The statements a stage's Lambda role needs, with literal ARNs (route (a)).

    The key is addressed by its alias with the ``kms:ResourceAliases`` condition because its id
    is only known after the resources stack exists; IAM does not accept an alias ARN as the
    Resource of a key operation (AWS KMS Developer Guide, alias-authorization), so the Resource
    is the account's keys in the region and the condition narrows it to the stage key.

    One policy file serves every function of the stage (Chalice's ``iam_policy_file``), so each
    may publish to the canary topic, which has no subscribers; route (b) grants it to the
    heartbeat's role only.
    """
    names = StageNames(app_name, stage)
    arn = f"arn:{partition}:{{service}}:{region}:{account}:{{resource}}"
    log_groups = arn.format(service="logs", resource=f"log-group:/aws/lambda/{app_name}-{stage}-*")
    return _statements(
        log_groups=[log_groups, f"{log_groups}:log-stream:*"],
        topics=[
            arn.format(service="sns", resource=names.alerts_topic),
            arn.format(service="sns", resource=names.pager_topic),
        ],
        table=[
            arn.format(service="dynamodb", resource=f"table/{names.table}"),
            *(
                arn.format(service="dynamodb", resource=f"table/{names.table}{suffix}")
                for suffix in INDEX_SUFFIXES
            ),
        ],
        queue=arn.format(service="sqs", resource=names.failed_events_queue),
        key=arn.format(service="kms", resource="key/*"),
        key_condition={"ForAnyValue:StringEquals": {"kms:ResourceAliases": [names.key_alias]}},
        canary=arn.format(service="sns", resource=names.canary_topic),
    )


def _role_policy_document(
    function_names: Sequence[str], consume: bool, canary: bool
) -> dict[str, Any]:
    """The policy of a role in the merged package: its functions' log groups, the stage resources.

    A per-function role (``autogen_policy`` off) lists one log group; Chalice's shared default
    role lists every function's. Only a role of the consumer (``consume``) may read the
    failed-events queue, and only the scheduled heartbeat's (``canary``) may publish the canary.
    """
    prefix = "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:/aws/lambda/"
    log_groups: list[Any] = []
    for name in function_names:
        log_groups += [{"Fn::Sub": prefix + name}, {"Fn::Sub": f"{prefix}{name}:log-stream:*"}]
    return {
        "Version": "2012-10-17",
        "Statement": _statements(
            log_groups=log_groups,
            topics=[{"Ref": ALERTS_TOPIC}, {"Ref": PAGER_TOPIC}],
            table=[
                {"Fn::GetAtt": [STATE_TABLE, "Arn"]},
                *({"Fn::Sub": "${" + STATE_TABLE + ".Arn}" + suffix} for suffix in INDEX_SUFFIXES),
            ],
            queue={"Fn::GetAtt": [FAILED_EVENTS_QUEUE, "Arn"]},
            key={"Fn::GetAtt": [KEY, "Arn"]},
            consume=consume,
            canary={"Ref": CANARY_TOPIC} if canary else None,
        ),
    }


# --- environment variables -------------------------------------------------------------------

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


# --- stage config ----------------------------------------------------------------------------


@dataclass(frozen=True)
class StageConfig:
    """What the templates need from ``.chalice/config.json`` for one stage."""

    app_name: str
    stage: str
    config: Mapping[str, Any]

    @classmethod
    def from_config(cls, config: Mapping[str, Any], stage: str) -> StageConfig:
        stages = config.get("stages") or {}
        if stage not in stages:
            raise ConfigError(
                f"no stage {stage!r}; have {', '.join(sorted(stages)) or 'none'} "
                f"(`mfawatch init --stage {stage}` adds it)"
            )
        app_name = config.get("app_name")
        if not isinstance(app_name, str) or not app_name:
            raise ConfigError("app_name is not set")
        return cls(app_name=app_name, stage=stage, config=config)

    @property
    def names(self) -> StageNames:
        return StageNames(self.app_name, self.stage)

    def _levels(self, handler: str) -> list[Mapping[str, Any]]:
        """Chalice's lookup order, most specific first (chalice/config.py, _chain_lookup)."""
        stage = self.config["stages"][self.stage] or {}
        return [
            (stage.get("lambda_functions") or {}).get(handler) or {},
            stage,
            (self.config.get("lambda_functions") or {}).get(handler) or {},
            self.config,
        ]

    def lookup(self, handler: str, key: str, default: Any) -> Any:
        for level in self._levels(handler):
            if level.get(key) is not None:
                return level[key]
        return default

    def environment(self, handler: str | None = None) -> dict[str, str]:
        """The environment as Chalice merges it (chalice/config.py, _chain_merge): global, stage,
        then the stage's entry for ``handler`` (none: what every function of the stage gets)."""
        merged: dict[str, str] = {}
        stage = self.config["stages"][self.stage] or {}
        function = (stage.get("lambda_functions") or {}).get(handler or "") or {}
        for level in (self.config, stage, function):
            merged.update(level.get("environment_variables") or {})
        return merged

    def subscriptions(self) -> dict[str, list[str]]:
        """Output name -> e-mail addresses to subscribe to its topic (:data:`SUBSCRIPTIONS_KEY`)."""
        raw = (self.config["stages"][self.stage] or {}).get(SUBSCRIPTIONS_KEY) or {}
        where = f"stages.{self.stage}.{SUBSCRIPTIONS_KEY}"
        if not isinstance(raw, dict) or not all(
            isinstance(v, list) and all(isinstance(a, str) for a in v) for v in raw.values()
        ):
            raise ConfigError(
                f'{where} must map output names to lists of addresses: {{"alerts": [...]}}'
            )
        return {str(k): list(v) for k, v in raw.items()}

    def reserved_concurrency(self, handler: str) -> int:
        """A function's ``reserved_concurrency`` as Chalice looks it up; :class:`ConfigError`
        when it is not set: every function of a stage runs capped (docs/outputs.md)."""
        value = self.lookup(handler, "reserved_concurrency", None)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(
                f"stage {self.stage!r}: {handler}'s reserved_concurrency is {value!r}; set "
                f"reserved_concurrency in .chalice/config.json, and {ENV_CONCURRENCY} to the "
                "same number"
            )
        return value

    def consumer_concurrency(self) -> int:
        """The parked-event consumer's reserved concurrency, which its SQS event source takes
        as its maximum concurrency (at least 2, as SQS requires)."""
        value = self.reserved_concurrency(PARKED_HANDLER)
        if value < MIN_CONCURRENCY:
            raise ConfigError(
                f"stage {self.stage!r}: {PARKED_HANDLER}'s reserved_concurrency is {value}; its "
                f"SQS event source's maximum concurrency must be at least {MIN_CONCURRENCY}"
            )
        return value

    def autogen_policy(self, handler: str) -> bool:
        return bool(self.lookup(handler, "autogen_policy", True))  # Chalice's default: on

    def manage_iam_role(self, handler: str) -> bool:
        return bool(self.lookup(handler, "manage_iam_role", True))


def read_config_document(path: Path) -> tuple[str, dict[str, Any]]:
    """The text and the JSON object of ``.chalice/config.json``; errors name the file."""
    try:
        text = path.read_text(encoding="utf-8")
        config = json.loads(text)
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: not a JSON object")
    return text, config


def config_text(config: Mapping[str, Any], previous_text: str = "\n") -> str:
    """The file text of a config (2-space JSON), keeping the previous text's final newline."""
    ending = "\n" if previous_text.endswith("\n") else ""
    return json.dumps(config, indent=2, ensure_ascii=False) + ending


def load_stage_config(stage: str, path: Path = CHALICE_CONFIG) -> StageConfig:
    """One stage of ``.chalice/config.json``: the one reader of that file (replay ``--stage``,
    ``policy``, ``deploy-template``). Errors name the file."""
    _, config = read_config_document(path)
    try:
        return StageConfig.from_config(config, stage)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


# --- route (b): the merge template -----------------------------------------------------------


def bind_parameter(node: Any, name: str, value: str) -> Any:
    """``node`` with ``{"Ref": name}`` and ``${name}`` in ``Fn::Sub`` replaced by ``value``."""
    if isinstance(node, Mapping):
        if set(node) == {"Ref"} and node["Ref"] == name:
            return value
        bound = {key: bind_parameter(item, name, value) for key, item in node.items()}
        sub = bound.get("Fn::Sub")
        if isinstance(sub, str):
            text = sub.replace("${" + name + "}", value)
            # A Sub left without variables is a plain string (cfn-lint W1020 otherwise).
            return {"Fn::Sub": text} if "${" in text else text.replace("${!", "${")
        if isinstance(sub, list) and sub and isinstance(sub[0], str):
            bound["Fn::Sub"] = [sub[0].replace("${" + name + "}", value), *sub[1:]]
        return bound
    if isinstance(node, list):
        return [bind_parameter(item, name, value) for item in node]
    return node


def merge_template(
    stage_config: StageConfig,
    handlers: Sequence[str],
    resources_template: Mapping[str, Any],
    rules: Sequence[Rule] | None = None,
) -> dict[str, Any]:
    """Route (b): what ``chalice package --merge-template`` merges into Chalice's SAM template.

    Chalice deep-merges mappings and lets this file's value win for anything else
    (chalice/package.py, ``TemplateDeepMerger``): so a role's ``Policies`` list is replaced
    as a whole, while a function's ``Environment.Variables`` mapping only gains or changes the
    variables given here. ``FunctionName`` is set to the name ``chalice deploy`` would use, so
    that the log-group ARNs in the role policy are known without a circular reference to the
    function and both routes name functions alike. A rule of read-only events (``rules``,
    default the bundle's) gets its EventBridge rule's ``State`` set on its SAM event
    (``<Function>Event``): ``chalice package`` leaves it ``ENABLED``, which drops them.
    """
    names = stage_config.names
    sorted_handlers = _check_handlers(handlers)
    states = {
        rule.handler_name: rule.eventbridge_state
        for rule in (load_bundle() if rules is None else rules)
        if rule.read_only_events
    }
    parameters = resources_template.get("Parameters") or {}
    unknown = sorted(set(parameters) - {STAGE_PARAMETER})
    if unknown:
        raise ConfigError(f"resources template has parameters the merge cannot bind: {unknown}")
    base = bind_parameter(resources_template.get("Resources") or {}, STAGE_PARAMETER, names.stage)
    resources: dict[str, Any] = dict(base)
    outputs = {
        key: {"Value": bind_parameter(output["Value"], STAGE_PARAMETER, names.stage)}
        for key, output in (resources_template.get("Outputs") or {}).items()
    }
    roles: dict[str, list[str]] = {}
    consumers: set[str] = set()
    canaries: set[str] = set()
    queue = {"Fn::GetAtt": [FAILED_EVENTS_QUEUE, "Arn"]}
    for handler in sorted_handlers:
        if not stage_config.manage_iam_role(handler):
            raise ConfigError(
                f"{handler}: manage_iam_role is false, so the package has no role whose policy "
                "route (b) can replace; use route (a) or let Chalice manage the role"
            )
        function_name = names.function(handler)
        logical = function_logical_id(handler)
        properties: dict[str, Any] = {"FunctionName": function_name}
        overrides = environment_overrides(stage_config.environment(handler), names)
        if overrides:
            properties["Environment"] = {"Variables": overrides}
        role = role_logical_id(handler, stage_config.autogen_policy(handler))
        if handler in states:
            properties["Events"] = {f"{logical}Event": {"Properties": {"State": states[handler]}}}
        if handler == PIPELINE_HEARTBEAT_HANDLER:
            canaries.add(role)
        if handler == PARKED_HANDLER:
            properties["Events"] = {
                PARKED_EVENT_SOURCE: parked_sam_event(queue, stage_config.consumer_concurrency())
            }
            consumers.add(role)
        else:
            resources[invoke_config_logical_id(handler)] = _event_invoke_config(
                {"Ref": logical}, queue
            )
        resources[logical] = {"Properties": properties}
        roles.setdefault(role, []).append(function_name)
    # SAM names the rule of a function's CloudWatchEvent/Schedule event <function><event>
    # (AWS SAM Developer Guide, sam-specification-generated-resources-function); Chalice names
    # the event <Handler>Event. Ref of an AWS::Events::Rule is its name.
    resources.update(
        function_alarms(
            names,
            sorted_handlers,
            lambda handler: {"Ref": function_logical_id(handler)},
            lambda handler: {"Ref": sam_rule_logical_id(handler)},
            _rule_handlers(sorted_handlers, None),
            {"Ref": PAGER_TOPIC},
        )
    )
    for role, function_names in sorted(roles.items()):
        policy = {
            "PolicyName": f"{role}Policy",
            "PolicyDocument": _role_policy_document(
                function_names, role in consumers, role in canaries
            ),
        }
        resources[role] = {"Properties": {"Policies": [policy]}}
    for handler in sorted_handlers:
        outputs[f"{function_logical_id(handler)}Name"] = {
            "Value": {"Ref": function_logical_id(handler)}
        }
    return {"Resources": resources, "Outputs": outputs}


# --- route (a), step 2: the stage config from the resources stack -----------------------------

# The resources stack's outputs that the app's environment takes, and where the others go.
OUTPUT_ALERTS_TOPIC = "AlertsTopicArn"
OUTPUT_PAGER_TOPIC = "PagerTopicArn"
OUTPUT_TABLE_NAME = "StateTableName"
OUTPUT_CANARY_TOPIC = "CanaryTopicArn"
STACK_OUTPUTS_IN_CONFIG = (
    OUTPUT_ALERTS_TOPIC,
    OUTPUT_PAGER_TOPIC,
    OUTPUT_TABLE_NAME,
    OUTPUT_CANARY_TOPIC,
)
STACK_OUTPUTS_ELSEWHERE: dict[str, str] = {
    "StateTableArn": "the policy builds the table ARN from the topic's account and region",
    "FailedEventsQueueArn": "the invoke-config stack imports it (Fn::ImportValue)",
    "FailedEventsQueueUrl": "where an operator reads failed events",
    "FinalDeadLetterQueueArn": "mfawatch redrive reads the final dead-letter queue by name",
    "KeyArn": "the policy addresses the key by its alias",
    "KeyAlias": "the policy's kms:ResourceAliases condition",
}
# Where MFAWATCH_OUTPUTS is not set yet: every notification to the alerts topic, HIGH and
# CRITICAL alerts, escalations and storm digests also to the pager topic.
DEFAULT_ROUTES: dict[str, tuple[str, dict[str, Any]]] = {
    "alerts": (OUTPUT_ALERTS_TOPIC, {}),
    "pager": (
        OUTPUT_PAGER_TOPIC,
        {"min_severity": "HIGH", "kinds": ["alert", "escalation", "storm"]},
    ),
}


def arn_parts(arn: str, what: str) -> tuple[str, str, str]:
    """(partition, region, account) of a regional ARN; :class:`ConfigError` naming ``what``."""
    parts = arn.split(":")
    if len(parts) < 6 or parts[0] != "arn" or not parts[3] or not parts[4]:
        raise ConfigError(f"{what} {arn!r} is not a full ARN with region and account")
    return parts[1], parts[3], parts[4]


@dataclass(frozen=True)
class ConfigChange:
    """One field of ``.chalice/config.json`` that a stack's outputs change."""

    field: str
    old: str
    new: str

    def __str__(self) -> str:
        return f"{self.field}: {self.old or '(unset)'} -> {self.new}"


@dataclass(frozen=True)
class ConfigUpdate:
    config: dict[str, Any]
    changes: tuple[ConfigChange, ...]
    warnings: tuple[str, ...]


def _check_outputs(
    outputs: Mapping[str, str], names: StageNames, stack: str, account: str, region: str
) -> None:
    if not outputs:
        raise ConfigError(
            f"stack {stack} has no outputs at all: was it created from deploy/resources.yaml "
            "(its template lists the outputs)? `mfawatch deploy` creates it"
        )
    missing = [key for key in STACK_OUTPUTS_IN_CONFIG if not outputs.get(key)]
    if missing:
        raise ConfigError(
            f"stack {stack} has no output {', '.join(missing)}: not a deploy/resources.yaml stack"
        )
    for key, value in sorted(outputs.items()):
        if not value.startswith("arn:"):
            continue
        _, arn_region, arn_account = arn_parts(value, f"stack {stack} output {key}")
        if (arn_account, arn_region) != (account, region):
            raise ConfigError(
                f"stack {stack} output {key} {value} is in account {arn_account}, region "
                f"{arn_region}, but the caller is account {account} in {region}: use the "
                "credentials and region of the account the stage deploys to"
            )
    expected = {
        OUTPUT_TABLE_NAME: names.table,
        OUTPUT_ALERTS_TOPIC: names.alerts_topic,
        OUTPUT_PAGER_TOPIC: names.pager_topic,
        OUTPUT_CANARY_TOPIC: names.canary_topic,
    }
    for key, name in expected.items():
        if outputs[key].rsplit(":", 1)[-1] != name:
            raise ConfigError(
                f"stack {stack} output {key} is {outputs[key]}, not stage {names.stage}'s {name}: "
                "is it another stage's resources stack?"
            )


def stage_config_update(
    config: Mapping[str, Any],
    stage: str,
    outputs: Mapping[str, str],
    stack: str,
    account: str,
    region: str,
) -> ConfigUpdate:
    """Pure: ``config`` (``.chalice/config.json``) with ``stage`` set from the resources stack.

    Sets ``MFAWATCH_TOPIC_ARN`` (alerts topic) and ``MFAWATCH_TABLE_NAME``, and in
    ``MFAWATCH_OUTPUTS`` the topic of every output that names the stage's alerts or pager topic
    (:data:`DEFAULT_ROUTES` when it is not set). A missing stage is created with its policy
    file. Everything else is kept as it is. Raises :class:`ConfigError` when an output's ARN is
    in another account or region than the caller, or names another stage's resources.
    """
    app_name = config.get("app_name")
    if not isinstance(app_name, str) or not app_name:
        raise ConfigError("app_name is not set")
    names = StageNames(app_name, stage)
    _check_outputs(outputs, names, stack, account, region)
    topics = {
        names.alerts_topic: outputs[OUTPUT_ALERTS_TOPIC],
        names.pager_topic: outputs[OUTPUT_PAGER_TOPIC],
    }
    updated = json.loads(json.dumps(config))  # a deep copy that keeps the key order
    stages = updated.setdefault("stages", {})
    changes: list[ConfigChange] = []
    warnings: list[str] = []
    if not isinstance(stages.get(stage), dict):
        stages[stage] = {"iam_policy_file": f"policy-{stage}.json"}
        changes.append(ConfigChange(f"stages.{stage}", "", f"new stage ({stages[stage]})"))
    environment = stages[stage].setdefault("environment_variables", {})
    where = f"stages.{stage}.environment_variables"

    def set_variable(variable: str, value: str) -> None:
        old = str(environment.get(variable, ""))
        if old != value:
            environment[variable] = value
            changes.append(ConfigChange(f"{where}.{variable}", old, value))

    set_variable(ENV_TOPIC_ARN, outputs[OUTPUT_ALERTS_TOPIC])
    set_variable(ENV_TABLE_NAME, outputs[OUTPUT_TABLE_NAME])
    set_variable(ENV_CANARY_TOPIC_ARN, outputs[OUTPUT_CANARY_TOPIC])
    raw = str(environment.get(ENV_OUTPUTS, "")).strip()
    if raw:
        parse_outputs(raw)  # a clear error naming the output and field when it is malformed
        routes = json.loads(raw)
        moved = len(changes)
        for name, spec in routes.items():
            topic = str(spec["topic_arn"])
            new_topic = topics.get(topic.rsplit(":", 1)[-1], topic)
            if new_topic != topic:
                spec["topic_arn"] = new_topic
                changes.append(
                    ConfigChange(f"{where}.{ENV_OUTPUTS}.{name}.topic_arn", topic, new_topic)
                )
                continue
            if topic in topics.values():
                continue
            _, topic_region, topic_account = arn_parts(topic, f"{ENV_OUTPUTS}.{name}.topic_arn")
            if (topic_account, topic_region) != (account, region):
                warnings.append(
                    f"{ENV_OUTPUTS}.{name}: topic {topic} is not a topic of this stack and is in "
                    f"account {topic_account}, region {topic_region} (left as it is)"
                )
        if len(changes) > moved:  # rewrite the value only when a topic moved
            environment[ENV_OUTPUTS] = json.dumps(routes)
    else:
        defaults = {
            name: {"topic_arn": outputs[key], **route}
            for name, (key, route) in DEFAULT_ROUTES.items()
        }
        set_variable(ENV_OUTPUTS, json.dumps(defaults))
    merged = {**(updated.get("environment_variables") or {}), **environment}
    note = settings_from_env(merged).account_note(account)  # also validates the stage settings
    if note:
        warnings.append(f"{note} (it is this stack's own account)")
    return ConfigUpdate(updated, tuple(changes), tuple(warnings))


# --- reading templates -----------------------------------------------------------------------


def load_cfn_yaml(text: str, source: str = "<template>") -> dict[str, Any]:
    """Parse a CloudFormation YAML template, turning short-form tags into their JSON form.

    ``!Ref X`` -> ``{"Ref": "X"}``, ``!GetAtt A.B`` -> ``{"Fn::GetAtt": ["A", "B"]}``,
    ``!Sub ...`` -> ``{"Fn::Sub": ...}`` and so on for every ``!Fn`` tag.
    """
    import yaml  # a development dependency: deploy templates are built on a workstation or CI

    class CfnLoader(yaml.SafeLoader):
        pass

    def construct_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
        value: Any
        if isinstance(node, yaml.ScalarNode):
            value = loader.construct_scalar(node)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
        if suffix == "Ref":
            return {"Ref": value}
        if suffix == "GetAtt" and isinstance(value, str):
            logical, _, attribute = value.partition(".")
            return {"Fn::GetAtt": [logical, attribute]}
        return {f"Fn::{suffix}": value}

    CfnLoader.add_multi_constructor("!", construct_tag)
    try:
        document = yaml.load(text, Loader=CfnLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("Resources"), dict):
        raise ConfigError(f"{source}: not a CloudFormation template (no Resources mapping)")
    return document


def load_resources_template(path: Path = RESOURCES_TEMPLATE) -> dict[str, Any]:
    """A CloudFormation YAML template file (deploy/resources.yaml by default) in JSON form."""
    return load_cfn_yaml(path.read_text(encoding="utf-8"), str(path))
