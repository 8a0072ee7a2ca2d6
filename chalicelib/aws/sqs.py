"""The SQS edge: delay a failed parked record's next attempt, with an injected boto3 client."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..core.errors import ParkedRecordError, QueueError


def queue_url_of(queue_arn: str, endpoint: str = "") -> str:
    """``arn:aws:sqs:REGION:ACCOUNT:NAME`` -> the queue URL (the API takes URLs, records carry
    ARNs). ``endpoint`` overrides ``https://sqs.REGION.amazonaws.com`` (tests)."""
    parts = queue_arn.split(":")
    if len(parts) != 6 or parts[2] != "sqs":
        raise ParkedRecordError(f"eventSourceARN {queue_arn!r} is not an SQS queue ARN")
    partition, region, account, name = parts[1], parts[3], parts[4], parts[5]
    domain = "amazonaws.com.cn" if partition == "aws-cn" else "amazonaws.com"
    base = endpoint.rstrip("/") or f"https://sqs.{region}.{domain}"
    return f"{base}/{account}/{name}"


class SqsVisibility:
    """``ChangeMessageVisibility`` on the message a consumer failed to process: the message
    comes back after ``seconds`` instead of the queue's default visibility timeout (AWS SQS
    Developer Guide, sqs-visibility-timeout: "you can ... change the visibility timeout of a
    message ... by calling ChangeMessageVisibility")."""

    def __init__(self, client: Any, endpoint: str = "") -> None:
        self._client = client
        self._endpoint = endpoint

    def delay(self, queue_arn: str, receipt_handle: str, seconds: int) -> None:
        try:
            self._client.change_message_visibility(
                QueueUrl=queue_url_of(queue_arn, self._endpoint),
                ReceiptHandle=receipt_handle,
                VisibilityTimeout=seconds,
            )
        except (ClientError, BotoCoreError) as exc:
            raise QueueError(f"ChangeMessageVisibility on {queue_arn} failed: {exc}") from exc
