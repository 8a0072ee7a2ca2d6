"""``mfawatch redrive --stage S``: send what the final dead-letter queue holds back to the
failed-events queue, where the consumer of parked events replays it (issue 18).

A record lands in ``mfawatch-<stage>-dead-letters`` after the consumer failed on it
``maxReceiveCount`` times (deploy/resources.yaml); its alarm pages. Once the cause is fixed
(a deploy, an outage over), this command moves the records back unchanged: each message is sent
to the failed-events queue first and deleted from the dead-letter queue only after the send
succeeded, so a failure in between leaves a copy on both queues, never on neither; the consumer
deduplicates replays by eventID. One JSON line per record on stdout (what it was, whether it
moved), the summary on stderr.

SQS's own ``StartMessageMoveTask`` does the same server-side, but only back to the queue the
messages came from and without a per-record view; this command shows what it moves.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.core.errors import ParkedRecordError
from chalicelib.pipeline.parked import function_name_of
from mfawatch.errors import RedriveError

#: SQS ReceiveMessage and SendMessageBatch take at most 10 messages.
BATCH = 10


@dataclass(frozen=True)
class DeadLetter:
    """One message of the dead-letter queue, summarized for the operator (pure)."""

    message_id: str
    function: str
    condition: str
    event_id: str
    error: str

    def to_json(self, moved: bool) -> str:
        return json.dumps({**self.__dict__, "moved": moved}, sort_keys=True)


def describe(message_id: str, body: str) -> DeadLetter:
    """What a dead letter holds: an on-failure record, or (say so) something else."""
    try:
        record = json.loads(body)
        context = record["requestContext"]
        detail = record.get("requestPayload", {}).get("detail", {})
        response = record.get("responsePayload") or {}
        return DeadLetter(
            message_id,
            function_name_of(str(context["functionArn"])),
            str(context.get("condition", "")),
            str(detail.get("eventID", "")) if isinstance(detail, dict) else "",
            str(response.get("errorMessage", "")) if isinstance(response, dict) else "",
        )
    except (ValueError, KeyError, TypeError, AttributeError, ParkedRecordError):
        return DeadLetter(message_id, "", "", "", "not a Lambda on-failure record")


class ParkedQueues:
    """The stage's failed-events and dead-letter queues (the SQS client injected)."""

    def __init__(self, client: Any, failed_events: str, dead_letters: str) -> None:
        self._client = client
        self._names = (failed_events, dead_letters)
        self._urls: dict[str, str] = {}

    def _url(self, name: str) -> str:
        if name not in self._urls:
            try:
                self._urls[name] = str(self._client.get_queue_url(QueueName=name)["QueueUrl"])
            except (ClientError, BotoCoreError) as exc:
                raise RedriveError(f"queue {name}: {exc}") from exc
        return self._urls[name]

    def receive(self, visibility_seconds: int) -> list[dict[str, Any]]:
        """A batch of dead letters, hidden from other readers for ``visibility_seconds``."""
        try:
            response = self._client.receive_message(
                QueueUrl=self._url(self._names[1]),
                MaxNumberOfMessages=BATCH,
                VisibilityTimeout=visibility_seconds,
            )
        except (ClientError, BotoCoreError) as exc:
            raise RedriveError(f"receive from {self._names[1]}: {exc}") from exc
        return list(response.get("Messages", []))

    def move(self, messages: list[dict[str, Any]]) -> set[str]:
        """Send to the failed-events queue, then delete what was sent; the moved message ids."""
        failed_events, dead_letters = (self._url(name) for name in self._names)
        try:
            sent = self._client.send_message_batch(
                QueueUrl=failed_events,
                Entries=[{"Id": str(i), "MessageBody": m["Body"]} for i, m in enumerate(messages)],
            )
            moved = [messages[int(entry["Id"])] for entry in sent.get("Successful", [])]
            if moved:
                self._client.delete_message_batch(
                    QueueUrl=dead_letters,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                        for i, m in enumerate(moved)
                    ],
                )
        except (ClientError, BotoCoreError) as exc:
            raise RedriveError(f"moving dead letters to {self._names[0]}: {exc}") from exc
        return {str(m["MessageId"]) for m in moved}


def redrive(queues: ParkedQueues, limit: int, dry_run: bool) -> Iterator[tuple[DeadLetter, bool]]:
    """Every dead letter (at most ``limit``) and whether it moved. A dry run only looks: the
    messages it read come back on the dead-letter queue after a short visibility timeout."""
    seen: set[str] = set()
    while len(seen) < limit:
        batch = [m for m in queues.receive(30 if dry_run else 300) if m["MessageId"] not in seen]
        batch = batch[: limit - len(seen)]
        if not batch:
            return
        seen |= {str(m["MessageId"]) for m in batch}
        moved = set() if dry_run else queues.move(batch)
        for message in batch:
            yield (
                describe(str(message["MessageId"]), str(message["Body"])),
                (str(message["MessageId"]) in moved),
            )
