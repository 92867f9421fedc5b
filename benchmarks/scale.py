"""How much faster a benchmark runs with two trainer replicas than with one.

Run ``python -m benchmarks.scale``. It starts a local stack with two trainer
replicas, each fitting on one thread, and runs the benchmark flow (four
strategies x five seeds, and a baseline per seed) twice through its
deployment, with new run keys each time:

1. with one replica (the other stopped), then
2. with both,

and reports the speedup of the flow's run time. From the trainers' logs it
checks that every training command of both runs was carried out exactly
once (no round lost, none trained twice), and how the work was shared.

The fits are the reference experiment's (CatBoost's defaults: 1,000 trees)
and so are the labeled sets' sizes, taken in larger steps: 4 rounds, 5% of
the pool to start and 20% more per round (57 to 747 rows, where the
reference experiment's 15 rounds go from 57 to 855), so that both runs take
about fifteen minutes here. Writes ``scale.json`` and ``scale.md`` to the
output folder.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.platform_runs import (
    benchmark_stack,
    expected_jobs,
    machine,
    run_deployment,
    trained_jobs,
)
from contracts import CatBoostParams
from contracts.topics import TOPICS, TRAINER_COMMANDS
from deploy.local.stack import LocalStack

TARGET_SPEEDUP = 1.7
STRATEGIES = ["entropy", "margin", "least_confident", "random"]
SEEDS = [0, 1, 2, 3, 4]
PARAMS = CatBoostParams().model_dump(exclude_none=True)
ROUNDS = 4
INITIAL_FRACTION = 0.05
STEP_FRACTION = 0.2
REPLICAS = ("trainer-0", "trainer-1")
TOPIC_PARTITIONS = next(t.partitions for t in TOPICS if t.name == TRAINER_COMMANDS)
_ASSIGNED = re.compile(r"assigned partitions=\[([\d, ]*)\]")


def await_steady_group(
    stack: LocalStack, replicas: tuple[str, ...], timeout_s: float = 120
) -> None:
    """Wait until ``replicas`` hold every partition of the training topic between them.

    A measurement starts with the group settled, not mid-rebalance.

    Raises:
        RuntimeError: the group did not settle within ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        held = [_last_assignment(stack, replica) for replica in replicas]
        if all(held) and sorted(p for parts in held for p in parts) == list(
            range(TOPIC_PARTITIONS)
        ):
            return
        if time.monotonic() > deadline:
            shown = ", ".join(f"{r}: {h}" for r, h in zip(replicas, held, strict=True))
            raise RuntimeError(
                f"trainer group did not settle in {timeout_s:g} s: the last "
                f"assignments logged are {shown}; see the trainers' logs"
            )
        time.sleep(0.5)


def _last_assignment(stack: LocalStack, replica: str) -> list[int]:
    """Return the partitions ``replica`` logged last as assigned to it."""
    path = stack.log_path(replica)
    found = _ASSIGNED.findall(path.read_text(errors="replace")) if path.exists() else []
    return [int(p) for p in found[-1].split(",") if p.strip()] if found else []


def measure(stack: LocalStack, key: str, rounds: int) -> dict[str, Any]:
    """Run the benchmark flow under ``key``; return its time and job counts."""
    before = trained_jobs(stack, REPLICAS)
    times = run_deployment(
        stack,
        "benchmark",
        {
            "benchmark_key": key,
            "strategies": STRATEGIES,
            "seeds": SEEDS,
            "rounds": rounds,
            "initial_fraction": INITIAL_FRACTION,
            "step_fraction": STEP_FRACTION,
            "params": PARAMS,
        },
    )
    after = trained_jobs(stack, REPLICAS)
    mine = expected_jobs(key, STRATEGIES, SEEDS, rounds)
    per_replica = {
        replica: {job: n for job, n in (after[replica] - before[replica]).items()}
        for replica in REPLICAS
    }
    total: Counter[tuple[str, int]] = Counter()
    for counts in per_replica.values():
        total.update({job: n for job, n in counts.items() if job in mine})
    return {
        "seconds": times.seconds,
        "jobs_expected": len(mine),
        "jobs_trained": sum(total.values()),
        "jobs_missing": len(mine - set(total)),
        "jobs_twice": sum(1 for n in total.values() if n > 1),
        "per_replica": {
            replica: sum(n for job, n in counts.items() if job in mine)
            for replica, counts in per_replica.items()
        },
    }


def table(results: dict[str, Any], command: str) -> str:
    """Return the Markdown table of a run's results."""
    one, two = results["one replica"], results["two replicas"]
    speedup = results["speedup"]
    lines = [
        "# Scale-out: the benchmark flow with one and two trainer replicas",
        "",
        f"Produced by `{command}` on {results['machine']['host']} "
        f"({results['machine']['cpus']} cores), {results['machine']['date']}.",
        f"{len(STRATEGIES)} strategies x {len(SEEDS)} seeds and a baseline per seed, "
        f"{results['rounds']} rounds ({INITIAL_FRACTION:.0%} of the pool to start, "
        f"{STEP_FRACTION:.0%} more per round), CatBoost's defaults "
        f"({PARAMS['iterations']} trees); each trainer fits on one thread.",
        "",
        "| trainers | flow run (s) | fits expected | fits done | missing "
        "| done twice | fits per replica |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, run in (("1", one), ("2", two)):
        shares = ", ".join(f"{k}: {v}" for k, v in run["per_replica"].items())
        lines.append(
            f"| {label} | {run['seconds']:.1f} | {run['jobs_expected']} | "
            f"{run['jobs_trained']} | {run['jobs_missing']} | {run['jobs_twice']} "
            f"| {shares} |"
        )
    lines += [
        "",
        "| figure | measured | target | verdict |",
        "|---|---|---|---|",
        f"| speedup, 2 vs 1 trainer | {speedup:.2f} | >= {TARGET_SPEEDUP} | "
        f"{'pass' if speedup >= TARGET_SPEEDUP else 'miss'} |",
        f"| every fit done exactly once | {'yes' if results['exactly_once'] else 'no'} "
        f"| yes | {'pass' if results['exactly_once'] else 'FAIL'} |",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run both measurements and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)

    suffix = os.urandom(3).hex()
    with (
        tempfile.TemporaryDirectory(prefix="bench-scale-") as folder,
        benchmark_stack(Path(folder) / "stack", trainers=2, trainer_threads=1) as stack,
    ):
        print("  one trainer replica (trainer-1 stopped)", flush=True)
        await_steady_group(stack, REPLICAS)
        stack.stop_process("trainer-1")
        await_steady_group(stack, REPLICAS[:1])
        one = measure(stack, f"scale-one-{suffix}", args.rounds)
        print(f"  {one['seconds']:.1f} s", flush=True)
        print("  two trainer replicas", flush=True)
        stack.start_process("trainer-1")
        await_steady_group(stack, REPLICAS)
        two = measure(stack, f"scale-two-{suffix}", args.rounds)
        print(f"  {two['seconds']:.1f} s", flush=True)

    exactly_once = all(
        run["jobs_missing"] == 0 and run["jobs_twice"] == 0 for run in (one, two)
    )
    results = {
        "machine": machine(),
        "rounds": args.rounds,
        "params": PARAMS,
        "one replica": one,
        "two replicas": two,
        "speedup": one["seconds"] / two["seconds"],
        "target_speedup": TARGET_SPEEDUP,
        "exactly_once": exactly_once,
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "scale.json").write_text(json.dumps(results, indent=2) + "\n")
    command = "python -m benchmarks.scale" + (
        f" --rounds {args.rounds}" if args.rounds != ROUNDS else ""
    )
    (args.out_dir / "scale.md").write_text(table(results, command))
    print((args.out_dir / "scale.md").read_text())
    return 0 if exactly_once else 1


if __name__ == "__main__":
    sys.exit(main())
