"""Route (a), step 2: the stage config from the resources stack's outputs."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chalicelib.core.config import (
    ENV_CANARY_TOPIC_ARN,
    ENV_OUTPUTS,
    ENV_TABLE_NAME,
    ENV_TOPIC_ARN,
    parse_outputs,
    settings_from_env,
)
from chalicelib.core.errors import ConfigError
from mfawatch.deploy.templates.names import StageNames

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


@dataclass(frozen=True)
class StackOutputs:
    """A resources stack's outputs as the caller read them, with the account and Region of the
    caller's credentials (the stage deploys there)."""

    stack: str
    outputs: Mapping[str, str]
    account: str
    region: str

    def check(self, names: StageNames) -> None:
        """:class:`ConfigError` unless these are the outputs of ``names``' resources stack, in
        the caller's account and Region."""
        stack, outputs = self.stack, self.outputs
        if not outputs:
            raise ConfigError(
                f"stack {stack} has no outputs at all: was it created from deploy/resources.yaml "
                "(its template lists the outputs)? `mfawatch deploy` creates it. On moto_server, "
                "plain moto leaves out the outputs of a change set: start "
                "tests/atomic_moto_server.py (docs/deploy.md, 'Try it on moto_server')"
            )
        missing = [key for key in STACK_OUTPUTS_IN_CONFIG if not outputs.get(key)]
        if missing:
            raise ConfigError(
                f"stack {stack} has no output {', '.join(missing)}: not a deploy/resources.yaml "
                "stack"
            )
        for key, value in sorted(outputs.items()):
            if value.startswith("arn:"):
                self._check_where(value, f"stack {stack} output {key}")
        expected = {
            OUTPUT_TABLE_NAME: names.table,
            OUTPUT_ALERTS_TOPIC: names.alerts_topic,
            OUTPUT_PAGER_TOPIC: names.pager_topic,
            OUTPUT_CANARY_TOPIC: names.canary_topic,
        }
        for key, name in expected.items():
            if outputs[key].rsplit(":", 1)[-1] != name:
                raise ConfigError(
                    f"stack {stack} output {key} is {outputs[key]}, not stage {names.stage}'s "
                    f"{name}: is it another stage's resources stack?"
                )

    def _check_where(self, arn: str, what: str) -> None:
        _, arn_region, arn_account = arn_parts(arn, what)
        if (arn_account, arn_region) != (self.account, self.region):
            raise ConfigError(
                f"{what} {arn} is in account {arn_account}, region {arn_region}, but the caller "
                f"is account {self.account} in {self.region}: use the credentials and region of "
                "the account the stage deploys to"
            )


@dataclass
class _EnvironmentEdit:
    """A stage's ``environment_variables`` being updated, with the changes and warnings so far."""

    environment: dict[str, Any]
    where: str
    changes: list[ConfigChange]
    warnings: list[str]

    def set(self, variable: str, value: str) -> None:
        old = str(self.environment.get(variable, ""))
        if old != value:
            self.environment[variable] = value
            self.changes.append(ConfigChange(f"{self.where}.{variable}", old, value))


def stage_config_update(config: Mapping[str, Any], stage: str, stack: StackOutputs) -> ConfigUpdate:
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
    stack.check(names)
    updated = json.loads(json.dumps(config))  # a deep copy that keeps the key order
    stages = updated.setdefault("stages", {})
    changes: list[ConfigChange] = []
    if not isinstance(stages.get(stage), dict):
        stages[stage] = {"iam_policy_file": f"policy-{stage}.json"}
        changes.append(ConfigChange(f"stages.{stage}", "", f"new stage ({stages[stage]})"))
    edit = _EnvironmentEdit(
        stages[stage].setdefault("environment_variables", {}),
        f"stages.{stage}.environment_variables",
        changes,
        [],
    )
    edit.set(ENV_TOPIC_ARN, stack.outputs[OUTPUT_ALERTS_TOPIC])
    edit.set(ENV_TABLE_NAME, stack.outputs[OUTPUT_TABLE_NAME])
    edit.set(ENV_CANARY_TOPIC_ARN, stack.outputs[OUTPUT_CANARY_TOPIC])
    _set_routes(edit, stack, names)
    merged = {**(updated.get("environment_variables") or {}), **edit.environment}
    note = settings_from_env(merged).account_note(stack.account)  # also validates the settings
    if note:
        edit.warnings.append(f"{note} (it is this stack's own account)")
    return ConfigUpdate(updated, tuple(edit.changes), tuple(edit.warnings))


def _set_routes(edit: _EnvironmentEdit, stack: StackOutputs, names: StageNames) -> None:
    """``MFAWATCH_OUTPUTS``: each output to the stage's alerts or pager topic moved to the
    stack's (:data:`DEFAULT_ROUTES` when it is not set); a warning for a foreign topic."""
    raw = str(edit.environment.get(ENV_OUTPUTS, "")).strip()
    if not raw:
        defaults = {
            name: {"topic_arn": stack.outputs[key], **route}
            for name, (key, route) in DEFAULT_ROUTES.items()
        }
        edit.set(ENV_OUTPUTS, json.dumps(defaults))
        return
    parse_outputs(raw)  # a clear error naming the output and field when it is malformed
    routes = json.loads(raw)
    topics = {
        names.alerts_topic: stack.outputs[OUTPUT_ALERTS_TOPIC],
        names.pager_topic: stack.outputs[OUTPUT_PAGER_TOPIC],
    }
    moved = len(edit.changes)
    for name, spec in routes.items():
        topic = str(spec["topic_arn"])
        field = f"{ENV_OUTPUTS}.{name}.topic_arn"
        new_topic = topics.get(topic.rsplit(":", 1)[-1], topic)
        if new_topic != topic:
            spec["topic_arn"] = new_topic
            edit.changes.append(ConfigChange(f"{edit.where}.{field}", topic, new_topic))
            continue
        if topic in topics.values():
            continue
        _, topic_region, topic_account = arn_parts(topic, field)
        if (topic_account, topic_region) != (stack.account, stack.region):
            edit.warnings.append(
                f"{ENV_OUTPUTS}.{name}: topic {topic} is not a topic of this stack and is in "
                f"account {topic_account}, region {topic_region} (left as it is)"
            )
    if len(edit.changes) > moved:  # rewrite the value only when a topic moved
        edit.environment[ENV_OUTPUTS] = json.dumps(routes)
