"""Route (b): the template ``chalice package --merge-template`` merges into Chalice's SAM
template, for one stack with the resources, the functions and their settings."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from chalicelib.core.constants import PIPELINE_HEARTBEAT_HANDLER
from chalicelib.core.errors import ConfigError
from chalicelib.core.rules import Rule, load_bundle
from mfawatch.deploy.templates.alarms import AlarmTargets, function_alarms
from mfawatch.deploy.templates.functions import (
    PARKED_EVENT_SOURCE,
    PARKED_HANDLER,
    checked_handlers,
    event_invoke_config,
    parked_sam_event,
    select_rule_handlers,
)
from mfawatch.deploy.templates.iam import role_policy_document
from mfawatch.deploy.templates.names import (
    FAILED_EVENTS_QUEUE,
    PAGER_TOPIC,
    function_logical_id,
    invoke_config_logical_id,
    role_logical_id,
    sam_rule_logical_id,
)
from mfawatch.deploy.templates.references import environment_overrides
from mfawatch.deploy.templates.stage_config import StageConfig

STAGE_PARAMETER = "Stage"


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
    sorted_handlers = checked_handlers(handlers)
    states = {
        rule.handler_name: rule.eventbridge_state
        for rule in (load_bundle() if rules is None else rules)
        if rule.read_only_events
    }
    resources, outputs = _stage_bound(resources_template, names.stage)
    roles: dict[str, list[str]] = {}
    consumers: set[str] = set()
    canaries: set[str] = set()
    for handler in sorted_handlers:
        role = role_logical_id(handler, stage_config.autogen_policy(handler))
        resources.update(_function_resources(stage_config, handler, states.get(handler)))
        roles.setdefault(role, []).append(names.function(handler))
        if handler == PIPELINE_HEARTBEAT_HANDLER:
            canaries.add(role)
        if handler == PARKED_HANDLER:
            consumers.add(role)
    rule_handlers = select_rule_handlers(sorted_handlers, None)
    resources.update(function_alarms(names, sorted_handlers, rule_handlers, SAM_ALARM_TARGETS))
    for role, function_names in sorted(roles.items()):
        policy = {
            "PolicyName": f"{role}Policy",
            "PolicyDocument": role_policy_document(
                function_names, consume=role in consumers, canary=role in canaries
            ),
        }
        resources[role] = {"Properties": {"Policies": [policy]}}
    for handler in sorted_handlers:
        outputs[f"{function_logical_id(handler)}Name"] = {
            "Value": {"Ref": function_logical_id(handler)}
        }
    return {"Resources": resources, "Outputs": outputs}


# SAM names the rule of a function's CloudWatchEvent/Schedule event <function><event>
# (AWS SAM Developer Guide, sam-specification-generated-resources-function); Chalice names
# the event <Handler>Event. Ref of an AWS::Events::Rule is its name.
SAM_ALARM_TARGETS = AlarmTargets(
    function=lambda handler: {"Ref": function_logical_id(handler)},
    rule=lambda handler: {"Ref": sam_rule_logical_id(handler)},
    pager_topic={"Ref": PAGER_TOPIC},
)


def _stage_bound(
    resources_template: Mapping[str, Any], stage: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The resources and outputs of ``deploy/resources.yaml`` with its one parameter bound."""
    parameters = resources_template.get("Parameters") or {}
    unknown = sorted(set(parameters) - {STAGE_PARAMETER})
    if unknown:
        raise ConfigError(f"resources template has parameters the merge cannot bind: {unknown}")
    base = bind_parameter(resources_template.get("Resources") or {}, STAGE_PARAMETER, stage)
    outputs = {
        key: {"Value": bind_parameter(output["Value"], STAGE_PARAMETER, stage)}
        for key, output in (resources_template.get("Outputs") or {}).items()
    }
    return dict(base), outputs


def _function_resources(
    stage_config: StageConfig, handler: str, rule_state: str | None
) -> dict[str, Any]:
    """What a handler's SAM function gains (its name, environment references, its rule's
    ``State`` when ``rule_state`` is given, the consumer's SQS event), after its
    EventInvokeConfig (every function but the consumer)."""
    if not stage_config.manage_iam_role(handler):
        raise ConfigError(
            f"{handler}: manage_iam_role is false, so the package has no role whose policy "
            "route (b) can replace; use route (a) or let Chalice manage the role"
        )
    names = stage_config.names
    logical = function_logical_id(handler)
    queue = {"Fn::GetAtt": [FAILED_EVENTS_QUEUE, "Arn"]}
    properties: dict[str, Any] = {"FunctionName": names.function(handler)}
    overrides = environment_overrides(stage_config.environment(handler), names)
    if overrides:
        properties["Environment"] = {"Variables": overrides}
    if rule_state is not None:
        properties["Events"] = {f"{logical}Event": {"Properties": {"State": rule_state}}}
    resources: dict[str, Any] = {}
    if handler == PARKED_HANDLER:
        properties["Events"] = {
            PARKED_EVENT_SOURCE: parked_sam_event(queue, stage_config.consumer_concurrency())
        }
    else:
        resources[invoke_config_logical_id(handler)] = event_invoke_config({"Ref": logical}, queue)
    resources[logical] = {"Properties": properties}
    return resources
