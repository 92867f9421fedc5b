"""The main loop every service runs: wait for dependencies, consume, stop cleanly.

A service answers the commands on its topic through a
:class:`~services.platform.bus.worker.CommandWorker` in a consumer group named
after the service type, so replicas share the topic's partitions. SIGTERM or
SIGINT ends the loop: the command in hand finishes within the grace period or
is left uncommitted, the consumer leaves its group, the readiness file is
removed, and the process exits 0.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType

from contracts import Command
from services.platform.bus import CommandWorker, RetryPolicy, S3Ledger
from services.platform.bus.worker import Handler
from services.platform.objectstore import open_object_store
from services.platform.probes import probe_http, probe_kafka, probe_s3, wait_until
from services.platform.readiness import ReadinessFile
from services.platform.settings import ServiceSettings

logger = logging.getLogger(__name__)

IDLE_BEAT_S = 0.5


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
    handlers: dict[type[Command], Handler] = field(default_factory=dict)
    extra_dependencies: list[Dependency] = field(default_factory=list)
    startup_timeout_s: float = 120.0
    _stop: threading.Event = field(default_factory=threading.Event, init=False)
    _worker: CommandWorker | None = field(default=None, init=False)

    def run(self, main_loop: Callable[[Callable[[], None]], None] | None = None) -> int:
        """Serve until SIGTERM or SIGINT; return the process exit code.

        Args:
            main_loop: what to run instead of consuming the command topic. It
                is passed a function to call once it serves (the readiness
                file is written from then on), and must return on
                KeyboardInterrupt, which SIGTERM raises in it.
        """
        self._install_signal_handlers(interrupt=main_loop is not None)
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
            if main_loop is not None:
                self._beside(readiness, main_loop)
            elif self.command_topic is None:
                self._idle(readiness)
            else:
                self._consume(readiness, self.command_topic)
        finally:
            readiness.clear()
        logger.info("stopped cleanly")
        return 0

    def stop(self) -> None:
        """Ask the main loop to end after the command in hand."""
        self._stop.set()
        if self._worker is not None:
            self._worker.stop()

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

    def _install_signal_handlers(self, interrupt: bool) -> None:
        def _on_signal(signum: int, _frame: FrameType | None) -> None:
            logger.info("received signal=%s; stopping", signal.Signals(signum).name)
            self.stop()
            if interrupt:
                raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, _on_signal)
        signal.signal(signal.SIGINT, _on_signal)

    def _beside(
        self,
        readiness: ReadinessFile,
        main_loop: Callable[[Callable[[], None]], None],
    ) -> None:
        def beat() -> None:
            while not self._stop.wait(IDLE_BEAT_S):
                readiness.beat()

        def ready() -> None:
            readiness.beat(force=True)
            threading.Thread(target=beat, name="readiness", daemon=True).start()
            logger.info("ready")

        try:
            main_loop(ready)
        except KeyboardInterrupt:
            logger.info("main loop interrupted")
        finally:
            self._stop.set()

    def _idle(self, readiness: ReadinessFile) -> None:
        readiness.beat(force=True)
        logger.info("ready")
        while not self._stop.wait(IDLE_BEAT_S):
            readiness.beat()

    def _consume(self, readiness: ReadinessFile, topic: str) -> None:
        s3 = self.settings.s3
        client = open_object_store(s3).client
        worker = CommandWorker(
            service=self.name,
            topic=topic,
            handlers=self.handlers,
            kafka=self.settings.kafka,
            ledger=S3Ledger(client, s3.ledger_bucket),
            retry=RetryPolicy(
                max_attempts=self.settings.handler_max_attempts,
                initial_backoff_s=self.settings.handler_backoff_s,
            ),
            readiness=readiness,
            shutdown_grace_s=self.settings.shutdown_grace_s,
        )
        self._worker = worker
        if self._stop.is_set():
            return
        worker.run()
