"""The bus against the real broker and object store: nothing lost, nothing twice.

Every test runs on its own topic prefix, consumer group and ledger prefix.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer

from contracts import TOPICS, TrainModel
from contracts.topics import DEAD_LETTER_TOPIC, TRAINER_COMMANDS
from deploy.local.stack import LocalStack
from services.platform.broker import ensure_topics
from services.platform.bus import CommandClient, S3Ledger
from services.platform.bus.requests import CommandFailedError, ReplyTimeoutError
from services.platform.errors import CommandRefusedError
from services.platform.settings import KafkaSettings
from tests.bus_helpers import running_worker, train_command, trained

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Bus:
    kafka: KafkaSettings
    ledger: S3Ledger
    ledger_prefix: str
    group: str
    env: dict[str, str]


@pytest.fixture
def bus(local_stack: LocalStack, unique: str) -> Bus:
    env = local_stack.client_env()
    kafka = KafkaSettings(
        bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"],
        topic_prefix=f"t{unique}.",
    )
    ensure_topics(kafka.servers, TOPICS, prefix=kafka.topic_prefix)
    client = local_stack.object_store().client
    prefix = f"test-{unique}"
    return Bus(
        kafka=kafka,
        ledger=S3Ledger(client, "ledger", prefix=prefix),
        ledger_prefix=prefix,
        group=f"trainer-{unique}",
        env=env,
    )


class Effects:
    """What handlers did, counted per command, across threads."""

    def __init__(self) -> None:
        self.counts: Counter[Any] = Counter()
        self._lock = threading.Lock()

    def record(self, command: TrainModel) -> None:
        with self._lock:
            self.counts[command.message_id] += 1


def test_group_of_three_handles_each_command_exactly_once(bus: Bus) -> None:
    effects = Effects()

    def handle(command: TrainModel):
        effects.record(command)
        return trained(command)

    with (
        running_worker(bus.kafka, bus.ledger, handle, bus.group),
        running_worker(bus.kafka, bus.ledger, handle, bus.group),
        running_worker(bus.kafka, bus.ledger, handle, bus.group),
        CommandClient("test", bus.kafka) as client,
    ):
        commands = [train_command() for _ in range(30)]
        pending = [(c, client.send(c)) for c in commands]
        answers = [client.wait(c, f, timeout_s=90) for c, f in pending]

    assert [a.causation_id for a in answers] == [c.message_id for c in commands]
    assert effects.counts == Counter({c.message_id: 1 for c in commands})


def test_commands_sent_together_are_shared_evenly_by_the_members(bus: Bus) -> None:
    handled: Counter[str] = Counter()
    lock = threading.Lock()

    def handler_of(member: str):
        def handle(command: TrainModel):
            with lock:
                handled[member] += 1
            time.sleep(1.0)
            return trained(command)

        return handle

    with (
        running_worker(bus.kafka, bus.ledger, handler_of("a"), bus.group) as a,
        running_worker(bus.kafka, bus.ledger, handler_of("b"), bus.group) as b,
        CommandClient("test", bus.kafka) as client,
    ):
        deadline = time.monotonic() + 60
        while len(a.partitions) != 2 or len(b.partitions) != 2:
            assert time.monotonic() < deadline, (a.partitions, b.partitions)
            time.sleep(0.1)
        # Ids hashed to partitions would split twelve commands six and six
        # less than a quarter of the time.
        commands = [train_command() for _ in range(12)]
        pending = [(c, client.send(c)) for c in commands]
        for command, future in pending:
            client.wait(command, future, timeout_s=90)

    assert handled == Counter({"a": 6, "b": 6})


def test_consumer_killed_mid_handler_is_replaced_and_nothing_takes_effect_twice(
    bus: Bus, tmp_path: Path
) -> None:
    effects = tmp_path / "effects.log"
    members = [_start_member(bus, effects, handler_s=4) for _ in range(2)]
    try:
        _wait_for(lambda: _lines(effects, "member") == 2, 60, "both members up")
        with CommandClient("test", bus.kafka) as client:
            command = train_command()
            future = client.send(command)
            _wait_for(lambda: _lines(effects, "started") >= 1, 60, "handler started")
            victim = int(_matching(effects, "started")[0].split()[2])
            os.kill(victim, signal.SIGKILL)

            answer = client.wait(command, future, timeout_s=90)
    finally:
        for member in members:
            member.terminate()
        for member in members:
            member.wait(timeout=60)

    assert answer.causation_id == command.message_id
    done = _matching(effects, f"done {command.message_id}")
    started = _matching(effects, f"started {command.message_id}")
    assert len(done) == 1, effects.read_text()
    assert len(started) == 2, effects.read_text()
    assert str(victim) not in done[0]


def test_sigterm_abandons_the_command_uncommitted_and_it_is_redelivered(
    bus: Bus, tmp_path: Path
) -> None:
    effects = tmp_path / "effects.log"
    first = _start_member(bus, effects, handler_s=20)
    _wait_for(lambda: _lines(effects, "member") == 1, 60, "first member up")
    with CommandClient("test", bus.kafka) as client:
        command = train_command()
        future = client.send(command)
        _wait_for(lambda: _lines(effects, "started") == 1, 60, "handler started")

        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=60) == 0
        second = _start_member(bus, effects, handler_s=0)
        try:
            answer = client.wait(command, future, timeout_s=90)
        finally:
            second.terminate()
            second.wait(timeout=60)

    assert answer.causation_id == command.message_id
    assert len(_matching(effects, f"done {command.message_id}")) == 1
    assert str(first.pid) not in _matching(effects, "done")[0]


def test_poison_message_is_dead_lettered_and_the_next_one_handled(bus: Bus) -> None:
    producer = KafkaProducer(bootstrap_servers=bus.kafka.servers)
    poison_offset = (
        producer.send(bus.kafka.physical(TRAINER_COMMANDS), b"\xff\x00poison")
        .get(timeout=30)
        .offset
    )
    producer.close()

    with (
        running_worker(bus.kafka, bus.ledger, trained, bus.group),
        CommandClient("test", bus.kafka) as client,
    ):
        command = train_command()
        answer = client.request(command, timeout_s=60)

    letters = _dead_letters(bus, expected=1)
    assert answer.causation_id == command.message_id
    assert letters[0]["reason"].startswith("not JSON")
    assert letters[0]["error_type"] == "MalformedMessageError"
    assert letters[0]["offset"] == poison_offset
    assert letters[0]["payload_encoding"] == "base64"
    assert letters[0]["topic"] == bus.kafka.physical(TRAINER_COMMANDS)


def test_unknown_schema_version_is_refused_with_a_clear_reason(bus: Bus) -> None:
    document = json.loads(train_command().to_bytes())
    document["schema_version"] = 99
    producer = KafkaProducer(bootstrap_servers=bus.kafka.servers)
    producer.send(
        bus.kafka.physical(TRAINER_COMMANDS), json.dumps(document).encode()
    ).get(timeout=30)
    producer.close()
    handled = Effects()

    def handle(command: TrainModel):
        handled.record(command)
        return trained(command)

    with running_worker(bus.kafka, bus.ledger, handle, bus.group):
        letters = _dead_letters(bus, expected=1)

    assert letters[0]["reason"] == (
        "schema_version 99 is not supported (this code reads version 1)"
    )
    assert json.loads(letters[0]["payload"]) == document
    assert sum(handled.counts.values()) == 0


def test_handler_longer_than_the_poll_interval_does_not_rebalance(bus: Bus) -> None:
    kafka = bus.kafka.model_copy(update={"max_poll_interval_ms": 2000})
    effects = Effects()

    def slow(command: TrainModel):
        time.sleep(7)
        effects.record(command)
        return trained(command)

    with (
        running_worker(kafka, bus.ledger, slow, bus.group) as worker,
        CommandClient("test", kafka) as client,
    ):
        command = train_command()
        client.request(command, timeout_s=90)
        # A member dropped for not polling rejoins on its next poll: give the
        # worker's loop time to show it.
        time.sleep(3)
        revocations, assignments = worker.revocations, worker.assignments

    assert (revocations, assignments) == (0, 1), "the group rebalanced mid-handler"
    assert effects.counts == Counter({command.message_id: 1})


def test_failing_handler_is_retried_with_backoff_then_succeeds(bus: Bus) -> None:
    attempts = Effects()

    def flaky(command: TrainModel):
        attempts.record(command)
        if attempts.counts[command.message_id] < 3:
            raise ConnectionError("transient")
        return trained(command)

    with (
        running_worker(bus.kafka, bus.ledger, flaky, bus.group),
        CommandClient("test", bus.kafka) as client,
    ):
        command = train_command()
        answer = client.request(command, timeout_s=60)

    assert answer.message_type == "ModelTrained"
    assert attempts.counts[command.message_id] == 3


def test_handler_failing_every_attempt_is_answered_and_dead_lettered(bus: Bus) -> None:
    def broken(command: TrainModel):
        raise RuntimeError(f"disk full while fitting {command.message_id}")

    with (
        running_worker(bus.kafka, bus.ledger, broken, bus.group),
        CommandClient("test", bus.kafka) as client,
    ):
        command = train_command()
        with pytest.raises(
            CommandFailedError, match="disk full while fitting"
        ) as failure:
            client.request(command, timeout_s=60)

    letters = _dead_letters(bus, expected=1)
    assert failure.value.failure.retryable is True
    assert failure.value.failure.error_type == "RuntimeError"
    assert letters[0]["attempts"] == 3
    assert letters[0]["message_id"] == str(command.message_id)
    assert "disk full" in letters[0]["reason"]


def test_refused_command_is_answered_at_once_and_not_retried(bus: Bus) -> None:
    calls = Effects()

    def refuse(command: TrainModel):
        calls.record(command)
        raise CommandRefusedError("batch of 200 rows asked from a pool of 150")

    with (
        running_worker(bus.kafka, bus.ledger, refuse, bus.group),
        CommandClient("test", bus.kafka) as client,
    ):
        command = train_command()
        with pytest.raises(CommandFailedError, match="pool of 150") as failure:
            client.request(command, timeout_s=60)

    assert failure.value.failure.retryable is False
    assert calls.counts[command.message_id] == 1


def test_redelivered_command_is_answered_from_the_ledger_not_redone(bus: Bus) -> None:
    effects = Effects()

    def handle(command: TrainModel):
        effects.record(command)
        return trained(command)

    with (
        running_worker(bus.kafka, bus.ledger, handle, bus.group),
        CommandClient("test", bus.kafka) as client,
    ):
        command = train_command()
        first = client.request(command, timeout_s=60)
        again = client.request(command, timeout_s=60)

    assert again == first
    assert effects.counts[command.message_id] == 1


def test_request_without_an_answer_times_out_naming_what_was_awaited(bus: Bus) -> None:
    with CommandClient("test", bus.kafka) as client:
        command = train_command()
        with pytest.raises(ReplyTimeoutError) as failure:
            client.request(command, timeout_s=1)

    assert str(failure.value) == (
        f"no ModelTrained or TrainingFailed answering TrainModel {command.message_id} "
        f"(correlation {command.correlation_id}) arrived on trainer.events within 1 s"
    )


# -- helpers -------------------------------------------------------------------


def _start_member(bus: Bus, effects: Path, handler_s: float) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        **bus.env,
        "KAFKA_TOPIC_PREFIX": bus.kafka.topic_prefix,
        "TEST_GROUP": bus.group,
        "TEST_LEDGER_PREFIX": bus.ledger_prefix,
    }
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.integration.bus_member",
            str(effects),
            str(handler_s),
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _matching(path: Path, prefix: str) -> list[str]:
    if not path.exists():
        return []
    return [line for line in path.read_text().splitlines() if line.startswith(prefix)]


def _lines(path: Path, prefix: str) -> int:
    return len(_matching(path, prefix))


def _wait_for(condition: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _dead_letters(bus: Bus, expected: int, timeout_s: float = 60) -> list[dict]:
    consumer = KafkaConsumer(
        bus.kafka.physical(DEAD_LETTER_TOPIC),
        bootstrap_servers=bus.kafka.servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=500,
    )
    letters: list[dict] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(letters) < expected and time.monotonic() < deadline:
            letters.extend(json.loads(record.value) for record in consumer)
    finally:
        consumer.close()
    assert len(letters) >= expected, f"{len(letters)} dead letters, wanted {expected}"
    return letters
