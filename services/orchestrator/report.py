"""The comparison report: strategies against each other, random and the baseline.

For every strategy, over its seeds: mean and spread of test accuracy at each
labeled count, the area under the learning curve (AULC, the mean accuracy
over the labeled range), the labels needed to reach the full-data baseline's
accuracy, and whether the difference from random sampling is larger than the
seed-to-seed spread. Written as Markdown and HTML with the learning curves
and confusion matrices as pictures, stored in the reports bucket, logged to
MLflow, and returned for printing.
"""

from __future__ import annotations

import html
import json
import math
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from services.orchestrator.experiment import RunState
from services.orchestrator.settings import OrchestratorSettings
from services.platform.objectstore import ObjectStore, safe_key
from services.platform.plots import confusion_figure, learning_curves, png_bytes
from services.platform.tracking import Tracking

RANDOM = "random"


@dataclass
class StrategySummary:
    """One strategy's results over its seeds."""

    strategy: str
    seeds: list[int]
    labeled: list[int]
    accuracy_mean: list[float]
    accuracy_sd: list[float]
    aulc: dict[int, float]
    labels_to_baseline: dict[int, int | None]
    final_accuracy: dict[int, float]
    stopped: dict[int, str]

    @property
    def aulc_mean(self) -> float:
        """Return the mean AULC over seeds."""
        return statistics.fmean(self.aulc.values())

    @property
    def aulc_sd(self) -> float:
        """Return the AULC's standard deviation over seeds (0 for one seed)."""
        values = list(self.aulc.values())
        return statistics.stdev(values) if len(values) > 1 else 0.0


@dataclass
class Report:
    """The comparison, ready to print, store and log."""

    key: str
    baseline: tuple[float, float, int] | None
    strategies: dict[str, StrategySummary]
    files: dict[str, bytes] = field(default_factory=dict)
    uri: str | None = None
    mlflow_run_id: str | None = None

    def rows(self) -> list[dict[str, str]]:
        """Return the comparison table, one row per strategy."""
        random = self.strategies.get(RANDOM)
        rows = []
        for name, s in sorted(self.strategies.items()):
            reached = [n for n in s.labels_to_baseline.values() if n is not None]
            share = f"{len(reached)}/{len(s.seeds)}"
            rows.append(
                {
                    "strategy": name,
                    "seeds": str(len(s.seeds)),
                    "labels": str(s.labeled[-1]) if s.labeled else "-",
                    "final test accuracy": _mean_sd(list(s.final_accuracy.values())),
                    "AULC": _mean_sd(list(s.aulc.values())),
                    "labels to baseline": (
                        f"{statistics.fmean(reached):.0f} ({share})"
                        if reached
                        else f"not reached ({share})"
                    ),
                    "vs random": _versus_random(s, random),
                }
            )
        return rows

    def markdown(self) -> str:
        """Return the report as Markdown."""
        lines = [f"# Active-learning comparison `{self.key}`", ""]
        if self.baseline is not None:
            mean, sd, n = self.baseline
            lines.append(
                f"Full-data baseline test accuracy: **{mean:.4f}** "
                f"(sd {sd:.4f} over {n} seed(s))."
            )
            lines.append("")
        rows = self.rows()
        if rows:
            headers = list(rows[0])
            lines.append("| " + " | ".join(headers) + " |")
            lines.append("|" + "---|" * len(headers))
            lines.extend("| " + " | ".join(r[h] for h in headers) + " |" for r in rows)
            lines.append("")
        lines += [
            "AULC: mean test accuracy over the labeled range (trapezoids). "
            "Labels to baseline: the first labeled count whose test accuracy "
            "reaches the baseline's (mean over the seeds that reach it). "
            "vs random: the AULC difference, whether it exceeds the larger of "
            "the two seed-to-seed standard deviations, and in how many paired "
            "seeds the strategy beat random.",
            "",
            "![learning curves](learning_curves.png)",
            "",
        ]
        for name in sorted(self.files):
            if name.startswith("confusion_"):
                title = name.removeprefix("confusion_").removesuffix(".png")
                lines.append(f"![{title} confusion matrix]({name})")
        lines += ["", "## Why each run stopped", ""]
        for name, s in sorted(self.strategies.items()):
            for seed, reason in sorted(s.stopped.items()):
                lines.append(f"- {name}, seed {seed}: {reason}")
        return "\n".join(lines) + "\n"

    def html(self) -> str:
        """Return the report as a standalone HTML page (pictures beside it)."""
        body: list[str] = []
        in_table = False
        for line in self.markdown().splitlines():
            in_markdown_table = line.startswith("|")
            if in_table and not in_markdown_table:
                body.append("</table>")
            if in_markdown_table and not in_table:
                body.append("<table>")
            cell = "td" if in_table else "th"
            in_table = in_markdown_table
            is_row = line.startswith("| ")
            if line.startswith("# "):
                body.append(f"<h1>{html.escape(line[2:])}</h1>")
            elif line.startswith("## "):
                body.append(f"<h2>{html.escape(line[3:])}</h2>")
            elif line.startswith("!["):
                alt, source = line[2:-1].split("](")
                body.append(
                    f'<img alt="{html.escape(alt)}" src="{html.escape(source)}">'
                )
            elif is_row:
                cells = [c.strip() for c in line.strip("|").split("|")]
                body.append(
                    "<tr>"
                    + "".join(f"<{cell}>{html.escape(c)}</{cell}>" for c in cells)
                    + "</tr>"
                )
            elif line and not line.startswith("|---"):
                body.append(f"<p>{html.escape(line)}</p>")
        return (
            "<!doctype html><html><head><meta charset='utf-8'>"
            f"<title>{html.escape(self.key)}</title><style>"
            "body{font-family:sans-serif;max-width:60em;margin:2em auto}"
            "td,th{border:1px solid #ccc;padding:.3em .6em}"
            "table{border-collapse:collapse}img{max-width:100%}"
            "</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
        )

    def summary(self) -> dict[str, Any]:
        """Return what a flow run returns: the table and where the report is."""
        return {
            "report": self.key,
            "uri": self.uri,
            "mlflow_run_id": self.mlflow_run_id,
            "baseline": self.baseline,
            "rows": self.rows(),
        }

    def write(self, folder: Path) -> Path:
        """Write the report's files to ``folder``; return the Markdown file."""
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in self.files.items():
            (folder / name).write_bytes(data)
        return folder / "report.md"


def summarise(
    states: list[RunState], objects: ObjectStore | None = None
) -> tuple[tuple[float, float, int] | None, dict[str, StrategySummary]]:
    """Return the baseline's mean, sd and count, and each strategy's summary."""
    baselines = {
        int(s.parameters["seed"]): s.rounds[-1].test.accuracy
        for s in states
        if s.kind == "baseline" and s.rounds
    }
    baseline = None
    if baselines:
        values = list(baselines.values())
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        baseline = (statistics.fmean(values), sd, len(values))

    runs: dict[str, list[RunState]] = defaultdict(list)
    for state in states:
        if state.kind == "active_learning" and state.rounds:
            runs[str(state.parameters["strategy"])].append(state)
    summaries = {
        name: _strategy(name, group, baselines, baseline)
        for name, group in runs.items()
    }
    return baseline, summaries


def build_report(
    key: str,
    states: list[RunState],
    objects: ObjectStore,
    tracking: Tracking,
    settings: OrchestratorSettings,
) -> Report:
    """Compare ``states``, render the report, store it and log it to MLflow."""
    baseline, strategies = summarise(states)
    report = Report(key=key, baseline=baseline, strategies=strategies)

    curves = {
        name: (
            np.asarray(s.labeled),
            np.asarray(s.accuracy_mean),
            np.asarray(s.accuracy_sd),
        )
        for name, s in strategies.items()
    }
    report.files["learning_curves.png"] = png_bytes(
        learning_curves(
            curves, baseline[:2] if baseline else None, f"learning curves ({key})"
        )
    )
    for name, picture in _confusion_pictures(states, objects).items():
        report.files[f"confusion_{name}.png"] = picture
    report.files["report.md"] = report.markdown().encode()
    report.files["report.html"] = report.html().encode()
    report.files["summary.json"] = json.dumps(report.summary(), indent=1).encode()

    bucket = settings.s3.reports_bucket
    for name, data in report.files.items():
        ref = objects.put(bucket, safe_key("comparisons", key, name), data)
        if name == "report.md":
            report.uri = ref.uri
    report.mlflow_run_id = _log(report, tracking, settings)
    return report


def _strategy(
    name: str,
    group: list[RunState],
    baselines: dict[int, float],
    baseline: tuple[float, float, int] | None,
) -> StrategySummary:
    by_count: dict[int, list[float]] = defaultdict(list)
    aulc, to_baseline, final, stopped = {}, {}, {}, {}
    for state in group:
        seed = int(state.parameters["seed"])
        labels = [r.n_labeled for r in state.rounds]
        accuracy = [r.test.accuracy for r in state.rounds]
        for n, a in zip(labels, accuracy, strict=True):
            by_count[n].append(a)
        aulc[seed] = area_under_curve(labels, accuracy)
        target = baselines.get(seed, baseline[0] if baseline else math.inf)
        to_baseline[seed] = next(
            (n for n, a in zip(labels, accuracy, strict=True) if a >= target), None
        )
        final[seed] = accuracy[-1]
        stopped[seed] = state.stopped_reason or "not finished"
    counts = sorted(by_count)
    return StrategySummary(
        strategy=name,
        seeds=sorted(aulc),
        labeled=counts,
        accuracy_mean=[statistics.fmean(by_count[n]) for n in counts],
        accuracy_sd=[
            statistics.stdev(by_count[n]) if len(by_count[n]) > 1 else 0.0
            for n in counts
        ],
        aulc=aulc,
        labels_to_baseline=to_baseline,
        final_accuracy=final,
        stopped=stopped,
    )


def area_under_curve(x: list[int], y: list[float]) -> float:
    """Return the trapezoid area under y(x) divided by x's range: a mean of y."""
    if len(x) < 2:
        return float(y[0]) if y else math.nan
    area = sum((x[i + 1] - x[i]) * (y[i] + y[i + 1]) / 2 for i in range(len(x) - 1))
    return area / (x[-1] - x[0])


def _versus_random(s: StrategySummary, random: StrategySummary | None) -> str:
    if random is None or s.strategy == RANDOM:
        return "-"
    difference = s.aulc_mean - random.aulc_mean
    paired = [seed for seed in s.aulc if seed in random.aulc]
    wins = sum(1 for seed in paired if s.aulc[seed] > random.aulc[seed])
    if len(s.aulc) < 2 or len(random.aulc) < 2:
        beyond = "one seed: no spread"
    else:
        spread = max(s.aulc_sd, random.aulc_sd)
        beyond = "beyond spread" if abs(difference) > spread else "within spread"
    return f"{difference:+.4f} ({beyond}; wins {wins}/{len(paired)})"


def _mean_sd(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.fmean(values):.4f} ± {statistics.stdev(values):.4f}"


def _confusion_pictures(
    states: list[RunState], objects: ObjectStore
) -> dict[str, bytes]:
    """Return each strategy's (and the baseline's) final test confusion matrix."""
    pictures: dict[str, bytes] = {}
    for state in sorted(states, key=lambda s: int(s.parameters["seed"])):
        name = (
            "baseline"
            if state.kind == "baseline"
            else str(state.parameters["strategy"])
        )
        if name in pictures or not state.rounds:
            continue
        last = state.rounds[-1]
        detail = json.loads(objects.get(last.report))
        pictures[name] = png_bytes(
            confusion_figure(
                np.asarray(detail["test"]["confusion_matrix"]),
                detail["class_names"],
                f"{name}, seed {state.parameters['seed']}, {last.n_labeled} labels",
            )
        )
    return pictures


def _log(report: Report, tracking: Tracking, settings: OrchestratorSettings) -> str:
    import tempfile

    from mlflow.entities import Metric

    client = tracking.client
    experiment_id = tracking.experiment_id(settings.active_learning_experiment)
    run = client.create_run(
        experiment_id,
        tags={
            "mlflow.runName": f"comparison {report.key}",
            "platform.report": report.key,
        },
    )
    run_id = str(run.info.run_id)
    metrics = [
        Metric(f"aulc_{name}", s.aulc_mean, 0, 0)
        for name, s in report.strategies.items()
    ]
    if report.baseline is not None:
        metrics.append(Metric("baseline_test_accuracy", report.baseline[0], 0, 0))
    client.log_batch(run_id, metrics=metrics)
    with tempfile.TemporaryDirectory() as folder:
        report.write(Path(folder))
        client.log_artifacts(run_id, folder, "comparison")
    client.set_terminated(run_id, "FINISHED")
    return run_id
