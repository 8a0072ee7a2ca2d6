"""``mfawatch init``: a stage written from flags, checked as deploy and the functions read it,
shown as a diff; the tracked config is never touched (the command runs on a copy)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from chalicelib.core.errors import ConfigError
from mfawatch.cli import main
from mfawatch.deploy.init import InitAnswers, stage_init
from mfawatch.deploy.templates import SUBSCRIPTIONS_KEY, load_stage_config, read_config_document
from tests.conftest import STAGE_DIR

CONFIG = STAGE_DIR / "config.json"  # the tests' copy: the checkout's is the user's to deploy
ACCOUNT = "210987654321"


def _config() -> dict[str, Any]:
    return read_config_document(CONFIG)[1]


def _answers(**changes: Any) -> InitAnswers:
    fields: dict[str, Any] = {
        "stage": "t1",
        "region": "eu-west-1",
        "deploy_account": ACCOUNT,
        "accounts": {ACCOUNT: "security", "345678901234": ""},
    }
    return InitAnswers(**(fields | changes))


def test_a_new_stage_has_its_own_names_and_copies_the_rest_of_like() -> None:
    result = stage_init(_config(), _answers(alert_emails=["secops@example.com"]))
    stage = result.config["stages"]["t1"]
    env = stage["environment_variables"]
    alerts = f"arn:aws:sns:eu-west-1:{ACCOUNT}:mfawatch-t1-alerts"
    assert env["MFAWATCH_TOPIC_ARN"] == alerts
    assert env["MFAWATCH_TABLE_NAME"] == "mfawatch-t1-state"
    assert env["MFAWATCH_ALLOWED_ACCOUNTS"] == f"{ACCOUNT},345678901234"
    assert json.loads(env["MFAWATCH_ACCOUNT_NAMES"]) == {ACCOUNT: "security"}
    assert json.loads(env["MFAWATCH_OUTPUTS"]) == {
        "alerts": {"topic_arn": alerts},
        "pager": {
            "topic_arn": alerts.replace("alerts", "pager"),
            "min_severity": "HIGH",
            "kinds": ["alert", "escalation", "storm"],
        },
    }
    assert stage["iam_policy_file"] == "policy-t1.json"
    # What init does not ask for comes from the dev stage, not from a second copy in the code.
    assert stage["lambda_functions"] == _config()["stages"]["dev"]["lambda_functions"]
    assert (
        env["MFAWATCH_BRUTE_FORCE"]
        == _config()["stages"]["dev"]["environment_variables"]["MFAWATCH_BRUTE_FORCE"]
    )
    assert stage[SUBSCRIPTIONS_KEY] == {"alerts": ["secops@example.com"]}
    assert result.warnings == ()


def test_an_existing_stage_keeps_its_other_outputs_and_drops_the_pager_when_asked() -> None:
    config = _config()
    env = config["stages"]["dev"]["environment_variables"]
    outputs = json.loads(env["MFAWATCH_OUTPUTS"])
    outputs["chat"] = {"topic_arn": f"arn:aws:sns:us-east-1:{ACCOUNT}:chat", "format": "chat"}
    env["MFAWATCH_OUTPUTS"] = json.dumps(outputs)
    result = stage_init(config, _answers(stage="dev", region="us-east-1", pager_min_severity=None))
    written = json.loads(
        result.config["stages"]["dev"]["environment_variables"]["MFAWATCH_OUTPUTS"]
    )
    assert sorted(written) == ["alerts", "chat"]
    assert written["chat"] == outputs["chat"]
    assert config["stages"]["dev"]["environment_variables"]["MFAWATCH_OUTPUTS"] == json.dumps(
        outputs
    ), "the input is not modified"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"region": "Europe"}, "--region 'Europe' is not an AWS Region"),
        ({"deploy_account": "12345"}, "--deploy-account '12345': 12 digits expected"),
        ({"accounts": {}}, "give at least one --account"),
        ({"alert_emails": ["not-an-address"]}, "e-mail 'not-an-address' is not an e-mail address"),
        ({"pager_min_severity": "URGENT"}, "--pager-min-severity must be one of"),
        (
            {"pager_min_severity": None, "pager_emails": ["a@example.com"]},
            "--pager-email needs the pager output",
        ),
    ],
)
def test_answers_deploy_cannot_use_are_refused_naming_the_flag(
    changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        stage_init(_config(), _answers(**changes))


def test_documentation_accounts_are_flagged() -> None:
    result = stage_init(_config(), _answers(accounts={"111122223333": "x"}))
    assert result.warnings[0].startswith("account(s) 111122223333 are AWS's documentation examples")
    assert "the deploy account 210987654321 is not among --account" in result.warnings[1]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / ".chalice").mkdir()
    shutil.copy2(CONFIG, tmp_path / ".chalice" / "config.json")
    return tmp_path


def _init(project: Path, *args: str) -> Any:
    flags = ["--region", "eu-west-1", "--account", f"{ACCOUNT}=security", "--no-input"]
    return CliRunner().invoke(
        main, ["init", "--stage", "t1", "--project-dir", str(project), *flags, *args]
    )


def test_init_shows_the_diff_writes_it_and_a_second_run_has_nothing_to_write(
    project: Path,
) -> None:
    path = project / ".chalice" / "config.json"
    dry = _init(project, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert '+    "t1": {' in dry.stdout
    assert path.read_bytes() == CONFIG.read_bytes()
    written = _init(project)
    assert written.exit_code == 0, written.output
    assert written.stdout == dry.stdout
    assert "next: mfawatch deploy --stage t1 --region eu-west-1" in written.stderr
    assert load_stage_config("t1", path).environment()["MFAWATCH_TABLE_NAME"] == "mfawatch-t1-state"
    again = _init(project)
    assert (again.exit_code, again.stdout.strip()) == (
        0,
        f"{path}: stage t1 already says this; nothing to write",
    )


def test_init_without_a_terminal_names_the_missing_flags(project: Path) -> None:
    result = CliRunner().invoke(
        main, ["init", "--stage", "t1", "--project-dir", str(project), "--no-input"]
    )
    assert result.exit_code == 2
    assert "--region, --account needed" in result.stderr


def test_init_without_a_terminal_never_prompts_for_the_accounts(project: Path) -> None:
    """--deploy-account alone does not say which accounts to watch: --no-input names --account
    instead of asking."""
    flags = ["--region", "eu-west-1", "--deploy-account", ACCOUNT, "--no-input"]
    result = CliRunner().invoke(
        main, ["init", "--stage", "t1", "--project-dir", str(project), *flags]
    )
    assert (result.exit_code, result.stdout) == (2, "")
    assert "--account needed (or run in a terminal to be asked)" in result.stderr
    assert (project / ".chalice" / "config.json").read_bytes() == CONFIG.read_bytes()


def test_init_deploys_to_the_first_account_given_not_a_placeholder_left_in(
    project: Path,
) -> None:
    """dev as shipped deploys to a documentation account; --account replaces it as the help says,
    unless the stage's deploy account is among the accounts given."""
    kept = _init(project, "--stage", "dev", "--account", "111122223333", "--dry-run")
    assert kept.exit_code == 0, kept.output
    assert "arn:aws:sns:eu-west-1:111122223333:mfawatch-dev-alerts" in kept.stdout
    assert f"arn:aws:sns:eu-west-1:{ACCOUNT}:mfawatch-dev-alerts" not in kept.stdout
    result = _init(project, "--stage", "dev")
    assert result.exit_code == 0, result.output
    env = load_stage_config("dev", project / ".chalice" / "config.json").environment()
    assert env["MFAWATCH_TOPIC_ARN"] == f"arn:aws:sns:eu-west-1:{ACCOUNT}:mfawatch-dev-alerts"
    assert "the deploy account" not in result.stderr


def test_init_asks_for_what_is_missing(project: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["init", "--stage", "t1", "--project-dir", str(project), "--prompt"],
        input=f"eu-west-1\n{ACCOUNT}=security, 345678901234\n\n",
    )
    assert result.exit_code == 0, result.output
    assert "AWS Region of the stage [us-east-1]: eu-west-1" in result.stdout
    assert f"Account the stage deploys to [{ACCOUNT}]: " in result.stdout
    env = load_stage_config("t1", project / ".chalice" / "config.json").environment()
    assert env["MFAWATCH_ALLOWED_ACCOUNTS"] == f"{ACCOUNT},345678901234"
    assert env["MFAWATCH_TOPIC_ARN"] == f"arn:aws:sns:eu-west-1:{ACCOUNT}:mfawatch-t1-alerts"


def test_init_refuses_a_stage_name_aws_would_reject(project: Path) -> None:
    long_stage = "a-much-too-long-stage"
    result = _init(project, "--stage", long_stage)
    assert result.exit_code == 1
    assert f"stage '{long_stage}' is 21 characters; the limit is" in result.stderr


def test_updating_a_stage_takes_its_current_values_as_defaults(project: Path) -> None:
    """dev's committed values (us-east-1, the documentation accounts) need no flags again."""
    result = CliRunner().invoke(
        main,
        ["init", "--stage", "dev", "--project-dir", str(project), "--no-input", "--dry-run"],
    )
    assert result.exit_code == 0, result.output
    env = read_config_document(CONFIG)[1]["stages"]["dev"]["environment_variables"]
    assert env["MFAWATCH_ALLOWED_ACCOUNTS"] == "111122223333,444455556666"
    assert result.stdout.strip().endswith("stage dev already says this; nothing to write")


def test_a_malformed_outputs_setting_is_named_not_a_traceback() -> None:
    config = _config()
    config["stages"]["dev"]["environment_variables"]["MFAWATCH_OUTPUTS"] = '{"alerts": "x"}'
    with pytest.raises(ConfigError, match=r"MFAWATCH_OUTPUTS\.alerts must be an object"):
        stage_init(config, _answers(stage="dev"))
