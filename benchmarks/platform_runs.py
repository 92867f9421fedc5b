"""Run flows on a benchmark's own local stack and read back what they stored.

A benchmark starts a stack on free loopback ports in a folder of its own (so
it runs beside a developer's `make up`), triggers flows through the
orchestrator's deployments exactly as the `run-*` commands do, and reads
each run's stored state from the object store.

    python -m benchmarks.platform_runs FLOW JSON_PARAMETERS

is what runs inside the stack's environment: it triggers one deployment
run, waits for it to end, and prints the flow run as JSON.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from deploy.local.ports import stack_port_settings
from deploy.local.settings import LocalStackSettings
from deploy.local.stack import LocalStack
from services.orchestrator.experiment import RunState, read_state
from services.orchestrator.parameters import run_key_for
from services.platform.datasets import DatasetStore

# What a trainer logs for each command it carries out (not for one it answers
# from its ledger).
_TRAINED = re.compile(r"trained correlation_id=(\S+) round=(\d+) ")


@dataclass(frozen=True)
class FlowRunTimes:
    """How one deployment run ended and how long it ran."""

    state: str
    message: str
    seconds: float


# Where the broker keeps its log: in the object store (the local default), or
# in memory.
Storage = Literal["s3", "memory"]
STORAGES: tuple[Storage, ...] = ("s3", "memory")


@contextmanager
def benchmark_stack(
    state_dir: Path,
    trainers: int = 1,
    trainer_threads: int | None = None,
    broker_storage: Storage = "s3",
    label: str = "stack",
) -> Iterator[LocalStack]:
    """Start a local stack for a benchmark; stop it afterwards.

    Its progress lines are printed behind ``[label]``.
    """
    stack = LocalStack(
        LocalStackSettings(
            state_dir=state_dir,
            trainers=trainers,
            trainer_threads=trainer_threads,
            broker_storage=broker_storage,
            startup_timeout_s=240,
            **stack_port_settings(),
        ),
        report=lambda message: print(f"  [{label}] {message}", flush=True),
    )
    try:
        # Inside the try: an interrupt while the stack starts stops it too.
        stack.up()
        yield stack
    finally:
        stack.down()


def datasets_of(stack: LocalStack, cache_dir: Path) -> DatasetStore:
    """Return the stack's dataset store."""
    return DatasetStore(stack.object_store(), "datasets", cache_dir)


def run_deployment(
    stack: LocalStack, flow: str, parameters: dict[str, Any]
) -> FlowRunTimes:
    """Trigger ``flow``'s deployment on ``stack``, wait for it, return its times.

    Raises:
        RuntimeError: the flow run did not complete.
    """
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.platform_runs",
            flow,
            json.dumps(parameters),
        ],
        env={**os.environ, **stack.client_env()},
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"{flow} run failed to start or follow: {result.stderr[-3000:]}"
        )
    times = FlowRunTimes(**json.loads(result.stdout.strip().splitlines()[-1]))
    if times.state != "COMPLETED":
        raise RuntimeError(f"{flow} run ended {times.state}: {times.message}")
    return times


def stored_state(stack: LocalStack, run_key: str) -> RunState:
    """Return a finished run's stored state.

    Raises:
        RuntimeError: no state is stored under ``run_key``.
    """
    state = read_state(stack.object_store(), "reports", run_key)
    if state is None:
        raise RuntimeError(f"no run state stored for run key {run_key!r}")
    return state


def expected_jobs(
    key: str, strategies: list[str], seeds: list[int], rounds: int
) -> set[tuple[str, int]]:
    """Return the (correlation id, round) of every fit a benchmark flow needs."""
    jobs = set()
    for seed in seeds:
        jobs.add((_correlation(run_key_for(key, "baseline", seed)), 0))
        for strategy in strategies:
            run = _correlation(run_key_for(key, strategy, seed))
            jobs.update((run, r) for r in range(rounds))
    return jobs


def trained_jobs(
    stack: LocalStack, replicas: Iterable[str]
) -> dict[str, Counter[tuple[str, int]]]:
    """Return, per trainer replica, how often its log says it trained each job."""
    counts = {}
    for replica in replicas:
        path = stack.log_path(replica)
        text = path.read_text(errors="replace") if path.exists() else ""
        counts[replica] = Counter(
            (match[1], int(match[2])) for match in _TRAINED.finditer(text)
        )
    return counts


def _correlation(run_key: str) -> str:
    return str(RunState.correlation_for(run_key))


def machine() -> dict[str, Any]:
    """Return what the numbers were measured on."""
    import platform

    return {
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _trigger(flow: str, parameters: dict[str, Any]) -> FlowRunTimes:
    from prefect.deployments import run_deployment as prefect_run_deployment

    from services.orchestrator.settings import OrchestratorSettings
    from services.platform.settings import load_settings

    settings = load_settings(OrchestratorSettings)
    flow_run = prefect_run_deployment(
        f"{flow}/{settings.deployment_name}", parameters=parameters, timeout=None
    )
    state = flow_run.state
    return FlowRunTimes(
        state=state.type.value if state else "UNKNOWN",
        message=(state.message or "") if state else "",
        seconds=flow_run.total_run_time.total_seconds(),
    )


if __name__ == "__main__":
    times = _trigger(sys.argv[1], json.loads(sys.argv[2]))
    print(json.dumps(times.__dict__))
