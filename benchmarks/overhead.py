"""What the platform costs over a plain loop, and proof it computes the same.

Run ``python -m benchmarks.overhead``. It starts a local stack (one trainer,
its default threads) and, for each setting, side by side in one run:

1. triggers one active-learning flow through the orchestrator's deployment,
   exactly as ``make run-al`` does, and takes its time from Prefect;
2. runs the in-process loop (:mod:`benchmarks.in_process`) with the same
   parameters, seed and CatBoost threads, in this process;
3. checks the two selected the same rows in every round and reached the same
   validation and test metrics;
4. repeats 1-3 (``--pairs``, two by default) in the order services, loop,
   loop, services, so that the machine's drifting speed is not charged to
   one side, and compares the means;
5. splits each service round's time by what the services report: compute
   (the fit, the predictions, the selection: what the loop also does),
   object store, MLflow logging, messaging (round trip less the handler:
   broker, ledger, decoding), and the rest of the flow (Prefect task states,
   the run state, the parent MLflow run).

The reference setting is the reference experiment: CatBoost's defaults
(1,000 trees), 15 rounds, 5% to start and 5% per round, margin sampling.
The fast setting fits 100 trees at learning rate 0.3, where the platform's
fixed cost per round weighs most. Writes ``overhead.json`` and
``overhead.md`` to the output folder.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.in_process import LoopRound, Threads, run_loop
from benchmarks.platform_runs import (
    benchmark_stack,
    datasets_of,
    machine,
    run_deployment,
    stored_state,
)
from contracts import CatBoostParams
from services.orchestrator.experiment import RunState
from services.orchestrator.parameters import ActiveLearningParameters
from services.platform.datasets import DatasetStore, digits

TARGET_RATIO = 1.15

SETTINGS = {
    "reference": CatBoostParams(),
    "fast": CatBoostParams(iterations=100, learning_rate=0.3),
}

# What each service step is, by the names the services report.
_PARTS = {
    "compute": ("trainer_fit", "evaluator_predict", "sampler_select"),
    "object store": (
        "trainer_load",
        "trainer_store",
        "evaluator_load",
        "evaluator_store",
        "sampler_load",
        "sampler_store",
        "label",
    ),
    "MLflow": ("trainer_log", "evaluator_log", "evaluator_register"),
}
_REQUESTS = {
    "train_request": "trainer_",
    "evaluate_request": "evaluator_",
    "select_request": "sampler_",
}


@dataclass
class Comparison:
    """One setting: every run of both sides, their times and whether they agree."""

    setting: str
    services_runs_s: list[float]
    in_process_runs_s: list[float]
    identical: bool
    differences: list[str]
    per_round: dict[str, float]
    steps: dict[str, float]

    @property
    def services_s(self) -> float:
        """Return the services' mean time over their runs."""
        return statistics.fmean(self.services_runs_s)

    @property
    def in_process_s(self) -> float:
        """Return the in-process loop's mean time over its runs."""
        return statistics.fmean(self.in_process_runs_s)

    @property
    def ratio(self) -> float:
        """Return services time over in-process time."""
        return self.services_s / self.in_process_s


def compare(
    setting: str,
    parameters: ActiveLearningParameters,
    stack: Any,
    datasets: DatasetStore,
    threads: Threads,
    pairs: int = 2,
) -> Comparison:
    """Run ``parameters`` through the services and in process ``pairs`` times; compare.

    The runs go services, loop, loop, services, ...: this machine's speed
    drifts by several per cent within minutes, and an order that mirrors
    itself cancels a steady drift instead of charging it to one side.
    """
    states: list[tuple[RunState, float]] = []
    loops: list[tuple[list[LoopRound], float]] = []
    for pair in range(pairs):
        for side in ("services", "loop") if pair % 2 == 0 else ("loop", "services"):
            if side == "services":
                run_key = f"overhead-{setting}-{os.urandom(3).hex()}"
                values = parameters.model_dump(mode="json", exclude_none=True)
                print(
                    f"  [{setting}] services: active-learning flow {run_key}",
                    flush=True,
                )
                services = run_deployment(
                    stack, "active-learning", {**values, "run_key": run_key}
                )
                states.append((stored_state(stack, run_key), services.seconds))
            else:
                print(f"  [{setting}] in process: the same loop", flush=True)
                started = time.perf_counter()
                loop = run_loop(digits(), parameters, threads)
                loops.append((loop, time.perf_counter() - started))

    differences = [
        difference
        for (state, _), (loop, _) in zip(states, loops, strict=True)
        for difference in _differences(state, loop, datasets)
    ]
    rounds = [r for state, _ in states for r in state.rounds]
    parts = [
        _per_round(state, seconds, loop)
        for (state, seconds), (loop, _) in zip(states, loops, strict=True)
    ]
    comparison = Comparison(
        setting=setting,
        services_runs_s=[seconds for _, seconds in states],
        in_process_runs_s=[seconds for _, seconds in loops],
        identical=not differences,
        differences=differences,
        per_round={name: statistics.fmean(p[name] for p in parts) for name in parts[0]},
        steps={
            step: statistics.fmean(r.timings.get(step, 0.0) for r in rounds)
            for step in sorted({k for r in rounds for k in r.timings})
        },
    )
    print(
        f"  [{setting}] services {comparison.services_s:.1f} s, in process "
        f"{comparison.in_process_s:.1f} s, ratio {comparison.ratio:.3f}, "
        f"identical: {comparison.identical}",
        flush=True,
    )
    return comparison


def _differences(
    state: RunState, loop: list[LoopRound], datasets: DatasetStore
) -> list[str]:
    found = []
    if len(state.rounds) != len(loop):
        found.append(f"{len(state.rounds)} service rounds vs {len(loop)} in process")
    for service, local in zip(state.rounds, loop, strict=False):
        where = f"round {service.round}"
        if service.n_labeled != local.n_labeled:
            found.append(f"{where}: {service.n_labeled} vs {local.n_labeled} labeled")
        if service.validation != local.validation or service.test != local.test:
            found.append(
                f"{where}: test accuracy {service.test.accuracy:.6f} vs "
                f"{local.test.accuracy:.6f}, validation "
                f"{service.validation.accuracy:.6f} vs {local.validation.accuracy:.6f}"
            )
        selected = (
            None if service.selection is None else datasets.get_rows(service.selection)
        )
        if (selected is None) != (local.selection is None) or (
            selected is not None
            and local.selection is not None
            and not np.array_equal(selected, local.selection)
        ):
            found.append(f"{where}: the selected rows differ")
    return found


def _per_round(
    state: RunState, services_s: float, loop: list[LoopRound]
) -> dict[str, float]:
    """Return the mean seconds per round of each part of a service round."""
    rounds = state.rounds
    parts: dict[str, float] = {
        part: statistics.fmean(
            sum(r.timings.get(s, 0.0) for s in steps) for r in rounds
        )
        for part, steps in _PARTS.items()
    }
    parts["messaging"] = statistics.fmean(
        sum(
            r.timings[request]
            - sum(v for k, v in r.timings.items() if k.startswith(prefix))
            for request, prefix in _REQUESTS.items()
            if request in r.timings
        )
        for r in rounds
    )
    # A round's model is scored while the sampler selects from it and the
    # next round trains: the flow waits on training, selection and labeling.
    waited = statistics.fmean(
        r.timings["train_request"]
        + r.timings.get("select_request", 0.0)
        + r.timings.get("label", 0.0)
        for r in rounds
    )
    parts["Prefect, run state, start and end"] = services_s / len(rounds) - waited
    parts["round, services"] = services_s / len(rounds)
    parts["round, in process"] = statistics.fmean(sum(r.timings.values()) for r in loop)
    return parts


def table(results: dict[str, Any], command: str) -> str:
    """Return the Markdown table of a run's results."""
    lines = [
        "# Platform overhead: services vs the same loop in process",
        "",
        f"Produced by `{command}` on {results['machine']['host']} "
        f"({results['machine']['cpus']} cores), {results['machine']['date']}.",
        "One active-learning flow (margin, 15 rounds, 5% + 5% per round, seed 42)",
        "through the deployment and the services, and the same fits, predictions",
        "and selections in one process, side by side. Neither time counts",
        "start-up: the services' is the flow run's time in Prefect (running to",
        "completed; its process has loaded the flow and its libraries), the",
        "loop's runs from loading the dataset, its libraries imported. Each side",
        "runs more than once, in the order services, loop, loop, services: the",
        "machine's speed drifts within minutes, and the mirrored order cancels a",
        "steady drift. The times are each side's mean.",
        "",
        "| setting | in process (s) | services (s) | ratio | target | verdict "
        "| same rows and metrics | runs, in order (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in results["comparisons"]:
        target = f"<= {TARGET_RATIO}" if c["setting"] == "reference" else "reported"
        verdict = (
            ("pass" if c["ratio"] <= TARGET_RATIO else "miss")
            if c["setting"] == "reference"
            else "-"
        )
        lines.append(
            f"| {c['setting']} | {c['in_process_s']:.1f} | {c['services_s']:.1f} | "
            f"{c['ratio']:.3f} | {target} | {verdict} | "
            f"{'yes' if c['identical'] else 'NO: ' + '; '.join(c['differences'][:3])} "
            f"| {_in_order(c['services_runs_s'], c['in_process_runs_s'])} |"
        )
    names = list(results["comparisons"][0]["per_round"])
    lines += [
        "",
        "Where a service round's time goes (mean seconds per round). Compute is",
        "what the loop does too. A round's model is scored while the sampler",
        "selects from it and the next round trains, so the parts add up to more",
        "than the round; the Prefect row is the round's time the flow spent",
        "outside its training, selection and labeling requests (task states,",
        "the run state, waiting for the last scores, the flow's start and end).",
        "",
        "| part | " + " | ".join(c["setting"] for c in results["comparisons"]) + " |",
        "|---|" + "---|" * len(results["comparisons"]),
    ]
    for name in names:
        lines.append(
            f"| {name} | "
            + " | ".join(f"{c['per_round'][name]:.3f}" for c in results["comparisons"])
            + " |"
        )
    return "\n".join(lines) + "\n"


def _in_order(services: list[float], loop: list[float]) -> str:
    """Return each run's time in the order the runs went, named by side."""
    runs = []
    for pair, (s, lo) in enumerate(zip(services, loop, strict=True)):
        sides = [("services", s), ("loop", lo)]
        runs += sides if pair % 2 == 0 else sides[::-1]
    return ", ".join(f"{side} {seconds:.1f}" for side, seconds in runs)


def main(argv: list[str] | None = None) -> int:
    """Run both settings and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--settings", default="reference,fast", help="comma-separated: reference,fast"
    )
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument(
        "--pairs", type=int, default=2, help="runs of each side per setting"
    )
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    chosen = [s.strip() for s in args.settings.split(",") if s.strip()]
    unknown = sorted(set(chosen) - set(SETTINGS))
    if unknown:
        parser.error(f"unknown setting(s) {', '.join(unknown)}; known: reference, fast")
    if args.pairs < 1:
        parser.error(f"--pairs must be at least 1, not {args.pairs}")

    # One trainer with the threads a one-replica stack gives it, matched here.
    threads = Threads(fit=max(1, os.cpu_count() or 1))
    comparisons = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-overhead-") as folder,
        benchmark_stack(Path(folder) / "stack") as stack,
    ):
        datasets = datasets_of(stack, Path(folder) / "cache")
        for setting in chosen:
            parameters = ActiveLearningParameters(
                strategy="margin", rounds=args.rounds, seed=42, params=SETTINGS[setting]
            )
            comparisons.append(
                compare(setting, parameters, stack, datasets, threads, args.pairs)
            )
    results = {
        "machine": machine(),
        "target_ratio": TARGET_RATIO,
        "comparisons": [
            {
                **c.__dict__,
                "services_s": c.services_s,
                "in_process_s": c.in_process_s,
                "ratio": c.ratio,
            }
            for c in comparisons
        ],
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "overhead.json").write_text(json.dumps(results, indent=2) + "\n")
    command = "python -m benchmarks.overhead" + (
        "" if argv is None or not argv else " " + " ".join(argv)
    )
    (args.out_dir / "overhead.md").write_text(table(results, command))
    print((args.out_dir / "overhead.md").read_text())
    return 0 if all(c.identical for c in comparisons) else 1


if __name__ == "__main__":
    sys.exit(main())
