"""The SNS edge: publish notifications with an injected boto3 client."""

from __future__ import annotations

import logging
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from .config import Settings
from .errors import PublishError
from .notifications import Notification
from .render import publish_params

logger = logging.getLogger(__name__)

DESTINATION = "alerts"


class SnsPublisher:
    """Publishes to the stage's topic. Raises :class:`PublishError` so Lambda retries."""

    def __init__(self, client: Any, settings: Settings) -> None:
        self._client = client
        self._settings = settings

    def destinations(self, notification: Notification) -> list[str]:
        return [DESTINATION]

    def publish(self, notification: Notification, destination: str) -> None:
        params = publish_params(notification, self._settings)
        try:
            response = self._client.publish(**params)
        except (ClientError, BotoCoreError) as exc:
            raise PublishError(
                f"SNS publish to {params['TopicArn']} failed for rule "
                f"{notification.rule.id}, events {list(notification.event_ids)[:5]}: {exc}"
            ) from exc
        logger.info(
            "published %s %s for rule %s as SNS message %s",
            notification.kind,
            notification.id,
            notification.rule.id,
            response.get("MessageId"),
        )
