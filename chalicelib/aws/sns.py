"""The SNS edge: publish notifications to the named outputs, and the heartbeat's canary, with an
injected boto3 client."""

from __future__ import annotations

import logging
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..core.channels import publish_params
from ..core.config import Settings
from ..core.errors import PublishError
from ..core.notifications import Notification

logger = logging.getLogger(__name__)


class SnsPublisher:
    """Publishes to each output a notification routes to. Raises :class:`PublishError` so that
    Lambda retries; the service records which outputs succeeded, so a retry resends only the
    ones that failed."""

    def __init__(self, client: Any, settings: Settings) -> None:
        self._client = client
        self._settings = settings

    def destinations(self, notification: Notification) -> list[str]:
        return self._settings.destinations(notification.severity, notification.kind)

    def publish(self, notification: Notification, destination: str) -> None:
        self.send(notification, destination)

    def send(self, notification: Notification, destination: str) -> str:
        """:meth:`publish`, returning the SNS message id (the self-test reports it)."""
        params = publish_params(notification, self._settings.output(destination), self._settings)
        try:
            response = self._client.publish(**params)
        except (ClientError, BotoCoreError) as exc:
            raise PublishError(
                f"SNS publish to output {destination} ({params['TopicArn']}) failed for rule "
                f"{notification.rule.id}, notification {notification.id}: {exc}"
            ) from exc
        logger.info(
            "published %s %s for rule %s to %s as SNS message %s",
            notification.kind,
            notification.id,
            notification.rule.id,
            destination,
            response.get("MessageId"),
        )
        return str(response.get("MessageId", ""))


class SnsCanary:
    """Publishes the scheduled heartbeat's canary to the stage's canary topic (no subscribers).
    Raises :class:`PublishError`, so that the heartbeat's metric is not counted."""

    def __init__(self, client: Any, topic_arn: str) -> None:
        self._client = client
        self.topic_arn = topic_arn

    def send(self, message: str) -> str:
        try:
            response = self._client.publish(
                TopicArn=self.topic_arn, Subject="mfawatch canary", Message=message
            )
        except (ClientError, BotoCoreError) as exc:
            raise PublishError(f"canary publish to {self.topic_arn} failed: {exc}") from exc
        return str(response.get("MessageId", ""))
