"""Which partition a command client publishes each command to."""

from __future__ import annotations

import uuid
from collections import Counter

from kafka.partitioner import murmur2

from services.platform.bus import CommandClient
from services.platform.settings import KafkaSettings

TOPIC = "trainer.commands"
PARTITIONS = [0, 1, 2, 3]


def client() -> CommandClient:
    return CommandClient("test", KafkaSettings(bootstrap_servers="127.0.0.1:1"))


def place(commands: CommandClient, message_id: uuid.UUID) -> int:
    with commands._lock:
        return commands._place(message_id, TOPIC, str(message_id).encode(), PARTITIONS)


def hashed(message_id: uuid.UUID) -> int:
    """The partition Kafka's default partitioner gives the id as a key."""
    return (murmur2(str(message_id).encode()) & 0x7FFFFFFF) % len(PARTITIONS)


def test_a_command_alone_goes_where_its_id_hashes() -> None:
    commands = client()
    for _ in range(20):
        message_id = uuid.uuid4()
        assert place(commands, message_id) == hashed(message_id)
        commands._forget(message_id)


def test_pending_commands_spread_evenly_over_the_partitions() -> None:
    commands = client()
    placed = [place(commands, uuid.uuid4()) for _ in range(10)]

    assert sorted(Counter(placed).values()) == [2, 2, 3, 3]


def test_a_command_sent_again_while_pending_keeps_its_partition() -> None:
    commands = client()
    first = uuid.uuid4()
    partition = place(commands, first)
    for _ in range(7):
        place(commands, uuid.uuid4())

    assert place(commands, first) == partition


def test_an_answered_command_no_longer_counts() -> None:
    commands = client()
    ids = [uuid.uuid4() for _ in range(4)]
    placed = {message_id: place(commands, message_id) for message_id in ids}
    assert sorted(placed.values()) == PARTITIONS
    commands._forget(ids[0])

    assert place(commands, uuid.uuid4()) == placed[ids[0]]
