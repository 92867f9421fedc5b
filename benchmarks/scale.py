"""How much faster a benchmark runs with two trainer replicas than with one.

Run ``python -m benchmarks.scale``. It starts a local stack with two trainer
replicas, each fitting on one thread, and runs the benchmark flow (four
strategies x five seeds, and a baseline per seed) twice through its
deployment, with new run keys each time:

1. with one replica (the other stopped), then
2. with both,

and reports the speedup of the flow's run time. From the trainers' logs it
checks that every training command of both runs was carried out exactly
once (no round lost, none trained twice), how the work was shared, and
what share of each run every replica held a command. It also counts the
CPU seconds every component of the stack used during each run (from
``/proc``, child processes included: the flow runs are the orchestrator's
children) and the machine's total, so the table shows how much of the two
cores went to fits and how much to everything else. Before the stack
starts it measures the machine's own ceiling: two one-thread fits side by
side against one after another, in process, with nothing else running.

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
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

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
from services.platform import models
from services.platform.datasets import digits

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
# A worker's log lines for one command: taken in hand, then answered.
_HANDLED = re.compile(
    r"^(\S+ \S+) INFO .*\.worker (received|answered) ", flags=re.MULTILINE
)
# Rows of the fits that measure the machine's own ceiling: the scale runs'
# labeled sets reach from 57 to 747 rows.
CEILING_ROWS = 500
TRAINER_COMPONENT = "trainer service"
_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


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


def ceiling() -> dict[str, float]:
    """Time two one-thread reference fits one after another, then side by side.

    Their ratio is the most two trainer replicas could gain on this machine
    with nothing else running: the bound the platform's speedup is read
    against.
    """
    with ProcessPoolExecutor(2) as pool:
        list(pool.map(_fit_seconds, [0, 1]))  # both processes import first
        started = time.perf_counter()
        for seed in (2, 3):
            pool.submit(_fit_seconds, seed).result()
        one_after_another = time.perf_counter() - started
        started = time.perf_counter()
        list(pool.map(_fit_seconds, [4, 5]))
        side_by_side = time.perf_counter() - started
    return {
        "one_after_another_s": one_after_another,
        "side_by_side_s": side_by_side,
        "speedup": one_after_another / side_by_side,
    }


def _fit_seconds(seed: int) -> float:
    """Fit the reference setting on one thread; return the fit's seconds."""
    dataset = digits()
    rows = np.random.default_rng(seed).choice(
        dataset.split["pool"], CEILING_ROWS, replace=False
    )
    model = models.new_classifier(CatBoostParams(), dataset.n_classes, seed, 1)
    started = time.perf_counter()
    model.fit(
        models.make_pool(
            np.asarray(dataset.features[rows]),
            dataset.categorical_features,
            np.asarray(dataset.labels[rows]),
        )
    )
    return time.perf_counter() - started


def cpu_seconds(stack: LocalStack) -> dict[str, float]:
    """Return the CPU seconds used so far by each component and the whole machine.

    A component's figure covers its processes and all their descendants,
    live or ended (an ended child's time is in its parent's once reaped):
    the difference of two readings is what the component used between
    them. ``"machine"`` is every core's busy time since boot.
    """
    # Asked first: the status probes take a moment, the readings below none.
    processes = [(p.component, p.pid) for p in stack.status() if p.pid]
    busy = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    parents: dict[int, int] = {}
    used: dict[int, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # ended while listed
        fields = text.rsplit(")", 1)[1].split()
        pid = int(stat.parent.name)
        parents[pid] = int(fields[1])
        # utime, stime, and the same for reaped children.
        used[pid] = sum(int(value) for value in fields[11:15]) / _TICKS_PER_S
    children: dict[int, list[int]] = {}
    for pid, parent in parents.items():
        children.setdefault(parent, []).append(pid)

    def tree(pid: int) -> float:
        own = used.get(pid, 0.0)
        return own + sum(tree(child) for child in children.get(pid, []))

    totals: dict[str, float] = {}
    for component, pid in processes:
        totals[component] = totals.get(component, 0.0) + tree(pid)
    # user nice system idle iowait irq softirq steal: all but idle and iowait.
    totals["machine"] = (sum(busy[:8]) - busy[3] - busy[4]) / _TICKS_PER_S
    return totals


def busy_seconds(stack: LocalStack, replica: str, since: float, until: float) -> float:
    """Return how long ``replica`` held a command between two wall-clock times."""
    path = stack.log_path(replica)
    text = path.read_text(errors="replace") if path.exists() else ""
    busy, taken = 0.0, None
    for stamp, kind in _HANDLED.findall(text):
        moment = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()
        if kind == "received":
            taken = moment
        elif taken is not None:
            busy += max(0.0, min(moment, until) - max(taken, since))
            taken = None
    return busy


def measure(
    stack: LocalStack, key: str, rounds: int, seeds: list[int]
) -> dict[str, Any]:
    """Run the benchmark flow under ``key``; return its time and job counts."""
    before = trained_jobs(stack, REPLICAS)
    cpu_before = cpu_seconds(stack)
    started = time.time()
    times = run_deployment(
        stack,
        "benchmark",
        {
            "benchmark_key": key,
            "strategies": STRATEGIES,
            "seeds": seeds,
            "rounds": rounds,
            "initial_fraction": INITIAL_FRACTION,
            "step_fraction": STEP_FRACTION,
            "params": PARAMS,
        },
    )
    ended = time.time()
    cpu_after = cpu_seconds(stack)
    after = trained_jobs(stack, REPLICAS)
    mine = expected_jobs(key, STRATEGIES, seeds, rounds)
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
        # Share of the flow run each replica spent on a command (the rest it
        # waited for one, or for a core).
        "busy_share": {
            replica: busy_seconds(stack, replica, started, ended) / (ended - started)
            for replica in REPLICAS
        },
        # From the trigger to the run's end: the flow run's process start
        # is in these, not in its time.
        "wall_seconds": ended - started,
        "cpu_seconds": {
            name: cpu_after[name] - cpu_before.get(name, 0.0) for name in cpu_after
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
        f"{len(STRATEGIES)} strategies x {len(results['seeds'])} seeds and a "
        "baseline per seed, "
        f"{results['rounds']} rounds ({INITIAL_FRACTION:.0%} of the pool to start, "
        f"{STEP_FRACTION:.0%} more per round), CatBoost's defaults "
        f"({PARAMS['iterations']} trees); each trainer fits on one thread.",
        "",
        "| trainers | flow run (s) | fits expected | fits done | missing "
        "| done twice | fits per replica | busy share per replica |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, run in (("1", one), ("2", two)):
        shares = ", ".join(f"{k}: {v}" for k, v in run["per_replica"].items())
        busy = ", ".join(
            f"{k}: {share:.0%}"
            for k, share in run["busy_share"].items()
            if run["per_replica"][k]
        )
        lines.append(
            f"| {label} | {run['seconds']:.1f} | {run['jobs_expected']} | "
            f"{run['jobs_trained']} | {run['jobs_missing']} | {run['jobs_twice']} "
            f"| {shares} | {busy} |"
        )
    lines += [
        "",
        "The busy share is the part of the flow run a replica held a training "
        "command (fitting, or waiting for a core while other processes ran).",
        "",
        *cpu_table(one, two),
        "",
        "| figure | measured | target | verdict |",
        "|---|---|---|---|",
        f"| speedup, 2 vs 1 trainer | {speedup:.2f} | >= {TARGET_SPEEDUP} | "
        f"{'pass' if speedup >= TARGET_SPEEDUP else 'miss'} |",
        f"| ceiling: two one-thread fits side by side vs one after another, "
        f"in process, nothing else running | {results['ceiling']['speedup']:.2f} "
        f"| reported | - |",
        f"| every fit done exactly once | {'yes' if results['exactly_once'] else 'no'} "
        f"| yes | {'pass' if results['exactly_once'] else 'FAIL'} |",
    ]
    return "\n".join(lines) + "\n"


def cpu_table(one: dict[str, Any], two: dict[str, Any]) -> list[str]:
    """Return the Markdown lines of where each run's CPU time went."""
    runs = (one, two)
    components = sorted(
        {name for run in runs for name in run["cpu_seconds"]} - {"machine"},
        key=lambda name: (name != TRAINER_COMPONENT, -two["cpu_seconds"].get(name, 0)),
    )
    lines = [
        "CPU seconds used from the flow run's trigger to its end, by component "
        "(each component's processes and their children: the flow runs are "
        "the orchestrator's), read from `/proc`:",
        "",
        "| component | 1 trainer | 2 trainers |",
        "|---|---|---|",
    ]
    for name in components:
        cells = [f"{run['cpu_seconds'].get(name, 0.0):.1f}" for run in runs]
        lines.append(f"| {name} | {' | '.join(cells)} |")
    labels = (
        "the rest: outside the stack (the benchmark's own client, the "
        "system), and where per-process and machine-wide counts differ",
        "all, and cores busy on average",
        "share that went to the trainers",
        "trainer CPU seconds per fit",
    )
    columns = [_cpu_summary(run) for run in runs]
    lines += [
        f"| {label} | {' | '.join(column[i] for column in columns)} |"
        for i, label in enumerate(labels)
    ]
    return lines


def trainer_share(run: dict[str, Any]) -> tuple[float, float]:
    """Return the trainers' share of a run's busy CPU, and the cores busy on average."""
    cpu = run["cpu_seconds"]
    return (
        cpu.get(TRAINER_COMPONENT, 0.0) / cpu["machine"],
        cpu["machine"] / run["wall_seconds"],
    )


def _cpu_summary(run: dict[str, Any]) -> tuple[str, str, str, str]:
    cpu = run["cpu_seconds"]
    machine_s, trainers_s = cpu["machine"], cpu.get(TRAINER_COMPONENT, 0.0)
    stack_s = sum(v for k, v in cpu.items() if k != "machine")
    share, cores = trainer_share(run)
    return (
        f"{machine_s - stack_s:.1f}",
        f"{machine_s:.1f} ({cores:.2f} cores)",
        f"{share:.0%}",
        f"{trainers_s / max(run['jobs_trained'], 1):.2f}",
    )


def main(argv: list[str] | None = None) -> int:
    """Run both measurements and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument(
        "--seeds",
        type=lambda text: [int(seed) for seed in text.split(",")],
        default=SEEDS,
        help="comma-separated seeds (default 0,1,2,3,4)",
    )
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)

    print("  ceiling: two one-thread fits in process", flush=True)
    bound = ceiling()
    print(f"  {bound['speedup']:.2f}", flush=True)
    suffix = os.urandom(3).hex()
    with (
        tempfile.TemporaryDirectory(prefix="bench-scale-") as folder,
        benchmark_stack(Path(folder) / "stack", trainers=2, trainer_threads=1) as stack,
    ):
        print("  one trainer replica (trainer-1 stopped)", flush=True)
        await_steady_group(stack, REPLICAS)
        stack.stop_process("trainer-1")
        await_steady_group(stack, REPLICAS[:1])
        one = measure(stack, f"scale-one-{suffix}", args.rounds, args.seeds)
        print(f"  {one['seconds']:.1f} s", flush=True)
        print("  two trainer replicas", flush=True)
        stack.start_process("trainer-1")
        await_steady_group(stack, REPLICAS)
        two = measure(stack, f"scale-two-{suffix}", args.rounds, args.seeds)
        print(f"  {two['seconds']:.1f} s", flush=True)

    exactly_once = all(
        run["jobs_missing"] == 0 and run["jobs_twice"] == 0 for run in (one, two)
    )
    results = {
        "machine": machine(),
        "rounds": args.rounds,
        "seeds": args.seeds,
        "params": PARAMS,
        "ceiling": bound,
        "one replica": one,
        "two replicas": two,
        "speedup": one["seconds"] / two["seconds"],
        "target_speedup": TARGET_SPEEDUP,
        "exactly_once": exactly_once,
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "scale.json").write_text(json.dumps(results, indent=2) + "\n")
    command = "python -m benchmarks.scale" + (
        "" if argv is None or not argv else " " + " ".join(argv)
    )
    (args.out_dir / "scale.md").write_text(table(results, command))
    print((args.out_dir / "scale.md").read_text())
    return 0 if exactly_once else 1


if __name__ == "__main__":
    sys.exit(main())
