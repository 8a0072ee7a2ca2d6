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

One module per thing built, each importing only the ones above it:

- :mod:`.names`: resource and function names, the stage-name limit, logical ids;
- :mod:`.stage_config`: a stage of ``.chalice/config.json`` (the one reader of that file);
- :mod:`.functions`: invocation settings and the consumer's event source, per function;
- :mod:`.alarms`: the alarms on functions and rules;
- :mod:`.iam`: the functions' IAM statements (policy file and role policies);
- :mod:`.references`: environment variables rewritten to reference created resources;
- :mod:`.invoke_config`: route (a)'s invoke-config stack;
- :mod:`.merge`: route (b)'s merge template;
- :mod:`.outputs`: route (a)'s stage config from the resources stack's outputs;
- :mod:`.cfn_yaml`: CloudFormation YAML (``deploy/resources.yaml``) in JSON form.

This package re-exports their public names, so callers import from ``mfawatch.deploy.templates``.
"""

from __future__ import annotations

from mfawatch.deploy.templates.alarms import (
    ALARM_PERIOD_SECONDS,
    FUNCTION_ERRORS_THRESHOLD,
    function_alarms,
)
from mfawatch.deploy.templates.cfn_yaml import (
    RESOURCES_TEMPLATE,
    load_cfn_yaml,
    load_resources_template,
)
from mfawatch.deploy.templates.functions import (
    MAX_EVENT_AGE_SECONDS,
    MAX_RETRY_ATTEMPTS,
    PARKED_BATCH_SIZE,
    PARKED_EVENT_SOURCE,
    PARKED_HANDLER,
    QUALIFIER,
    checked_handlers,
    event_invoke_config,
    parked_event_source,
    parked_event_source_settings,
    parked_sam_event,
    select_rule_handlers,
)
from mfawatch.deploy.templates.iam import (
    CONSUME_ACTIONS,
    INDEX_SUFFIXES,
    KEY_ACTIONS,
    LOG_ACTIONS,
    PUBLISH_ALERTS_SID,
    PUBLISH_CANARY_SID,
    TABLE_ACTIONS,
    role_policy_document,
    stage_policy_statements,
)
from mfawatch.deploy.templates.invoke_config import invoke_config_template
from mfawatch.deploy.templates.merge import STAGE_PARAMETER, bind_parameter, merge_template
from mfawatch.deploy.templates.names import (
    ALERTS_TOPIC,
    CANARY_TOPIC,
    EVENT_RULE_NAME_MAX,
    EVENT_RULE_SUFFIX,
    FAILED_EVENTS_QUEUE,
    FINAL_DEAD_LETTER_QUEUE,
    KEY,
    KEY_ALIAS,
    LAMBDA_FUNCTION_NAME_MAX,
    PAGER_TOPIC,
    RESOURCE_PREFIX,
    STAGE_NAME_PATTERN,
    STATE_TABLE,
    StageNames,
    cfn_logical_id,
    check_stage_name,
    function_logical_id,
    invoke_config_logical_id,
    role_logical_id,
    sam_rule_logical_id,
    stage_name_limit,
)
from mfawatch.deploy.templates.outputs import (
    DEFAULT_ROUTES,
    OUTPUT_ALERTS_TOPIC,
    OUTPUT_CANARY_TOPIC,
    OUTPUT_PAGER_TOPIC,
    OUTPUT_TABLE_NAME,
    STACK_OUTPUTS_ELSEWHERE,
    STACK_OUTPUTS_IN_CONFIG,
    ConfigChange,
    ConfigUpdate,
    StackOutputs,
    arn_parts,
    stage_config_update,
)
from mfawatch.deploy.templates.references import (
    environment_overrides,
    reference_created_resources,
)
from mfawatch.deploy.templates.stage_config import (
    SUBSCRIPTIONS_KEY,
    StageConfig,
    config_text,
    load_stage_config,
    read_config_document,
)

__all__ = [
    "ALARM_PERIOD_SECONDS",
    "ALERTS_TOPIC",
    "CANARY_TOPIC",
    "CONSUME_ACTIONS",
    "DEFAULT_ROUTES",
    "EVENT_RULE_NAME_MAX",
    "EVENT_RULE_SUFFIX",
    "FAILED_EVENTS_QUEUE",
    "FINAL_DEAD_LETTER_QUEUE",
    "FUNCTION_ERRORS_THRESHOLD",
    "INDEX_SUFFIXES",
    "KEY",
    "KEY_ACTIONS",
    "KEY_ALIAS",
    "LAMBDA_FUNCTION_NAME_MAX",
    "LOG_ACTIONS",
    "MAX_EVENT_AGE_SECONDS",
    "MAX_RETRY_ATTEMPTS",
    "OUTPUT_ALERTS_TOPIC",
    "OUTPUT_CANARY_TOPIC",
    "OUTPUT_PAGER_TOPIC",
    "OUTPUT_TABLE_NAME",
    "PAGER_TOPIC",
    "PARKED_BATCH_SIZE",
    "PARKED_EVENT_SOURCE",
    "PARKED_HANDLER",
    "PUBLISH_ALERTS_SID",
    "PUBLISH_CANARY_SID",
    "QUALIFIER",
    "RESOURCES_TEMPLATE",
    "RESOURCE_PREFIX",
    "STACK_OUTPUTS_ELSEWHERE",
    "STACK_OUTPUTS_IN_CONFIG",
    "STAGE_NAME_PATTERN",
    "STAGE_PARAMETER",
    "STATE_TABLE",
    "SUBSCRIPTIONS_KEY",
    "TABLE_ACTIONS",
    "ConfigChange",
    "ConfigUpdate",
    "StackOutputs",
    "StageConfig",
    "StageNames",
    "arn_parts",
    "bind_parameter",
    "cfn_logical_id",
    "check_stage_name",
    "checked_handlers",
    "config_text",
    "environment_overrides",
    "event_invoke_config",
    "function_alarms",
    "function_logical_id",
    "invoke_config_logical_id",
    "invoke_config_template",
    "load_cfn_yaml",
    "load_resources_template",
    "load_stage_config",
    "merge_template",
    "parked_event_source",
    "parked_event_source_settings",
    "parked_sam_event",
    "read_config_document",
    "reference_created_resources",
    "role_logical_id",
    "role_policy_document",
    "sam_rule_logical_id",
    "select_rule_handlers",
    "stage_config_update",
    "stage_name_limit",
    "stage_policy_statements",
]
