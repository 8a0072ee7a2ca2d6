"""Tests for mfawatch.patterns.engine, the offline EventBridge event-pattern engine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mfawatch.patterns.engine import (
    EventPattern,
    InvalidPatternError,
    compile_pattern,
    matches,
)

CONFORMANCE = (
    Path(__file__).resolve().parents[2].parent
    / "shared"
    / "eventbridge-conformance"
    / "aws-validated-cases.json"
)


def _conformance_cases() -> list[Any]:
    if not CONFORMANCE.is_file():
        return [pytest.param(None, id="conformance-file-absent")]
    cases = json.loads(CONFORMANCE.read_text(encoding="utf-8"))["cases"]
    return [pytest.param(case, id=case["name"]) for case in cases]


@pytest.mark.parametrize("case", _conformance_cases())
def test_gives_aws_outcome_on_validated_case(case: dict[str, Any] | None) -> None:
    if case is None:
        pytest.skip(f"{CONFORMANCE.parent} is absent (only present in the dev workspace)")
    if case["expect"] == "invalid":
        with pytest.raises(InvalidPatternError) as info:
            compile_pattern(case["pattern"])
        if "aws_error" in case:
            assert str(info.value) == case["aws_error"]
        return
    compiled = compile_pattern(case["pattern"])
    assert compiled.matches(case["event"]) is (case["expect"] == "match")


def _env(detail: dict[str, Any], **top: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "version": "0",
        "id": "1",
        "source": "aws.signin",
        "detail-type": "AWS Console Sign In via CloudTrail",
        "account": "123456789012",
        "region": "us-east-1",
        "time": "2024-05-01T10:00:00Z",
        "resources": [],
        "detail": detail,
    }
    event.update(top)
    return event


def _m(pattern: dict[str, Any], event: dict[str, Any]) -> bool:
    return compile_pattern(pattern).matches(event)


# --- CloudTrail sign-in shaped patterns -----------------------------------------------------

MFA_FAILURE = {
    "source": ["aws.signin"],
    "detail": {
        "eventName": ["ConsoleLogin"],
        "additionalEventData": {"MFAUsed": [{"equals-ignore-case": "yes"}]},
    },
}


@pytest.mark.parametrize("mfa_used", ["YES", "Yes", "yes"])
def test_signin_mfa_used_matches_any_case(mfa_used: str) -> None:
    detail = {"eventName": "ConsoleLogin", "additionalEventData": {"MFAUsed": mfa_used}}
    assert _m(MFA_FAILURE, _env(detail))


@pytest.mark.parametrize("mfa_used", ["No", "NO", "", "yess"])
def test_signin_mfa_not_used_does_not_match(mfa_used: str) -> None:
    detail = {"eventName": "ConsoleLogin", "additionalEventData": {"MFAUsed": mfa_used}}
    assert not _m(MFA_FAILURE, _env(detail))


def test_signin_pattern_needs_every_field() -> None:
    assert not _m(MFA_FAILURE, _env({"eventName": "ConsoleLogin"}))
    assert not _m(MFA_FAILURE, _env({"additionalEventData": {"MFAUsed": "Yes"}}))
    event = _env({"eventName": "ConsoleLogin", "additionalEventData": {"MFAUsed": "Yes"}})
    event["source"] = "aws.iam"
    assert not _m(MFA_FAILURE, event)


def test_identity_center_or_on_credential_verification_or_challenge() -> None:
    pattern = {
        "source": ["aws.signin"],
        "detail": {
            "serviceEventDetails": {"CredentialType": ["TOTP", "WEBAUTHN"]},
            "$or": [
                {"serviceEventDetails": {"CredentialVerification": ["Failure"]}},
                {"serviceEventDetails": {"CredentialChallenge": ["Failure"]}},
            ],
        },
    }
    fail_v = {"CredentialVerification": "Failure", "CredentialType": "TOTP"}
    fail_c = {"CredentialChallenge": "Failure", "CredentialType": "WEBAUTHN"}
    ok = {"CredentialVerification": "Success", "CredentialType": "TOTP"}
    password = {"CredentialVerification": "Failure", "CredentialType": "PASSWORD"}
    assert _m(pattern, _env({"serviceEventDetails": fail_v}))
    assert _m(pattern, _env({"serviceEventDetails": fail_c}))
    assert not _m(pattern, _env({"serviceEventDetails": ok}))
    assert not _m(pattern, _env({"serviceEventDetails": password}))


# --- exact values -------------------------------------------------------------------------------


def test_exact_string_is_case_sensitive() -> None:
    assert _m({"source": ["aws.signin"]}, _env({}))
    assert not _m({"source": ["AWS.SIGNIN"]}, _env({}))


def test_numbers_match_by_value_not_spelling() -> None:
    compiled = compile_pattern('{"n": [300]}')
    for text in ("300", "300.0", "3.0e2", "3e2"):
        assert compiled.matches(json.loads(f'{{"n": {text}}}'))
    assert not compiled.matches({"n": "300"})
    assert not compiled.matches({"n": 301})


def test_numbers_and_booleans_are_distinct() -> None:
    assert not _m({"n": [1]}, {"n": True})
    assert not _m({"n": [True]}, {"n": 1})
    assert not _m({"n": [0]}, {"n": False})
    assert _m({"n": [False]}, {"n": False})


def test_null_matches_only_json_null() -> None:
    assert _m({"f": [None]}, {"f": None})
    assert not _m({"f": [None]}, {"f": "null"})
    assert not _m({"f": [None]}, {})
    assert not _m({"f": [None]}, {"f": []})


def test_empty_string_matches_empty_value() -> None:
    assert _m({"f": [""]}, {"f": ""})
    assert not _m({"f": [""]}, {"f": "x"})


def test_event_array_matches_when_any_element_matches() -> None:
    assert _m({"resources": ["b"]}, {"resources": ["a", "b"]})
    assert not _m({"resources": ["c"]}, {"resources": ["a", "b"]})


def test_objects_inside_event_arrays_keep_fields_together() -> None:
    pattern = {"items": {"name": ["x"], "size": [1]}}
    assert _m(pattern, {"items": [{"name": "y", "size": 2}, {"name": "x", "size": 1}]})
    assert not _m(pattern, {"items": [{"name": "x", "size": 2}, {"name": "y", "size": 1}]})


def test_object_in_event_is_not_a_value() -> None:
    assert not _m({"f": ["x"]}, {"f": {"x": 1}})
    assert not _m({"f": [{"exists": True}]}, {"f": {"x": 1}})


def test_dotted_keys_are_the_same_field_as_nesting() -> None:
    assert _m({"a.b": ["x"]}, {"a": {"b": "x"}})
    assert _m({"a": {"b": ["x"]}}, {"a.b": "x"})
    assert _m({"a": {"b": ["x"], "c": ["y"]}}, {"a": {"b": "x"}, "a.c": "y"})
    assert not _m({"a": {"b": ["x"]}}, {"a": {"c": "x"}})


# --- prefix / suffix / equals-ignore-case / wildcard ------------------------------------------


def test_prefix_matches_string_start_only() -> None:
    assert _m({"r": [{"prefix": "us-"}]}, {"r": "us-east-1"})
    assert not _m({"r": [{"prefix": "us-"}]}, {"r": "eu-west-1"})
    assert not _m({"r": [{"prefix": "1"}]}, {"r": 12})


def test_prefix_equals_ignore_case() -> None:
    pattern = {"s": [{"prefix": {"equals-ignore-case": "EventB"}}]}
    assert _m(pattern, {"s": "eventbridge"})
    assert _m(pattern, {"s": "EVENTBRIDGE"})
    assert not _m(pattern, {"s": "bridge"})


def test_suffix_and_suffix_equals_ignore_case() -> None:
    assert _m({"f": [{"suffix": ".png"}]}, {"f": "a.png"})
    assert not _m({"f": [{"suffix": ".png"}]}, {"f": "a.PNG"})
    assert _m({"f": [{"suffix": {"equals-ignore-case": ".png"}}]}, {"f": "a.PNG"})


def test_equals_ignore_case_applies_to_strings_only() -> None:
    assert _m({"f": [{"equals-ignore-case": "Alice"}]}, {"f": "aLiCe"})
    assert not _m({"f": [{"equals-ignore-case": "1"}]}, {"f": 1})


def test_wildcard_star_matches_any_run_including_empty() -> None:
    pattern = {"arn": [{"wildcard": "arn:aws:iam::*:user/admin-*"}]}
    assert _m(pattern, {"arn": "arn:aws:iam::123456789012:user/admin-erin"})
    assert _m(pattern, {"arn": "arn:aws:iam::123456789012:user/admin-"})
    assert not _m(pattern, {"arn": "arn:aws:iam::123456789012:user/alice"})


def test_wildcard_escaped_star_is_literal() -> None:
    pattern = {"f": [{"wildcard": "a\\*b"}]}
    assert _m(pattern, {"f": "a*b"})
    assert not _m(pattern, {"f": "axb"})


@pytest.mark.parametrize(
    ("wildcard", "reason"),
    [
        ("a**b", "Consecutive wildcard characters at pos 2"),
        ("a\\b", "Invalid escape character at pos 1"),
        ("*:*:*:*:*:event-bus/*", "Rule is too complex"),
    ],
)
def test_wildcard_rejects_invalid_or_complex(wildcard: str, reason: str) -> None:
    with pytest.raises(InvalidPatternError) as info:
        compile_pattern({"f": [{"wildcard": wildcard}]})
    assert info.value.reason.startswith(reason)


# --- anything-but -----------------------------------------------------------------------------


def test_anything_but_single_and_list() -> None:
    assert _m({"s": [{"anything-but": "a"}]}, {"s": "b"})
    assert not _m({"s": [{"anything-but": "a"}]}, {"s": "a"})
    assert not _m({"n": [{"anything-but": [1, 2]}]}, {"n": 2.0})
    assert _m({"n": [{"anything-but": [1, 2]}]}, {"n": 3})


def test_anything_but_matches_null_and_other_types_but_not_missing() -> None:
    pattern = {"s": [{"anything-but": "a"}]}
    assert _m(pattern, {"s": None})
    assert _m(pattern, {"s": 5})
    assert not _m(pattern, {})


def test_anything_but_nested_operators() -> None:
    assert not _m({"r": [{"anything-but": {"prefix": "us-"}}]}, {"r": "us-east-1"})
    assert _m({"r": [{"anything-but": {"prefix": "us-"}}]}, {"r": "eu-west-1"})
    assert not _m({"f": [{"anything-but": {"suffix": [".png", ".jpg"]}}]}, {"f": "a.jpg"})
    assert not _m({"s": [{"anything-but": {"equals-ignore-case": "x"}}]}, {"s": "X"})
    assert not _m({"p": [{"anything-but": {"wildcard": "*/lib/*"}}]}, {"p": "/usr/lib/x"})
    assert _m({"p": [{"anything-but": {"wildcard": "*/lib/*"}}]}, {"p": "/usr/bin/x"})


def test_anything_but_rejects_mixed_types() -> None:
    with pytest.raises(InvalidPatternError, match="mixed type is not supported"):
        compile_pattern({"s": [{"anything-but": ["a", 1]}]})


# --- numeric --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "inside", "outside"),
    [
        (["=", 5], [5, 5.0], [4.999, 6]),
        (["<", 5], [4.9, -1], [5, 6]),
        (["<=", 5], [5], [5.1]),
        ([">", 5], [5.1], [5]),
        ([">=", 5], [5], [4.9]),
        ([">", 0, "<=", 5], [0.1, 5], [0, 5.1]),
        ([">=", 0, "<", 5], [0, 4.9], [-0.1, 5]),
    ],
)
def test_numeric_operators_and_ranges(
    expr: list[Any], inside: list[float], outside: list[float]
) -> None:
    compiled = compile_pattern({"n": [{"numeric": expr}]})
    assert all(compiled.matches({"n": v}) for v in inside)
    assert not any(compiled.matches({"n": v}) for v in outside)
    assert not compiled.matches({"n": "5"})
    assert not compiled.matches({"n": True})


@pytest.mark.parametrize(
    ("expr", "reason"),
    [
        ([">", 5, "<", 1], "Bottom must be less than top"),
        (["<", 5, ">", 1], "Too many elements in numeric expression"),
        ([">", 0, ">", 1], "Bad numeric range operator: >"),
        (["!=", 1], "Unrecognized numeric range operator: !="),
        (["=", "1"], "Value of equals must be numeric"),
        ([">", 0, "<", 5, 6], "Too many terms in numeric range expression"),
        ([], "Invalid member in numeric match: ]"),
        (["=", 6e9], "Numeric value 6000000000.0 out of range"),
    ],
)
def test_numeric_rejects_bad_expressions(expr: list[Any], reason: str) -> None:
    with pytest.raises(InvalidPatternError) as info:
        compile_pattern({"n": [{"numeric": expr}]})
    assert info.value.reason.startswith(reason)


# --- exists ---------------------------------------------------------------------------------


def test_exists_true_needs_a_leaf_value() -> None:
    pattern = {"f": [{"exists": True}]}
    assert _m(pattern, {"f": "x"})
    assert _m(pattern, {"f": None})
    assert not _m(pattern, {})
    assert not _m(pattern, {"f": []})


def test_exists_false_matches_absent_field() -> None:
    pattern = {"detail": {"errorCode": [{"exists": False}]}}
    assert _m(pattern, {"detail": {}})
    assert _m(pattern, {})
    assert not _m(pattern, {"detail": {"errorCode": "AccessDenied"}})


def test_exists_false_or_value() -> None:
    pattern = {"f": [{"exists": False}, "x"]}
    assert _m(pattern, {})
    assert _m(pattern, {"f": "x"})
    assert not _m(pattern, {"f": "y"})


# --- cidr -------------------------------------------------------------------------------------


def test_cidr_ipv4_and_ipv6() -> None:
    v4 = compile_pattern({"ip": [{"cidr": "10.0.0.0/24"}]})
    assert v4.matches({"ip": "10.0.0.255"})
    assert not v4.matches({"ip": "10.0.1.0"})
    assert not v4.matches({"ip": "AWS Internal"})
    assert not v4.matches({"ip": "::ffff:10.0.0.1"})
    v6 = compile_pattern({"ip": [{"cidr": "2001:db8::/32"}]})
    assert v6.matches({"ip": "2001:0db8:0000:0000:0000:0000:0000:0001"})
    assert not v6.matches({"ip": "10.0.0.1"})


def test_cidr_rejects_bad_mask() -> None:
    with pytest.raises(InvalidPatternError, match="mask bits"):
        compile_pattern({"ip": [{"cidr": "10.0.0.0/33"}]})


# --- $or ----------------------------------------------------------------------------------------


def test_or_at_top_level_and_nested() -> None:
    pattern = {
        "$or": [
            {"source": ["aws.iam"]},
            {"detail": {"$or": [{"a": ["1"]}, {"b": {"c": ["2"]}}]}},
        ]
    }
    assert _m(pattern, {"source": "aws.iam"})
    assert _m(pattern, {"source": "x", "detail": {"a": "1"}})
    assert _m(pattern, {"source": "x", "detail": {"b": {"c": "2"}}})
    assert not _m(pattern, {"source": "x", "detail": {"b": {"c": "3"}}})


def test_or_needs_two_objects() -> None:
    with pytest.raises(InvalidPatternError, match="at least 2 Objects"):
        compile_pattern({"$or": [{"a": ["1"]}]})


# --- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("[1]", "Filter is not an object"),
        ("{", "Filter is not valid JSON"),
        ({}, "Empty objects are not allowed"),
        ({"a": {}}, "Empty objects are not allowed"),
        ({"a": []}, "Empty arrays are not allowed"),
        ({"a": "x"}, '"a" must be an object or an array'),
        ({"a": [["x"]]}, "Match value must be String, number, true, false, or null"),
        ({"a": [{"prefix": "x", "suffix": "y"}]}, "Only one key allowed in match expression"),
        ({"a": [{"Prefix": "x"}]}, "Unrecognized match type Prefix"),
        ({"a": [{"exists": "yes"}]}, "exists match pattern must be either true or false."),
        ({"a": [{"anything-but": {"numeric": [">", 1]}}]}, "Unsupported anything-but pattern"),
    ],
)
def test_invalid_patterns_are_rejected_with_aws_reason(pattern: Any, reason: str) -> None:
    with pytest.raises(InvalidPatternError) as info:
        compile_pattern(pattern)
    assert info.value.reason.startswith(reason)
    assert str(info.value).startswith("Event pattern is not valid. Reason: ")


def test_pattern_size_limit() -> None:
    big = {"a": ["x" * 3000]}
    with pytest.raises(InvalidPatternError, match="exceeding the maximum of 2048"):
        compile_pattern(big)
    assert compile_pattern(big, max_size=4096).matches({"a": "x" * 3000})
    assert compile_pattern(big, max_size=None).matches({"a": "x" * 3000})


def test_invalid_pattern_error_is_a_value_error() -> None:
    assert issubclass(InvalidPatternError, ValueError)


# --- API ----------------------------------------------------------------------------------------


def test_compile_accepts_json_text_and_keeps_pattern() -> None:
    compiled = compile_pattern('{"source": ["aws.signin"]}')
    assert isinstance(compiled, EventPattern)
    assert compiled.pattern == {"source": ["aws.signin"]}
    assert compiled.matches({"source": "aws.signin"})


def test_a_pattern_compiled_again_matches_alike_and_keeps_its_own_copy() -> None:
    text = '{"detail": {"eventName": ["ConsoleLogin"], "errorMessage": [{"exists": true}]}}'
    first, again = compile_pattern(text), compile_pattern(json.loads(text))
    event = {"detail": {"eventName": "ConsoleLogin", "errorMessage": "Failed authentication"}}
    assert first.matches(event) and again.matches(event)
    assert not again.matches({"detail": {"eventName": "ConsoleLogin"}})
    first.pattern["detail"] = {"eventName": ["Other"]}
    assert again.pattern == json.loads(text)


def test_what_is_not_plain_json_is_validated_anew_after_its_json_twin_compiled() -> None:
    compile_pattern({"source": ["aws.signin"]})
    # A tuple has the JSON text of a list, but it is no array to EventBridge's validation.
    with pytest.raises(InvalidPatternError):
        compile_pattern({"source": ("aws.signin",)})
    assert compile_pattern({"source": ["aws.signin"]}).matches({"source": "aws.signin"})


def test_matches_convenience() -> None:
    assert matches({"source": ["aws.signin"]}, {"source": "aws.signin"})
    assert matches(compile_pattern({"source": ["x"]}), {"source": "x"})
    assert not matches('{"source": ["x"]}', {"source": "y"})


# --- properties ---------------------------------------------------------------------------------

_finite = st.floats(min_value=-5e9, max_value=5e9, allow_nan=False, allow_infinity=False)
_keys = st.text(alphabet="abcdefgh-_", min_size=1, max_size=6)
_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**9), max_value=10**9),
    _finite,
    st.text(max_size=8),
)
_events = st.recursive(
    st.dictionaries(_keys, _leaf, min_size=1, max_size=4),
    lambda children: st.dictionaries(
        _keys, st.one_of(_leaf, children, st.lists(_leaf, min_size=1, max_size=3)), max_size=4
    ),
    max_leaves=12,
)


@given(st.integers(min_value=-(10**9), max_value=10**9))
def test_property_numeric_equality_is_by_value(n: int) -> None:
    compiled = compile_pattern({"n": [n]})
    assert compiled.matches({"n": float(n)})
    assert compiled.matches({"n": n})
    assert compile_pattern({"n": [{"numeric": ["=", n]}]}).matches({"n": float(n)})


@given(_finite, _finite)
def test_property_numeric_range_agrees_with_python(x: float, bound: float) -> None:
    assert compile_pattern({"n": [{"numeric": ["<", bound]}]}).matches({"n": x}) is (x < bound)
    assert compile_pattern({"n": [{"numeric": [">=", bound]}]}).matches({"n": x}) is (x >= bound)


def _pattern_from(event: dict[str, Any]) -> dict[str, Any]:
    pattern: dict[str, Any] = {}
    for key, value in event.items():
        if "." in key:
            continue
        if isinstance(value, dict):
            sub = _pattern_from(value)
            if sub:
                pattern[key] = sub
        elif isinstance(value, list):
            if value:
                pattern[key] = list(value)
        else:
            pattern[key] = [value]
    return pattern


@given(_events)
def test_property_pattern_built_from_event_leaves_matches_it(event: dict[str, Any]) -> None:
    pattern = _pattern_from(event)
    if not pattern:
        return
    assert compile_pattern(pattern, max_size=None).matches(event)


@given(_events, _keys)
def test_property_exists_false_on_absent_key_always_matches(
    event: dict[str, Any], key: str
) -> None:
    absent = key + "-absent"
    assert compile_pattern({absent: [{"exists": False}]}).matches(event)
