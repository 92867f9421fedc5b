"""Warm start against cold retraining: time per flow and the learning curve.

Run ``python -m benchmarks.warm_start``. Fitting is nearly all of a round's
time, so the cheapest round is the one that fits least. With warm start
(the active-learning flow's ``warm_start`` option) each round continues from
the previous round's model with a few extra trees instead of fitting all of
them again.

For five seeds, in one process (the same loop the overhead benchmark uses,
so only the fitting differs), it runs margin sampling over the reference
plan (15 rounds, 5% + 5% per round) with 200 trees at learning rate 0.1:
cold, and warm with +100, +50 and +20 trees a round. It reports the time per
flow and the area under the learning curve (AULC, mean test accuracy over
the labeled range), paired by seed against cold. Warm start holds where its
AULC is within noise of cold's: the mean paired difference is above minus
two standard errors, and above -0.005. Writes ``warm_start.json`` and
``warm_start.md`` to the output folder.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.in_process import Threads, area_under_curve, run_loop
from benchmarks.platform_runs import machine
from contracts import CatBoostParams
from services.orchestrator.parameters import ActiveLearningParameters
from services.platform.datasets import digits

SEEDS = [0, 1, 2, 3, 4]
PARAMS = CatBoostParams(iterations=200, learning_rate=0.1)
EXTRA_TREES = [100, 50, 20]
# A loss of AULC smaller than this is not worth a word.
TOLERANCE = 0.005


def run(seed: int, extra: int | None) -> dict[str, Any]:
    """Run one flow in process; return its time, AULC and curve."""
    parameters = ActiveLearningParameters(
        strategy="margin",
        seed=seed,
        params=PARAMS,
        warm_start=extra is not None,
        warm_start_iterations=extra,
    )
    started = time.perf_counter()
    rounds = run_loop(digits(), parameters, Threads(fit=os.cpu_count() or 1))
    return {
        "seconds": time.perf_counter() - started,
        "aulc": area_under_curve(rounds),
        "labels": [r.n_labeled for r in rounds],
        "test_accuracy": [r.test.accuracy for r in rounds],
    }


def summarise(runs: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Return one row per variant: time, AULC, paired difference, verdict."""
    cold = runs["cold"]
    rows = []
    for variant, flows in runs.items():
        differences = [w["aulc"] - c["aulc"] for w, c in zip(flows, cold, strict=True)]
        mean_difference = statistics.fmean(differences)
        error = (
            statistics.stdev(differences) / math.sqrt(len(differences))
            if len(differences) > 1
            else 0.0
        )
        early = [
            statistics.fmean(w["test_accuracy"][:5])
            - statistics.fmean(c["test_accuracy"][:5])
            for w, c in zip(flows, cold, strict=True)
        ]
        holds = mean_difference > -TOLERANCE and mean_difference > -2 * error
        rows.append(
            {
                "variant": variant,
                "seconds_mean": statistics.fmean(f["seconds"] for f in flows),
                "aulc_mean": statistics.fmean(f["aulc"] for f in flows),
                "aulc_sd": statistics.stdev(f["aulc"] for f in flows),
                "aulc_difference": mean_difference,
                "aulc_difference_se": error,
                "early_difference": statistics.fmean(early),
                "holds": variant == "cold" or holds,
            }
        )
    cold_seconds = rows[0]["seconds_mean"]
    for row in rows:
        row["time_saved"] = 1 - row["seconds_mean"] / cold_seconds
    return rows


def table(results: dict[str, Any], command: str) -> str:
    """Return the Markdown table of a run's results."""
    lines = [
        "# Warm start vs cold retraining",
        "",
        f"Produced by `{command}` on {results['machine']['host']} "
        f"({results['machine']['cpus']} cores), {results['machine']['date']}.",
        f"Margin sampling, 15 rounds, 5% + 5% per round, {PARAMS.iterations} trees "
        f"at learning rate {PARAMS.learning_rate}, seeds "
        f"{', '.join(map(str, SEEDS))}; in one process.",
        "Differences are warm minus cold, paired by seed; the early curve is the",
        "first five rounds' mean test accuracy.",
        "",
        "| variant | time per flow (s) | time saved | AULC (mean ± sd) "
        "| AULC difference (± se) | early-curve difference | within "
        f"{TOLERANCE} and noise |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in results["rows"]:
        lines.append(
            f"| {row['variant']} | {row['seconds_mean']:.1f} | "
            f"{row['time_saved']:.0%} | {row['aulc_mean']:.4f} ± {row['aulc_sd']:.4f} "
            f"| {row['aulc_difference']:+.4f} ± {row['aulc_difference_se']:.4f} | "
            f"{row['early_difference']:+.4f} | {'yes' if row['holds'] else 'no'} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run every variant for every seed and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)

    variants: dict[str, int | None] = {"cold": None}
    variants.update({f"warm +{n} trees": n for n in EXTRA_TREES})
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
    # Seeds outside, variants inside: drift in the machine's speed hits all alike.
    for seed in SEEDS:
        for name, extra in variants.items():
            runs[name].append(run(seed, extra))
            print(
                f"  seed {seed} {name}: {runs[name][-1]['seconds']:.1f} s, "
                f"AULC {runs[name][-1]['aulc']:.4f}",
                flush=True,
            )
    results = {"machine": machine(), "runs": runs, "rows": summarise(runs)}
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "warm_start.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out_dir / "warm_start.md").write_text(
        table(results, "python -m benchmarks.warm_start")
    )
    print((args.out_dir / "warm_start.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
