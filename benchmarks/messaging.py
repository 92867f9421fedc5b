"""Measure the bus's command-to-event round trip with a handler that does nothing.

Run ``python -m benchmarks.messaging``. It starts a local stack on free
ports (its own state folder, beside any `make up`), then, side by side in one
run, sends commands one at a time through a ``CommandClient`` to a
``CommandWorker`` whose handler answers at once, and records each round trip:

- with the S3 ledger the services use (answer recorded before it is
  published), and
- with an in-memory ledger (the bus alone, no object-store write),

for the broker keeping its log in the object store (the local default) and
in memory. Writes ``messaging.json`` (raw numbers) and ``messaging.md`` (the
table) to the output folder.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.platform_runs import STORAGES, Storage, benchmark_stack
from contracts import TOPICS, DatasetRef, ModelTrained, ObjectRef, TrainModel
from contracts.topics import TRAINER_COMMANDS
from services.platform.broker import ensure_topics
from services.platform.bus import (
    CommandClient,
    CommandWorker,
    InMemoryLedger,
    Ledger,
    RetryPolicy,
    S3Ledger,
)
from services.platform.objectstore import make_s3_client
from services.platform.settings import KafkaSettings

_REF = ObjectRef(uri="s3://datasets/benchmark/rows.npy", sha256="0" * 64, size_bytes=1)
# A single p99 needs at least a hundred samples to mean anything.
_MIN_COMMANDS = 100


def _answer(command: TrainModel) -> ModelTrained:
    return command.reply(
        ModelTrained,
        producer="benchmark",
        round=command.round,
        model=_REF,
        mlflow_run_id="0" * 32,
        n_labeled=1,
        fit_seconds=0.0,
    )


def _command() -> TrainModel:
    return TrainModel(
        correlation_id=uuid.uuid4(),
        producer="benchmark",
        experiment="benchmark",
        round=0,
        dataset=DatasetRef(dataset_id="benchmark-0", manifest=_REF),
        labeled=_REF,
        seed=0,
    )


def round_trips(kafka: KafkaSettings, ledger: Ledger, count: int) -> list[float]:
    """Return ``count`` sequential command-to-answer times, in milliseconds."""
    ensure_topics(kafka.servers, TOPICS, prefix=kafka.topic_prefix)
    worker = CommandWorker(
        service="benchmark",
        topic=TRAINER_COMMANDS,
        handlers={TrainModel: _answer},
        kafka=kafka,
        ledger=ledger,
        retry=RetryPolicy(max_attempts=1),
        group_id=f"benchmark-{kafka.topic_prefix}",
    )
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        with CommandClient("benchmark", kafka) as client:
            client.request(_command(), timeout_s=120)  # group joined, caches warm
            times = []
            for _ in range(count):
                started = time.perf_counter()
                client.request(_command(), timeout_s=60)
                times.append((time.perf_counter() - started) * 1000)
    finally:
        worker.stop()
        thread.join(timeout=30)
    return times


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def measure(storage: Storage, count: int, state_dir: Path) -> dict[str, Any]:
    """Start a stack with the broker's log in ``storage``; time both ledgers."""
    with benchmark_stack(
        state_dir / storage, broker_storage=storage, label=storage
    ) as stack:
        env = stack.client_env()
        client = make_s3_client(
            env["S3_ENDPOINT_URL"],
            env["S3_ACCESS_KEY_ID"],
            env["S3_SECRET_ACCESS_KEY"],
            "us-east-1",
        )
        results = {}
        for ledger_name, ledger in (
            ("s3 ledger", S3Ledger(client, "ledger", prefix="benchmark")),
            ("in-memory ledger", InMemoryLedger()),
        ):
            kafka = KafkaSettings(
                bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"],
                topic_prefix=f"bench{uuid.uuid4().hex[:6]}.",
            )
            times = round_trips(kafka, ledger, count)
            results[ledger_name] = {
                "count": len(times),
                "p50_ms": statistics.median(times),
                "p99_ms": _percentile(times, 0.99),
                "mean_ms": statistics.fmean(times),
                "max_ms": max(times),
            }
            figures = results[ledger_name]
            print(
                f"  [{storage}] {ledger_name}: p50 {figures['p50_ms']:.1f} ms, "
                f"p99 {figures['p99_ms']:.1f} ms"
            )
        return results


def _table(results: dict[str, dict[str, Any]], command: str) -> str:
    lines = [
        "# Command-to-event round trip, empty handler",
        "",
        f"Produced by `{command}` on {platform.node() or 'this machine'} "
        f"({results['machine']['cpus']} cores), {results['machine']['date']}.",
        "Commands are sent one at a time; each time runs from publishing the",
        "command to receiving its answer.",
        "",
        "| broker log | ledger | commands | p50 (ms) | p99 (ms) | max (ms) |",
        "|---|---|---|---|---|---|",
    ]
    for storage in STORAGES:
        for ledger, figures in results[storage].items():
            lines.append(
                f"| {storage} | {ledger} | {figures['count']} | "
                f"{figures['p50_ms']:.1f} | {figures['p99_ms']:.1f} | "
                f"{figures['max_ms']:.1f} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the measurement and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=300)
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    if args.commands < _MIN_COMMANDS:
        parser.error(f"--commands must be at least {_MIN_COMMANDS} for a p99")

    import os

    results: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        }
    }
    with tempfile.TemporaryDirectory(prefix="bench-stack-") as folder:
        for storage in STORAGES:
            results[storage] = measure(storage, args.commands, Path(folder))
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "messaging.json").write_text(json.dumps(results, indent=2) + "\n")
    command = "python -m benchmarks.messaging" + (
        f" --commands {args.commands}" if args.commands != 300 else ""
    )
    (args.out_dir / "messaging.md").write_text(_table(results, command))
    print((args.out_dir / "messaging.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
