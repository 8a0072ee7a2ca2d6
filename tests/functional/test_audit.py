"""Coverage audit against moto: per account x Region, several accounts through assumed roles."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from click.testing import CliRunner

from chalicelib.core.rules import RuleSet
from mfawatch.cli.org import make_audit_command
from mfawatch.org.audit import (
    DISABLED,
    ERROR,
    MISSING,
    NOT_COVERED,
    OK,
    PARTIAL,
    WRONG_TARGET,
    AssumeRoleClients,
    run_audit,
)
from mfawatch.org.forwarder import expected_rules, forwarding_rule_name, member_template
from tests.support.audit import (
    BUS_ARN,
    CENTRAL,
    CENTRAL_BUS,
    MEMBER,
    OTHER,
    deploy_member_rules,
    member_client,
)


@pytest.fixture
def member_estate(aws: boto3.Session, rules: RuleSet) -> boto3.Session:
    """MEMBER: full coverage in us-east-1, a damaged eu-west-1, nothing in ap-southeast-2."""
    template = member_template(rules, CENTRAL_BUS).template
    east = member_client(aws, MEMBER, "us-east-1")
    assert deploy_member_rules(east, template, "us-east-1", MEMBER) == len(rules)
    west = member_client(aws, MEMBER, "eu-west-1")
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
