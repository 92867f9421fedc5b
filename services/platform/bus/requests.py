"""Publish commands and await their answers: the orchestrator's side of the bus.

A :class:`CommandClient` reads the reply topics from their ends on every
partition (no consumer group: every client sees every answer) and matches
answers to pending commands by causation id. Several commands may be pending
at once, which is how a flow fans work out to several trainer replicas.
"""

from __future__ import annotations

import logging
import threading
import uuid
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from contracts import REPLIES, Command, ContractError, Event, FailureEvent, decode
from contracts.registry import topic_for
from services.platform.errors import PlatformError
from services.platform.settings import KafkaSettings

logger = logging.getLogger(__name__)


class ReplyTimeoutError(PlatformError):
    """No answer to a command arrived in time; the message says what was awaited."""


class CommandFailedError(PlatformError):
    """A command was answered with its failure event."""

    def __init__(self, failure: FailureEvent) -> None:
        self.failure = failure
        super().__init__(
            f"{failure.message_type} from {failure.producer}: {failure.reason} "
            f"({failure.error_type}, retryable={failure.retryable})"
        )


class CommandClient:
    """Send commands and wait for the events that answer them."""

    def __init__(self, producer_name: str, kafka: KafkaSettings) -> None:
        self.producer_name = producer_name
        self._kafka = kafka
        self._pending: dict[uuid.UUID, Future[Event]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._consumer: Any = None
        self._producer: Any = None

    def __enter__(self) -> CommandClient:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Connect, position at the end of every reply topic, start listening."""
        from kafka import KafkaConsumer, KafkaProducer, TopicPartition

        self._producer = KafkaProducer(
            bootstrap_servers=self._kafka.servers,
            client_id=f"{self.producer_name}-commands",
            acks="all",
            retries=5,
        )
        self._consumer = KafkaConsumer(
            bootstrap_servers=self._kafka.servers,
            client_id=f"{self.producer_name}-replies",
            enable_auto_commit=False,
            fetch_max_wait_ms=50,
        )
        partitions: list[Any] = []
        reply_topics = {topic_for(reply) for pair in REPLIES.values() for reply in pair}
        for topic in sorted(self._kafka.physical(t) for t in reply_topics):
            ids = self._consumer.partitions_for_topic(topic)
            if not ids:
                raise PlatformError(f"reply topic {topic} does not exist on the broker")
            partitions.extend(TopicPartition(topic, p) for p in sorted(ids))
        self._consumer.assign(partitions)
        self._consumer.seek_to_end(*partitions)
        # Resolve the end offsets now: an answer produced after this point is
        # never missed, however fast it comes.
        for partition in partitions:
            self._consumer.position(partition)
        self._thread = threading.Thread(
            target=self._listen, name=f"{self.producer_name}-replies", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        """Stop listening and close the connections."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._consumer is not None:
            self._consumer.close()
        if self._producer is not None:
            self._producer.close(timeout=5)

    def send(self, command: Command) -> Future[Event]:
        """Publish ``command``; return a future resolved by its answer."""
        future: Future[Event] = Future()
        with self._lock:
            self._pending[command.message_id] = future
        topic = self._kafka.physical(topic_for(command))
        self._producer.send(
            topic, command.to_bytes(), key=str(command.message_id).encode()
        ).get(timeout=self._kafka.request_timeout_ms / 1000)
        logger.info(
            "sent type=%s message_id=%s correlation_id=%s topic=%s",
            command.message_type,
            command.message_id,
            command.correlation_id,
            topic,
        )
        return future

    def request(self, command: Command, timeout_s: float) -> Event:
        """Publish ``command`` and return the event that answers it.

        Raises:
            CommandFailedError: the answer was the command's failure event.
            ReplyTimeoutError: no answer within ``timeout_s``; names what was awaited.
        """
        return self.wait(command, self.send(command), timeout_s)

    def wait(self, command: Command, future: Future[Event], timeout_s: float) -> Event:
        """Wait for the answer to a command sent with :meth:`send`."""
        try:
            answer = future.result(timeout=timeout_s)
        except FutureTimeout:
            success, failure = REPLIES[type(command)]
            raise ReplyTimeoutError(
                f"no {success.__name__} or {failure.__name__} answering "
                f"{command.message_type} {command.message_id} (correlation "
                f"{command.correlation_id}) arrived on {topic_for(success)} "
                f"within {timeout_s:g} s"
            ) from None
        finally:
            with self._lock:
                self._pending.pop(command.message_id, None)
        if isinstance(answer, FailureEvent):
            raise CommandFailedError(answer)
        return answer

    def _listen(self) -> None:
        while not self._stop.is_set():
            batches = self._consumer.poll(timeout_ms=200)
            for records in batches.values():
                for record in records:
                    self._resolve(record)

    def _resolve(self, record: Any) -> None:
        try:
            event = decode(self._kafka.logical(record.topic), record.value)
        except ContractError as exc:
            logger.warning(
                "ignoring undecodable reply topic=%s offset=%s: %s",
                record.topic,
                record.offset,
                exc,
            )
            return
        if not isinstance(event, Event) or event.causation_id is None:
            return
        with self._lock:
            future = self._pending.get(event.causation_id)
        # A replayed answer (after a redelivery) finds its future done already.
        if future is not None and not future.done():
            future.set_result(event)
