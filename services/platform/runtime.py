"""The main loop every service runs: wait for dependencies, consume, stop cleanly.

A service consumes its command topic in a consumer group named after the
service type, so replicas share the topic's partitions. Offsets are committed
by hand, only after a record has been dealt with. A record the service has no
handler for goes to the dead-letter topic with the reason, and the loop moves
on. SIGTERM or SIGINT ends the loop: the consumer leaves its group, the
readiness file is removed, and the process exits 0.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from contracts.topics import DEAD_LETTER_TOPIC
from services.platform.probes import probe_http, probe_kafka, probe_s3, wait_until
from services.platform.readiness import ReadinessFile
from services.platform.settings import ServiceSettings

logger = logging.getLogger(__name__)

POLL_TIMEOUT_MS = 500


@dataclass(frozen=True)
class Dependency:
    """A server a service waits for before it reports ready."""

    component: str
    address: str
    probe: Callable[[], object]


@dataclass
class ServiceRuntime:
    """Run one service process until it is told to stop."""

    name: str
    settings: ServiceSettings
    command_topic: str | None
    extra_dependencies: list[Dependency] = field(default_factory=list)
    startup_timeout_s: float = 120.0
    _stop: threading.Event = field(default_factory=threading.Event, init=False)

    def run(self) -> int:
        """Serve until SIGTERM or SIGINT; return the process exit code."""
        self._install_signal_handlers()
        readiness = ReadinessFile(self.settings.readiness_file)
        readiness.clear()
        for dependency in self.dependencies():
            wait_until(
                dependency.component,
                dependency.address,
                dependency.probe,
                self.startup_timeout_s,
            )
        logger.info("dependencies answered; starting main loop")
        try:
            if self.command_topic is None:
                self._idle(readiness)
            else:
                self._consume(readiness, self.command_topic)
        finally:
            readiness.clear()
        logger.info("stopped cleanly")
        return 0

    def stop(self) -> None:
        """Ask the main loop to end after the record in hand."""
        self._stop.set()

    def dependencies(self) -> list[Dependency]:
        """Return the servers this service needs, in the order it waits for them."""
        s = self.settings
        return [
            Dependency(
                "broker",
                s.kafka.bootstrap_servers,
                lambda: probe_kafka(s.kafka.servers),
            ),
            Dependency(
                "object store",
                s.s3.endpoint_url,
                lambda: probe_s3(
                    s.s3.endpoint_url,
                    s.s3.access_key_id.get_secret_value(),
                    s.s3.secret_access_key.get_secret_value(),
                    s.s3.region,
                    s.s3.buckets,
                ),
            ),
            Dependency(
                "MLflow",
                s.mlflow.tracking_uri,
                lambda: probe_http(s.mlflow.tracking_uri.rstrip("/") + "/health"),
            ),
            *self.extra_dependencies,
        ]

    def _install_signal_handlers(self) -> None:
        def _on_signal(signum: int, _frame: FrameType | None) -> None:
            logger.info("received signal=%s; stopping", signal.Signals(signum).name)
            self._stop.set()

        signal.signal(signal.SIGTERM, _on_signal)
        signal.signal(signal.SIGINT, _on_signal)

    def _idle(self, readiness: ReadinessFile) -> None:
        readiness.beat(force=True)
        logger.info("ready")
        while not self._stop.wait(POLL_TIMEOUT_MS / 1000):
            readiness.beat()

    def _consume(self, readiness: ReadinessFile, topic: str) -> None:
        from kafka import KafkaConsumer, KafkaProducer

        kafka = self.settings.kafka
        consumer = KafkaConsumer(
            topic,
            bootstrap_servers=kafka.servers,
            group_id=self.name,
            client_id=self.name,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=kafka.session_timeout_ms,
            heartbeat_interval_ms=max(kafka.session_timeout_ms // 3, 500),
            request_timeout_ms=max(
                kafka.request_timeout_ms, kafka.session_timeout_ms + 5000
            ),
            fetch_max_wait_ms=100,
        )
        producer = KafkaProducer(
            bootstrap_servers=kafka.servers, client_id=self.name, acks="all"
        )
        readiness.beat(force=True)
        logger.info("ready topic=%s group=%s", topic, self.name)
        try:
            while not self._stop.is_set():
                batches = consumer.poll(timeout_ms=POLL_TIMEOUT_MS)
                for records in batches.values():
                    for record in records:
                        self._dead_letter_unhandled(producer, record)
                        consumer.commit()
                readiness.beat()
        finally:
            # close() leaves the group, so the partitions move to a surviving
            # replica at once instead of after the session timeout.
            consumer.close()
            producer.close(timeout=5)

    def _dead_letter_unhandled(self, producer: Any, record: Any) -> None:
        reason = f"{self.name} has no handler for records on {record.topic}"
        logger.warning(
            "dead-lettering topic=%s partition=%s offset=%s reason=%s",
            record.topic,
            record.partition,
            record.offset,
            reason,
        )
        envelope = {
            "reason": reason,
            "service": self.name,
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "payload": record.value.decode("utf-8", errors="replace"),
        }
        producer.send(DEAD_LETTER_TOPIC, json.dumps(envelope).encode()).get(timeout=30)
