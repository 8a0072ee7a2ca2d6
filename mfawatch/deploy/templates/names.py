"""The names of a stage's resources and functions, and the logical ids Chalice and SAM give them.

Every name the deployed stage has is built here: the fixed ``mfawatch-<stage>-...`` names of
``deploy/resources.yaml``, the ``<app>-<stage>-<handler>`` names Chalice gives functions and
EventBridge rules (with the stage-name limit they imply), and the CloudFormation logical ids of
the resources the merge template references.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from chalicelib.core.errors import ConfigError

RESOURCE_PREFIX = "mfawatch"
"""Resource names in deploy/resources.yaml are ``mfawatch-<stage>-...`` whatever the app name."""

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


@dataclass(frozen=True)
class StageNames:
    """The fixed names of a stage's resources and functions."""

    app_name: str
    stage: str

    @property
    def table(self) -> str:
        return self._named("state")

    @property
    def alerts_topic(self) -> str:
        return self._named("alerts")

    @property
    def pager_topic(self) -> str:
        return self._named("pager")

    @property
    def canary_topic(self) -> str:
        """The heartbeat's canary topic: the stage key, no subscribers."""
        return self._named("canary")

    @property
    def failed_events_queue(self) -> str:
        return self._named("failed-events")

    @property
    def dead_letter_queue(self) -> str:
        return self._named("dead-letters")

    def alarm(self, what: str) -> str:
        """An alarm's name; the key policy lets CloudWatch publish for ``mfawatch-<stage>-*``."""
        return self._named(what)

    def event_rule(self, handler: str) -> str:
        """The EventBridge rule ``chalice deploy`` creates for a handler (route (a))."""
        return f"{self.app_name}-{self.stage}-{handler}{EVENT_RULE_SUFFIX}"

    @property
    def key_alias(self) -> str:
        return f"alias/{RESOURCE_PREFIX}-{self.stage}"

    @property
    def resources_stack(self) -> str:
        """The stack ``make deploy-resources`` creates from deploy/resources.yaml."""
        return self._named("resources")

    def export(self, output: str) -> str:
        """The export name of a deploy/resources.yaml output (``mfawatch-<stage>-<Output>``)."""
        return self._named(output)

    def _named(self, what: str) -> str:
        return f"{RESOURCE_PREFIX}-{self.stage}-{what}"

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
