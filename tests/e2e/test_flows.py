"""The flows users run, through all four services of the local stack.

Runs the README's `run-both` command (shortened: three rounds, fast CatBoost
settings) and checks what it leaves behind in MLflow, the object store and
Prefect; then shows a deployment on an interval schedule producing a run by
itself.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from deploy.local.stack import LocalStack
from services.orchestrator.experiment import read_state
from services.platform.objectstore import ObjectStore

REPO = Path(__file__).resolve().parents[2]


def _prefect(stack: LocalStack, path: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(  # noqa: S310 (http URL of the test stack)
        stack.client_env()["PREFECT_API_URL"] + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (same)
        return json.load(response)


@pytest.fixture(scope="module")
def run_both(local_stack: LocalStack, tmp_path_factory: pytest.TempPathFactory):
    reports = tmp_path_factory.mktemp("reports")
    key = f"e2e-{os.urandom(3).hex()}"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "services.orchestrator.cli",
            "run-both",
            "--strategies",
            "margin",
            "--rounds",
            "3",
            "--iterations",
            "40",
            "--learning-rate",
            "0.3",
            "--key",
            key,
            "--report-dir",
            str(reports),
        ],
        cwd=REPO,
        env={**os.environ, **local_stack.client_env()},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return key, reports, result.stdout


def test_run_both_prints_the_comparison_and_writes_the_report(run_both) -> None:
    key, reports, output = run_both

    folder = reports / key
    assert "Full-data baseline test accuracy" in output
    assert "margin" in output
    assert {"report.md", "report.html", "learning_curves.png"} <= {
        p.name for p in folder.iterdir()
    }
    assert (folder / "confusion_margin.png").stat().st_size > 1000
    assert "| margin | 1 | 171 |" in (folder / "report.md").read_text()


def test_run_both_leaves_states_models_and_snapshots_in_the_store(
    local_stack: LocalStack, run_both
) -> None:
    key, _, _ = run_both
    objects = local_stack.object_store()

    state = read_state(objects, "reports", f"{key}-margin-seed42")
    baseline = read_state(objects, "reports", f"{key}-baseline-seed42")

    assert state is not None and baseline is not None
    assert state.finished and state.stopped_reason == "completed all 3 rounds"
    assert [r.n_labeled for r in state.rounds] == [57, 114, 171]
    assert baseline.rounds[0].n_labeled == 1149
    for result in state.rounds:
        objects.get(result.model)  # present, and its bytes match the hash
        objects.get(result.labeled)
    assert [r.selection is not None for r in state.rounds] == [True, True, False]


def test_run_both_logs_every_round_and_registers_each_runs_final_model(
    local_stack: LocalStack, run_both
) -> None:
    from mlflow import MlflowClient

    key, _, _ = run_both
    state = read_state(local_stack.object_store(), "reports", f"{key}-margin-seed42")
    assert state is not None
    client = MlflowClient(local_stack.client_env()["MLFLOW_TRACKING_URI"])

    parent = client.get_run(state.parent_run_id)
    history = client.get_metric_history(state.parent_run_id, "test_accuracy")
    children = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{state.parent_run_id}'",
    )
    artifacts = {
        int(run.data.tags["platform.round"]): {
            a.path for a in client.list_artifacts(run.info.run_id, "evaluation")
        }
        for run in children
    }
    versions = {
        int(run.data.tags["platform.round"]): len(
            client.search_model_versions(f"run_id = '{run.info.run_id}'")
        )
        for run in children
    }
    best = client.get_model_version_by_alias("active-learning", "best")

    assert parent.info.status == "FINISHED"
    assert [m.step for m in history] == [57, 114, 171]
    assert len(children) == 3
    # Every round's scores; the final model's pictures and registration only.
    assert all("evaluation/report.json" in found for found in artifacts.values())
    assert "evaluation/confusion_matrix_test.png" in artifacts[2]
    assert "evaluation/confusion_matrix_test.png" not in artifacts[0]
    assert versions == {0: 0, 1: 0, 2: 1}
    assert best.version


def test_prefect_shows_every_flow_run_completed(
    local_stack: LocalStack, run_both
) -> None:
    key, _, _ = run_both

    runs = _prefect(local_stack, "/flow_runs/filter", {"limit": 200})
    mine = [r for r in runs if key in json.dumps(r.get("parameters", {}))]

    assert len(mine) == 2
    assert {r["state"]["type"] for r in mine} == {"COMPLETED"}


def test_deployment_on_an_interval_schedule_runs_by_itself(
    local_stack: LocalStack,
) -> None:
    name = f"interval-{os.urandom(3).hex()}"
    env = {
        **os.environ,
        **local_stack.client_env(),
        "ORCHESTRATOR_READINESS_FILE": str(
            local_stack.state_dir / "run" / f"{name}.ready"
        ),
        "ORCHESTRATOR_DEPLOYMENT_NAME": name,
        "ORCHESTRATOR_SCHEDULES_ACTIVE": "true",
        "ORCHESTRATOR_SCHEDULE_INTERVAL_S": "10",
        "ORCHESTRATOR_BASELINE_PARAMETERS": json.dumps(
            {"params": {"iterations": 20}, "run_key": name}
        ),
        "ORCHESTRATOR_ACTIVE_LEARNING_PARAMETERS": json.dumps(
            {"rounds": 1, "params": {"iterations": 20}, "run_key": f"{name}-al"}
        ),
    }
    orchestrator = subprocess.Popen(
        [sys.executable, "-m", "services.orchestrator"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        completed = _await_completed_run(local_stack, name, timeout_s=300)
    finally:
        orchestrator.send_signal(signal.SIGTERM)
        exit_code = orchestrator.wait(timeout=60)
        deployments = _prefect(
            local_stack,
            "/deployments/filter",
            {"deployments": {"name": {"any_": [name]}}},
        )
        _delete_deployments(local_stack, deployments)

    assert completed["state"]["type"] == "COMPLETED"
    assert completed["auto_scheduled"] is True
    assert exit_code == 0
    # Stopping the orchestrator leaves the schedules running for its restart.
    assert {d["flow_id"] for d in deployments} and all(
        schedule["active"] for d in deployments for schedule in d["schedules"]
    )
    assert all(not d["paused"] for d in deployments)


def _await_completed_run(stack: LocalStack, deployment: str, timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        runs = _prefect(
            stack,
            "/flow_runs/filter",
            {
                "deployments": {"name": {"any_": [deployment]}},
                "flow_runs": {"state": {"type": {"any_": ["COMPLETED"]}}},
            },
        )
        if runs:
            return runs[0]
        time.sleep(3)
    raise AssertionError(
        f"no run of deployment {deployment} completed in {timeout_s} s"
    )


def _delete_deployments(stack: LocalStack, deployments: list[Any]) -> None:
    for deployment in deployments:
        request = urllib.request.Request(  # noqa: S310 (http URL of the test stack)
            stack.client_env()["PREFECT_API_URL"] + f"/deployments/{deployment['id']}",
            method="DELETE",
        )
        urllib.request.urlopen(request, timeout=30).close()  # noqa: S310 (same)


def test_interrupted_run_resumes_from_its_last_completed_round(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    key = f"resume-{os.urandom(3).hex()}"
    run_key = f"{key}-margin-seed42"
    objects = local_stack.object_store()
    arguments = [
        "run-al",
        "--strategy",
        "margin",
        "--rounds",
        "4",
        "--iterations",
        "40",
        "--key",
        key,
        "--report-dir",
        str(tmp_path),
    ]
    first = _cli(local_stack, arguments)
    state = _await_rounds(objects, run_key, rounds=2, timeout_s=300)
    flow_run = _running_flow_run(local_stack, run_key)
    _prefect(
        local_stack,
        f"/flow_runs/{flow_run['id']}/set_state",
        {"state": {"type": "CANCELLING"}, "force": True},
    )
    assert first.wait(timeout=300) == 1  # the command reports the cancelled run
    before = read_state(objects, "reports", run_key)
    assert before is not None and not before.finished

    second = _cli(local_stack, arguments)
    assert second.wait(timeout=600) == 0

    after = read_state(objects, "reports", run_key)
    assert after is not None and after.finished
    assert [r.n_labeled for r in after.rounds] == [57, 114, 171, 228]
    assert [r.model for r in after.rounds[: len(state.rounds)]] == [
        r.model for r in state.rounds
    ]
    client = MlflowClient(local_stack.client_env()["MLFLOW_TRACKING_URI"])
    parent = client.get_run(after.parent_run_id)
    children = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{after.parent_run_id}'",
    )
    assert len(children) == 4, "a round was trained twice"


def test_patience_stop_registers_the_model_of_the_round_it_stopped_at(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    key = f"patience-{os.urandom(3).hex()}"
    # No round can improve validation accuracy by more than 1: the rule stops
    # the run after its second round, which only its score can tell.
    process = _cli(
        local_stack,
        [
            "run-al",
            "--rounds",
            "5",
            "--iterations",
            "40",
            "--patience",
            "1",
            "--min-improvement",
            "1.0",
            "--key",
            key,
            "--report-dir",
            str(tmp_path),
        ],
    )
    assert process.wait(timeout=600) == 0

    state = read_state(local_stack.object_store(), "reports", f"{key}-margin-seed42")
    assert state is not None and state.finished
    client = MlflowClient(local_stack.client_env()["MLFLOW_TRACKING_URI"])
    versions = {
        r.round: len(client.search_model_versions(f"run_id = '{r.mlflow_run_id}'"))
        for r in state.rounds
    }
    assert state.stopped_reason is not None
    assert "did not improve by more than 1.0 in 1 round(s)" in state.stopped_reason
    assert versions == {0: 0, 1: 1}


def _cli(stack: LocalStack, arguments: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "services.orchestrator.cli", *arguments],
        cwd=REPO,
        env={**os.environ, **stack.client_env()},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _await_rounds(objects: ObjectStore, run_key: str, rounds: int, timeout_s: float):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = read_state(objects, "reports", run_key)
        if state is not None and len(state.rounds) >= rounds:
            return state
        time.sleep(1)
    raise AssertionError(f"{run_key} did not complete {rounds} rounds in {timeout_s} s")


def _running_flow_run(stack: LocalStack, run_key: str) -> Any:
    runs = _prefect(
        stack,
        "/flow_runs/filter",
        {"flow_runs": {"state": {"type": {"any_": ["RUNNING"]}}}},
    )
    mine = [r for r in runs if r["parameters"].get("run_key") == run_key]
    assert len(mine) == 1, runs
    return mine[0]


def test_benchmark_flow_compares_strategies_with_random_over_seeds(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    key = f"bench-{os.urandom(3).hex()}"
    process = _cli(
        local_stack,
        [
            "benchmark",
            "--strategies",
            "margin,random",
            "--seeds",
            "0,1",
            "--rounds",
            "2",
            "--iterations",
            "30",
            "--learning-rate",
            "0.3",
            "--key",
            key,
            "--report-dir",
            str(tmp_path),
        ],
    )
    assert process.wait(timeout=900) == 0

    summary = json.loads((tmp_path / key / "summary.json").read_text())
    rows = {row["strategy"]: row for row in summary["rows"]}
    assert set(rows) == {"margin", "random"}
    assert rows["margin"]["seeds"] == "2"
    assert re.search(r"(beyond|within) spread; wins \d/2", rows["margin"]["vs random"])
    assert summary["baseline"][2] == 2
    assert (tmp_path / key / "learning_curves.png").stat().st_size > 1000
