"""The SQS edge's pure part: a queue ARN as the URL the API takes."""

from __future__ import annotations

import pytest

from chalicelib.aws.sqs import queue_url_of
from chalicelib.core.errors import ParkedRecordError

QUEUE = "arn:aws:sqs:us-east-1:111122223333:mfawatch-dev-failed-events"


def test_queue_url_of_an_arn() -> None:
    assert queue_url_of(QUEUE) == (
        "https://sqs.us-east-1.amazonaws.com/111122223333/mfawatch-dev-failed-events"
    )
    assert queue_url_of(QUEUE, "http://127.0.0.1:5000/") == (
        "http://127.0.0.1:5000/111122223333/mfawatch-dev-failed-events"
    )
    with pytest.raises(ParkedRecordError, match="not an SQS queue ARN"):
        queue_url_of("arn:aws:sns:us-east-1:1:t")
