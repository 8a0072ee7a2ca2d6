"""The forwarder template's test constants and a resource filter, shared by its unit and
integration tests."""

from __future__ import annotations

from typing import Any

from tests.conftest import ROOT

CENTRAL = "111122223333"
DEFAULT_BUS_ARN = f"arn:aws:events:us-east-1:{CENTRAL}:event-bus/default"
CUSTOM_BUS_ARN = f"arn:aws:events:eu-west-1:{CENTRAL}:event-bus/mfawatch-central"
MANY_REGIONS = [
    "us-east-1",
    "us-east-2",
    "us-west-2",
    "eu-north-1",
    "eu-west-1",
    "eu-west-2",
    "eu-central-1",
    "ap-southeast-2",
    "ap-northeast-1",
    "ap-south-1",
    "ca-central-1",
    "sa-east-1",
]
DEPLOY = ROOT / "deploy"


def resources_of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    """The template's resources of one type, by logical id."""
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}
