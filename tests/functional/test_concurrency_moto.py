"""The concurrency preflight against moto's Lambda: the reservations of functions that exist
(``PutFunctionConcurrency`` as Chalice calls it, read back with ``GetFunctionConcurrency``).

moto 5.2 does not serve ``GetAccountSettings`` (it answers 404 "Not yet implemented"), so the
account's figures are answered at the wire by a ``before-call`` hook, as Lambda would compute
them: the limit minus what the functions reserve."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse, HTTPHeaders
from botocore.exceptions import ClientError
from moto import mock_aws

from mfawatch.deploy.concurrency import ConcurrencyShortfall, LambdaConcurrency, check_concurrency

LIMIT = 171
PLANNED = {f"mfawatch-dev-on_rule_{i:02d}": 5 for i in range(14)} | {
    "mfawatch-dev-send_due_summaries": 1
}


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", "def handler(event, context):\n    return None\n")
    return buffer.getvalue()


@pytest.fixture
def lambda_client(aws_credentials: None) -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("lambda", region_name="us-east-1")
        iam = boto3.client("iam", region_name="us-east-1")
        role = iam.create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        for name in PLANNED:
            client.create_function(
                FunctionName=name,
                Runtime="python3.12",
                Role=role,
                Handler="app.handler",
                Code={"ZipFile": _zip()},
            )

        def account_settings(**_: Any) -> tuple[AWSResponse, dict[str, Any]]:
            reserved = 0
            for name in PLANNED:
                answer = client.get_function_concurrency(FunctionName=name)
                reserved += answer.get("ReservedConcurrentExecutions") or 0
            limits = {
                "ConcurrentExecutions": LIMIT,
                "UnreservedConcurrentExecutions": LIMIT - reserved,
            }
            return AWSResponse("", 200, HTTPHeaders(), None), {"AccountLimit": limits}

        client.meta.events.register("before-call.lambda.GetAccountSettings", account_settings)
        yield client


def test_a_first_deploy_does_not_fit_and_a_redeploy_of_the_same_figures_does(
    lambda_client: Any,
) -> None:
    """171 is 71 + 100: the stage fits once, and only if its own reservations are not counted
    twice. A new stage needs all 71 while the account has 171 unreserved: it fits; deployed, the
    account shows 100 unreserved and a redeploy must still pass."""
    reader = LambdaConcurrency(lambda_client)
    _, plan = check_concurrency(reader, PLANNED, "dev", ".chalice/config.json")
    assert plan.needed == 71
    for name, value in PLANNED.items():  # what chalice deploy does
        lambda_client.put_function_concurrency(
            FunctionName=name, ReservedConcurrentExecutions=value
        )
    account, plan = check_concurrency(reader, PLANNED, "dev", ".chalice/config.json")
    assert (account.unreserved, plan.needed) == (100, 0)

    raised = {**PLANNED, "mfawatch-dev-on_rule_00": 6}
    with pytest.raises(ConcurrencyShortfall, match=r"\(1 short\)"):
        check_concurrency(reader, raised, "dev", ".chalice/config.json")


def test_moto_does_not_serve_get_account_settings(aws_credentials: None) -> None:
    """When this fails, moto serves it: drop the hook above and test against moto's figures."""
    with mock_aws():
        client = boto3.client("lambda", region_name="us-east-1")
        with pytest.raises(ClientError, match="Not yet implemented"):
            client.get_account_settings()
