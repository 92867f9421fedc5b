"""Trainer replicas leave and join while a benchmark flow runs.

The session's stack runs two trainer replicas sharing the training topic
through their consumer group. One is stopped while a benchmark flow is
training and started again later: every fit the flow needs is carried out
exactly once (none lost, none repeated), by the replicas' own logs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from benchmarks.platform_runs import expected_jobs, trained_jobs
from deploy.local.stack import LocalStack

REPO = Path(__file__).resolve().parents[2]
REPLICAS = ("trainer-0", "trainer-1")
STRATEGIES = ["margin", "random"]
SEEDS = [0, 1]
ROUNDS = 4


def _done(stack: LocalStack, before: dict[str, Counter], jobs: set) -> Counter:
    now = trained_jobs(stack, REPLICAS)
    total: Counter = Counter()
    for replica in REPLICAS:
        total.update(
            {j: n for j, n in (now[replica] - before[replica]).items() if j in jobs}
        )
    return total


def _wait_for(
    stack: LocalStack,
    before: dict[str, Counter],
    jobs: set,
    count: int,
    flow: subprocess.Popen,
) -> None:
    deadline = time.monotonic() + 300
    while sum(_done(stack, before, jobs).values()) < count:
        assert flow.poll() is None, "the flow ended before the replicas changed"
        assert time.monotonic() < deadline, f"fewer than {count} fits in 300 s"
        time.sleep(0.5)


def test_a_replica_leaving_and_rejoining_mid_benchmark_loses_and_repeats_nothing(
    local_stack: LocalStack,
) -> None:
    key = f"replicas-{os.urandom(3).hex()}"
    jobs = expected_jobs(key, STRATEGIES, SEEDS, ROUNDS)
    before = trained_jobs(local_stack, REPLICAS)
    flow = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "benchmarks.platform_runs",
            "benchmark",
            json.dumps(
                {
                    "benchmark_key": key,
                    "strategies": STRATEGIES,
                    "seeds": SEEDS,
                    "rounds": ROUNDS,
                    "params": {"iterations": 150, "learning_rate": 0.3},
                }
            ),
        ],
        cwd=REPO,
        env={**os.environ, **local_stack.client_env()},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(local_stack, before, jobs, 3, flow)
        local_stack.stop_process("trainer-1")
        left_at = sum(_done(local_stack, before, jobs).values())
        _wait_for(local_stack, before, jobs, left_at + 3, flow)
        local_stack.start_process("trainer-1")
        out, err = flow.communicate(timeout=900)
    finally:
        if flow.poll() is None:
            flow.kill()
        if _stopped(local_stack):
            local_stack.start_process("trainer-1")

    assert flow.returncode == 0, err[-3000:]
    assert json.loads(out.strip().splitlines()[-1])["state"] == "COMPLETED"
    done = _done(local_stack, before, jobs)
    assert set(done) == jobs, f"never trained: {sorted(jobs - set(done))[:5]}"
    assert [job for job, n in done.items() if n > 1] == []


def _stopped(stack: LocalStack) -> bool:
    return any(s.name == "trainer-1" and s.state != "RUNNING" for s in stack.status())
