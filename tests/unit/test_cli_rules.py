"""Rule tooling on the command line: test-pattern, rules validate / test / list."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from mfawatch.cli import main
from tests.conftest import ROOT, load_event

PATTERN = {"source": ["aws.signin"], "detail": {"eventName": ["ConsoleLogin"]}}


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_test_pattern_prints_true_and_exits_zero_on_a_match() -> None:
    event = load_event("eventbridge-root-consolelogin-failure")
    code, out, _ = _run(
        "test-pattern", "--pattern", json.dumps(PATTERN), "--event", json.dumps(event)
    )
    assert (code, out) == (0, "true\n")


def test_test_pattern_prints_false_and_exits_one_on_no_match(tmp_path: Path) -> None:
    (tmp_path / "p.json").write_text(json.dumps({"source": ["aws.iam"]}))
    (tmp_path / "e.json").write_text(
        json.dumps(load_event("eventbridge-root-consolelogin-failure"))
    )
    code, out, _ = _run(
        "test-pattern", "--pattern", f"@{tmp_path / 'p.json'}", "--event", f"@{tmp_path / 'e.json'}"
    )
    assert (code, out) == (1, "false\n")


def test_test_pattern_wraps_a_bare_cloudtrail_record_and_says_so() -> None:
    record = load_event("iam-consolelogin-failure-mfa-yes")
    code, out, err = _run(
        "test-pattern", "--pattern", json.dumps(PATTERN), "--event", json.dumps(record)
    )
    assert (code, out) == (0, "true\n")
    assert "wrapped a bare CloudTrail record" in err


def test_invalid_pattern_exits_two_with_aws_reason() -> None:
    code, out, err = _run("test-pattern", "--pattern", '{"source": []}', "--event", "{}")
    assert code == 2 and out == ""
    assert "Event pattern is not valid. Reason:" in err
    code, _, err = _run("test-pattern", "--pattern", "{nope", "--event", "{}")
    assert code == 2 and "Filter is not valid JSON" in err


def test_unreadable_files_and_bad_event_json_exit_two_naming_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.json"
    code, _, err = _run("test-pattern", "--pattern", f"@{missing}", "--event", "{}")
    assert code == 2 and f"--pattern {missing}: cannot read" in err
    bad = tmp_path / "bad-event.json"
    bad.write_text("{not json")
    code, _, err = _run("test-pattern", "--pattern", json.dumps(PATTERN), "--event", f"@{bad}")
    assert code == 2 and f"--event {bad}: not valid JSON" in err
    code, _, err = _run("test-pattern", "--pattern", json.dumps(PATTERN), "--event", "[1]")
    assert code == 2 and "must be a JSON object" in err


@pytest.fixture
def rules_copy(tmp_path: Path) -> Path:
    """rules/ and tests/events/ copied so that event_file paths (../tests/events) resolve."""
    shutil.copytree(ROOT / "rules", tmp_path / "rules")
    shutil.copytree(ROOT / "tests" / "events", tmp_path / "tests" / "events")
    return tmp_path / "rules"


def test_rules_validate_is_clean_on_the_shipped_rules() -> None:
    code, out, _ = _run("rules", "validate")
    assert code == 0, out
    assert "rule file(s) valid" in out


def test_rules_validate_prints_each_error_with_file_and_json_path(rules_copy: Path) -> None:
    path = rules_copy / "root-console-failure.yaml"
    path.write_text(path.read_text().replace("severity: HIGH", "severity: SEVERE"))
    mfa = rules_copy / "mfa-device-removed.yaml"
    mfa.write_text(mfa.read_text().replace("eventName: [", "eventName: [{prefix: 1}, "))
    code, out, err = _run("rules", "validate", "--rules-dir", str(rules_copy))
    assert code == 1
    assert f"{path}: $.severity: " in out
    assert f"{mfa}: $.event_pattern: Event pattern is not valid" in out
    assert "2 error(s) in 2 of" in err


def test_rules_validate_reports_duplicate_ids(rules_copy: Path) -> None:
    text = (rules_copy / "root-console-failure.yaml").read_text()
    (rules_copy / "root-console-failure.yml").write_text(text)
    code, out, _ = _run("rules", "validate", "--rules-dir", str(rules_copy))
    assert code == 1 and "duplicate id" in out


def test_rules_test_passes_on_the_shipped_rules() -> None:
    code, out, _ = _run("rules", "test")
    assert code == 0, out
    assert "FAIL" not in out and "MISSING" not in out
    assert out.count("PASS ") >= 6
    assert ", 0 failed; 0 missing case(s)" in out


def test_rules_test_fails_on_a_broken_title(rules_copy: Path) -> None:
    path = rules_copy / "iam-console-mfa-failure.yaml"
    path.write_text(
        path.read_text().replace(
            'title: "Failed MFA sign-in for IAM user', 'title: "MFA sign-in for IAM user', 1
        )
    )
    code, out, _ = _run("rules", "test", "--rules-dir", str(rules_copy))
    assert code == 1
    assert "FAIL iam-console-mfa-failure: failed MFA step for an IAM user" in out
    assert "title 'MFA sign-in for IAM user ops-admin from 203.0.113.7' != expected" in out


def test_rules_test_fails_on_a_broken_pattern(rules_copy: Path) -> None:
    path = rules_copy / "mfa-device-removed.yaml"
    path.write_text(path.read_text().replace("DeactivateMFADevice, ", "", 1))
    code, out, _ = _run("rules", "test", "--rules-dir", str(rules_copy))
    assert code == 1
    assert (
        "FAIL mfa-device-removed: DeactivateMFADevice: expected match, pattern did not match" in out
    )


def test_rules_test_lists_rules_without_cases(rules_copy: Path) -> None:
    path = rules_copy / "mfa-device-removed.yaml"
    text = path.read_text()
    kept = [line for line in text.split("\n  - ") if "expect: no_match" not in line]
    path.write_text("\n  - ".join(kept))
    code, out, _ = _run("rules", "test", "--rules-dir", str(rules_copy))
    assert code == 1
    assert "MISSING mfa-device-removed: no negative case (expect: no_match)" in out


def test_rules_list_one_line_per_rule_with_what_it_matches() -> None:
    code, out, _ = _run("rules", "list")
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == len(list((ROOT / "rules").glob("*.yaml")))
    removed = next(line for line in lines if line.startswith("mfa-device-removed "))
    assert "HIGH" in removed and "alert" in removed
    assert "detail.eventSource=iam.amazonaws.com" in removed
    assert "detail.eventName=DeactivateMFADevice,DeleteVirtualMFADevice" in removed
