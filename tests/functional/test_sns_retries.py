"""SNS publishes are retried by the outbox only: the wired SNS client sends each Publish once.

A standard topic does not deduplicate, and botocore re-sends a Publish after a read timeout whose
first attempt SNS may have accepted: a client retry could deliver twice without a trace. The
hook counts the attempts at the wire, as botocore makes them."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import BotoCoreError

import app as app_module
from tests.conftest import free_port


def test_the_sns_client_sends_a_failing_publish_once() -> None:
    client = boto3.client(
        "sns",
        region_name="us-east-1",
        endpoint_url=f"http://127.0.0.1:{free_port()}",  # nothing listens: connection refused
        config=app_module.SNS_CLIENT_CONFIG,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    attempts: list[str] = []
    client.meta.events.register("before-send.sns.Publish", lambda **_: attempts.append("sent"))
    with pytest.raises(BotoCoreError):
        client.publish(TopicArn="arn:aws:sns:us-east-1:111122223333:alerts", Message="m")
    assert attempts == ["sent"]
