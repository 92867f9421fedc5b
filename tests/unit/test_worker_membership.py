"""When a worker decides its consumer is cut off from the group, without a broker."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest
from kafka import TopicPartition

from contracts import TrainModel
from contracts.topics import TRAINER_COMMANDS
from services.platform.bus import CommandWorker
from services.platform.bus.worker import MAX_REJOIN_INTERVAL_S
from services.platform.settings import KafkaSettings


def partitions(*numbers: int) -> set[TopicPartition]:
    return {TopicPartition(TRAINER_COMMANDS, n) for n in numbers}


class FakeConsumer:
    """The part of a KafkaConsumer the membership check reads."""

    def __init__(self, assigned: set[TopicPartition], listed: set[int] | None) -> None:
        self.assigned = assigned
        self.listed = listed
        self._coordinator = SimpleNamespace(
            heartbeat=SimpleNamespace(
                last_receive=time.monotonic(), last_reset=time.monotonic()
            )
        )
        self.closed = False

    def assignment(self) -> set[TopicPartition]:
        return self.assigned

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        assert topic == TRAINER_COMMANDS
        return self.listed

    def close(self) -> None:
        self.closed = True


def _worker(consumer: FakeConsumer, stall_s: float = 5.0) -> CommandWorker:
    worker = CommandWorker(
        service="trainer",
        topic=TRAINER_COMMANDS,
        handlers={TrainModel: lambda command: None},  # type: ignore[arg-type,return-value]
        kafka=KafkaSettings(group_stall_s=stall_s),
        ledger=None,  # type: ignore[arg-type]
    )
    worker._consumer = consumer
    return worker


def _age(worker: CommandWorker, seconds: float) -> None:
    worker._unassigned_since = time.monotonic() - seconds


def test_member_without_partitions_of_a_partitioned_topic_is_stalled() -> None:
    worker = _worker(FakeConsumer(assigned=set(), listed={0, 1, 2, 3}))
    _age(worker, 6)

    assert worker._stalled() == (
        "no partitions assigned for 5 s although the topic has 4"
    )


@pytest.mark.parametrize(
    ("assigned", "listed", "age_s"),
    [
        (set(), {0, 1, 2, 3}, 1),  # not for long yet
        (set(), None, 60),  # the broker cannot list the topic: nothing to gain
        (partitions(0, 1), {0, 1, 2, 3}, None),  # has partitions
    ],
)
def test_member_is_not_stalled_while_it_has_partitions_or_could_not(
    assigned: set[TopicPartition], listed: set[int] | None, age_s: float | None
) -> None:
    worker = _worker(FakeConsumer(assigned, listed))
    worker._on_assigned(assigned)
    if age_s is not None:
        _age(worker, age_s)

    assert worker._stalled() is None


def test_member_whose_coordinator_stopped_answering_heartbeats_is_stalled() -> None:
    consumer = FakeConsumer(assigned=partitions(0), listed={0, 1, 2, 3})
    worker = _worker(consumer)
    worker._on_assigned(partitions(0))
    consumer._coordinator.heartbeat.last_receive = time.monotonic() - 6
    consumer._coordinator.heartbeat.last_reset = time.monotonic() - 60

    assert worker._stalled() == (
        "no heartbeat answered by the group coordinator for 5 s"
    )


def test_rejoin_replaces_the_consumer_and_waits_longer_before_the_next(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    old = FakeConsumer(assigned=set(), listed={0, 1, 2, 3})
    worker = _worker(old, stall_s=300)
    made: list[Any] = []

    def make() -> FakeConsumer:
        made.append(FakeConsumer(set(), {0}))
        return made[-1]

    monkeypatch.setattr(worker, "_make_consumer", make)

    worker._rejoin("test")
    first = worker._stall_s
    worker._rejoin("test")

    assert old.closed and worker._consumer is made[-1] and len(made) == 2
    assert (first, worker._stall_s) == (600, MAX_REJOIN_INTERVAL_S)
    assert worker.rejoins == 2
    worker._on_assigned(partitions(0))
    assert worker._stall_s == 300
