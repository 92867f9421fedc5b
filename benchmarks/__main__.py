"""Run every benchmark, then write the summary table of figures and targets.

    python -m benchmarks            # all of them (what `make bench` runs)
    python -m benchmarks --only scale,warm_start

Each benchmark runs in its own process and writes its own table and raw
numbers under ``benchmarks/results/``; this collects their headline figures,
each against its target, into ``benchmarks/results/README.md``, with how
long each benchmark took.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.platform_runs import machine
from benchmarks.scale import trainer_share

BENCHMARKS = ["sampler_memory", "messaging", "overhead", "warm_start", "scale"]
TARGET_TOTAL_MINUTES = 30
# How long a benchmark may take to stop its stack after Ctrl-C.
STACK_STOP_TIMEOUT_S = 120


def _load(folder: Path, name: str) -> dict[str, Any] | None:
    path = folder / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _verdict(passed: bool) -> str:
    return "pass" if passed else "miss"


def rows(folder: Path) -> list[tuple[str, str, str, str, str]]:
    """Return (figure, measured, target, verdict, table) for each headline figure."""
    found: list[tuple[str, str, str, str, str]] = []
    overhead = _load(folder, "overhead")
    if overhead:
        for c in overhead["comparisons"]:
            reference = c["setting"] == "reference"
            found.append(
                (
                    f"services / in-process time, {c['setting']} setting",
                    f"{c['ratio']:.3f} ({c['services_s']:.0f} s vs "
                    f"{c['in_process_s']:.0f} s)",
                    f"<= {overhead['target_ratio']}" if reference else "reported",
                    _verdict(c["ratio"] <= overhead["target_ratio"])
                    if reference
                    else "-",
                    "overhead.md",
                )
            )
            found.append(
                (
                    f"same rows and metrics as in process, {c['setting']} setting",
                    "yes" if c["identical"] else "no",
                    "yes",
                    "pass" if c["identical"] else "FAIL",
                    "overhead.md",
                )
            )
    scale = _load(folder, "scale")
    if scale:
        found.append(
            (
                "benchmark flow speedup, 2 vs 1 trainer replica",
                f"{scale['speedup']:.2f}",
                f">= {scale['target_speedup']}",
                _verdict(scale["speedup"] >= scale["target_speedup"]),
                "scale.md",
            )
        )
        if "ceiling" in scale:
            found.append(
                (
                    "the machine's ceiling: two one-thread fits side by side",
                    f"{scale['ceiling']['speedup']:.2f}",
                    "reported",
                    "-",
                    "scale.md",
                )
            )
        two = scale["two replicas"]
        if "cpu_seconds" in two:
            share, cores = trainer_share(two)
            found.append(
                (
                    "share of the machine's CPU that went to the trainers, 2 replicas",
                    f"{share:.0%} ({cores:.2f} cores busy)",
                    "reported",
                    "-",
                    "scale.md",
                )
            )
        found.append(
            (
                "every fit of the scale runs done exactly once",
                "yes" if scale["exactly_once"] else "no",
                "yes",
                "pass" if scale["exactly_once"] else "FAIL",
                "scale.md",
            )
        )
    messaging = _load(folder, "messaging")
    if messaging:
        figures = messaging["s3"]["s3 ledger"]
        found.append(
            (
                "command-to-event round trip, empty handler (p50 / p99)",
                f"{figures['p50_ms']:.0f} / {figures['p99_ms']:.0f} ms",
                "reported",
                "-",
                "messaging.md",
            )
        )
    sampler = _load(folder, "sampler")
    if sampler:
        found.append(
            (
                "sampler rows/s vs CatBoost predict in process, 1M rows",
                f"{sampler['speed_ratio']:.2f}",
                f">= {sampler['min_speed_ratio']}",
                _verdict(sampler["speed_ratio"] >= sampler["min_speed_ratio"]),
                "sampler.md",
            )
        )
        peak = sampler["chunked"]["peak_anon_rss_growth_mb"]
        found.append(
            (
                "sampler peak memory growth, 1M rows",
                f"{peak:.0f} MB",
                f"<= {sampler['declared_bound_mb']} MB",
                _verdict(peak <= sampler["declared_bound_mb"]),
                "sampler.md",
            )
        )
    warm = _load(folder, "warm_start")
    if warm:
        for row in warm["rows"][1:]:
            found.append(
                (
                    f"{row['variant']}: time saved / AULC vs cold",
                    f"{row['time_saved']:.0%} / {row['aulc_difference']:+.4f}",
                    "AULC within noise",
                    "pass" if row["holds"] else "miss",
                    "warm_start.md",
                )
            )
    return found


def summary(folder: Path, durations: dict[str, float]) -> str:
    """Return the Markdown summary of the results in ``folder``."""
    about = machine()
    total = sum(durations.values()) / 60
    lines = [
        "# Benchmark results",
        "",
        f"Rewritten by `make bench` (`python -m benchmarks`) on {about['host']} "
        f"({about['cpus']} cores), {about['date']}. Every figure is measured side",
        "by side in one run on this machine; each table linked below says how.",
        "",
        "| figure | measured | target | verdict | details |",
        "|---|---|---|---|---|",
    ]
    for figure, measured, target, verdict, details in rows(folder):
        lines.append(
            f"| {figure} | {measured} | {target} | {verdict} | [{details}]({details}) |"
        )
    if durations:
        lines.append(
            f"| `make bench`, all benchmarks | {total:.1f} min | "
            f"< {TARGET_TOTAL_MINUTES} min | "
            f"{_verdict(total < TARGET_TOTAL_MINUTES)} | - |"
        )
        lines += [
            "",
            "Time per benchmark: "
            + ", ".join(
                f"{name} {seconds / 60:.1f} min" for name, seconds in durations.items()
            )
            + ".",
        ]
    return "\n".join(lines) + "\n"


def _run(name: str, out_dir: Path) -> int:
    """Run one benchmark in its own process; return its exit code.

    On Ctrl-C the benchmark, in the same process group, gets the interrupt
    too and stops its stack: it is given the time that takes (a plain
    ``subprocess.run`` would kill it a quarter of a second later, and leave
    its servers running).
    """
    process = subprocess.Popen(
        [sys.executable, "-m", f"benchmarks.{name}", "--out-dir", str(out_dir)]
    )
    try:
        return process.wait()
    except KeyboardInterrupt:
        try:
            process.wait(timeout=STACK_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
        raise


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks and write the summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(BENCHMARKS))
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {BENCHMARKS}")

    durations: dict[str, float] = {}
    failed = []
    for name in chosen:
        print(f"== {name}", flush=True)
        started = time.perf_counter()
        returncode = _run(name, args.out_dir)
        durations[name] = time.perf_counter() - started
        if returncode != 0:
            failed.append(name)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "README.md").write_text(
        summary(args.out_dir, durations if chosen == BENCHMARKS else {})
    )
    print((args.out_dir / "README.md").read_text())
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
