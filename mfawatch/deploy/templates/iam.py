"""The IAM statements of a stage's functions: literal ARNs for the policy file of route (a),
CloudFormation references for the role policies of the merge template (route (b))."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from chalicelib.aws.dynamo import DUE_INDEX, GROUP_INDEX
from mfawatch.deploy.templates.names import (
    ALERTS_TOPIC,
    CANARY_TOPIC,
    FAILED_EVENTS_QUEUE,
    KEY,
    PAGER_TOPIC,
    STATE_TABLE,
    StageNames,
)

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

PUBLISH_ALERTS_SID = "PublishAlerts"
PUBLISH_CANARY_SID = "PublishCanary"


def _key_statement(key: Any, key_condition: Mapping[str, Any] | None) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Sid": "UseStageKey",
        "Effect": "Allow",
        "Action": list(KEY_ACTIONS),
        "Resource": [key],
    }
    if key_condition:
        statement["Condition"] = dict(key_condition)
    return statement


def _consume_statement(queue: Any) -> dict[str, Any]:
    # The consumer's SQS event source polls and deletes with the function's role.
    return {
        "Sid": "ConsumeParkedEvents",
        "Effect": "Allow",
        "Action": list(CONSUME_ACTIONS),
        "Resource": [queue],
    }


def _canary_statement(canary: Any) -> dict[str, Any]:
    # The heartbeat's canary (chalicelib/pipeline/heartbeats.py): this topic only.
    return {
        "Sid": PUBLISH_CANARY_SID,
        "Effect": "Allow",
        "Action": ["sns:Publish"],
        "Resource": [canary],
    }


def _statements(
    *,
    log_groups: Sequence[Any],
    topics: Sequence[Any],
    table: Sequence[Any],
    queue: Any,
    key: Any,
    key_condition: Mapping[str, Any] | None = None,
    consume: bool = True,
    canary: Any = None,
) -> list[dict[str, Any]]:
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
        *([_canary_statement(canary)] if canary is not None else []),
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
        *([_consume_statement(queue)] if consume else []),
        _key_statement(key, key_condition),
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


def role_policy_document(
    function_names: Sequence[str], *, consume: bool, canary: bool
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
