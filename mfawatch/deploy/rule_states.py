"""Route (a): the EventBridge state of the rules that must receive read-only events.

A rule with ``read_only_events`` (``aws login``'s ``AuthorizeOAuth2Access``, readOnly true) gets
its events only in the state ``ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS``. ``chalice
deploy`` writes every rule with ``PutRule`` and no ``State``, which leaves (or puts back) the
default ``ENABLED``; so after it, :class:`EventRules` sets the state again. ``PutRule`` keeps no
value it is not given ("If you omit arguments in PutRule, the old values for those arguments are
not kept", EventBridge API Reference, PutRule): every field ``DescribeRule`` returns is passed
back. Targets are a separate resource and stay attached.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.rules import Rule
from mfawatch.deploy.stacks import StackError
from mfawatch.deploy.templates import StageNames

# DescribeRule's fields that PutRule takes back under the same name. Not passed: Arn, ManagedBy,
# CreatedBy (read-only), and Tags (PutRule's tags are for a new rule; TagResource owns them).
KEPT_FIELDS = ("EventPattern", "ScheduleExpression", "Description", "RoleArn")


def rule_states(
    rules: Iterable[Rule], names: StageNames, handlers: Sequence[str]
) -> dict[str, str]:
    """EventBridge rule name -> the state it needs, for the deployed rules of read-only events."""
    return {
        names.event_rule(rule.handler_name): rule.eventbridge_state
        for rule in rules
        if rule.read_only_events and rule.handler_name in handlers
    }


class EventRules:
    """Sets an EventBridge rule's state, keeping everything else (EventBridge API)."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def set_state(self, name: str, state: str) -> bool:
        """Put ``name`` in ``state``; False when it already was (nothing written)."""
        try:
            rule = self._client.describe_rule(Name=name)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                raise
            raise StackError(
                f"EventBridge rule {name} does not exist, so it cannot be set to {state}",
                "chalice deploy creates it: run `mfawatch deploy --force` to deploy the app again",
            ) from exc
        if rule.get("State") == state:
            return False
        kept = {field: rule[field] for field in KEPT_FIELDS if rule.get(field)}
        bus = rule.get("EventBusName")
        if bus and bus != "default":
            kept["EventBusName"] = bus
        self._client.put_rule(Name=name, State=state, **kept)
        return True

    def apply(self, wanted: Mapping[str, str], echo: Callable[[str], None]) -> tuple[bool, str]:
        """``mfawatch deploy``'s ``rule-state`` step, after every ``chalice deploy`` (which resets
        each rule to ``ENABLED``), whether it ran now or by hand: (changed, what was done)."""
        if not wanted:
            return False, "no rule matches read-only events"
        changed = [name for name, state in sorted(wanted.items()) if self.set_state(name, state)]
        for name in changed:
            echo(f"  {name}: State {wanted[name]}")
        return bool(changed), f"{len(changed)} set, {len(wanted)} checked"
