"""A worker whose command another member answered meanwhile keeps that answer."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from contracts import ModelTrained, TrainModel
from contracts.topics import TRAINER_COMMANDS
from services.platform.bus import CommandWorker, InMemoryLedger
from services.platform.bus.ledger import LedgerEntry
from services.platform.settings import KafkaSettings
from tests.bus_helpers import train_command, trained


def _answer(command: TrainModel, run_id: str) -> ModelTrained:
    return trained(command).model_copy(update={"mlflow_run_id": run_id})


class SlowHandler:
    """Answers, but only after another member has recorded its own answer."""

    def __init__(self, ledger: InMemoryLedger, first: LedgerEntry) -> None:
        self.ledger = ledger
        self.first = first
        self.discarded: list[Any] = []

    def __call__(self, command: TrainModel) -> ModelTrained:
        self.ledger.put("trainer", command.message_id, self.first)
        return _answer(command, "b" * 32)

    def discard(self, answer: Any) -> None:
        self.discarded.append(answer)


def test_an_answer_recorded_meanwhile_is_published_and_this_one_discarded() -> None:
    command = train_command()
    ledger = InMemoryLedger()
    first = LedgerEntry(
        topic="trainer.events", payload=_answer(command, "a" * 32).to_bytes()
    )
    handler = SlowHandler(ledger, first)
    published: list[tuple[str, bytes]] = []
    worker = CommandWorker(
        service="trainer",
        topic=TRAINER_COMMANDS,
        handlers={TrainModel: handler},
        kafka=KafkaSettings(),
        ledger=ledger,
    )
    worker._producer = SimpleNamespace(
        send=lambda topic, payload: SimpleNamespace(
            get=lambda timeout: published.append((topic, payload))
        )
    )
    record = SimpleNamespace(
        topic=TRAINER_COMMANDS, partition=0, offset=7, value=command.to_bytes()
    )

    worker._handle(record)

    assert published == [("trainer.events", first.payload)]
    assert ledger.get("trainer", command.message_id) == first
    assert [a.mlflow_run_id for a in handler.discarded] == ["b" * 32]
