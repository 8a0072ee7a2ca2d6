"""Organization forwarding, planned in pure code: the member-account CloudFormation template.

A rule on an EventBridge bus sees only the events of its own account and Region, so a member
account forwards sign-in events to the central bus with rules of its own. This module builds the
CloudFormation template that a *service-managed* StackSet deploys to every member account and
Region, and the ``chalice package --merge-template`` fragment that moves the central rules onto a
custom bus. It imports no boto3, botocore or chalice (a test enforces it): the CLI serializes what
it returns, the audit (:mod:`mfawatch.org.audit`) checks deployed rules against the same plan.

What the member template holds, per stack instance (one per account x Region):

* one ``AWS::Events::Rule`` per deployed rule, on the default bus, whose ``EventPattern`` is the
  rule's ``event_pattern`` from the bundle, unchanged (a test keeps them equal), so only matching
  events leave the account and cross-account cost follows sign-ins, not API volume ("Events sent
  from one account to another are charged to the sending account as custom events",
  https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-cross-account.html);
* its target: the central bus ARN, with ``RoleArn`` (required for cross-account bus targets when
  the receiver grants access to an Organization, see AWS::Events::EventBusPolicy:
  https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-events-eventbuspolicy.html
  "accounts in that organization must specify a RoleArn with proper permissions when they use
  PutTarget"); cross-Region bus targets are supported too
  (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-cross-region.html). The member
  rule must be the only hop: events a bus received from another account are not sent on to a
  third one (same eb-cross-account page);
* an ``AWS::IAM::Role`` that EventBridge assumes, allowed ``events:PutEvents`` on exactly the
  central bus ARN. IAM is global but a StackSet deploys one stack per Region, so the role name
  carries the Region (``mfawatch-forwarder-<region>``): each Region's stack owns its own role and
  no stack depends on another Region having deployed first;
* a read-only role for ``python -m mfawatch audit``, created once per account (in the
  "home" Region's stack, us-east-1 by default), trusted by the central account only.

Regions: the template carries a ``Conditions`` block when regions are given, so the same template,
deployed by a StackSet to more Regions than intended, creates forwarding rules only in the listed
ones. Rules whose pattern selects only global-service sources (``aws.iam``: IAM API calls such as
``DeactivateMFADevice`` are delivered to EventBridge in us-east-1 only) are created only in
us-east-1.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from chalicelib.core.constants import HEARTBEAT_RULE_NAME, HEARTBEAT_SCHEDULE, RULE_STATE_ENABLED
from chalicelib.core.rules import Rule
from mfawatch.deploy.templates import cfn_logical_id, function_logical_id
from mfawatch.errors import ForwarderConfigError

__all__ = [
    "AUDIT_ROLE_NAME",
    "GLOBAL_SERVICE_REGION",
    "CentralBus",
    "custom_bus_merge_template",
    "expected_rules",
    "forwarder_role_name",
    "forwarding_rule_name",
    "is_global_service_rule",
    "member_template",
    "parse_central_bus_arn",
    "parse_regions",
]

#: IAM (a global service) delivers its CloudTrail events to EventBridge in us-east-1 only.
GLOBAL_SERVICE_REGION: Final = "us-east-1"
GLOBAL_SERVICE_SOURCES: Final = frozenset({"aws.iam"})

RULE_NAME_PREFIX: Final = "mfawatch-"
FORWARDER_ROLE_PREFIX: Final = "mfawatch-forwarder-"
AUDIT_ROLE_NAME: Final = "mfawatch-audit"
TARGET_ID: Final = "mfawatch-central-bus"
ROLE_PATH: Final = "/mfawatch/"
DEFAULT_BUS: Final = "default"

# EventBridge limits: rule names 1-64 of [.\-_A-Za-z0-9]; bus names 1-256 of [/\.\-_A-Za-z0-9].
_RULE_NAME_MAX: Final = 64
_PARTITIONS: Final = ("aws", "aws-cn", "aws-us-gov")
_REGION_RE: Final = re.compile(r"^[a-z]{2}(?:-gov|-iso[a-z]?)?-[a-z]+-\d{1,2}$")
_BUS_ARN_RE: Final = re.compile(
    r"^arn:(?P<partition>[a-z-]+):events:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):"
    r"event-bus/(?P<name>[/.\-_A-Za-z0-9]{1,256})$"
)
# Fn::Or and Fn::And take between 2 and 10 conditions.
_MAX_CONDITIONS: Final = 10


@dataclass(frozen=True)
class CentralBus:
    """The central event bus, parsed from its ARN."""

    arn: str
    partition: str
    region: str
    account_id: str
    name: str

    @property
    def is_default_bus(self) -> bool:
        return self.name == DEFAULT_BUS


def parse_central_bus_arn(text: str, option: str = "--central-bus-arn") -> CentralBus:
    """Parse and validate an event bus ARN (``arn:aws:events:REGION:ACCOUNT:event-bus/NAME``)."""
    value = text.strip()
    match = _BUS_ARN_RE.match(value)
    if not match:
        raise ForwarderConfigError(
            f"{option}: {text!r} is not an EventBridge event bus ARN; expected "
            "arn:aws:events:<region>:<12-digit account>:event-bus/<name>, "
            "e.g. arn:aws:events:us-east-1:111122223333:event-bus/default"
        )
    partition = match["partition"]
    if partition not in _PARTITIONS:
        raise ForwarderConfigError(
            f"{option}: unknown partition {partition!r} in {text!r}; "
            f"expected one of {', '.join(_PARTITIONS)}"
        )
    region = match["region"]
    if not _REGION_RE.match(region):
        raise ForwarderConfigError(f"{option}: {region!r} in {text!r} is not a Region name")
    return CentralBus(
        arn=value,
        partition=partition,
        region=region,
        account_id=match["account"],
        name=match["name"],
    )


def parse_regions(values: Iterable[str], option: str = "--regions") -> tuple[str, ...]:
    """Regions from repeated and/or comma-separated values, validated, first occurrence kept."""
    regions: list[str] = []
    for value in values:
        for part in value.split(","):
            region = part.strip()
            if not region:
                continue
            if not _REGION_RE.match(region):
                raise ForwarderConfigError(
                    f"{option}: {region!r} is not a Region name (e.g. us-east-1, eu-north-1)"
                )
            if region not in regions:
                regions.append(region)
    return tuple(regions)


def forwarding_rule_name(rule: Rule) -> str:
    """The member account's forwarding rule name for ``rule`` (what the audit looks for)."""
    name = RULE_NAME_PREFIX + rule.id
    if len(name) > _RULE_NAME_MAX:
        raise ForwarderConfigError(
            f"rule {rule.id}: forwarding rule name {name!r} exceeds {_RULE_NAME_MAX} characters"
        )
    return name


def forwarder_role_name(region: str) -> str:
    """The role EventBridge assumes in ``region`` (IAM names are account-wide, hence the suffix)."""
    return FORWARDER_ROLE_PREFIX + region


def _sources(rule: Rule) -> list[str]:
    source = rule.event_pattern.get("source")
    if isinstance(source, list) and all(isinstance(s, str) for s in source):
        return list(source)
    return []


def is_global_service_rule(rule: Rule) -> bool:
    """True when the rule selects only global-service events (IAM API calls: us-east-1 only)."""
    sources = _sources(rule)
    return bool(sources) and all(s in GLOBAL_SERVICE_SOURCES for s in sources)


def expected_rules(
    rules: Sequence[Rule],
    region: str,
    account_id: str | None = None,
    central: CentralBus | None = None,
) -> list[Rule]:
    """The forwarding rules a member stack has in ``region`` (the audit's expectation).

    Global-service rules exist in us-east-1 only. No forwarding rule exists where the central bus
    *is* the default bus (central account, central Region): the central rules see those events
    directly, and a rule may not forward its own bus's events back to it.
    """
    if (
        central is not None
        and central.is_default_bus
        and account_id == central.account_id
        and region == central.region
    ):
        return []
    return [
        rule
        for rule in rules
        if not is_global_service_rule(rule) or region == GLOBAL_SERVICE_REGION
    ]


# ---------------------------------------------------------------------------------------------
# The member template
# ---------------------------------------------------------------------------------------------


def _equals_region(region: str) -> dict[str, Any]:
    return {"Fn::Equals": [{"Ref": "AWS::Region"}, region]}


def _combine(operator: str, items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """``Fn::Or``/``Fn::And`` of any number of conditions (nested in groups of at most 10)."""
    if len(items) == 1:
        return dict(items[0])
    if len(items) <= _MAX_CONDITIONS:
        return {operator: list(items)}
    groups = [
        _combine(operator, items[i : i + _MAX_CONDITIONS])
        for i in range(0, len(items), _MAX_CONDITIONS)
    ]
    return _combine(operator, groups)


def _condition_refs(names: Sequence[str]) -> dict[str, Any] | None:
    if not names:
        return None
    return _combine("Fn::And", [{"Condition": name} for name in names])


def _forwarder_role(central: CentralBus) -> dict[str, Any]:
    return {
        "Type": "AWS::IAM::Role",
        "Properties": {
            "RoleName": {"Fn::Sub": FORWARDER_ROLE_PREFIX + "${AWS::Region}"},
            "Path": ROLE_PATH,
            "Description": "EventBridge puts mfawatch sign-in events on the central bus",
            "AssumeRolePolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "events.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                        # Confused-deputy guard: only this account's rules may use the role.
                        "Condition": {
                            "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
                        },
                    }
                ],
            },
            "Policies": [
                {
                    "PolicyName": "put-events-on-central-bus",
                    "PolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Action": "events:PutEvents",
                                "Resource": central.arn,
                            }
                        ],
                    },
                }
            ],
        },
    }


def _audit_role(central: CentralBus, role_name: str) -> dict[str, Any]:
    return {
        "Type": "AWS::IAM::Role",
        "Properties": {
            "RoleName": role_name,
            "Path": "/",
            "Description": "Read-only: mfawatch audit lists the forwarding rules",
            "AssumeRolePolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {
                            "AWS": {
                                "Fn::Sub": f"arn:${{AWS::Partition}}:iam::{central.account_id}:root"
                            }
                        },
                        "Action": "sts:AssumeRole",
                    }
                ],
            },
            "Policies": [
                {
                    "PolicyName": "list-mfawatch-forwarding-rules",
                    "PolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                # ListRules supports no resource-level restriction.
                                "Effect": "Allow",
                                "Action": "events:ListRules",
                                "Resource": "*",
                            },
                            {
                                "Effect": "Allow",
                                "Action": "events:ListTargetsByRule",
                                "Resource": {
                                    "Fn::Sub": "arn:${AWS::Partition}:events:*:${AWS::AccountId}:"
                                    f"rule/{RULE_NAME_PREFIX}*"
                                },
                            },
                        ],
                    },
                }
            ],
        },
    }


def _forwarding_rule(rule: Rule, central: CentralBus, condition: str | None) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "Type": "AWS::Events::Rule",
        "Properties": {
            "Name": forwarding_rule_name(rule),
            "Description": f"mfawatch: forward {rule.id} events to the central bus",
            "EventBusName": DEFAULT_BUS,
            # ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS for a rule of read-only events
            # (`aws login`): a rule that is only ENABLED never receives them.
            "State": rule.eventbridge_state,
            # The deployed pattern, unchanged: a copy so the template never aliases the bundle.
            "EventPattern": _deep_copy(rule.event_pattern),
            "Targets": [
                {
                    "Id": TARGET_ID,
                    "Arn": central.arn,
                    "RoleArn": {"Fn::GetAtt": ["ForwarderRole", "Arn"]},
                }
            ],
        },
    }
    return _with_condition(resource, condition)


def _heartbeat_rule(central: CentralBus) -> dict[str, Any]:
    """A scheduled rule whose events travel the forwarding path to the central bus, so the
    central app can tell, per account and Region, that forwarding works end to end."""
    return {
        "Type": "AWS::Events::Rule",
        "Properties": {
            "Name": HEARTBEAT_RULE_NAME,
            "Description": "mfawatch: heartbeat to the central bus (proves forwarding works)",
            "ScheduleExpression": HEARTBEAT_SCHEDULE,
            "State": RULE_STATE_ENABLED,
            "Targets": [
                {
                    "Id": TARGET_ID,
                    "Arn": central.arn,
                    "RoleArn": {"Fn::GetAtt": ["ForwarderRole", "Arn"]},
                }
            ],
        },
    }


def _with_condition(resource: Mapping[str, Any], condition: str | None) -> dict[str, Any]:
    """The resource with ``Condition`` after ``Type`` (read top-down: what, when, how)."""
    if not condition:
        return dict(resource)
    return {"Type": resource["Type"], "Condition": condition, **dict(resource)}


def _deep_copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_deep_copy(v) for v in value]
    return value


@dataclass(frozen=True)
class MemberTemplate:
    """The template and what the caller should tell the user about it."""

    template: dict[str, Any]
    warnings: tuple[str, ...]


def member_template(
    rules: Sequence[Rule],
    central: CentralBus,
    regions: Sequence[str] = (),
    home_region: str = GLOBAL_SERVICE_REGION,
    audit_role_name: str | None = AUDIT_ROLE_NAME,
) -> MemberTemplate:
    """The CloudFormation template a service-managed StackSet deploys to member accounts.

    ``regions`` empty: forwarding rules in every Region the StackSet deploys to. Otherwise a
    condition restricts them to the listed Regions. ``home_region`` is the Region whose stack
    creates the account-wide audit role (``None`` as ``audit_role_name`` omits the role).
    """
    if not rules:
        raise ForwarderConfigError("no rules to forward: the rules bundle is empty")
    regions = tuple(regions)
    if regions and home_region not in regions and audit_role_name:
        raise ForwarderConfigError(
            f"--home-region: {home_region} must be one of --regions ({', '.join(regions)}): "
            "its stack creates the account-wide audit role"
        )
    global_rules = [rule for rule in rules if is_global_service_rule(rule)]
    conditions, forward, forward_global = _conditions(central, regions, bool(global_rules))
    resources: dict[str, Any] = {}
    resources["ForwarderRole"] = _with_condition(_forwarder_role(central), forward)
    for rule in rules:
        condition = forward_global if is_global_service_rule(rule) else forward
        if condition is None and is_global_service_rule(rule):
            continue
        resources["Forward" + cfn_logical_id(rule.id)] = _forwarding_rule(rule, central, condition)
    resources["Heartbeat"] = _with_condition(_heartbeat_rule(central), forward)
    if audit_role_name:
        conditions["IsHomeRegion"] = _equals_region(home_region)
        resources["AuditRole"] = _with_condition(
            _audit_role(central, audit_role_name), "IsHomeRegion"
        )
    if conditions:
        # A stack instance whose conditions are all false would have no resource at all, which
        # CloudFormation rejects; this free, inert resource keeps every instance valid.
        resources["Placeholder"] = {"Type": "AWS::CloudFormation::WaitConditionHandle"}

    template: dict[str, Any] = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": (
            "mfawatch member account: forward matching sign-in and MFA events to the central "
            f"bus {central.arn} (generated by python -m mfawatch forwarder-template)"
        ),
        "Metadata": {
            "mfawatch": {
                "central_bus_arn": central.arn,
                "regions": list(regions) or "every Region the StackSet deploys to",
                "home_region": home_region,
                "rules": [rule.id for rule in rules],
            }
        },
    }
    if conditions:
        template["Conditions"] = conditions
    template["Resources"] = resources
    return MemberTemplate(template=template, warnings=_region_warnings(regions, global_rules))


def _region_warnings(regions: Sequence[str], global_rules: Sequence[Rule]) -> tuple[str, ...]:
    """What a Region list without the Region of IAM's events leaves out."""
    if not regions or GLOBAL_SERVICE_REGION in regions:
        return ()
    if global_rules:
        return (
            f"{GLOBAL_SERVICE_REGION} is not in --regions: rules "
            f"{', '.join(r.id for r in global_rules)} (IAM API calls, delivered in "
            f"{GLOBAL_SERVICE_REGION} only) are left out; root sign-ins are also logged there",
        )
    return (f"{GLOBAL_SERVICE_REGION} is not in --regions: root sign-ins are logged there",)


def _conditions(
    central: CentralBus, regions: Sequence[str], has_global_rules: bool
) -> tuple[dict[str, Any], str | None, str | None]:
    """(the template's conditions, the condition of the forwarding rules, that of the rules on
    IAM's global-service events); a None condition: always (global: never, when no Region
    takes them)."""
    conditions: dict[str, Any] = {}
    base: list[str] = []
    if regions:
        conditions["InForwardedRegion"] = _combine(
            "Fn::Or", [_equals_region(region) for region in regions]
        )
        base.append("InForwardedRegion")
    if central.is_default_bus:
        # In the central account's central Region the default bus *is* the central bus.
        conditions["IsCentralBusLocation"] = {
            "Fn::And": [
                {"Fn::Equals": [{"Ref": "AWS::AccountId"}, central.account_id]},
                _equals_region(central.region),
            ]
        }
        conditions["IsNotCentralBusLocation"] = {"Fn::Not": [{"Condition": "IsCentralBusLocation"}]}
        base.append("IsNotCentralBusLocation")
    forward: str | None = None
    if base:
        conditions["ForwardSignIns"] = _condition_refs(base)
        forward = "ForwardSignIns"
    forward_global: str | None = None
    if has_global_rules and (not regions or GLOBAL_SERVICE_REGION in regions):
        conditions["IsGlobalServiceRegion"] = _equals_region(GLOBAL_SERVICE_REGION)
        conditions["ForwardGlobalServiceEvents"] = _condition_refs([*base, "IsGlobalServiceRegion"])
        forward_global = "ForwardGlobalServiceEvents"
    return conditions, forward, forward_global


# ---------------------------------------------------------------------------------------------
# Route (b): the central rules on a custom bus, through chalice package --merge-template
# ---------------------------------------------------------------------------------------------

BUS_NAME_PARAMETER: Final = "MfawatchEventBusName"
HEARTBEAT_HANDLER: Final = "on_heartbeat"
DEFAULT_CUSTOM_BUS_NAME: Final = "mfawatch-central"


def custom_bus_merge_template(rules: Sequence[Rule]) -> dict[str, Any]:
    """The ``--merge-template`` fragment that puts each Chalice EventBridge rule on a custom bus.

    Chalice emits one ``AWS::Serverless::Function`` per handler with a ``CloudWatchEvent`` event
    named ``<Function>Event``; SAM's ``CloudWatchEvent``/``EventBridgeRule`` events accept
    ``EventBusName``. ``deploy/merge-custom-bus.yaml`` is this document (a test compares them).
    """
    resources: dict[str, Any] = {}
    # Every EventBridge-rule handler of app.py: one per rule, and the heartbeat's.
    states = {rule.handler_name: rule.eventbridge_state for rule in rules}
    for handler in [*(rule.handler_name for rule in rules), HEARTBEAT_HANDLER]:
        function = function_logical_id(handler)
        properties: dict[str, Any] = {"EventBusName": {"Ref": BUS_NAME_PARAMETER}}
        if states.get(handler, RULE_STATE_ENABLED) != RULE_STATE_ENABLED:
            # Read-only events forwarded to the custom bus are matched only in this state too.
            properties["State"] = states[handler]
        resources[function] = {
            "Properties": {"Events": {function + "Event": {"Properties": properties}}}
        }
    return {
        "Parameters": {
            BUS_NAME_PARAMETER: {
                "Type": "String",
                "Default": DEFAULT_CUSTOM_BUS_NAME,
                "Description": "The custom bus created by deploy/central-custom-bus.yaml",
            }
        },
        "Resources": resources,
    }


def dump_template(template: dict[str, Any], fmt: str) -> str:
    """Serialize a CloudFormation template as YAML (block style, key order kept) or JSON."""
    if fmt == "json":
        return json.dumps(template, indent=2) + "\n"
    import yaml

    return str(yaml.safe_dump(template, sort_keys=False, default_flow_style=False, width=100))
