"""Rules as data: every case of every rule, validation errors, the compiled bundle."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from chalicelib.core.errors import RuleError
from chalicelib.core.records import as_envelope, parse_event
from chalicelib.core.rules import BUNDLE_PATH, RuleSet, bundle_json, load_bundle
from mfawatch.paths import RULES_DIR
from mfawatch.patterns.engine import compile_pattern
from mfawatch.rules.build import (
    CaseResult,
    build_bundle,
    load_rules_dir,
    read_rule_document,
    run_rule_cases,
    validate_rule_file,
    validate_rules_dir,
)
from tests.conftest import SAMPLES, load_event, load_sample, needs_shared
from tests.support.rules import shipped_rule_files

REQUIRED = {
    "iam-console-mfa-failure",
    "identity-center-mfa-failure",
    "root-console-failure",
    "mfa-device-removed",
    "identity-center-mfa-removed",
}
FILES = shipped_rule_files()
CASES = run_rule_cases(FILES)


def test_required_rules_ship() -> None:
    assert {f.rule.id for f in FILES} >= REQUIRED


def test_every_rule_has_positive_and_negative_cases() -> None:
    for rule_file in FILES:
        expects = {case.expect for case in rule_file.cases}
        assert expects == {"match", "no_match"}, rule_file.rule.id


@pytest.mark.parametrize("result", CASES, ids=lambda r: f"{r.case.rule_id}: {r.case.name}")
def test_rule_case(result: CaseResult) -> None:
    assert result.passed, result.failures
    if result.case.expect == "match":
        assert result.title == result.case.title
        assert result.dedup_key == result.case.dedup_key


def test_compiled_bundle_is_fresh() -> None:
    assert not bundle_is_stale(), "chalicelib/rules.json is stale: run `make rules`"


def test_bundle_carries_every_rule_exactly_as_in_rules_dir() -> None:
    bundle = load_bundle()
    assert bundle.ids == tuple(sorted(f.rule.id for f in FILES))
    for rule_file in FILES:
        assert bundle.get(rule_file.rule.id) == rule_file.rule


def test_stale_bundle_is_detected(tmp_path: Path) -> None:
    rules_dir = tmp_path / "rules"
    shutil.copytree(RULES_DIR, rules_dir)
    bundle = tmp_path / "rules.json"
    # event_file paths are relative to the rule file: copy the fixtures beside the copy.
    shutil.copytree(RULES_DIR.parent / "tests" / "events", tmp_path / "tests" / "events")
    build_bundle(rules_dir, bundle)
    assert not bundle_is_stale(rules_dir, bundle)
    path = rules_dir / "root-console-failure.yaml"
    path.write_text(path.read_text().replace("severity: HIGH", "severity: CRITICAL"))
    assert bundle_is_stale(rules_dir, bundle)


def bundle_is_stale(rules_dir: Path = RULES_DIR, bundle_path: Path = BUNDLE_PATH) -> bool:
    """True when the compiled bundle differs from what ``rules_dir`` compiles to."""
    expected = bundle_json([f.rule for f in load_rules_dir(rules_dir)])
    try:
        return bundle_path.read_text(encoding="utf-8") != expected
    except FileNotFoundError:
        return True


NEAR_MISSES = {
    "wrong password without MFA": "iam-consolelogin-failure-mfa-no",
    "successful sign-in with MFA": "iam-consolelogin-success-mfa-yes",
    "CheckMfa": "iam-checkmfa",
    "Identity Center password failure": "idc-new-credentialverification-password-failure",
    "TOTP challenge": "idc-new-credentialchallenge-totp",
    "password challenge": "idc-new-credentialchallenge-password",
    "denied by an RCP after the MFA step": "iam-consolelogin-failure-rcp-denied-mfa-yes",
    "denied by a resource-based policy": "iam-consolelogin-failure-rbp-denied",
    "denied aws login": "signin-authorizeoauth2access-failure",
}


@pytest.mark.parametrize("fixture", NEAR_MISSES.values(), ids=list(NEAR_MISSES))
def test_near_misses_stay_silent_for_the_mfa_failure_rules(fixture: str) -> None:
    envelope = as_envelope(load_event(fixture))
    for rule_id in (
        "iam-console-mfa-failure",
        "identity-center-mfa-failure",
        "root-console-failure",
    ):
        rule = load_bundle().get(rule_id)
        assert not compile_pattern(rule.event_pattern).matches(envelope), (rule_id, fixture)


def _matches(rule_id: str, event: dict[str, object]) -> bool:
    return compile_pattern(load_bundle().get(rule_id).event_pattern).matches(as_envelope(event))


def test_each_policy_denial_marker_alone_keeps_the_mfa_failure_rule_silent() -> None:
    denied = load_event("iam-consolelogin-failure-rcp-denied-mfa-yes")
    code_only = {k: v for k, v in denied.items() if k != "errorMessage"}
    message_only = {k: v for k, v in denied.items() if k != "errorCode"}
    neither = {k: v for k, v in code_only.items() if k != "errorCode"}
    assert not _matches("iam-console-mfa-failure", denied)
    assert not _matches("iam-console-mfa-failure", code_only)
    assert not _matches("iam-console-mfa-failure", message_only)
    # Without both markers the same event is a failed MFA step: the exclusion is what stops it.
    assert _matches("iam-console-mfa-failure", neither)
    # Only AccessDenied and the "Authorization denied" message are excluded, not any error.
    assert _matches("iam-console-mfa-failure", dict(neither, errorCode="SomeOtherError"))
    assert _matches("iam-console-mfa-failure", dict(neither, errorMessage="Failed authentication"))


def test_identity_center_mfa_removal_alert_names_the_caller() -> None:
    rule = load_bundle().get("identity-center-mfa-removed")
    assert rule.severity == "HIGH"
    record = parse_event(load_event("idc-deletemfadeviceforuser-admin"))
    assert rule.render_title(record) == (
        "Identity Center MFA device removed by "
        "AWSReservedSSO_AdministratorAccess_0123456789abcdef/alice@example.com "
        "(DeleteMfaDeviceForUser)"
    )
    assert rule.dedup_key_of(record) == (
        "111122223333|AWSReservedSSO_AdministratorAccess_0123456789abcdef/alice@example.com"
        "|203.0.113.80"
    )
    own = parse_event(load_event("idc-deletemfadeviceforuser-self"))
    assert rule.dedup_key_of(own) == (
        "111122223333|94d00cd8-e9e6-4810-b177-b08e84725435|198.51.100.23"
    )


@pytest.mark.parametrize(
    "fixture",
    [
        "idc-deletemfadeviceforuser-denied",
        "idc-updatemfadeviceforuser",
        "idc-completevirtualmfadeviceregistration",
        "iam-deletevirtualmfadevice",
        "iam-deactivatemfadevice",
    ],
)
def test_identity_center_mfa_removal_near_misses(fixture: str) -> None:
    assert not _matches("identity-center-mfa-removed", load_event(fixture))


def test_aws_login_counts_as_a_sign_in_success_for_the_failing_user() -> None:
    rule = load_bundle().get("sign-in-success")
    assert (rule.signal, rule.mode) == ("success", "context")
    event = load_event("signin-authorizeoauth2access-iamuser")
    assert _matches("sign-in-success", event)
    record = parse_event(event)
    failure = parse_event(load_event("iam-consolelogin-failure-mfa-yes"))
    assert rule.dedup_key_of(record) == rule.dedup_key_of(failure) == "111122223333|ops-admin"
    assert rule.render_title(record) == (
        "MFA fatigue success: ops-admin signed in from 198.51.100.77 after repeated MFA failures"
    )
    # The token exchange and its refreshes are not sign-ins; a refused authorization is no success.
    assert not _matches("sign-in-success", load_event("signin-createoauth2token-iamuser"))
    assert not _matches("sign-in-success", load_event("signin-authorizeoauth2access-failure"))
    assert not _matches("sign-in-success", dict(event, additionalEventData={"success": "false"}))


@pytest.mark.parametrize(
    "fixture",
    [
        "assumedrole-sso-consolelogin-success",
        "assumedrole-saml-consolelogin-success",
        "federateduser-consolelogin-success",
        "signin-authorizeoauth2access-iamuser",
        "signin-authorizeoauth2access-root",
        "signin-authorizeoauth2access-assumedrole",
    ],
)
def test_success_without_mfa_rules_stay_silent_for_federated_sessions_and_aws_login(
    fixture: str,
) -> None:
    event = load_event(fixture)
    for rule_id in ("iam-console-success-without-mfa", "root-console-success-without-mfa"):
        assert not _matches(rule_id, event), (rule_id, fixture)


# Which shipped rules each shared sample must trigger (samples not listed trigger none).
SUCCESS = "sign-in-success"  # context: checked for MFA fatigue, silent otherwise
STEPS = "identity-center-sign-in-steps"  # context: records who a workflow belongs to
WITHOUT_MFA = "iam-console-success-without-mfa"
ROOT_WITHOUT_MFA = "root-console-success-without-mfa"
PASSWORD = "console-password-failure"
TAKEOVER = "mfa-takeover-steps"
SHARED_MATCHES = {
    "iam-consolelogin-failure-mfa-yes.awsdoc.json": {"iam-console-mfa-failure"},
    "iam-consolelogin-failure-mfa-yes.panther.json": {"iam-console-mfa-failure"},
    "iam-consolelogin-failure-mfa-yes-no-errormessage.panther-synthetic.json": {
        "iam-console-mfa-failure"
    },
    "root-consolelogin-failure.awsdoc.json": {"root-console-failure"},
    "root-consolelogin-failure.panther-synthetic.json": {"root-console-failure"},
    "root-consolelogin-failure.spanish-lab.json": {"root-console-failure"},
    "eventbridge-signin-root-consolelogin-failure.unittest.json": {"root-console-failure"},
    "root-consolelogin-success-mfa-no.awsdoc.json": {ROOT_WITHOUT_MFA, SUCCESS},
    "root-consolelogin-success-mfa-yes.awsdoc.json": {SUCCESS},
    "eventbridge-signin-root-consolelogin-success.aws-sample.json": {ROOT_WITHOUT_MFA, SUCCESS},
    "iam-deactivatemfadevice.elastic.json": {"mfa-device-removed"},
    "eventbridge-signin-iam-consolelogin-failure-mfa-no.blog-2018.json": {PASSWORD},
    "iam-consolelogin-failure-mfa-no.elastic.json": {PASSWORD},
    "idc-new-credentialverification-password-failure.awsdoc.json": {PASSWORD},
    "idc-old-credentialverification-password-failure.awsdoc.json": {PASSWORD},
    "iam-createvirtualmfadevice.elastic.json": {TAKEOVER},
    "iam-createvirtualmfadevice.panther.json": {TAKEOVER},
    "iam-enablemfadevice-other-user.elastic.json": {TAKEOVER},
    "root-enablemfadevice.awsdoc.json": {TAKEOVER},
    "iam-consolelogin-success-mfa-no.awsdoc.json": {WITHOUT_MFA, SUCCESS},
    "iam-consolelogin-success-mfa-no.stratus.json": {WITHOUT_MFA, SUCCESS},
    "iam-consolelogin-success-mfa-no.stratus-challenge.json": {WITHOUT_MFA, SUCCESS},
    "iam-consolelogin-success-mfa-yes-u2f.awsdoc.json": {SUCCESS},
    "iam-consolelogin-success-mfa-yes.korean-blog.json": {SUCCESS},
    **{
        f"idc-{name}.awsdoc.json": {SUCCESS}
        for name in [
            "new-userauthentication-external-idp",
            "new-userauthentication-password-totp",
            "old-userauthentication-external-idp",
            "old-userauthentication-mfa-enrollment",
            "old-userauthentication-password-totp",
            "old-userauthentication-password",
        ]
    },
    **{
        f"idc-{name}.awsdoc.json": {STEPS}
        for name in [
            "new-credentialchallenge-password-failedflow",
            "new-credentialchallenge-password",
            "new-credentialchallenge-totp",
            "new-credentialverification-password-success",
            "new-credentialverification-totp-success",
            "old-credentialchallenge-password-failedflow",
            "old-credentialchallenge-password",
            "old-credentialchallenge-totp",
            "old-credentialverification-password-success-totpflow",
            "old-credentialverification-password-success",
            "old-credentialverification-totp-success",
        ]
    },
}


@needs_shared
@pytest.mark.parametrize(
    "path", sorted(SAMPLES.glob("*.json")) if SAMPLES.is_dir() else [], ids=lambda p: p.name
)
def test_shared_samples_trigger_exactly_the_expected_rules(path: Path, rules: RuleSet) -> None:
    matchers = [(r.id, compile_pattern(r.event_pattern)) for r in rules]
    for event in load_sample(path):
        envelope = as_envelope(event)
        fired = {rule_id for rule_id, m in matchers if m.matches(envelope)}
        assert fired == SHARED_MATCHES.get(path.name, set()), path.name


# --- validation errors name the file and the JSON path -------------------------------------------


def _write_rule(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


VALID = (RULES_DIR / "root-console-failure.yaml").read_text()


def _errors(tmp_path: Path, text: str, name: str = "root-console-failure.yaml") -> list[RuleError]:
    return validate_rule_file(_write_rule(tmp_path, name, text))


def test_valid_copy_has_no_errors(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    shutil.copytree(RULES_DIR.parent / "tests" / "events", tmp_path / "tests" / "events")
    (tmp_path / "rules").mkdir()
    assert (
        validate_rule_file(_write_rule(tmp_path / "rules", "root-console-failure.yaml", VALID))
        == []
    )


def test_bad_severity_names_file_and_field(tmp_path: Path) -> None:
    errors = _errors(tmp_path, VALID.replace("severity: HIGH", "severity: URGENT"))
    assert any(e.path == "$.severity" and "root-console-failure.yaml" in str(e) for e in errors)


def test_id_must_equal_file_name(tmp_path: Path) -> None:
    errors = _errors(tmp_path, VALID, name="other-name.yaml")
    assert any(e.path == "$.id" and "must equal the file name" in e.message for e in errors)


def test_invalid_event_pattern_is_reported_at_event_pattern(tmp_path: Path) -> None:
    text = VALID.replace("eventName: [ConsoleLogin]", "eventName: []")
    errors = _errors(tmp_path, text)
    assert [e.path for e in errors][:1] == ["$.event_pattern"]


def test_unknown_title_field_is_reported(tmp_path: Path) -> None:
    text = VALID.replace("from {source_ip}", "from {sauce_ip}")
    errors = _errors(tmp_path, text)
    assert any(e.path == "$.title" and "sauce_ip" in e.message for e in errors)


def test_missing_expected_title_on_a_match_case(tmp_path: Path) -> None:
    text = VALID.replace(
        '    title: "Failed root sign-in to account 111122223333 from 192.0.2.44"\n', "", 1
    )
    errors = _errors(tmp_path, text)
    assert any(
        e.path == "$.tests[0]" and "'title' is a required property" in e.message for e in errors
    )


def test_missing_event_file_names_the_case(tmp_path: Path) -> None:
    errors = _errors(tmp_path, VALID)  # event_file paths do not resolve from tmp_path
    assert errors and errors[0].path == "$.tests[0].event_file"
    assert "cannot read" in errors[0].message


def test_yaml_duplicate_key_is_an_error(tmp_path: Path) -> None:
    errors = _errors(tmp_path, VALID.replace("severity: HIGH", "severity: HIGH\nseverity: LOW"))
    assert errors and "duplicate key 'severity'" in errors[0].message


def test_yaml_yes_no_stay_strings(tmp_path: Path) -> None:
    path = _write_rule(tmp_path, "x.yaml", "a: Yes\nb: no\nc: true\nd: YES\n")
    assert read_rule_document(path) == {"a": "Yes", "b": "no", "c": True, "d": "YES"}


def test_broken_yaml_names_the_file(tmp_path: Path) -> None:
    errors = _errors(tmp_path, "id: [unclosed\n")
    assert (
        errors
        and "not valid YAML" in errors[0].message
        and "root-console-failure.yaml" in str(errors[0])
    )


def test_duplicate_ids_across_files(tmp_path: Path) -> None:
    rules_dir = tmp_path / "rules"
    shutil.copytree(RULES_DIR, rules_dir)
    shutil.copytree(RULES_DIR.parent / "tests" / "events", tmp_path / "tests" / "events")
    doc = json.dumps(read_rule_document(rules_dir / "root-console-failure.yaml"))
    (rules_dir / "root-console-failure.json").write_text(doc)
    errors = validate_rules_dir(rules_dir)
    assert any("duplicate id" in e.message for e in errors)


def test_missing_bundle_says_how_to_build_it(tmp_path: Path) -> None:
    with pytest.raises(RuleError, match="rules build"):
        load_bundle(tmp_path / "nope.json")


def test_bundle_path_is_inside_chalicelib() -> None:
    assert BUNDLE_PATH.parent.name == "chalicelib"
