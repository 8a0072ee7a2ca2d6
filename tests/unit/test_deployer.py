"""``mfawatch deploy``/``destroy``: the plan, CloudFormation through change sets (botocore
Stubber at the wire, fake clock and sleep), the chalice step's fingerprint, and failures that name
the step, AWS's error and the fix."""

from __future__ import annotations

import datetime
import json
import shutil
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.stub import ANY, Stubber

from chalicelib.core.errors import MfawatchError
from mfawatch.deploy.deployer import (
    ROUTE_MERGED,
    ROUTE_STACKS,
    ChaliceCommand,
    Deployer,
    Project,
    Step,
    StepError,
    plan_deploy,
    plan_destroy,
    summary,
    with_code_uri,
    zip_content_digest,
)
from mfawatch.deploy.stacks import StackError, Stacks
from tests.conftest import ROOT
from tests.stubs import offline_client, stubbed

NAME = "mfawatch-t1-resources"
T0 = datetime.datetime(2026, 12, 7, 12, 0, tzinfo=datetime.UTC)


def test_route_stacks_plan_is_every_step_of_docs_deploy_md_in_order() -> None:
    assert [s.name for s in plan_deploy(ROUTE_STACKS, "t1")] == [
        "check-stage",
        "resources",
        "config",
        "subscriptions",
        "app",
        "invoke-config",
        "selftest",
    ]
    assert [s.name for s in plan_deploy(ROUTE_MERGED, "t1", selftest=False)] == [
        "check-stage",
        "package",
        "upload",
        "stack",
        "subscriptions",
    ]
    with pytest.raises(MfawatchError, match="route 'other': use one of stacks, merged"):
        plan_deploy("other", "t1")


def test_destroy_is_reversed_and_keeps_the_data_unless_asked() -> None:
    assert [s.name for s in plan_destroy(ROUTE_STACKS, "t1")] == ["invoke-config", "app"]
    assert [s.name for s in plan_destroy(ROUTE_STACKS, "t1", delete_data=True)] == [
        "invoke-config",
        "app",
        "resources",
    ]
    with pytest.raises(MfawatchError, match=r"holds the table and the key .* add --delete-data"):
        plan_destroy(ROUTE_MERGED, "t1")


# --- Stacks -------------------------------------------------------------------------------------


class FakeTime:
    """A clock that advances only when ``sleep`` is called."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


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
    fake = FakeTime()
    result = Stacks(client, echoed.append, fake.clock, fake.sleep).deploy(
        NAME, "{}", {"Stage": "t1"}
    )
    assert (result.changed, dict(result.outputs)) == (True, {"StateTableName": "t"})
    assert echoed == [
        f"  {NAME}: create with 1 resource change(s)",
        f"  {NAME} {NAME} CREATE_IN_PROGRESS",
        f"  {NAME} StateTable CREATE_COMPLETE",
        f"  {NAME} {NAME} CREATE_COMPLETE",
    ]
    assert fake.slept == [2.0]


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
    fake = FakeTime()
    stacks = Stacks(client, print, fake.clock, fake.sleep, poll_seconds=5, timeout_seconds=8)
    with pytest.raises(StackError, match="did not finish within 8 s"):
        stacks.delete(NAME)
    assert fake.slept == [5, 5]


# --- Deployer -----------------------------------------------------------------------------------


def _project(tmp_path: Path) -> Project:
    root = tmp_path / "project"
    root.mkdir()
    for name in ("app.py", "requirements.txt"):
        shutil.copy2(ROOT / name, root / name)
    shutil.copytree(
        ROOT / "chalicelib", root / "chalicelib", ignore=shutil.ignore_patterns("__pycache__")
    )
    (root / ".chalice").mkdir()
    for path in (ROOT / ".chalice").glob("*.json"):
        shutil.copy2(path, root / ".chalice" / path.name)
    return Project(root)


class FakeChalice:
    """``subprocess.run`` for ChaliceCommand: records the commands, writes chalice's record."""

    def __init__(self, project: Project, functions: list[str], returncode: int = 0) -> None:
        self.project = project
        self.functions = functions
        self.returncode = returncode
        self.commands: list[list[str]] = []

    def __call__(self, command: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        self.commands.append(command)
        if self.returncode:
            return subprocess.CompletedProcess(command, self.returncode, "", "An error occurred")
        record = {
            "resources": [
                {"name": f, "resource_type": "lambda_function", "lambda_arn": f"arn:{f}"}
                for f in self.functions
            ]
        }
        self.project.deployed_dir.mkdir(exist_ok=True)
        (self.project.deployed_dir / "dev.json").write_text(json.dumps(record))
        return subprocess.CompletedProcess(command, 0, "Resources deployed:\n", "")


def _lambda() -> tuple[Any, Stubber]:
    client = offline_client("lambda")
    return client, Stubber(client)


def _deployer(project: Project, run: FakeChalice, clients: dict[str, Any]) -> Deployer:
    chalice = ChaliceCommand(project, "us-east-1", {}, run)
    return Deployer(project, "dev", "us-east-1", run.functions, clients.__getitem__, chalice, print)


def test_chalice_deploy_runs_only_when_the_app_changed_or_a_function_is_gone(
    tmp_path: Path,
) -> None:
    project = _project(tmp_path)
    handlers = ["heartbeat", "send_due_summaries"]
    run = FakeChalice(project, handlers)
    client, stubber = _lambda()
    deployer = _deployer(project, run, {"lambda": client})
    app = (Step("app", "chalice deploy"),)
    with stubber:
        assert deployer.run(app)[0].changed
        assert run.commands[0][1:] == [
            "--project-dir",
            str(project.root),
            "deploy",
            "--stage",
            "dev",
        ]
        for function in handlers:
            stubber.add_response("get_function", {}, {"FunctionName": f"arn:{function}"})
        (again,) = deployer.run(app)
        assert (again.changed, len(run.commands)) == (False, 1)
        # A function deleted behind our back is deployed again.
        stubber.add_response("get_function", {}, {"FunctionName": "arn:heartbeat"})
        stubber.add_client_error("get_function", "ResourceNotFoundException", "gone", 404)
        assert deployer.run(app)[0].changed and len(run.commands) == 2
        # So is a change to the code.
        (project.root / "chalicelib" / "constants.py").write_text("# changed\n", "utf-8")
        assert deployer.run(app)[0].changed and len(run.commands) == 3
        stubber.assert_no_pending_responses()


def test_a_failure_names_the_step_aws_error_and_what_to_do(
    tmp_path: Path, cloudformation: tuple[Any, Stubber]
) -> None:
    client, stubber = cloudformation
    stubber.add_client_error(
        "describe_stacks", "AccessDenied", "User: arn:aws:iam::1:user/x is not authorized", 403
    )
    project = _project(tmp_path)
    deployer = _deployer(project, FakeChalice(project, ["heartbeat"]), {"cloudformation": client})
    with pytest.raises(StepError) as raised:
        deployer.run(plan_deploy(ROUTE_STACKS, "dev")[1:2])
    assert str(raised.value) == (
        "step resources failed: AccessDenied: User: arn:aws:iam::1:user/x is not authorized\n"
        "  what to do: the credentials lack a permission: see 'Before you deploy' in "
        "docs/deploy.md"
    )


def test_a_failed_chalice_command_shows_its_last_lines(tmp_path: Path) -> None:
    project = _project(tmp_path)
    run = FakeChalice(project, ["heartbeat"], returncode=2)
    deployer = _deployer(project, run, {})
    with pytest.raises(StepError, match=r"step app failed: chalice deploy --stage dev exited 2:\n"):
        deployer.run((Step("app", "chalice deploy"),))


def test_summary_says_no_changes_when_no_step_changed() -> None:
    from mfawatch.deploy.deployer import Outcome

    steps = [Outcome(Step("a", ""), False, ""), Outcome(Step("b", ""), False, "")]
    assert summary(steps) == "deploy: no changes (2 steps checked)"
    assert summary([*steps, Outcome(Step("c", ""), True, "")]) == "deploy: changed c"


def test_packaged_template_points_every_function_at_the_uploaded_zip() -> None:
    template = {
        "Resources": {
            "F": {
                "Type": "AWS::Serverless::Function",
                "Properties": {"CodeUri": "./deployment.zip"},
            },
            "T": {"Type": "AWS::SNS::Topic", "Properties": {}},
        }
    }
    packaged = with_code_uri(template, "s3://b/k.zip")
    assert packaged["Resources"]["F"]["Properties"]["CodeUri"] == "s3://b/k.zip"
    assert packaged["Resources"]["T"] == template["Resources"]["T"]
    assert template["Resources"]["F"]["Properties"]["CodeUri"] == "./deployment.zip"


def test_the_upload_key_follows_the_zip_content_not_its_timestamps(tmp_path: Path) -> None:
    def build(path: Path, stamp: tuple[int, int, int, int, int, int], body: bytes) -> Path:
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr(zipfile.ZipInfo("app.py", stamp), body)
        return path

    first = build(tmp_path / "1.zip", (2026, 1, 1, 0, 0, 0), b"x")
    rebuilt = build(tmp_path / "2.zip", (2026, 6, 1, 0, 0, 0), b"x")
    changed = build(tmp_path / "3.zip", (2026, 1, 1, 0, 0, 0), b"y")
    assert first.read_bytes() != rebuilt.read_bytes()
    assert zip_content_digest(first) == zip_content_digest(rebuilt)
    assert zip_content_digest(first) != zip_content_digest(changed)


def test_docs_deploy_step_table_lists_exactly_the_planned_steps() -> None:
    docs = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    table = docs.split("| step | what it does | unchanged when |", 1)[1].split("\n\n", 1)[0]
    documented = [line.split("|")[1].strip() for line in table.strip().splitlines()[1:]]
    assert documented == [step.name for step in plan_deploy(ROUTE_STACKS, "S")]


def test_plan_prints_the_steps_without_touching_aws() -> None:
    from click.testing import CliRunner

    from mfawatch.cli.deploy import make_commands

    def no_session() -> Any:
        raise AssertionError("--plan must not create a session")

    deploy, destroy = make_commands(no_session)
    shown = CliRunner().invoke(deploy, ["--stage", "t1", "--plan", "--no-selftest"])
    assert shown.exit_code == 0, shown.output
    assert [line.split(":")[0] for line in shown.stdout.splitlines()] == [
        step.name for step in plan_deploy(ROUTE_STACKS, "t1", selftest=False)
    ]
    merged = CliRunner().invoke(deploy, ["--stage", "t1", "--route", "merged", "--plan"])
    assert merged.exit_code == 2
    assert "--route merged needs --bucket" in merged.stderr
    removed = CliRunner().invoke(destroy, ["--stage", "t1", "--plan", "--delete-data"])
    assert (
        removed.stdout.splitlines()[-1]
        == "resources: delete stack mfawatch-t1-resources (all data)"
    )
