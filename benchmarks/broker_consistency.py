"""Check the broker keeps every record producers append to one partition at once.

Run ``python -m benchmarks.broker_consistency``. For the broker's log in the
object store (the local default) and in memory, it starts a local stack on
free ports, creates a one-partition topic, and has several producers append
to it at the same moment, round after round (one producer sends records of
300 KB, like a dead letter of an oversized message; the others small ones),
while a consumer reads the partition along. Every record names its producer
and number. Then it reads the partition again from the start and reports,
of the records the broker acknowledged:

- the partition's end offset against the number acknowledged;
- how many the consumer reading along never received;
- how many the second read does not find, and how many it finds twice.

On a broker that keeps a partition consistent all three are zero and the
end offset equals the count. Writes ``broker_consistency.json`` (raw
numbers) and ``broker_consistency.md`` (the table) to the output folder.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.platform_runs import STORAGES, Storage, benchmark_stack, machine

PRODUCERS = 4
RECORDS_PER_ROUND = 25
LARGE_RECORD_BYTES = 300_000
SMALL_RECORD_BYTES = 500
# The reader has seen everything it will once it has had nothing new this long.
QUIET_S = 5.0


def _produce(servers: str, topic: str, producer: int, rnd: int, start: Any) -> None:
    from kafka import KafkaProducer

    client = KafkaProducer(
        bootstrap_servers=servers, acks="all", max_request_size=2 * LARGE_RECORD_BYTES
    )
    size = LARGE_RECORD_BYTES if producer == 0 else SMALL_RECORD_BYTES
    try:
        start.wait()
        for number in range(RECORDS_PER_ROUND):
            name = f"{producer}:{rnd}:{number}"
            client.send(topic, name.encode() + b"|" + b"x" * size).get(timeout=60)
    finally:
        client.close()


def _name(value: bytes) -> str:
    return value.split(b"|", 1)[0].decode()


def measure(storage: Storage, rounds: int, state_dir: Path) -> dict[str, Any]:
    """Start a stack with the broker's log in ``storage``; append, read, compare."""
    from kafka import KafkaConsumer, TopicPartition
    from kafka.admin import KafkaAdminClient, NewTopic

    with benchmark_stack(
        state_dir / storage, broker_storage=storage, label=storage
    ) as stack:
        servers = stack.client_env()["KAFKA_BOOTSTRAP_SERVERS"]
        topic = f"consistency.{uuid.uuid4().hex[:8]}"
        admin = KafkaAdminClient(bootstrap_servers=servers)
        try:
            admin.create_topics([NewTopic(topic, 1, 1)])
        finally:
            admin.close()
        partition = TopicPartition(topic, 0)

        live: dict[int, str] = {}
        last_seen = [time.monotonic()]
        stop = threading.Event()

        def read_along() -> None:
            consumer = KafkaConsumer(
                bootstrap_servers=servers, enable_auto_commit=False
            )
            consumer.assign([partition])
            consumer.seek(partition, 0)
            try:
                while not stop.is_set():
                    for records in consumer.poll(timeout_ms=200).values():
                        for record in records:
                            live[record.offset] = _name(record.value)
                            last_seen[0] = time.monotonic()
            finally:
                consumer.close()

        reader = threading.Thread(target=read_along, daemon=True)
        reader.start()
        time.sleep(QUIET_S)  # the reader is fetching before the first append
        for rnd in range(rounds):
            start = threading.Event()
            producers = [
                threading.Thread(
                    target=_produce, args=(servers, topic, p, rnd, start), daemon=True
                )
                for p in range(PRODUCERS)
            ]
            for thread in producers:
                thread.start()
            start.set()
            for thread in producers:
                thread.join()
            print(f"  [{storage}] round {rnd + 1} of {rounds} appended")
        while time.monotonic() - last_seen[0] < QUIET_S:
            time.sleep(0.5)
        stop.set()
        reader.join(timeout=30)

        consumer = KafkaConsumer(bootstrap_servers=servers, enable_auto_commit=False)
        try:
            end = int(consumer.end_offsets([partition])[partition])
            consumer.assign([partition])
            consumer.seek(partition, 0)
            again: list[str] = []
            quiet_since = time.monotonic()
            while time.monotonic() - quiet_since < QUIET_S:
                for records in consumer.poll(timeout_ms=500).values():
                    again.extend(_name(record.value) for record in records)
                    quiet_since = time.monotonic()
        finally:
            consumer.close()

    acknowledged = {
        f"{p}:{r}:{n}"
        for p in range(PRODUCERS)
        for r in range(rounds)
        for n in range(RECORDS_PER_ROUND)
    }
    found = Counter(again)
    result = {
        "acknowledged": len(acknowledged),
        "end_offset": end,
        "missed_reading_along": len(acknowledged - set(live.values())),
        "lost_on_second_read": len(acknowledged - set(found)),
        "twice_on_second_read": sum(1 for count in found.values() if count > 1),
    }
    print(f"  [{storage}] {result}")
    return result


def consistent(result: dict[str, Any]) -> bool:
    """Return whether a storage kept every acknowledged record, once, in place."""
    return bool(
        result["end_offset"] == result["acknowledged"]
        and result["missed_reading_along"] == 0
        and result["lost_on_second_read"] == 0
        and result["twice_on_second_read"] == 0
    )


def _table(results: dict[str, Any], command: str) -> str:
    lines = [
        "# The broker's partition under concurrent producers",
        "",
        f"Produced by `{command}` on {results['machine']['host'] or 'this machine'} "
        f"({results['machine']['cpus']} cores), {results['machine']['date']}.",
        f"{PRODUCERS} producers append {RECORDS_PER_ROUND} records each to one "
        f"partition at the same moment, {results['rounds']} rounds (one producer's",
        f"records are {LARGE_RECORD_BYTES // 1000} KB, the others' "
        f"{SMALL_RECORD_BYTES} bytes); a consumer reads",
        "the partition along, and it is read again from the start afterwards.",
        "",
        "| broker log | acknowledged | end offset | missed reading along | "
        "lost on the second read | found twice | consistent |",
        "|---|---|---|---|---|---|---|",
    ]
    for storage in STORAGES:
        r = results[storage]
        lines.append(
            f"| {storage} | {r['acknowledged']} | {r['end_offset']} | "
            f"{r['missed_reading_along']} | {r['lost_on_second_read']} | "
            f"{r['twice_on_second_read']} | {'yes' if consistent(r) else 'no'} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the check and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")

    results: dict[str, Any] = {"machine": machine(), "rounds": args.rounds}
    with tempfile.TemporaryDirectory(prefix="bench-stack-") as folder:
        for storage in STORAGES:
            results[storage] = measure(storage, args.rounds, Path(folder))
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "broker_consistency.json").write_text(
        json.dumps(results, indent=2) + "\n"
    )
    command = "python -m benchmarks.broker_consistency" + (
        f" --rounds {args.rounds}" if args.rounds != 4 else ""
    )
    (args.out_dir / "broker_consistency.md").write_text(_table(results, command))
    print((args.out_dir / "broker_consistency.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
