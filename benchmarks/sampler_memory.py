"""Measure the sampler's chunked scoring against CatBoost scoring every row at once.

Run ``python -m benchmarks.sampler_memory``. It writes a synthetic pool to a
memory-mapped ``.npy`` file, trains a small CatBoost model, then measures the
``entropy`` strategy selecting a batch from the whole pool next to one
in-process ``predict_proba`` call over the same rows, and writes
``sampler.json`` (raw numbers) and ``sampler.md`` (the verdicts) to the output
folder.

Warning:
    tracemalloc sees Python objects and numpy buffers but not CatBoost's
    native allocations; the sampled anonymous-RSS figures include those, but a
    sampler thread can miss a spike shorter than its interval (5 ms).
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import catboost
import numpy as np
from numpy.lib.format import open_memmap

from services.sampler.settings import SamplerSettings
from services.sampler.strategies import UnlabeledPool, get_strategy
from services.sampler.strategies.base import tie_keys
from services.sampler.strategies.uncertainty import EntropyStrategy

N_CLASSES = 10
LABELED_ROWS = 2_000
BATCH_SIZE = 1_000
ITERATIONS = 50
THREADS = 2
SEED = 0
ROWS_PER_WRITE = 100_000
# Chunking pays a fixed cost per predict_proba call; it may cost at most a
# fifth of the throughput of one call over every row.
MIN_SPEED_RATIO = 0.8
MB = 1_000_000
RESULTS_DIR = Path(__file__).resolve().parent / "results"
COMMAND = ".venv/bin/python -m benchmarks.sampler_memory"


@dataclass(frozen=True)
class Measurement:
    """What one way of scoring the pool cost; the wall time is the median run."""

    wall_s: float
    wall_s_runs: list[float]
    rows_per_s: float
    peak_traced_mb: float
    peak_anon_rss_growth_mb: float | None


class AnonRssMonitor:
    """Sample the process's anonymous resident memory in a thread; keep the peak.

    Anonymous memory leaves out the pages of the memory-mapped pool, which
    every way of scoring reads alike, and includes native buffers.
    """

    def __init__(self, interval_s: float = 0.005) -> None:
        self.interval_s = interval_s
        self.start: int | None = None
        self.peak: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> AnonRssMonitor:
        self.start = self.peak = _anon_rss()
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    @property
    def growth_mb(self) -> float | None:
        """Return the peak minus the level at entry, in MB, if /proc tells."""
        if self.start is None or self.peak is None:
            return None
        return (self.peak - self.start) / MB

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def _sample(self) -> None:
        now = _anon_rss()
        if now is not None and self.peak is not None:
            self.peak = max(self.peak, now)


def _anon_rss() -> int | None:
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    return None


def _release_freed_memory() -> None:
    """Return freed heap pages to the system, so each RSS figure starts level."""
    gc.collect()
    name = ctypes.util.find_library("c")
    if name is None:
        return
    try:
        libc = ctypes.CDLL(name)
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        return  # not glibc: RSS figures just start from a higher level


def measure(
    run: Callable[[], Any], n_rows: int, repeats: int
) -> tuple[Measurement, Any]:
    """Time ``run`` ``repeats`` times, then trace its memory in one more run."""
    walls: list[float] = []
    growths: list[float] = []
    for _ in range(repeats):
        _release_freed_memory()
        with AnonRssMonitor() as rss:
            started = time.perf_counter()
            result = run()
            walls.append(time.perf_counter() - started)
        del result
        if rss.growth_mb is not None:
            growths.append(rss.growth_mb)

    # A separate traced run: tracing slows every allocation, which would
    # otherwise count against the wall time.
    _release_freed_memory()
    tracemalloc.start()
    try:
        result = run()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    wall_s = statistics.median(walls)
    return (
        Measurement(
            wall_s=wall_s,
            wall_s_runs=walls,
            rows_per_s=n_rows / wall_s,
            peak_traced_mb=peak / MB,
            peak_anon_rss_growth_mb=max(growths) if growths else None,
        ),
        result,
    )


def write_pool(path: Path, n_rows: int, n_features: int) -> np.ndarray:
    """Write a float32 pool of noisy class clusters to ``path``; return its labels."""
    rng = np.random.default_rng(SEED)
    centers = rng.normal(scale=1.5, size=(N_CLASSES, n_features)).astype(np.float32)
    labels = rng.integers(0, N_CLASSES, size=n_rows)
    pool = open_memmap(path, mode="w+", dtype=np.float32, shape=(n_rows, n_features))
    for start in range(0, n_rows, ROWS_PER_WRITE):
        block = labels[start : start + ROWS_PER_WRITE]
        noise = rng.standard_normal((block.size, n_features), dtype=np.float32)
        pool[start : start + block.size] = centers[block] + 2.0 * noise
    pool.flush()
    del pool
    return labels


def train(features: np.ndarray, labels: np.ndarray) -> catboost.CatBoostClassifier:
    """Fit the small multi-class model that scores the pool."""
    model = catboost.CatBoostClassifier(
        iterations=ITERATIONS,
        loss_function="MultiClass",
        random_seed=SEED,
        thread_count=THREADS,
        verbose=False,
        allow_writing_files=False,
    )
    model.fit(np.asarray(features[:LABELED_ROWS]), labels[:LABELED_ROWS])
    return model


def run_benchmark(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Build the pool and model under ``workdir``; measure both ways of scoring."""
    path = workdir / "pool.npy"
    print(f"writing a {args.rows:,} x {args.features} float32 pool to {path}")
    labels = write_pool(path, args.rows, args.features)
    features = np.load(path, mmap_mode="r")
    print(f"training CatBoost ({N_CLASSES} classes, {ITERATIONS} iterations)")
    model = train(features, labels)
    pool = UnlabeledPool(
        rows=np.arange(LABELED_ROWS, args.rows, dtype=np.int64),
        features=features,
        model=model,
        chunk_rows=args.chunk_rows,
    )
    strategy = get_strategy("entropy")
    model.predict_proba(np.asarray(features[:1000]))  # warm-up outside timings

    print(f"measuring entropy selection of {BATCH_SIZE:,} rows, chunked")
    chunked, selection = measure(
        lambda: strategy.select(pool, BATCH_SIZE, seed=SEED), len(pool), args.repeats
    )
    print("measuring CatBoost predict_proba over every unlabeled row at once")
    in_process, probabilities = measure(
        lambda: model.predict_proba(features[pool.rows]), len(pool), args.repeats
    )

    # The strategy's ranking, applied to the one-call probabilities, must give
    # the same rows: chunking changes the cost, never the answer.
    scores = EntropyStrategy().score(probabilities)
    order = np.lexsort((tie_keys(pool.rows, SEED), -scores))[:BATCH_SIZE]
    same_selection = bool(np.array_equal(pool.rows[order], selection))

    return {
        "pool": {
            "rows": args.rows,
            "unlabeled_rows": len(pool),
            "features": args.features,
            "dtype": "float32",
            "file_mb": path.stat().st_size / MB,
            "chunk_rows": args.chunk_rows,
            "batch_size": BATCH_SIZE,
            "classes": N_CLASSES,
            "iterations": ITERATIONS,
            "thread_count": THREADS,
            "repeats": args.repeats,
        },
        "chunked": asdict(chunked),
        "predict_proba_in_process": asdict(in_process),
        "speed_ratio": chunked.rows_per_s / in_process.rows_per_s,
        "same_selection": same_selection,
    }


def machine() -> dict[str, Any]:
    """Describe the machine and the library versions the numbers come from."""
    total_mb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                total_mb = int(line.split()[1]) * 1024 / MB
    except OSError:
        total_mb = None
    return {
        "cpu_count": os.cpu_count(),
        "memory_mb": total_mb,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "catboost": catboost.__version__,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def verdicts(results: dict[str, Any], bound_mb: int) -> list[tuple[str, ...]]:
    """Return the table rows: figure, measured, target, verdict."""
    chunked = results["chunked"]
    in_process = results["predict_proba_in_process"]
    bound = f"<= {bound_mb} MB (`SamplerSettings.max_scoring_memory_mb`)"

    def check(ok: bool) -> str:
        return "pass" if ok else "FAIL"

    def mb(value: float | None) -> str:
        return "n/a" if value is None else f"{value:,.1f} MB"

    rss = chunked["peak_anon_rss_growth_mb"]
    return [
        (
            "peak memory of chunked scoring vs declared bound (tracemalloc)",
            mb(chunked["peak_traced_mb"]),
            bound,
            check(chunked["peak_traced_mb"] <= bound_mb),
        ),
        (
            "peak anonymous RSS growth of chunked scoring, native buffers included",
            mb(rss),
            bound,
            "n/a" if rss is None else check(rss <= bound_mb),
        ),
        (
            "peak memory of CatBoost predict_proba in-process (tracemalloc)",
            mb(in_process["peak_traced_mb"]),
            "reference",
            "-",
        ),
        (
            "peak anonymous RSS growth of CatBoost predict_proba in-process",
            mb(in_process["peak_anon_rss_growth_mb"]),
            "reference",
            "-",
        ),
        (
            "wall time, chunked entropy selection (median)",
            f"{chunked['wall_s']:.2f} s",
            "reference",
            "-",
        ),
        (
            "wall time, CatBoost predict_proba in-process (median)",
            f"{in_process['wall_s']:.2f} s",
            "reference",
            "-",
        ),
        (
            "rows/s chunked vs CatBoost predict_proba in-process (ratio)",
            f"{chunked['rows_per_s']:,.0f} vs {in_process['rows_per_s']:,.0f} "
            f"({results['speed_ratio']:.2f})",
            f">= {MIN_SPEED_RATIO:.2f}",
            check(results["speed_ratio"] >= MIN_SPEED_RATIO),
        ),
        (
            "selection equals the ranking of predict_proba's one-call output",
            "yes" if results["same_selection"] else "no",
            "yes",
            check(results["same_selection"]),
        ),
    ]


def markdown(report: dict[str, Any], rows: list[tuple[str, ...]]) -> str:
    """Render the report as the Markdown page committed with the code."""
    pool, host = report["pool"], report["machine"]
    lines = [
        "# Sampler scoring: chunked vs one call",
        "",
        f"Produced by `{report['command']}` on {host['date']}",
        f"({host['cpu_count']} CPUs, {host['memory_mb']:,.0f} MB, "
        f"Python {host['python']}, numpy {host['numpy']}, "
        f"catboost {host['catboost']}).",
        "",
        f"Pool: {pool['rows']:,} rows x {pool['features']} float32 features, "
        f"memory-mapped from a {pool['file_mb']:,.0f} MB `.npy` file; "
        f"{pool['unlabeled_rows']:,} unlabeled. Model: CatBoost, "
        f"{pool['classes']} classes, {pool['iterations']} iterations, "
        f"{pool['thread_count']} threads. The `entropy` strategy selects "
        f"{pool['batch_size']:,} rows in chunks of {pool['chunk_rows']:,}; the "
        "baseline is `model.predict_proba(features[pool.rows])`, every "
        f"unlabeled row in one call. Wall times are the median of "
        f"{pool['repeats']} runs; memory is traced in one more run.",
        "",
        "| figure | measured | target | verdict |",
        "|---|---|---|---|",
        *(f"| {' | '.join(row)} |" for row in rows),
        "",
        "tracemalloc counts Python objects and numpy buffers, not CatBoost's "
        "native allocations; the anonymous-RSS rows include those but leave out "
        "the mapped pool file; they are sampled every 5 ms and are the largest "
        "growth over the timed runs. The pool's row index "
        "(8 bytes a row) is built by the caller and counted in neither.",
        "",
    ]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.sampler_memory", description=__doc__
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument(
        "--chunk-rows",
        type=int,
        default=SamplerSettings.model_fields["chunk_rows"].default,
    )
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed runs of each; the median counts"
    )
    args = parser.parse_args(argv)
    if args.rows < LABELED_ROWS + BATCH_SIZE:
        parser.error(f"--rows must be at least {LABELED_ROWS + BATCH_SIZE}")
    if min(args.features, args.chunk_rows, args.repeats) < 1:
        parser.error("--features, --chunk-rows and --repeats must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, write its results, and return 1 if a target is missed."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    bound_mb: int = SamplerSettings.model_fields["max_scoring_memory_mb"].default

    with tempfile.TemporaryDirectory(prefix="sampler-benchmark-") as workdir:
        results = run_benchmark(args, Path(workdir))
    report = {
        "command": " ".join([COMMAND, *argv]),
        "machine": machine(),
        "declared_bound_mb": bound_mb,
        "min_speed_ratio": MIN_SPEED_RATIO,
        **results,
    }
    rows = verdicts(results, bound_mb)
    report["verdicts"] = {figure: verdict for figure, _, _, verdict in rows}

    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "sampler.json").write_text(json.dumps(report, indent=2) + "\n")
    page = markdown(report, rows)
    (args.out_dir / "sampler.md").write_text(page)
    print(page)
    return 1 if "FAIL" in report["verdicts"].values() else 0


if __name__ == "__main__":
    sys.exit(main())
