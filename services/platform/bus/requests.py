"""Publish commands and await their answers: the orchestrator's side of the bus.

A :class:`CommandClient` reads the reply topics from their ends on every
partition (no consumer group: every client sees every answer) and matches
answers to pending commands by causation id. Several commands may be pending
at once, which is how a flow fans work out to several trainer replicas.

A command goes to the partition of its topic with the fewest of this
client's commands pending, preferring the partition its id hashes to: one
command at a time always lands on the same partition, and a benchmark's
many commands spread evenly over the replicas instead of queueing behind
one while another runs dry. A command published again while still pending
keeps its partition, so the member handling it sees the repeat.

Connecting and publishing are retried with backoff while the broker is
unreachable, with a WARNING naming it, for at most ``KAFKA_RETRY_TIMEOUT_S``;
then they fail with a :class:`ComponentUnavailableError` naming the broker.
A reply that does not decode is sent to ``platform.deadletter`` with the
reason, by each client that reads it.
"""

from __future__ import annotations

import base64
import logging
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

from contracts import (
    DEAD_LETTER_TOPIC,
    REPLIES,
    Command,
    ContractError,
    Event,
    FailureEvent,
    decode,
)
from contracts.deadletter import DeadLetter
from contracts.registry import topic_for
from services.platform.errors import PlatformError, retry_while_unavailable
from services.platform.settings import KafkaSettings

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Each attempt to reach the broker (bootstrap, one publish) waits at most this
# long, and at most a third of the retry window, before it counts as failed
# and is retried: an outage is reported early, and more than once.
BROKER_ATTEMPT_S = 5.0


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
        self._placed: dict[uuid.UUID, tuple[str, int]] = {}
        self._partitions: dict[str, list[int]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._consumer: Any = None
        self._producer: Any = None
        self._producer_lock = threading.Lock()

    @property
    def _attempt_ms(self) -> int:
        window_s = self._kafka.retry_timeout_s / 3
        return max(100, int(min(BROKER_ATTEMPT_S, window_s) * 1000))

    def __enter__(self) -> CommandClient:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Connect, position at the end of every reply topic, start listening.

        Raises:
            ComponentUnavailableError: no broker answered within
                ``KAFKA_RETRY_TIMEOUT_S``; the message names its address.
            PlatformError: a reply topic does not exist.
        """
        self._producer = self._retry(self._make_producer)
        try:
            self._consumer = self._retry(self._make_consumer)
        except BaseException:
            self._producer.close(timeout=0)
            self._producer = None
            raise
        self._thread = threading.Thread(
            target=self._listen, name=f"{self.producer_name}-replies", daemon=True
        )
        self._thread.start()

    def _make_producer(self) -> Any:
        from kafka import KafkaProducer

        return KafkaProducer(
            bootstrap_servers=self._kafka.servers,
            client_id=f"{self.producer_name}-commands",
            acks="all",
            retries=5,
            bootstrap_timeout_ms=self._attempt_ms,
            max_block_ms=self._attempt_ms,
        )

    def _make_consumer(self) -> Any:
        from kafka import KafkaConsumer, TopicPartition

        consumer = KafkaConsumer(
            bootstrap_servers=self._kafka.servers,
            client_id=f"{self.producer_name}-replies",
            enable_auto_commit=False,
            fetch_max_wait_ms=self._kafka.fetch_max_wait_ms,
            bootstrap_timeout_ms=self._attempt_ms,
        )
        try:
            partitions: list[Any] = []
            reply_topics = {
                topic_for(reply) for pair in REPLIES.values() for reply in pair
            }
            for topic in sorted(self._kafka.physical(t) for t in reply_topics):
                ids = consumer.partitions_for_topic(topic)
                if not ids:
                    raise PlatformError(
                        f"reply topic {topic} does not exist on the broker"
                    )
                partitions.extend(TopicPartition(topic, p) for p in sorted(ids))
            consumer.assign(partitions)
            consumer.seek_to_end(*partitions)
            # Resolve the end offsets now: an answer produced after this point
            # is never missed, however fast it comes.
            for partition in partitions:
                consumer.position(partition)
        except BaseException:
            consumer.close()
            raise
        return consumer

    def close(self) -> None:
        """Stop listening and close the connections."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._consumer is not None:
            self._consumer.close()
        with self._producer_lock:
            if self._producer is not None:
                self._producer.close(timeout=5)

    def send(self, command: Command) -> Future[Event]:
        """Publish ``command``; return a future resolved by its answer.

        Raises:
            ComponentUnavailableError: the broker did not take the command
                within ``KAFKA_RETRY_TIMEOUT_S``.
        """
        future: Future[Event] = Future()
        topic = self._kafka.physical(topic_for(command))
        key = str(command.message_id).encode()
        partitions = self._retry(lambda: self._partitions_of(topic))
        with self._lock:
            self._pending[command.message_id] = future
            partition = self._place(command.message_id, topic, key, partitions)
        try:
            self._retry(
                lambda: self._publish(topic, command.to_bytes(), key, partition)
            )
        except BaseException:
            self._forget(command.message_id)
            raise
        logger.info(
            "sent type=%s message_id=%s correlation_id=%s topic=%s partition=%s",
            command.message_type,
            command.message_id,
            command.correlation_id,
            topic,
            partition,
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
            self._forget(command.message_id)
        if isinstance(answer, FailureEvent):
            raise CommandFailedError(answer)
        return answer

    def _forget(self, message_id: uuid.UUID) -> None:
        with self._lock:
            self._pending.pop(message_id, None)
            self._placed.pop(message_id, None)

    def _place(
        self, message_id: uuid.UUID, topic: str, key: bytes, partitions: list[int]
    ) -> int:
        """Return the partition for a command; call with ``_lock`` held."""
        from kafka.partitioner import murmur2

        placed = self._placed.get(message_id)
        if placed is not None and placed[0] == topic:
            return placed[1]
        load = dict.fromkeys(partitions, 0)
        for other_topic, other in self._placed.values():
            if other_topic == topic and other in load:
                load[other] += 1
        # The partition the key hashes to first, then the next ones in turn:
        # the least loaded of them, the earliest in that order on a tie.
        home = (murmur2(key) & 0x7FFFFFFF) % len(partitions)
        order = partitions[home:] + partitions[:home]
        partition = min(order, key=load.__getitem__)
        self._placed[message_id] = (topic, partition)
        return partition

    # -- broker --------------------------------------------------------------

    def _partitions_of(self, topic: str) -> list[int]:
        """Return the topic's partitions, asking the broker the first time."""
        if topic not in self._partitions:
            with self._producer_lock:
                if self._producer is None:
                    self._producer = self._make_producer()
                ids = self._producer.partitions_for(topic)
            if not ids:
                raise PlatformError(f"command topic {topic} does not exist")
            self._partitions[topic] = sorted(ids)
        return self._partitions[topic]

    def _retry(self, call: Callable[[], T]) -> T:
        from kafka.errors import KafkaError

        return retry_while_unavailable(
            call,
            component="broker",
            address=self._kafka.bootstrap_servers,
            transient=lambda error: isinstance(error, KafkaError),
            timeout_s=self._kafka.retry_timeout_s,
            logger=logger,
        )

    def _publish(
        self,
        topic: str,
        payload: bytes,
        key: bytes | None,
        partition: int | None = None,
    ) -> None:
        """Publish one record and await the broker's acknowledgement, once."""
        from kafka.errors import KafkaError

        with self._producer_lock:
            if self._producer is None:
                self._producer = self._make_producer()
            producer = self._producer
            try:
                producer.send(topic, payload, key=key, partition=partition).get(
                    timeout=self._attempt_ms / 1000
                )
            except KafkaError:
                # After some broker errors kafka-python fails every later send
                # of the same producer; the next attempt starts a fresh one. A
                # command published twice this way is answered once (ledger).
                self._producer = None
                producer.close(timeout=0)
                raise

    def _dead_letter(self, record: Any, error: ContractError) -> None:
        """Send an undecodable reply to the dead-letter topic; never raise."""
        from kafka.errors import KafkaError

        logger.warning(
            "dead-lettering topic=%s partition=%s offset=%s reason=%s",
            record.topic,
            record.partition,
            record.offset,
            error,
        )
        letter = _dead_letter(record, error, self.producer_name)
        try:
            self._publish(
                self._kafka.physical(DEAD_LETTER_TOPIC),
                letter.model_dump_json().encode(),
                None,
            )
        except KafkaError as exc:
            logger.warning(
                "could not dead-letter topic=%s offset=%s: %s",
                record.topic,
                record.offset,
                exc,
            )

    # -- replies -------------------------------------------------------------

    def _listen(self) -> None:
        from kafka.errors import KafkaError

        while not self._stop.is_set():
            try:
                # Shorter polls would let close() return sooner, but every
                # poll wakes this thread: an idle client uses more CPU.
                batches = self._consumer.poll(timeout_ms=200)
            except KafkaError as exc:
                logger.warning(
                    "broker at %s unavailable while reading replies (%s); "
                    "retrying in 1 s",
                    self._kafka.bootstrap_servers,
                    exc,
                )
                self._stop.wait(1.0)
                continue
            for records in batches.values():
                for record in records:
                    self._resolve(record)

    def _resolve(self, record: Any) -> None:
        try:
            event = decode(self._kafka.logical(record.topic), record.value)
        except ContractError as exc:
            self._dead_letter(record, exc)
            return
        if not isinstance(event, Event) or event.causation_id is None:
            return
        with self._lock:
            future = self._pending.get(event.causation_id)
        # A replayed answer (after a redelivery) finds its future done already.
        if future is not None and not future.done():
            future.set_result(event)


def _dead_letter(record: Any, error: ContractError, service: str) -> DeadLetter:
    raw: bytes = record.value or b""
    try:
        payload, encoding = raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        payload, encoding = base64.b64encode(raw).decode(), "base64"
    return DeadLetter(
        reason=str(error) or type(error).__name__,
        error_type=type(error).__name__,
        service=service,
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        attempts=0,
        payload=payload,
        payload_encoding=encoding,
    )
