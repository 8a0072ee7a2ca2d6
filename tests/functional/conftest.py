"""What functional tests (moto in-process) share."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from chalicelib.aws.dynamo import create_state_table


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and a Region, so boto3 under ``mock_aws`` never finds real ones.

    MOTO_ACCOUNT_ID is cleared: it would pin every request, assumed roles included, to one
    account; a test that wants one account sets it after this fixture.
    """
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("MOTO_ACCOUNT_ID", raising=False)


@pytest.fixture
def dynamodb(aws_credentials: None, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A DynamoDB client under ``mock_aws`` with the state table named by the test module's
    ``TABLE``."""
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_state_table(client, request.module.TABLE)
        yield client


@pytest.fixture
def aws(aws_credentials: None) -> Iterator[boto3.Session]:
    with mock_aws():
        yield boto3.Session(region_name="us-east-1")
