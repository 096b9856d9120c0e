"""The queue as Amazon SQS (standard queues), through boto3: on moto in this process
(``on_moto()``), on a ``moto_server`` on 127.0.0.1 (``on_moto_server()``), or on AWS.

SQS delivers at least once: a received message is hidden for its visibility timeout and
comes back if not deleted by then. ``restart`` stands for that timeout running out after
a consumer died (it sets the visibility of what this process holds to 0).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

from ..runners.moto_server import moto_server
from .events import Message
from .queues import Delivery

REGION = "us-east-1"
_KEYS = {"aws_access_key_id": "lessons", "aws_secret_access_key": "lessons"}


class SqsQueue:
    """One SQS queue per subscriber, named ``<prefix>-<subscriber>``, created on first use."""

    def __init__(self, client: Any, prefix: str = "", visibility: int = 30) -> None:
        self.sqs = client
        self.prefix = prefix or f"choreo-{uuid.uuid4().hex[:8]}"
        self.visibility = visibility
        self._urls: dict[str, str] = {}
        self._in_flight: dict[str, tuple[str, str]] = {}  # receipt -> (queue, url)

    def _url(self, queue: str) -> str:
        if queue not in self._urls:
            name = f"{self.prefix}-{queue}"
            self._urls[queue] = self.sqs.create_queue(QueueName=name)["QueueUrl"]
        return self._urls[queue]

    def send(self, queue: str, message: Message) -> None:
        self.sqs.send_message(QueueUrl=self._url(queue), MessageBody=message.to_json())

    def receive(self, queue: str) -> Delivery | None:
        url = self._url(queue)
        answer = self.sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=1,
            VisibilityTimeout=self.visibility,
            WaitTimeSeconds=0,
        )
        messages = answer.get("Messages", [])
        if not messages:
            return None
        receipt = messages[0]["ReceiptHandle"]
        self._in_flight[receipt] = (queue, url)
        return Delivery(Message.from_json(messages[0]["Body"]), receipt)

    def delete(self, queue: str, delivery: Delivery) -> None:
        self.sqs.delete_message(QueueUrl=self._url(queue), ReceiptHandle=delivery.receipt)
        self._in_flight.pop(delivery.receipt, None)

    def restart(self) -> None:
        for receipt, (_, url) in self._in_flight.items():
            self.sqs.change_message_visibility(
                QueueUrl=url, ReceiptHandle=receipt, VisibilityTimeout=0
            )
        self._in_flight.clear()

    def depth(self, queue: str) -> int:
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        attributes = self.sqs.get_queue_attributes(QueueUrl=self._url(queue), AttributeNames=names)
        return sum(int(attributes["Attributes"][n]) for n in names)

    def release(self) -> bool:
        return False


@contextlib.contextmanager
def on_moto() -> Iterator[SqsQueue]:
    """An ``SqsQueue`` on moto in this process (nothing leaves it)."""
    import boto3
    from moto import mock_aws

    with mock_aws():
        yield SqsQueue(boto3.client("sqs", region_name=REGION, **_KEYS))


@contextlib.contextmanager
def on_moto_server() -> Iterator[SqsQueue]:
    """An ``SqsQueue`` on a ``moto_server`` of its own, bound to 127.0.0.1 and stopped on
    leaving (a queue other processes could share)."""
    import boto3

    with moto_server() as url:
        yield SqsQueue(boto3.client("sqs", region_name=REGION, endpoint_url=url, **_KEYS))
