"""CloudFormation for ``mfawatch deploy``: a stack through a change set, its events as progress.

The AWS edge of :mod:`mfawatch.deploy.deployer`: one small class that receives its boto3
client, a clock and a ``sleep`` (tests pass fakes, so nothing here waits for real), and
translates CloudFormation's errors into :class:`mfawatch.errors.StepError`-ready
:class:`StackError`.

Why a change set rather than ``CreateStack``/``UpdateStack``: it works the same for a new and an
existing stack, and it says "no changes" before anything is touched, which is how a second
``deploy`` reports that nothing changed. AWS reports an empty change set as ``FAILED`` with the
reason "The submitted information didn't contain changes..." (AWS CloudFormation User Guide,
using-cfn-updating-stacks-changesets-create); moto 5.2 instead refuses ``CreateChangeSet`` with
``ValidationError: No updates are to be performed.`` (the ``UpdateStack`` wording). Both mean the
same here.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.core.errors import ConfigError, MfawatchError

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_sts import STSClient

# The wordings of "nothing to change": AWS's change-set reason, and UpdateStack's (moto's too).
NO_CHANGES = ("didn't contain changes", "No updates are to be performed")
# A stack that exists only as a change set never executed (CloudFormation creates the stack in
# REVIEW_IN_PROGRESS): the next change set must still be of type CREATE.
REVIEW = "REVIEW_IN_PROGRESS"
DONE = frozenset({"CREATE_COMPLETE", "UPDATE_COMPLETE"})
# A stack whose creation failed and rolled back can only be deleted (AWS CloudFormation User
# Guide, troubleshooting: "ROLLBACK_COMPLETE ... you can only delete it").
DELETE_ONLY = frozenset({"ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "DELETE_FAILED"})
POLL_SECONDS = 2.0
TIMEOUT_SECONDS = 3600.0


class StackError(MfawatchError):
    """A stack operation failed: ``error`` is AWS's word for it, ``fix`` what to do."""

    def __init__(self, error: str, fix: str) -> None:
        self.error = error
        self.fix = fix
        super().__init__(f"{error}; {fix}")


@dataclass(frozen=True)
class StackResult:
    """What a deploy did to a stack: ``changed`` is False when the change set was empty."""

    name: str
    changed: bool
    outputs: Mapping[str, str]


def aws_error(exc: Exception) -> str:
    """``Code: message`` of a botocore error (the words to search AWS's documentation for)."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        message = error.get("Message", str(exc))
        if message.lstrip().startswith("<"):
            # No AWS error document: botocore passes on the body, e.g. moto_server's HTML 404
            # page for a call it does not implement (GetAccountSettings in moto 5.2).
            message = (
                "the endpoint answered with an HTML page, not an AWS error: "
                "a proxy, or an AWS_ENDPOINT_URL that lacks this call?"
            )
        return f"{error.get('Code', 'ClientError')}: {message}"
    return f"{type(exc).__name__}: {exc}"


class Stacks:
    """Deploy and delete CloudFormation stacks, echoing each new stack event as progress."""

    def __init__(
        self,
        client: CloudFormationClient,
        echo: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        *,
        poll_seconds: float = POLL_SECONDS,
        timeout_seconds: float = TIMEOUT_SECONDS,
    ) -> None:
        self._client = client
        self._echo = echo
        self._clock = clock
        self._sleep = sleep
        self._poll = poll_seconds
        self._timeout = timeout_seconds

    def status(self, name: str) -> str:
        """The stack's status, or "" when there is no such stack."""
        try:
            stacks = self._client.describe_stacks(StackName=name)["Stacks"]
        except ClientError as exc:
            if "does not exist" in str(exc):
                return ""
            raise StackError(aws_error(exc), _fix_for(exc)) from exc
        except BotoCoreError as exc:
            raise StackError(aws_error(exc), _fix_for(exc)) from exc
        return str(stacks[0]["StackStatus"]) if stacks else ""

    def outputs(self, name: str) -> dict[str, str]:
        stack = self._client.describe_stacks(StackName=name)["Stacks"][0]
        return {
            str(o["OutputKey"]): str(o["OutputValue"])
            for o in stack.get("Outputs", [])
            if "OutputKey" in o and "OutputValue" in o
        }

    def resources(self, name: str) -> list[tuple[str, str]]:
        """(logical id, type) of every resource of the stack."""
        summaries = self._client.list_stack_resources(StackName=name)["StackResourceSummaries"]
        return [(str(s["LogicalResourceId"]), str(s["ResourceType"])) for s in summaries]

    def deploy(
        self,
        name: str,
        template_body: str,
        parameters: Mapping[str, str] | None = None,
        capabilities: Sequence[str] = (),
        template_url: str | None = None,
    ) -> StackResult:
        """Create or update ``name`` through a change set; unchanged when the set is empty.

        ``template_url`` (an S3 object's HTTPS URL) replaces ``template_body`` for a template
        larger than CloudFormation takes inline.
        """
        change_type = self._change_type(name)
        source: dict[str, Any] = (
            {"TemplateURL": template_url} if template_url else {"TemplateBody": template_body}
        )
        change_set_id = self._create_change_set(
            name, change_type, source, parameters or {}, capabilities
        )
        if change_set_id is None:
            return StackResult(name, False, self.outputs(name))
        described = self._wait_change_set(change_set_id)
        if described["Status"] == "FAILED":
            reason = str(described.get("StatusReason", ""))
            if any(words in reason for words in NO_CHANGES):
                self._client.delete_change_set(ChangeSetName=change_set_id)
                return StackResult(name, False, self.outputs(name))
            raise StackError(
                f"change set for {name} failed: {reason}", "fix the template or parameters"
            )
        changes = described.get("Changes", [])
        self._echo(f"  {name}: {change_type.lower()} with {len(changes)} resource change(s)")
        seen = self._event_ids(name)
        self._client.execute_change_set(ChangeSetName=change_set_id)
        final = self._wait_stack(name, seen)
        if final not in DONE:
            raise StackError(
                f"stack {name} ended {final}",
                "the stack events above name the resource that failed and why",
            )
        return StackResult(name, True, self.outputs(name))

    def _change_type(self, name: str) -> str:
        """``CREATE`` or ``UPDATE``; :class:`StackError` when the stack cannot take a change."""
        status = self.status(name)
        if status in DELETE_ONLY:
            raise StackError(
                f"stack {name} is {status}",
                "CloudFormation can only delete it: delete the stack (mfawatch destroy), then "
                "deploy again; its events above say why it failed",
            )
        if status.endswith("_IN_PROGRESS") and status != REVIEW:
            raise StackError(f"stack {name} is {status}", "wait until it finishes, then retry")
        return "UPDATE" if status and status != REVIEW else "CREATE"

    def _create_change_set(
        self,
        name: str,
        change_type: str,
        source: Mapping[str, Any],
        parameters: Mapping[str, str],
        capabilities: Sequence[str],
    ) -> str | None:
        """The new change set's id; None when CloudFormation says nothing would change."""
        try:
            created = self._client.create_change_set(
                StackName=name,
                ChangeSetName=f"mfawatch-{uuid.uuid4().hex[:16]}",
                ChangeSetType="UPDATE" if change_type == "UPDATE" else "CREATE",
                **source,
                Parameters=[
                    {"ParameterKey": key, "ParameterValue": value}
                    for key, value in parameters.items()
                ],
                # boto3-stubs type each capability as a literal; ours come from constants.
                Capabilities=list(capabilities),  # type: ignore[arg-type]
            )
        except ClientError as exc:
            if any(words in str(exc) for words in NO_CHANGES):
                return None
            raise StackError(aws_error(exc), _fix_for(exc)) from exc
        except BotoCoreError as exc:
            raise StackError(aws_error(exc), _fix_for(exc)) from exc
        return created["Id"]

    def delete(self, name: str) -> bool:
        """Delete ``name`` and wait; False when there was no such stack."""
        status = self.status(name)
        if not status:
            return False
        seen = self._event_ids(name)
        try:
            self._client.delete_stack(StackName=name)
        except (ClientError, BotoCoreError) as exc:
            raise StackError(aws_error(exc), _fix_for(exc)) from exc
        final = self._wait_stack(name, seen)
        if final not in ("", "DELETE_COMPLETE"):
            raise StackError(
                f"stack {name} ended {final}",
                "the stack events above name the resource that could not be deleted",
            )
        return True

    # --- waiting --------------------------------------------------------------------------------

    def _deadline_passed(self, start: float, what: str) -> None:
        if self._clock() - start > self._timeout:
            raise StackError(
                f"{what} did not finish within {self._timeout:g} s",
                "look at the stack in the CloudFormation console, then run the command again",
            )

    def _wait_change_set(self, change_set_id: str) -> Any:
        start = self._clock()
        while True:
            described = self._client.describe_change_set(ChangeSetName=change_set_id)
            if described["Status"] in ("CREATE_COMPLETE", "FAILED"):
                return described
            self._deadline_passed(start, f"change set {change_set_id}")
            self._sleep(self._poll)

    def _wait_stack(self, name: str, seen: set[str]) -> str:
        start = self._clock()
        while True:
            status = self.status(name)
            self._stream_events(name, seen)
            if not status.endswith("_IN_PROGRESS") or status == REVIEW:
                return status
            self._deadline_passed(start, f"stack {name}")
            self._sleep(self._poll)

    def _events(self, name: str) -> list[Any]:
        try:
            return list(self._client.describe_stack_events(StackName=name)["StackEvents"])
        except ClientError:
            return []  # a deleted stack has no events to show

    def _event_ids(self, name: str) -> set[str]:
        return {str(event["EventId"]) for event in self._events(name)}

    def _stream_events(self, name: str, seen: set[str]) -> None:
        """Echo the events not shown yet, oldest first (the API lists the newest first)."""
        for event in reversed(self._events(name)):
            if event["EventId"] in seen:
                continue
            seen.add(str(event["EventId"]))
            reason = event.get("ResourceStatusReason") or ""
            self._echo(
                f"  {name} {event.get('LogicalResourceId', '')} {event.get('ResourceStatus', '')}"
                + (f": {reason}" if reason else "")
            )


def _fix_for(exc: Exception) -> str:
    """What to do about an AWS error, by its code (docs/deploy.md, "Before you deploy")."""
    code = exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else ""
    if code in ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation"):
        return "the credentials lack a permission: see 'Before you deploy' in docs/deploy.md"
    if code in ("ExpiredToken", "ExpiredTokenException", "InvalidClientTokenId"):
        return "the credentials expired or are invalid: sign in again (aws sso login, ...)"
    if code == "InsufficientCapabilitiesException":
        return "the template creates IAM resources; this is a bug in mfawatch, please report it"
    if isinstance(exc, BotoCoreError):
        return (
            "check the credentials, the Region and the network (AWS_ENDPOINT_URL, if set, "
            "must answer)"
        )
    return "the AWS error above says what is wrong"


class ResourcesStack:
    """The outputs of a stage's resources stack (CloudFormation ``DescribeStacks``)."""

    # A stack whose outputs are those of a complete deployment (a failed update rolled back to
    # the previous one is UPDATE_ROLLBACK_COMPLETE; a failed creation is ROLLBACK_COMPLETE).
    USABLE = frozenset({"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE"})

    def __init__(self, client: CloudFormationClient) -> None:
        self._client = client

    def outputs(self, stack_name: str) -> dict[str, str]:
        try:
            stacks = self._client.describe_stacks(StackName=stack_name)["Stacks"]
        except (ClientError, BotoCoreError) as exc:
            raise ConfigError(f"cannot read stack {stack_name}: {exc}") from exc
        stack = stacks[0]
        status = stack.get("StackStatus", "")
        if status not in self.USABLE:
            raise ConfigError(f"stack {stack_name} is {status}: deploy it first")
        return {
            str(o["OutputKey"]): str(o["OutputValue"])
            for o in stack.get("Outputs", [])
            if "OutputKey" in o and "OutputValue" in o
        }


def caller_account(client: STSClient) -> str:
    """The account of the caller's credentials (STS ``GetCallerIdentity``)."""
    try:
        return str(client.get_caller_identity()["Account"])
    except (ClientError, BotoCoreError) as exc:
        raise ConfigError(f"cannot identify the caller: {exc}") from exc
