"""Coverage audit: per account x Region, against moto (several accounts through assumed roles)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from click.testing import CliRunner
from moto import mock_aws

from chalicelib.audit import (
    DISABLED,
    ERROR,
    MISSING,
    NOT_COVERED,
    NOT_REQUIRED,
    OK,
    PARTIAL,
    WRONG_TARGET,
    AssumeRoleClients,
    ObservedRule,
    assess_rules,
    cell_status,
    pattern_difference,
    run_audit,
)
from chalicelib.forwarder import (
    expected_rules,
    forwarding_rule_name,
    member_template,
    parse_central_bus_arn,
)
from chalicelib.orgcommands import make_audit_command
from chalicelib.rules import RuleSet

# moto's default account: MOTO_ACCOUNT_ID would pin *every* request (assumed roles included) to one
# account, so the caller stays in the default account and members are reached by AssumeRole.
CENTRAL = "123456789012"
MEMBER = "222233334444"
OTHER = "333344445555"
BUS_ARN = f"arn:aws:events:us-east-1:{CENTRAL}:event-bus/mfawatch-central"
CENTRAL_BUS = parse_central_bus_arn(BUS_ARN)


# --- a tiny evaluator of the template's Conditions, so tests deploy what CloudFormation would ---


def evaluate_condition(node: Any, conditions: Mapping[str, Any], region: str, account: str) -> bool:
    """Evaluate a CloudFormation condition (Fn::Equals/Or/And/Not, Condition, Ref pseudo-params)."""

    def value(item: Any) -> Any:
        if isinstance(item, dict) and "Ref" in item:
            return {"AWS::Region": region, "AWS::AccountId": account}[item["Ref"]]
        return item

    (op, arg), *_ = node.items()
    if op == "Condition":
        return evaluate_condition(conditions[arg], conditions, region, account)
    if op == "Fn::Equals":
        return bool(value(arg[0]) == value(arg[1]))
    if op == "Fn::Not":
        return not evaluate_condition(arg[0], conditions, region, account)
    if op == "Fn::And":
        return all(evaluate_condition(a, conditions, region, account) for a in arg)
    if op == "Fn::Or":
        return any(evaluate_condition(a, conditions, region, account) for a in arg)
    raise AssertionError(f"unexpected intrinsic {op}")


def stack_resources(
    template: Mapping[str, Any], region: str, account: str, kind: str
) -> list[dict[str, Any]]:
    """The resources of ``kind`` that a stack instance in ``account``/``region`` would create."""
    conditions = template.get("Conditions", {})
    return [
        resource
        for resource in template["Resources"].values()
        if resource["Type"] == kind
        and (
            "Condition" not in resource
            or evaluate_condition({"Condition": resource["Condition"]}, conditions, region, account)
        )
    ]


def deploy_member_rules(client: Any, template: Mapping[str, Any], region: str, account: str) -> int:
    """Create the template's forwarding rules (pattern and targets as written) with boto3."""
    rules = [
        resource
        for resource in stack_resources(template, region, account, "AWS::Events::Rule")
        if "EventPattern" in resource["Properties"]  # the scheduled heartbeat is not forwarding
    ]
    for resource in rules:
        props = resource["Properties"]
        client.put_rule(
            Name=props["Name"],
            EventPattern=json.dumps(props["EventPattern"]),
            State=props["State"],
            EventBusName=props["EventBusName"],
        )
        client.put_targets(
            Rule=props["Name"],
            EventBusName=props["EventBusName"],
            Targets=[
                {
                    "Id": t["Id"],
                    "Arn": t["Arn"],
                    "RoleArn": f"arn:aws:iam::{account}:role/mfawatch/mfawatch-forwarder-{region}",
                }
                for t in props["Targets"]
            ],
        )
    return len(rules)


# --- pure assessment ----------------------------------------------------------------------------


def test_assess_rules_names_each_kind_of_gap(rules: RuleSet) -> None:
    a, b, c, d = list(rules)[:4]
    observed = {
        forwarding_rule_name(a): ObservedRule(
            forwarding_rule_name(a), "ENABLED", (BUS_ARN,), json.dumps(a.event_pattern)
        ),
        forwarding_rule_name(b): ObservedRule(forwarding_rule_name(b), "DISABLED", (BUS_ARN,)),
        forwarding_rule_name(c): ObservedRule(
            forwarding_rule_name(c), "ENABLED", ("arn:aws:sqs:us-east-1:1:q",)
        ),
    }
    result = assess_rules([a, b, c, d], observed, BUS_ARN)
    assert [(r.rule_id, r.status) for r in result] == [
        (a.id, OK),
        (b.id, DISABLED),
        (c.id, WRONG_TARGET),
        (d.id, MISSING),
    ]
    assert "arn:aws:sqs:us-east-1:1:q" in result[2].detail
    assert cell_status(result) == PARTIAL
    assert cell_status(result[:1]) == OK
    assert cell_status(result[3:]) == NOT_COVERED
    assert cell_status(()) == NOT_REQUIRED


def test_pattern_difference_compares_canonical_json_and_names_paths() -> None:
    expected = {"source": ["aws.signin"], "detail": {"eventName": ["ConsoleLogin"], "x": [1]}}
    assert pattern_difference('{"detail":{"x":[1],"eventName":["ConsoleLogin"]},'
                              '"source":["aws.signin"]}', expected) == ""  # fmt: skip
    assert pattern_difference(None, expected) == "the rule has no EventPattern"
    assert pattern_difference("{", expected) == "its EventPattern is not JSON"
    assert pattern_difference('{"source": ["aws.signin"]}', expected) == (
        "EventPattern differs from the rules bundle at detail (missing)"
    )
    assert pattern_difference('["aws.signin"]', expected) == (
        "EventPattern differs from the rules bundle at the whole pattern"
    )
    many = {f"k{i}": [i] for i in range(9)}
    assert pattern_difference(json.dumps(many), {}) == (
        "EventPattern differs from the rules bundle at k0 (not in the bundle), k1 (not in the "
        "bundle), k2 (not in the bundle), k3 (not in the bundle), k4 (not in the bundle) and 4 "
        "more"
    )
    # Array order is kept: EventBridge stores the pattern as written.
    assert pattern_difference('{"source": ["b", "a"]}', {"source": ["a", "b"]}) == (
        "EventPattern differs from the rules bundle at source"
    )


def test_template_conditions_match_the_audit_expectation(rules: RuleSet) -> None:
    """What a stack instance creates is exactly what the audit expects there."""
    regions = ["us-east-1", "eu-west-1", "ap-southeast-2"]
    for central_arn in (BUS_ARN, f"arn:aws:events:us-east-1:{CENTRAL}:event-bus/default"):
        central = parse_central_bus_arn(central_arn)
        template = member_template(rules, central, regions).template
        for account in (CENTRAL, MEMBER):
            for region in [*regions, "sa-east-1"]:
                created = {
                    r["Properties"]["Name"]
                    for r in stack_resources(template, region, account, "AWS::Events::Rule")
                    if "EventPattern" in r["Properties"]  # the heartbeat is checked centrally
                }
                expected = (
                    {
                        forwarding_rule_name(r)
                        for r in expected_rules(rules, region, account, central)
                    }
                    if region in regions
                    else set()
                )
                assert created == expected, (central_arn, account, region)


# --- against moto -------------------------------------------------------------------------------


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[boto3.Session]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("MOTO_ACCOUNT_ID", raising=False)
    with mock_aws():
        yield boto3.Session(region_name="us-east-1")


def _member_client(session: boto3.Session, account: str, region: str) -> Any:
    return AssumeRoleClients(session, "mfawatch-audit")(account, region)


@pytest.fixture
def member_estate(aws: boto3.Session, rules: RuleSet) -> boto3.Session:
    """MEMBER: full coverage in us-east-1, a damaged eu-west-1, nothing in ap-southeast-2."""
    template = member_template(rules, CENTRAL_BUS).template
    east = _member_client(aws, MEMBER, "us-east-1")
    assert deploy_member_rules(east, template, "us-east-1", MEMBER) == len(rules)
    west = _member_client(aws, MEMBER, "eu-west-1")
    deploy_member_rules(west, template, "eu-west-1", MEMBER)
    names = [forwarding_rule_name(r) for r in expected_rules(rules, "eu-west-1")]
    west.disable_rule(Name=names[0])
    west.put_targets(
        Rule=names[1],
        Targets=[{"Id": "mfawatch-central-bus", "Arn": BUS_ARN.replace(CENTRAL, OTHER)}],
    )
    west.remove_targets(Rule=names[2], Ids=["mfawatch-central-bus"])
    west.delete_rule(Name=names[2])
    return aws


def test_audit_reports_each_region_of_a_member_through_its_role(
    member_estate: boto3.Session, rules: RuleSet
) -> None:
    clients = AssumeRoleClients(member_estate, "mfawatch-audit")
    assert clients.caller_account == CENTRAL
    report = run_audit(
        rules, CENTRAL_BUS, [MEMBER], ["us-east-1", "eu-west-1", "ap-southeast-2"], clients
    )
    east, west, sydney = report.cells
    assert (east.status, west.status, sydney.status) == (OK, PARTIAL, NOT_COVERED)
    assert len(east.rules) == len(rules)
    west_status = {r.rule_name: r.status for r in west.rules}
    names = [forwarding_rule_name(r) for r in expected_rules(rules, "eu-west-1")]
    assert west_status[names[0]] == DISABLED
    assert west_status[names[1]] == WRONG_TARGET
    assert west_status[names[2]] == MISSING
    assert "mfawatch-mfa-device-removed" not in west_status  # IAM events: us-east-1 only
    assert report.missing_regions() == {MEMBER: ["ap-southeast-2"]}
    assert not report.ok


def test_accounts_are_isolated(member_estate: boto3.Session, rules: RuleSet) -> None:
    """Another account sees none of MEMBER's rules: moto keys state by the assumed account."""
    report = run_audit(
        rules,
        CENTRAL_BUS,
        [OTHER, CENTRAL],
        ["us-east-1"],
        AssumeRoleClients(member_estate, "mfawatch-audit"),
    )
    assert [c.status for c in report.cells] == [NOT_COVERED, NOT_COVERED]


def test_unreadable_account_is_an_error_cell_not_a_crash(
    aws: boto3.Session, rules: RuleSet
) -> None:
    def clients(account: str, region: str) -> Any:
        if account == OTHER:
            raise ClientError(
                {"Error": {"Code": "AccessDenied", "Message": "not authorized"}}, "AssumeRole"
            )
        return aws.client("events", region_name=region)

    report = run_audit(rules, CENTRAL_BUS, [OTHER], ["us-east-1"], clients)
    (cell,) = report.cells
    assert cell.status == ERROR
    assert "AccessDenied" in cell.error
    assert report.missing_regions() == {OTHER: ["us-east-1"]}


def _invoke(session: boto3.Session, *args: str) -> Any:
    command = make_audit_command(session_factory=lambda: session)
    return CliRunner().invoke(command, ["--central-bus-arn", BUS_ARN, *args])


def test_cli_json_output_and_exit_code(member_estate: boto3.Session, rules: RuleSet) -> None:
    result = _invoke(
        member_estate, "--accounts", MEMBER, "--regions", "us-east-1,eu-west-1", "--output", "json"
    )
    assert result.exit_code == 1, result.output
    document = json.loads(result.stdout)
    assert document["ok"] is False
    assert [(c["region"], c["status"]) for c in document["cells"]] == [
        ("us-east-1", OK),
        ("eu-west-1", PARTIAL),
    ]
    assert document["missing_regions"] == {}

    covered = _invoke(member_estate, "--accounts", MEMBER, "--regions", "us-east-1")
    assert covered.exit_code == 0, covered.output
    assert f"{MEMBER}  us-east-1" in covered.stdout
    assert f"{len(rules)}/{len(rules)} rules forward to the central bus" in covered.stdout
    assert "1/1 account x region cells covered" in covered.stdout


def test_cli_table_lists_gaps_and_missing_regions(member_estate: boto3.Session) -> None:
    result = _invoke(
        member_estate, "--accounts", MEMBER, "--regions", "eu-west-1", "--regions", "ap-southeast-2"
    )
    assert result.exit_code == 1
    out = result.stdout
    assert "partial" in out
    assert ": disabled" in out
    assert ": wrong-target" in out
    assert ": missing" in out
    assert f"missing regions for {MEMBER}: ap-southeast-2" in out


def test_cli_organization_lists_active_accounts(aws: boto3.Session) -> None:
    org = aws.client("organizations")
    org.create_organization(FeatureSet="ALL")
    created = org.create_account(Email="member@example.com", AccountName="member")
    member = created["CreateAccountStatus"]["AccountId"]
    result = _invoke(aws, "--organization", "--regions", "eu-west-1", "--output", "json")
    assert result.exit_code == 1
    accounts = {c["account"] for c in json.loads(result.stdout)["cells"]}
    assert accounts == {CENTRAL, member}


def test_cli_rejects_bad_accounts_and_exclusive_options(aws: boto3.Session) -> None:
    bad = _invoke(aws, "--accounts", "12345", "--regions", "us-east-1")
    assert bad.exit_code == 2
    assert "--accounts" in bad.output
    both = _invoke(aws, "--accounts", MEMBER, "--organization", "--regions", "us-east-1")
    assert both.exit_code == 2
    assert "exclusive" in both.output
    no_arn = CliRunner().invoke(
        make_audit_command(session_factory=lambda: aws),
        ["--central-bus-arn", "nope", "--regions", "us-east-1"],
    )
    assert no_arn.exit_code == 2
    assert "--central-bus-arn" in no_arn.output
