"""``mfawatch deploy``/``destroy`` (:mod:`mfawatch.deploy.deployer`): the plan, the packaged
template, and failures that name the step, AWS's error and the fix. CloudFormation's change sets
are tested in test_stacks.py, the chalice step's fingerprint in test_chalice_app.py."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.stub import Stubber

from chalicelib.errors import MfawatchError
from mfawatch.deploy.deployer import (
    ROUTE_MERGED,
    ROUTE_STACKS,
    Step,
    StepError,
    plan_deploy,
    plan_destroy,
    summary,
    with_code_uri,
    zip_content_digest,
)
from tests.conftest import ROOT
from tests.stubs import stubbed
from tests.support.chalice import FakeChalice, fake_deployer, project_copy


@pytest.fixture
def cloudformation() -> Iterator[tuple[Any, Stubber]]:
    with stubbed("cloudformation") as pair:
        yield pair


def test_route_stacks_plan_is_every_step_of_docs_deploy_md_in_order() -> None:
    assert [s.name for s in plan_deploy(ROUTE_STACKS, "t1")] == [
        "check-stage",
        "concurrency",
        "resources",
        "config",
        "subscriptions",
        "app",
        "rule-state",
        "invoke-config",
        "selftest",
    ]
    assert [s.name for s in plan_deploy(ROUTE_MERGED, "t1", selftest=False)] == [
        "check-stage",
        "concurrency",
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


def test_a_failure_names_the_step_aws_error_and_what_to_do(
    tmp_path: Path, cloudformation: tuple[Any, Stubber]
) -> None:
    client, stubber = cloudformation
    stubber.add_client_error(
        "describe_stacks", "AccessDenied", "User: arn:aws:iam::1:user/x is not authorized", 403
    )
    project = project_copy(tmp_path)
    deployer = fake_deployer(
        project, FakeChalice(project, ["heartbeat"]), {"cloudformation": client}
    )
    with pytest.raises(StepError) as raised:
        deployer.run(plan_deploy(ROUTE_STACKS, "dev")[2:3])
    assert str(raised.value) == (
        "step resources failed: AccessDenied: User: arn:aws:iam::1:user/x is not authorized\n"
        "  what to do: the credentials lack a permission: see 'Before you deploy' in "
        "docs/deploy.md"
    )


def test_a_failed_chalice_command_shows_its_last_lines(tmp_path: Path) -> None:
    project = project_copy(tmp_path)
    run = FakeChalice(project, ["heartbeat"], returncode=2)
    deployer = fake_deployer(project, run, {})
    with pytest.raises(StepError, match=r"step app failed: chalice deploy --stage dev exited 2:\n"):
        deployer.run((Step("app", "chalice deploy"),))


def test_summary_says_no_changes_when_no_step_changed() -> None:
    from mfawatch.deploy.deployer import Outcome

    steps = [Outcome(Step("a", ""), False, ""), Outcome(Step("b", ""), False, "")]
    assert summary(steps) == "deploy: no changes (2 steps checked)"
    assert summary([*steps, Outcome(Step("c", ""), True, "")]) == "deploy: changed c"


def test_packaged_template_points_every_function_at_the_uploaded_zip() -> None:
    template: dict[str, Any] = {
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
