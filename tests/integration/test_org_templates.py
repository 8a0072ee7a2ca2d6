"""The Organization templates lint clean: the generated member template (one Region, many,
without us-east-1, every Region), the central-account templates, and the Chalice package merged
with the custom-bus template (route b)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from chalicelib.core.rules import RuleSet
from mfawatch.cli.org import forwarder_template
from mfawatch.deploy.templates import load_resources_template
from tests.conftest import ROOT
from tests.support.forwarder import (
    CUSTOM_BUS_ARN,
    DEFAULT_BUS_ARN,
    MANY_REGIONS,
    resources_of_type,
)
from tests.support.tools import cfn_lint, chalice_package

pytestmark = pytest.mark.slow

DEPLOY = ROOT / "deploy"


def _lints_clean(*paths: Path) -> None:
    result = cfn_lint(*paths)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("arn", "extra"),
    [
        (DEFAULT_BUS_ARN, ["--regions", "us-east-1"]),
        (CUSTOM_BUS_ARN, ["--regions", ",".join(MANY_REGIONS)]),
        (CUSTOM_BUS_ARN, ["--regions", "eu-west-1", "--home-region", "eu-west-1"]),
        (DEFAULT_BUS_ARN, []),
    ],
    ids=["one-region", "twelve-regions", "no-us-east-1", "all-regions"],
)
def test_generated_member_template_passes_cfn_lint(
    tmp_path: Path, arn: str, extra: list[str]
) -> None:
    paths = []
    for fmt in ("yaml", "json"):
        result = CliRunner().invoke(
            forwarder_template, ["--central-bus-arn", arn, *extra, "--format", fmt]
        )
        assert result.exit_code == 0, result.output
        path = tmp_path / f"member.{fmt}"
        path.write_text(result.stdout, encoding="utf-8")
        paths.append(path)
    _lints_clean(*paths)


def test_central_templates_pass_cfn_lint() -> None:
    _lints_clean(DEPLOY / "central-bus-policy.yaml", DEPLOY / "central-custom-bus.yaml")


def test_chalice_package_with_merge_template_puts_every_rule_on_the_bus_and_lints(
    tmp_path: Path, rules: RuleSet
) -> None:
    out = chalice_package(
        tmp_path / "pkg", "--merge-template", str(DEPLOY / "merge-custom-bus.yaml")
    )
    sam = load_resources_template(out / "sam.yaml")
    functions = resources_of_type(sam, "AWS::Serverless::Function")
    events = {
        name: event
        for function in functions.values()
        for name, event in function["Properties"].get("Events", {}).items()
        if event["Type"] == "CloudWatchEvent"
    }
    assert len(events) == len(rules) + 1  # every rule, and the heartbeat
    for event in events.values():
        assert event["Properties"]["EventBusName"] == {"Ref": "MfawatchEventBusName"}
        assert "Pattern" in event["Properties"]  # the merge kept Chalice's pattern
    # The merge added no half-defined resource (a stale id would have no Type).
    assert all("Type" in resource for resource in sam["Resources"].values())
    _lints_clean(out / "sam.yaml")
