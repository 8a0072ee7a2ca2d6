"""``chalice deploy`` only when the app changed (:mod:`mfawatch.deploy.chalice_app`): the
fingerprint, Chalice's record of the functions, and a function deleted behind our back."""

from __future__ import annotations

from pathlib import Path

from botocore.stub import Stubber

from mfawatch.deploy.chalice_app import ChaliceApp, ChaliceCommand
from tests.stubs import offline_client
from tests.support.chalice import FakeChalice, project_copy


def test_chalice_deploy_runs_only_when_the_app_changed_or_a_function_is_gone(
    tmp_path: Path,
) -> None:
    project = project_copy(tmp_path)
    handlers = ["heartbeat", "send_due_summaries"]
    run = FakeChalice(project, handlers)
    client = offline_client("lambda")
    stubber = Stubber(client)
    chalice = ChaliceCommand(project, "us-east-1", {}, run)
    app = ChaliceApp(project, "dev", handlers, chalice, lambda_client=lambda: client, echo=print)
    with stubber:
        assert app.deploy() == (True, "2 functions deployed")
        assert run.commands[0][1:] == [
            "--project-dir",
            str(project.root),
            "deploy",
            "--stage",
            "dev",
        ]
        for function in handlers:
            stubber.add_response("get_function", {}, {"FunctionName": f"arn:{function}"})
        assert app.deploy() == (False, "2 functions, code and config as last deployed")
        assert len(run.commands) == 1
        # A function deleted behind our back is deployed again.
        stubber.add_response("get_function", {}, {"FunctionName": "arn:heartbeat"})
        stubber.add_client_error("get_function", "ResourceNotFoundException", "gone", 404)
        assert app.deploy()[0] and len(run.commands) == 2
        # So is a change to the code, and a deploy that is forced.
        (project.root / "chalicelib" / "constants.py").write_text("# changed\n", "utf-8")
        assert app.deploy()[0] and len(run.commands) == 3
        assert app.deploy(force=True)[0] and len(run.commands) == 4
        stubber.assert_no_pending_responses()


def test_delete_runs_chalice_only_for_what_was_deployed_from_here(tmp_path: Path) -> None:
    project = project_copy(tmp_path)
    run = FakeChalice(project, ["heartbeat"])
    chalice = ChaliceCommand(project, "us-east-1", {}, run)
    app = ChaliceApp(project, "dev", ["heartbeat"], chalice, lambda_client=lambda: None, echo=print)
    changed, detail = app.delete()
    assert not changed and detail.startswith("nothing recorded in ") and run.commands == []
    app.deploy()
    assert project.fingerprint_path("dev").is_file()
    assert app.delete() == (True, "functions, roles and rules deleted")
    assert run.commands[-1][-3:] == ["delete", "--stage", "dev"]
    assert not project.fingerprint_path("dev").exists()
