"""Least-privilege IAM policy for a stage (deploy route (a): ``.chalice/policy-<stage>.json``).

``autogen_policy`` is off: Chalice would otherwise guess a policy from the code. The statements
come from :func:`deploy.stage_policy_statements`, the same ones the one-stack route (b) puts in
its merge template with CloudFormation references: logs on the stage's own log groups,
``sns:Publish`` on the stage's outputs and on its canary topic,
``dynamodb:GetItem``/``PutItem``/``UpdateItem``/``Query`` on the stage table and its ``due`` and
``group`` indexes, ``sqs:SendMessage`` on the failed-events queue (Lambda's on-failure
destination uses the function's role) and the stage KMS key (encrypted topics and table).
Partition, region and account come from the stage's topic ARN.

``python -m mfawatch policy --stage S --write`` writes the file; a test fails when a
committed policy differs from this output.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from chalicelib.core.config import ENV_OUTPUTS, ENV_TABLE_NAME, ENV_TOPIC_ARN, parse_outputs
from chalicelib.core.errors import ConfigError
from mfawatch.deploy.templates import (
    PUBLISH_ALERTS_SID,
    StageConfig,
    StageNames,
    arn_parts,
    stage_policy_statements,
)


def stage_policy(stage_config: StageConfig) -> dict[str, Any]:
    """The IAM policy document for a stage of .chalice/config.json (its functions' environment)."""
    app_name, stage = stage_config.app_name, stage_config.stage
    env = stage_config.environment()
    topic_arn = env.get(ENV_TOPIC_ARN, "")
    if not topic_arn:
        raise ConfigError(f"stage {stage!r}: environment_variables.{ENV_TOPIC_ARN} is not set")
    partition, region, account = arn_parts(topic_arn, ENV_TOPIC_ARN)
    names = StageNames(app_name, stage)
    table = env.get(ENV_TABLE_NAME, "")
    if not table:
        raise ConfigError(f"stage {stage!r}: environment_variables.{ENV_TABLE_NAME} is not set")
    if table != names.table or topic_arn.rsplit(":", 1)[1] != names.alerts_topic:
        raise ConfigError(
            f"stage {stage!r}: use the resources stack's names ({ENV_TABLE_NAME}={names.table}, "
            f"topic {names.alerts_topic}); got {table} and {topic_arn}"
        )
    statements = stage_policy_statements(partition, region, account, app_name, stage)
    # Publish exactly to the configured outputs (the alerts topic when none are configured).
    topics = (
        sorted({o.topic_arn for o in parse_outputs(env[ENV_OUTPUTS])})
        if env.get(ENV_OUTPUTS, "").strip()
        else [topic_arn]
    )
    for statement in statements:
        if statement["Sid"] == PUBLISH_ALERTS_SID:
            statement["Resource"] = topics
    return {"Version": "2012-10-17", "Statement": statements}


def policy_json(policy: Mapping[str, Any]) -> str:
    """The committed text of a policy file."""
    return json.dumps(policy, indent=2) + "\n"
