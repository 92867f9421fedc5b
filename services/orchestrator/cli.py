"""Trigger the orchestrator's deployments, follow them, print the comparison.

    python -m services.orchestrator.cli run-both [--strategies a,b] [--rounds N]
    python -m services.orchestrator.cli run-al --strategy margin [--rounds N]
    python -m services.orchestrator.cli run-baseline
    python -m services.orchestrator.cli benchmark [--seeds 0,1,2,3,4]

Parameters are validated here, before any flow run is created; a refused
parameter exits 2 naming it. Runs execute in the orchestrator service; this
command shows each one's rounds as a progress bar, then writes the report
(Markdown, HTML, pictures) to ``reports/<key>/`` and prints its table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from services.orchestrator.parameters import (
    ActiveLearningParameters,
    BaselineParameters,
    ParameterError,
    run_key_for,
    validated,
)
from services.orchestrator.settings import OrchestratorSettings
from services.platform.errors import ConfigurationError
from services.platform.settings import load_settings

console = Console(highlight=False)

_TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
REFERENCE_STRATEGIES = ["entropy", "margin", "least_confident"]


@dataclass
class Planned:
    """One flow run to trigger: its deployment, parameters and run key."""

    label: str
    flow: str
    parameters: dict[str, Any]
    run_key: str
    rounds: int


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run one command."""
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(OrchestratorSettings)
        plans = _plan(args)
    except (ParameterError, ConfigurationError) as exc:
        console.print(f"[bold red]refused:[/] {exc}")
        return 2
    return _run(settings, plans, args.report_dir, args.key)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m services.orchestrator.cli")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("run-baseline", "train on the whole pool and evaluate"),
        ("run-al", "one active-learning flow"),
        ("run-both", "the baseline and active learning by each strategy, compared"),
        ("benchmark", "strategies x seeds and a baseline per seed, compared"),
    ):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("--dataset", default="digits")
        command.add_argument("--seed", type=int, default=42)
        command.add_argument("--iterations", type=int)
        command.add_argument("--learning-rate", type=float)
        command.add_argument("--depth", type=int)
        command.add_argument("--report-dir", type=Path, default=Path("reports"))
        command.add_argument("--key", help="names the report and the runs")
        if name == "run-baseline":
            continue
        command.add_argument("--rounds", type=int, default=15)
        command.add_argument("--initial-fraction", type=float, default=0.05)
        command.add_argument("--step-fraction", type=float, default=0.05)
        if name == "run-al":
            command.add_argument("--strategy", default="margin")
            command.add_argument("--patience", type=int)
            command.add_argument("--min-improvement", type=float, default=0.0)
            command.add_argument("--label-budget", type=int)
            command.add_argument("--warm-start", action="store_true")
            command.add_argument(
                "--warm-start-iterations",
                type=int,
                help="extra trees per warm round (default: half of --iterations)",
            )
        else:
            default = "entropy,margin,least_confident"
            if name == "benchmark":
                default += ",random"
                command.add_argument("--seeds", default="0,1,2,3,4")
            command.add_argument("--strategies", default=default)
    return parser


def _plan(args: argparse.Namespace) -> list[Planned]:
    args.key = args.key or (
        f"{args.command}-{dt.datetime.now(dt.UTC).strftime('%Y%m%d-%H%M%S')}"
    )
    params = {
        k: v
        for k, v in (
            ("iterations", args.iterations),
            ("learning_rate", args.learning_rate),
            ("depth", args.depth),
        )
        if v is not None
    }
    seeds = (
        [int(s) for s in args.seeds.split(",")]
        if args.command == "benchmark"
        else [args.seed]
    )
    plans: list[Planned] = []
    # A benchmark is one flow run that runs every plan; the plans name its parts.
    member = args.command == "benchmark"
    if args.command in {"run-baseline", "run-both", "benchmark"}:
        for seed in seeds:
            values = {"dataset": args.dataset, "seed": seed, "params": params}
            plans.append(_planned(args.key, "baseline", "baseline", seed, values, 1))
    if args.command == "run-baseline":
        return plans
    strategies = (
        [args.strategy]
        if args.command == "run-al"
        else [s.strip() for s in args.strategies.split(",") if s.strip()]
    )
    for seed in seeds:
        for strategy in strategies:
            values = {
                "strategy": strategy,
                "dataset": args.dataset,
                "seed": seed,
                "params": params,
                "rounds": args.rounds,
                "initial_fraction": args.initial_fraction,
                "step_fraction": args.step_fraction,
            }
            if args.command == "run-al":
                values.update(
                    warm_start=args.warm_start,
                    warm_start_iterations=args.warm_start_iterations,
                    patience=args.patience,
                    min_improvement=args.min_improvement,
                    label_budget=args.label_budget,
                )
            plans.append(
                _planned(
                    args.key, "active-learning", strategy, seed, values, args.rounds
                )
            )
    if member:
        for plan in plans:
            plan.flow = "benchmark-member"
    return plans


def _planned(
    key: str, flow: str, label: str, seed: int, values: dict[str, Any], rounds: int
) -> Planned:
    values = {k: v for k, v in values.items() if v is not None}
    model = BaselineParameters if flow == "baseline" else ActiveLearningParameters
    validated(model, values)
    run_key = run_key_for(key, label, seed)
    return Planned(
        label=f"{label} seed {seed}",
        flow=flow,
        parameters={**values, "run_key": run_key},
        run_key=run_key,
        rounds=rounds,
    )


def _run(
    settings: OrchestratorSettings, plans: list[Planned], report_dir: Path, key: str
) -> int:
    from prefect.deployments import run_deployment

    deployment = settings.deployment_name
    if plans[0].flow == "benchmark-member":
        # One benchmark flow runs every plan and builds the report itself.
        flow_run = run_deployment(
            f"benchmark/{deployment}",
            parameters=_benchmark_parameters(plans, key),
            timeout=0,
            flow_run_name=f"benchmark {key}",
        )
        runs = {plan.run_key: flow_run.id for plan in plans}
    else:
        runs = {
            plan.run_key: run_deployment(
                f"{plan.flow}/{deployment}",
                parameters=plan.parameters,
                timeout=0,
                flow_run_name=plan.label,
            ).id
            for plan in plans
        }
    console.print(
        f"[bold]{len(set(runs.values()))} flow run(s) started[/]; follow them at "
        f"{settings.prefect.api_url.removesuffix('/api')}/runs"
    )
    states, failures = _follow(settings, plans, runs)
    if failures:
        for failure in failures:
            console.print(f"[bold red]failed:[/] {failure}")
        return 1
    if plans[0].flow == "benchmark-member":
        return _fetch_report(settings, key, report_dir)
    return _report(settings, key, states, report_dir)


def _follow(
    settings: OrchestratorSettings, plans: list[Planned], runs: dict[str, Any]
) -> tuple[list[Any], list[str]]:
    """Show each plan's rounds until its flow run ends; return states, failures."""
    from prefect.client.orchestration import get_client

    from services.orchestrator.experiment import read_state
    from services.platform.objectstore import open_object_store

    objects = open_object_store(settings.s3)
    failures: list[str] = []
    states: dict[str, Any] = {}
    with get_client(sync_client=True) as client, _progress() as progress:
        bars = {
            p.run_key: progress.add_task(p.label, total=p.rounds, status="scheduled")
            for p in plans
        }
        pending = {p.run_key: p for p in plans}
        while pending:
            time.sleep(2)
            flow_states = {i: client.read_flow_run(i).state for i in set(runs.values())}
            for run_key, plan in list(pending.items()):
                state = flow_states[runs[run_key]]
                status = state.type.value if state else "UNKNOWN"
                stored = read_state(objects, settings.s3.reports_bucket, run_key)
                done = len(stored.rounds) if stored else 0
                progress.update(bars[run_key], completed=done, status=status.lower())
                if status not in _TERMINAL:
                    continue
                del pending[run_key]
                if status != "COMPLETED" or stored is None:
                    message = state.message if state else ""
                    failures.append(f"{plan.label}: {status}: {message}")
                else:
                    states[run_key] = stored
    return list(states.values()), failures


def _benchmark_parameters(plans: list[Planned], key: str) -> dict[str, Any]:
    members = [p.parameters for p in plans if "strategy" in p.parameters]
    first = members[0]
    return {
        "benchmark_key": key,
        "strategies": sorted({m["strategy"] for m in members}),
        "seeds": sorted({m["seed"] for m in members}),
        **{
            name: first[name]
            for name in (
                "rounds",
                "initial_fraction",
                "step_fraction",
                "params",
                "dataset",
            )
            if name in first
        },
    }


def _report(
    settings: OrchestratorSettings, key: str, states: list[Any], report_dir: Path
) -> int:
    from services.orchestrator.report import build_report
    from services.platform.objectstore import open_object_store
    from services.platform.tracking import Tracking

    report = build_report(
        key,
        states,
        open_object_store(settings.s3),
        Tracking(settings.mlflow.tracking_uri, settings.mlflow.retry_timeout_s),
        settings,
    )
    path = report.write(report_dir / key)
    _print(settings, key, report.summary(), path)
    return 0


def _fetch_report(settings: OrchestratorSettings, key: str, report_dir: Path) -> int:
    """Copy a report a flow built from the store, then print it."""
    import json

    from services.platform.objectstore import open_object_store, safe_key

    objects = open_object_store(settings.s3)
    bucket = settings.s3.reports_bucket
    prefix = safe_key("comparisons", key) + "/"
    folder = report_dir / key
    folder.mkdir(parents=True, exist_ok=True)
    listing = objects.client.list_objects_v2(Bucket=bucket, Prefix=prefix)
    for item in listing.get("Contents", []):
        name = item["Key"].removeprefix(prefix)
        (folder / name).write_bytes(objects.read(bucket, item["Key"]))
    summary = json.loads((folder / "summary.json").read_text())
    _print(settings, key, summary, folder / "report.md")
    return 0


def _print(
    settings: OrchestratorSettings, key: str, summary: dict[str, Any], path: Path
) -> None:
    if summary["baseline"] is not None:
        mean, sd, n = summary["baseline"]
        console.print(
            f"\nFull-data baseline test accuracy: [bold]{mean:.4f}[/] "
            f"(sd {sd:.4f}, {n} seed(s))"
        )
    rows = summary["rows"]
    if rows:
        table = Table(title=f"Comparison {key}")
        for header in rows[0]:
            table.add_column(header)
        for row in rows:
            table.add_row(*row.values())
        console.print(table)
    console.print(f"report: {path} (and {path.with_suffix('.html')})")
    console.print(f"stored: {summary['uri']}")
    console.print(
        f"MLflow: {settings.mlflow.tracking_uri}/#/experiments  "
        f"(comparison run {summary['mlflow_run_id']})"
    )
    console.print(f"Prefect: {settings.prefect.api_url.removesuffix('/api')}/runs")


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description:<28}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rounds"),
        TextColumn("{task.fields[status]}"),
        console=console,
    )


if __name__ == "__main__":
    sys.exit(main())
