"""Commands, answers and workers for the bus tests."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from contracts import DatasetRef, ModelTrained, ObjectRef, TrainModel
from contracts.topics import TRAINER_COMMANDS
from services.platform.bus import CommandWorker, Ledger, RetryPolicy
from services.platform.settings import KafkaSettings

REF = ObjectRef(uri="s3://datasets/test/labeled.json", sha256="0" * 64, size_bytes=1)


def train_command(correlation_id: uuid.UUID | None = None) -> TrainModel:
    """Return a valid TrainModel command."""
    return TrainModel(
        correlation_id=correlation_id or uuid.uuid4(),
        producer="test",
        experiment="bus-test",
        round=0,
        dataset=DatasetRef(dataset_id="test-dataset", manifest=REF),
        labeled=REF,
        seed=42,
    )


def trained(command: TrainModel, producer: str = "trainer") -> ModelTrained:
    """Return the ModelTrained answer to ``command``."""
    return command.reply(
        ModelTrained,
        producer=producer,
        round=command.round,
        model=REF,
        mlflow_run_id="0" * 32,
        n_labeled=1,
        fit_seconds=0.0,
    )


@contextmanager
def running_worker(
    kafka: KafkaSettings,
    ledger: Ledger,
    handler: Callable[[TrainModel], ModelTrained],
    group_id: str,
    retry: RetryPolicy | None = None,
    service: str = "trainer",
) -> Iterator[CommandWorker]:
    """Run a trainer-topic worker on a thread for the duration of the block."""
    worker = CommandWorker(
        service=service,
        topic=TRAINER_COMMANDS,
        handlers={TrainModel: handler},
        kafka=kafka,
        ledger=ledger,
        retry=retry or RetryPolicy(max_attempts=3, initial_backoff_s=0.05),
        group_id=group_id,
        shutdown_grace_s=5,
    )
    errors: list[BaseException] = []

    def run() -> None:
        try:
            worker.run()
        except BaseException as exc:  # noqa: BLE001 (handed to the test below)
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        worker.stop()
        thread.join(timeout=30)
    assert not thread.is_alive(), "worker did not stop"
    assert errors == [], errors
