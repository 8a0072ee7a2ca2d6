"""Counting and failing DynamoDB requests at the wire (a botocore hook), reading a queue to the
end, and the dev stage's settings: what the functional tests share."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import EndpointConnectionError

from chalicelib.core.config import Settings, settings_from_env
from mfawatch.deploy.templates import load_stage_config


def receive_all(sqs: Any, queue_url: str) -> list[dict[str, Any]]:
    """Every message body waiting in the queue (JSON), each deleted once read."""
    bodies: list[dict[str, Any]] = []
    while True:
        batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not batch:
            return bodies
        for message in batch:
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


def dev_settings() -> Settings:
    """The dev stage's settings (tests/stage/): a HIGH alert goes to two outputs."""
    return settings_from_env(load_stage_config("dev").environment())


class Wire:
    """Counts the HTTP requests a boto3 client sends, and can fail chosen ones."""

    def __init__(self, client: Any) -> None:
        self.requests = 0
        self.fail: set[str] = set()
        """Operations (``PutItem``, ...) whose next call fails: every attempt of it, so the
        error survives botocore's retries."""
        self._failing: str | None = None
        client.meta.events.register("before-send.dynamodb.*", self._before_send)
        client.meta.events.register("after-call.dynamodb.*", self._after_call)
        client.meta.events.register("after-call-error.dynamodb.*", self._after_call)

    def _before_send(self, request: Any, **_: Any) -> None:
        self.requests += 1
        target = request.headers.get("X-Amz-Target", b"")
        name = (target.decode() if isinstance(target, bytes) else target).split(".")[-1]
        if name in self.fail or name == self._failing:
            self.fail.discard(name)
            self._failing = name
            raise EndpointConnectionError(endpoint_url="http://dynamodb (injected fault)")

    def _after_call(self, **_: Any) -> None:
        self._failing = None

    def count(self, call: Any) -> int:
        before = self.requests
        call()
        return self.requests - before
