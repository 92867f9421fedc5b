"""Consume a command topic in a consumer group and answer each command once.

Delivery is at least once, handling is once in effect:

- A record's offset is committed only after its answer (the reply event, or
  the failure event) is recorded in the ledger and acknowledged by the
  broker. A crash before that leaves the record uncommitted; it is delivered
  again, and the ledger's recorded answer is published instead of running the
  handler a second time.
- Undecodable bytes, unknown schema versions, contract violations and
  commands this service has no handler for go straight to the dead-letter
  topic, with the reason and the original bytes; the worker moves on.
- A handler that raises is retried with exponential backoff; once the
  attempts are spent the command is answered with its failure event and
  dead-lettered with the error. A handler that raises
  :class:`CommandRefusedError` is answered with its failure event at once.
- The handler runs on a worker thread while this thread keeps polling with
  the partitions paused, so a fit longer than ``max.poll.interval.ms`` does
  not make the group rebalance.
- If a rebalance takes the partition of the command in hand, the worker
  waits (bounded) for the handler and commits before letting it go.
- :meth:`CommandWorker.stop` (SIGTERM) lets the running handler finish
  within a grace period; past it the command is abandoned uncommitted. Then
  the consumer leaves its group.
- A consumer left without partitions, or without a group coordinator, for
  ``KAFKA_GROUP_STALL_S`` after a broker outage is replaced by a new one,
  which joins the group afresh (see :meth:`CommandWorker._stalled`).
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent import futures
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from tenacity import (
    Retrying,
    before_sleep_log,
    retry_if_exception_type,
    retry_if_not_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
)

from contracts import (
    DEAD_LETTER_TOPIC,
    REPLIES,
    Command,
    ContractError,
    Event,
    FailureEvent,
    decode,
    topic_for,
)
from contracts.deadletter import DeadLetter
from services.platform.bus.ledger import Ledger, LedgerEntry, LedgerUnavailableError
from services.platform.errors import CommandRefusedError, InfrastructureError
from services.platform.readiness import ReadinessFile
from services.platform.settings import KafkaSettings

logger = logging.getLogger(__name__)

Handler = Callable[[Any], Event]

POLL_TIMEOUT_MS = 200
# Broker and ledger calls are retried this long before the worker gives up
# and stops with the record uncommitted.
INFRASTRUCTURE_RETRY_S = 60.0
# A member with no partitions may be a replica beyond the partition count:
# it rejoins ever less often, up to this interval.
MAX_REJOIN_INTERVAL_S = 600.0


@dataclass(frozen=True)
class RetryPolicy:
    """How often, and how patiently, a failing handler is retried."""

    max_attempts: int = 3
    initial_backoff_s: float = 1.0
    max_backoff_s: float = 30.0


@dataclass
class _InFlight:
    partition: Any
    offset: int
    job: Future[None]
    committed: bool = False
    lost: bool = False


class CommandWorker:
    """Answer the commands on one topic, as one member of a consumer group."""

    def __init__(
        self,
        service: str,
        topic: str,
        handlers: Mapping[type[Command], Handler],
        kafka: KafkaSettings,
        ledger: Ledger,
        retry: RetryPolicy | None = None,
        readiness: ReadinessFile | None = None,
        shutdown_grace_s: float = 20.0,
        group_id: str | None = None,
    ) -> None:
        self.service = service
        self.topic = topic
        self.group_id = group_id or service
        self._handlers = dict(handlers)
        self._kafka = kafka
        self._ledger = ledger
        self._retry = retry or RetryPolicy()
        self._readiness = readiness
        self._shutdown_grace_s = shutdown_grace_s
        self._stop = threading.Event()
        self._in_flight: _InFlight | None = None
        self._consumer: Any = None
        self._producer: Any = None
        self.assignments = 0
        # The partitions of the topic this member holds now.
        self.partitions: frozenset[int] = frozenset()
        self.revocations = 0
        self.rejoins = 0
        self._unassigned_since: float | None = time.monotonic()
        self._stall_s = kafka.group_stall_s

    def stop(self) -> None:
        """Ask the worker to stop after the command in hand (or its grace)."""
        self._stop.set()

    def run(self) -> None:
        """Consume and answer commands until :meth:`stop` is called.

        Raises:
            InfrastructureError: the broker or the ledger stayed unavailable;
                the command in hand is left uncommitted.
        """
        from kafka import KafkaProducer

        self._producer = KafkaProducer(
            bootstrap_servers=self._kafka.servers,
            client_id=f"{self.service}-producer",
            acks="all",
            retries=5,
            request_timeout_ms=self._kafka.request_timeout_ms,
        )
        self._consumer = self._make_consumer()
        try:
            self._beat(force=True)
            logger.info("ready topic=%s group=%s", self.topic, self.group_id)
            while not self._stop.is_set():
                batches = self._consumer.poll(timeout_ms=POLL_TIMEOUT_MS, max_records=1)
                self._beat()
                for partition, records in batches.items():
                    for record in records:
                        self._process(partition, record)
                stalled = self._stalled()
                if stalled and not self._stop.is_set():
                    self._rejoin(stalled)
        finally:
            if self._readiness is not None:
                self._readiness.clear()
            # close() leaves the group, so a surviving replica takes the
            # partitions at once instead of after the session timeout.
            self._consumer.close()
            self._producer.close(timeout=5)

    # -- one record ------------------------------------------------------------

    def _process(self, partition: Any, record: Any) -> None:
        job: Future[None] = Future()
        in_flight = _InFlight(partition=partition, offset=record.offset, job=job)
        self._in_flight = in_flight
        self._consumer.pause(*self._consumer.assignment())
        thread = threading.Thread(
            target=_run_into, args=(job, self._handle, record), daemon=True
        )
        thread.start()
        try:
            if not self._await(job):
                logger.warning(
                    "abandoned uncommitted on shutdown topic=%s partition=%s "
                    "offset=%s; it will be delivered again",
                    record.topic,
                    record.partition,
                    record.offset,
                )
                return
            job.result()
            if not in_flight.committed and not in_flight.lost:
                self._commit(partition, record.offset + 1)
        finally:
            self._in_flight = None
            if not self._stop.is_set():
                self._consumer.resume(*self._consumer.paused())

    def _await(self, job: Future[None]) -> bool:
        grace_ends: float | None = None
        while not job.done():
            if self._stop.is_set():
                grace_ends = grace_ends or time.monotonic() + self._shutdown_grace_s
                if time.monotonic() > grace_ends:
                    return False
            # Wake as soon as the handler finishes, not at the end of a poll.
            futures.wait([job], timeout=POLL_TIMEOUT_MS / 1000)
            # Partitions are paused: this fetches nothing, but it keeps the
            # member inside max.poll.interval.ms and serves rebalances.
            self._consumer.poll(timeout_ms=0)
            self._beat()
        return True

    def _handle(self, record: Any) -> None:
        """Answer one record; runs on the worker thread."""
        try:
            command = decode(self._kafka.logical(record.topic), record.value)
        except ContractError as exc:
            self._dead_letter(record, exc, attempts=0)
            return
        handler = (
            self._handlers.get(type(command)) if isinstance(command, Command) else None
        )
        if not isinstance(command, Command) or handler is None:
            reason = CommandRefusedError(
                f"{self.service} has no handler for {type(command).__name__}"
            )
            self._dead_letter(record, reason, attempts=0, message_id=command.message_id)
            return

        started = time.monotonic()
        logger.info(
            "received topic=%s partition=%s offset=%s type=%s message_id=%s "
            "correlation_id=%s",
            record.topic,
            record.partition,
            record.offset,
            type(command).__name__,
            command.message_id,
            command.correlation_id,
        )
        recorded = self._infrastructure(
            lambda: self._ledger.get(self.service, command.message_id)
        )
        if recorded is not None:
            logger.info(
                "already answered message_id=%s; publishing the recorded answer",
                command.message_id,
            )
            self._publish(recorded)
            return

        answer, error, attempts = self._answer(handler, command)
        # Another member may have answered while this one worked: one kicked
        # out of the group (a broker outage, a long pause) still finishes the
        # command its successor was handed again. The answer recorded first
        # stands; the handler takes back what this attempt made.
        recorded = self._infrastructure(
            lambda: self._ledger.get(self.service, command.message_id)
        )
        if recorded is not None:
            logger.warning(
                "answered meanwhile by another member message_id=%s; publishing "
                "the recorded answer and discarding this one",
                command.message_id,
            )
            _discard(handler, answer)
            self._publish(recorded)
            return
        if error is not None:
            self._dead_letter(record, error, attempts, message_id=command.message_id)
        entry = LedgerEntry(
            topic=self._kafka.physical(topic_for(answer)), payload=answer.to_bytes()
        )
        self._infrastructure(
            lambda: self._ledger.put(self.service, command.message_id, entry)
        )
        self._publish(entry)
        logger.info(
            "answered message_id=%s correlation_id=%s with=%s attempts=%s seconds=%.2f",
            command.message_id,
            command.correlation_id,
            type(answer).__name__,
            attempts,
            time.monotonic() - started,
        )

    def _answer(
        self, handler: Handler, command: Command
    ) -> tuple[Event, Exception | None, int]:
        """Run the handler with retries; return the answer, the error, attempts."""
        success_class, failure_class = REPLIES[type(command)]
        attempts = 0
        retrying = Retrying(
            stop=stop_after_attempt(self._retry.max_attempts),
            wait=wait_exponential(
                multiplier=self._retry.initial_backoff_s, max=self._retry.max_backoff_s
            ),
            retry=retry_if_not_exception_type(CommandRefusedError),
            before_sleep=before_sleep_log(logger, logging.WARNING),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    attempts = attempt.retry_state.attempt_number
                    answer = handler(command)
                    _check_answer(command, answer, success_class, failure_class)
        except CommandRefusedError as exc:
            return self._failure(command, failure_class, exc, retryable=False), None, 1
        except Exception as exc:
            logger.exception(
                "handler failed message_id=%s after attempts=%s",
                command.message_id,
                attempts,
            )
            return (
                self._failure(command, failure_class, exc, retryable=True),
                exc,
                attempts,
            )
        return answer, None, attempts

    def _failure(
        self,
        command: Command,
        failure_class: type[FailureEvent],
        error: Exception,
        retryable: bool,
    ) -> FailureEvent:
        return command.reply(
            failure_class,
            producer=self.service,
            reason=str(error)[:4000] or type(error).__name__,
            error_type=type(error).__name__,
            retryable=retryable,
        )

    # -- broker and ledger -----------------------------------------------------

    def _publish(self, entry: LedgerEntry) -> None:
        self._infrastructure(
            lambda: self._producer.send(entry.topic, entry.payload).get(
                timeout=self._kafka.request_timeout_ms / 1000
            )
        )

    def _dead_letter(
        self,
        record: Any,
        error: Exception,
        attempts: int,
        message_id: Any = None,
    ) -> None:
        raw: bytes = record.value or b""
        try:
            payload, encoding = raw.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            payload, encoding = base64.b64encode(raw).decode(), "base64"
        letter = DeadLetter(
            reason=str(error) or type(error).__name__,
            error_type=type(error).__name__,
            service=self.service,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            attempts=attempts,
            message_id=str(message_id) if message_id else None,
            payload=payload,
            payload_encoding=encoding,
        )
        logger.warning(
            "dead-lettering topic=%s partition=%s offset=%s reason=%s",
            record.topic,
            record.partition,
            record.offset,
            letter.reason,
        )
        body = letter.model_dump_json().encode()
        self._infrastructure(
            lambda: self._producer.send(
                self._kafka.physical(DEAD_LETTER_TOPIC), body
            ).get(timeout=self._kafka.request_timeout_ms / 1000)
        )

    def _infrastructure(self, call: Callable[[], Any]) -> Any:
        from kafka.errors import KafkaError

        retrying = Retrying(
            stop=stop_after_delay(INFRASTRUCTURE_RETRY_S),
            wait=wait_exponential(multiplier=0.5, max=5),
            retry=retry_if_exception_type((KafkaError, LedgerUnavailableError)),
            before_sleep=before_sleep_log(logger, logging.WARNING),
            reraise=True,
        )
        try:
            return retrying(call)
        except (KafkaError, LedgerUnavailableError) as exc:
            raise InfrastructureError(
                f"gave up after {INFRASTRUCTURE_RETRY_S:.0f} s: {exc}"
            ) from exc

    def _commit(self, partition: Any, offset: int) -> None:
        from kafka.errors import CommitFailedError
        from kafka.structs import OffsetAndMetadata

        try:
            self._consumer.commit({partition: OffsetAndMetadata(offset, "", -1)})
        except CommitFailedError as exc:
            # The partition moved to another member; it will deliver the record
            # again and answer it from the ledger.
            logger.warning(
                "commit failed partition=%s offset=%s: %s", partition, offset, exc
            )

    def _commit_queued(self, partition: Any, offset: int) -> None:
        from kafka.structs import OffsetAndMetadata

        def report(_offsets: Any, response: Any) -> None:
            if isinstance(response, Exception):
                logger.warning(
                    "commit failed partition=%s offset=%s: %s; the next owner "
                    "answers it from the ledger",
                    partition,
                    offset,
                    response,
                )

        self._consumer.commit_async(
            {partition: OffsetAndMetadata(offset, "", -1)}, callback=report
        )

    # -- consumer and group ----------------------------------------------------

    def _make_consumer(self) -> Any:
        from kafka import ConsumerRebalanceListener, KafkaConsumer

        worker = self

        class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
            def on_partitions_revoked(self, revoked: Any) -> None:
                worker._on_revoked(set(revoked))

            def on_partitions_assigned(self, assigned: Any) -> None:
                worker._on_assigned(set(assigned))

        kafka = self._kafka
        consumer = KafkaConsumer(
            bootstrap_servers=kafka.servers,
            group_id=self.group_id,
            client_id=self.service,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=1,
            max_poll_interval_ms=kafka.max_poll_interval_ms,
            session_timeout_ms=kafka.session_timeout_ms,
            heartbeat_interval_ms=max(kafka.session_timeout_ms // 3, 500),
            request_timeout_ms=max(
                kafka.request_timeout_ms, kafka.session_timeout_ms + 5000
            ),
            fetch_max_wait_ms=kafka.fetch_max_wait_ms,
        )
        consumer.subscribe([kafka.physical(self.topic)], listener=_Listener())
        return consumer

    def _stalled(self) -> str | None:
        """Return why this member seems cut off from its group, or None.

        Warning:
            After a broker outage kafka-python (3.0) can be left for good
            with an empty assignment (the group leader assigned while the
            broker could not list the topic's partitions, and nothing makes
            it assign again) or without a group coordinator (it then spins,
            fetching nothing). The second is not visible through its public
            API: this reads the heartbeat clock of the consumer's
            coordinator, and stays off if a later release renames it.
        """
        now = time.monotonic()
        since = self._unassigned_since
        if since is not None and now - since > self._stall_s:
            partitions = self._consumer.partitions_for_topic(
                self._kafka.physical(self.topic)
            )
            if partitions:
                return (
                    f"no partitions assigned for {self._stall_s:g} s although "
                    f"the topic has {len(partitions)}"
                )
        heartbeat = getattr(
            getattr(self._consumer, "_coordinator", None), "heartbeat", None
        )
        last_answer = max(
            getattr(heartbeat, "last_receive", now),
            getattr(heartbeat, "last_reset", now),
        )
        if now - last_answer > self._stall_s:
            return (
                "no heartbeat answered by the group coordinator for "
                f"{self._stall_s:g} s"
            )
        return None

    def _rejoin(self, reason: str) -> None:
        """Replace the consumer by a new one, which joins the group afresh."""
        logger.warning(
            "rejoining group=%s topic=%s with a new consumer: %s",
            self.group_id,
            self.topic,
            reason,
        )
        self.rejoins += 1
        self._consumer.close()
        self._consumer = self._make_consumer()
        self._unassigned_since = time.monotonic()
        # A replica beyond the partition count has none by design: it tries
        # again ever less often instead of making the group rebalance often.
        self._stall_s = min(self._stall_s * 2, MAX_REJOIN_INTERVAL_S)

    def _on_revoked(self, revoked: set[Any]) -> None:
        self.partitions = self.partitions - {p.partition for p in revoked}
        if revoked:
            self.revocations += 1
        in_flight = self._in_flight
        if in_flight is None or in_flight.partition not in revoked:
            return
        # Keep the command until its answer is out, so the next owner does not
        # start the same work; bounded so the group is not held forever.
        wait_s = max(self._kafka.max_poll_interval_ms / 1000 - 5, 1)
        try:
            in_flight.job.result(timeout=wait_s)
        except Exception:  # noqa: BLE001 (infrastructure errors surface in _process)
            in_flight.lost = True
            return
        # This runs on the consumer's network thread, which must not block on
        # itself: the commit is queued ahead of the group rejoin. Should it fail,
        # the next owner delivers the command again and answers from the ledger.
        self._commit_queued(in_flight.partition, in_flight.offset + 1)
        in_flight.committed = True

    def _on_assigned(self, assigned: set[Any]) -> None:
        self.assignments += 1
        self.partitions = frozenset(p.partition for p in assigned)
        logger.info("assigned partitions=%s", sorted(p.partition for p in assigned))
        if assigned:
            self._unassigned_since = None
            self._stall_s = self._kafka.group_stall_s
        elif self._unassigned_since is None:
            self._unassigned_since = time.monotonic()
        if self._in_flight is not None and assigned:
            self._consumer.pause(*assigned)

    def _beat(self, force: bool = False) -> None:
        if self._readiness is not None:
            self._readiness.beat(force=force)


def _check_answer(
    command: Command,
    answer: Any,
    success_class: type[Event],
    failure_class: type[FailureEvent],
) -> None:
    if not isinstance(answer, success_class | failure_class):
        raise TypeError(
            f"handler for {type(command).__name__} returned "
            f"{type(answer).__name__}, not {success_class.__name__}"
        )
    if answer.causation_id != command.message_id:
        raise ValueError("handler answer does not name the command as its cause")


def _discard(handler: Handler, answer: Event) -> None:
    """Let a handler take back an answer another member's answer superseded."""
    discard = getattr(handler, "discard", None)
    if discard is None:
        return
    try:
        discard(answer)
    except Exception:
        # What is left is an orphan run or object, not a wrong answer.
        logger.exception("could not discard a superseded answer")


def _run_into(job: Future[None], target: Callable[[Any], None], record: Any) -> None:
    try:
        target(record)
    except BaseException as exc:  # noqa: BLE001 (handed to the polling thread)
        job.set_exception(exc)
    else:
        job.set_result(None)
