"""Least-privilege IAM policy for a stage, derived from the stage's own resources.

``autogen_policy`` is off: Chalice would otherwise guess a policy from the code. We state what
the code calls (``sns:Publish`` on the stage topic) and the logging every Lambda needs, on the
stage's own log groups, and nothing else. ``python -m chalicelib.cli policy --stage S`` writes
``.chalice/policy-S.json``; a test fails when a committed policy differs from this output.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .config import ENV_TOPIC_ARN
from .errors import ConfigError


def _arn_parts(arn: str, what: str) -> tuple[str, str, str]:
    parts = arn.split(":")
    if len(parts) < 6 or parts[0] != "arn" or not parts[3] or not parts[4]:
        raise ConfigError(f"{what} {arn!r} is not a full ARN with region and account")
    return parts[1], parts[3], parts[4]


def stage_policy(app_name: str, stage: str, stage_config: Mapping[str, Any]) -> dict[str, Any]:
    """The IAM policy document for ``stage`` (config: the stage block of .chalice/config.json)."""
    env = stage_config.get("environment_variables") or {}
    topic_arn = env.get(ENV_TOPIC_ARN, "")
    if not topic_arn:
        raise ConfigError(f"stage {stage!r}: environment_variables.{ENV_TOPIC_ARN} is not set")
    partition, region, account = _arn_parts(topic_arn, ENV_TOPIC_ARN)
    log_groups = (
        f"arn:{partition}:logs:{region}:{account}:log-group:/aws/lambda/{app_name}-{stage}-*"
    )
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "WriteOwnLogs",
                "Effect": "Allow",
                "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": [log_groups, f"{log_groups}:log-stream:*"],
            },
            {
                "Sid": "PublishAlerts",
                "Effect": "Allow",
                "Action": ["sns:Publish"],
                "Resource": [topic_arn],
            },
        ],
    }


def policy_json(policy: Mapping[str, Any]) -> str:
    """The committed text of a policy file."""
    return json.dumps(policy, indent=2) + "\n"
