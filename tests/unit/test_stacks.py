"""CloudFormation through change sets (:mod:`mfawatch.deploy.stacks`): botocore Stubber at the
wire, a fake clock and sleep."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.stub import ANY, Stubber

from mfawatch.deploy.stacks import StackError, Stacks
from tests.stubs import stubbed
from tests.support.clock import FakeClock

NAME = "mfawatch-t1-resources"
T0 = datetime.datetime(2026, 12, 7, 12, 0, tzinfo=datetime.UTC)


@pytest.fixture
def cloudformation() -> Iterator[tuple[Any, Stubber]]:
    with stubbed("cloudformation") as pair:
        yield pair


def _stack(status: str, outputs: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "Stacks": [
            {
                "StackName": NAME,
                "CreationTime": T0,
                "StackStatus": status,
                "Outputs": [{"OutputKey": k, "OutputValue": v} for k, v in (outputs or {}).items()],
            }
        ]
    }


def _event(event_id: str, logical: str, status: str, reason: str = "") -> dict[str, Any]:
    event = {
        "StackId": "id",
        "EventId": event_id,
        "StackName": NAME,
        "LogicalResourceId": logical,
        "ResourceStatus": status,
        "Timestamp": T0,
    }
    return event | ({"ResourceStatusReason": reason} if reason else {})


def _missing(stubber: Stubber) -> None:
    stubber.add_client_error(
        "describe_stacks", "ValidationError", f"Stack with id {NAME} does not exist"
    )


def test_a_new_stack_is_created_through_a_change_set_streaming_its_events(
    cloudformation: tuple[Any, Stubber],
) -> None:
    client, stubber = cloudformation
    _missing(stubber)
    stubber.add_response(
        "create_change_set",
        {"Id": "cs-1", "StackId": "id"},
        {
            "StackName": NAME,
            "ChangeSetName": ANY,
            "ChangeSetType": "CREATE",
            "TemplateBody": "{}",
            "Parameters": [{"ParameterKey": "Stage", "ParameterValue": "t1"}],
            "Capabilities": [],
        },
    )
    stubber.add_response(
        "describe_change_set", {"Status": "CREATE_COMPLETE", "Changes": [{"Type": "Resource"}]}
    )
    stubber.add_client_error("describe_stack_events", "ValidationError", "does not exist")
    stubber.add_response("execute_change_set", {}, {"ChangeSetName": "cs-1"})
    stubber.add_response("describe_stacks", _stack("CREATE_IN_PROGRESS"))
    stubber.add_response(
        "describe_stack_events", {"StackEvents": [_event("e1", NAME, "CREATE_IN_PROGRESS")]}
    )
    stubber.add_response("describe_stacks", _stack("CREATE_COMPLETE"))
    newest_first = [
        _event("e3", NAME, "CREATE_COMPLETE"),
        _event("e2", "StateTable", "CREATE_COMPLETE"),
        _event("e1", NAME, "CREATE_IN_PROGRESS"),
    ]
    stubber.add_response("describe_stack_events", {"StackEvents": newest_first})
    stubber.add_response("describe_stacks", _stack("CREATE_COMPLETE", {"StateTableName": "t"}))
    echoed: list[str] = []
    fake = FakeClock()
    result = Stacks(client, echoed.append, fake, fake.sleep).deploy(NAME, "{}", {"Stage": "t1"})
    assert (result.changed, dict(result.outputs)) == (True, {"StateTableName": "t"})
    assert echoed == [
        f"  {NAME}: create with 1 resource change(s)",
        f"  {NAME} {NAME} CREATE_IN_PROGRESS",
        f"  {NAME} StateTable CREATE_COMPLETE",
        f"  {NAME} {NAME} CREATE_COMPLETE",
    ]
    assert fake.sleeps == [2.0]


def test_an_empty_change_set_is_unchanged_and_deleted(cloudformation: tuple[Any, Stubber]) -> None:
    """AWS's wording for an empty change set (moto refuses CreateChangeSet instead)."""
    client, stubber = cloudformation
    stubber.add_response("describe_stacks", _stack("UPDATE_COMPLETE"))
    stubber.add_response("create_change_set", {"Id": "cs-2"})
    reason = "The submitted information didn't contain changes. Submit different information."
    stubber.add_response("describe_change_set", {"Status": "FAILED", "StatusReason": reason})
    stubber.add_response("delete_change_set", {}, {"ChangeSetName": "cs-2"})
    stubber.add_response("describe_stacks", _stack("UPDATE_COMPLETE", {"A": "1"}))
    echoed: list[str] = []
    result = Stacks(client, echoed.append).deploy(NAME, "{}")
    assert (result.changed, dict(result.outputs), echoed) == (False, {"A": "1"}, [])


def test_a_stack_that_failed_to_create_must_be_deleted_first(
    cloudformation: tuple[Any, Stubber],
) -> None:
    client, stubber = cloudformation
    stubber.add_response("describe_stacks", _stack("ROLLBACK_COMPLETE"))
    with pytest.raises(StackError, match="is ROLLBACK_COMPLETE; CloudFormation can only delete"):
        Stacks(client, print).deploy(NAME, "{}")


def test_a_failed_update_names_the_failing_resource_in_the_events(
    cloudformation: tuple[Any, Stubber],
) -> None:
    client, stubber = cloudformation
    stubber.add_response("describe_stacks", _stack("CREATE_COMPLETE"))
    stubber.add_response("create_change_set", {"Id": "cs-3"})
    stubber.add_response("describe_change_set", {"Status": "CREATE_COMPLETE", "Changes": []})
    stubber.add_response("describe_stack_events", {"StackEvents": []})
    stubber.add_response("execute_change_set", {})
    stubber.add_response("describe_stacks", _stack("UPDATE_ROLLBACK_COMPLETE"))
    failed = _event("e9", "StateTable", "UPDATE_FAILED", "Resource handler returned: AccessDenied")
    stubber.add_response("describe_stack_events", {"StackEvents": [failed]})
    echoed: list[str] = []
    with pytest.raises(StackError, match="ended UPDATE_ROLLBACK_COMPLETE; the stack events above"):
        Stacks(client, echoed.append).deploy(NAME, "{}")
    assert (
        echoed[-1] == f"  {NAME} StateTable UPDATE_FAILED: Resource handler returned: AccessDenied"
    )


def test_waiting_gives_up_after_the_timeout_on_the_injected_clock(
    cloudformation: tuple[Any, Stubber],
) -> None:
    client, stubber = cloudformation
    stubber.add_response("describe_stacks", _stack("CREATE_COMPLETE"))
    stubber.add_response("describe_stack_events", {"StackEvents": []})
    stubber.add_response("delete_stack", {})
    for _ in range(3):
        stubber.add_response("describe_stacks", _stack("DELETE_IN_PROGRESS"))
        stubber.add_response("describe_stack_events", {"StackEvents": []})
    fake = FakeClock()
    stacks = Stacks(client, print, fake, fake.sleep, poll_seconds=5, timeout_seconds=8)
    with pytest.raises(StackError, match="did not finish within 8 s"):
        stacks.delete(NAME)
    assert fake.sleeps == [5, 5]


# --- Deployer -----------------------------------------------------------------------------------
