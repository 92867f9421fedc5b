"""What the fault tests need to break the local stack and judge what survived.

Supervisor control of single processes, service logs read from a point on,
the orchestrator's flow in a process of its own, the comparison of a run with
its undisturbed reference, and the README's table of faults.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deploy.local.stack import LocalStack
from services.orchestrator.experiment import RunState, read_state
from services.platform.objectstore import ObjectStore
from services.platform.tracking import CORRELATION_TAG, ROUND_TAG

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
TABLE_BEGIN = "<!-- fault-table:begin -->"
TABLE_END = "<!-- fault-table:end -->"
EXPERIMENT = "active-learning"


# -- processes ---------------------------------------------------------------


def kill(stack: LocalStack, process: str) -> None:
    """SIGKILL one process; supervisord restarts it (an unexpected exit)."""
    stack.kill_process(process)


def stop(stack: LocalStack, process: str) -> None:
    """Stop one process the way supervisord does (its stop signal, then wait)."""
    stack.stop_process(process)


def start(stack: LocalStack, process: str) -> None:
    """Start one stopped process and wait until supervisord sees it running."""
    stack.start_process(process)


def restore(stack: LocalStack, timeout_s: float = 120) -> None:
    """Start whatever is not running and wait until every process is healthy."""
    deadline = time.monotonic() + timeout_s
    while True:
        statuses = stack.status()
        for status in statuses:
            if status.state in {"STOPPED", "EXITED", "FATAL"}:
                stack.start_process(status.name, wait=False)
        unhealthy = [(s.name, s.state, s.detail) for s in statuses if not s.healthy]
        if not unhealthy:
            return
        assert time.monotonic() < deadline, f"stack not healthy again: {unhealthy}"
        time.sleep(0.5)


# -- logs --------------------------------------------------------------------


# "2026-01-31 12:00:00,000": the start of every service log line.
_TIMESTAMP_CHARS = 23


class LogWatch:
    """Read what processes write to their logs from this moment on."""

    def __init__(self, paths: dict[str, Path]) -> None:
        self.paths = paths
        self._offsets = {
            name: path.stat().st_size if path.exists() else 0
            for name, path in paths.items()
        }

    @classmethod
    def of(cls, stack: LocalStack, *processes: str) -> LogWatch:
        """Watch the logs of ``processes`` of ``stack``."""
        return cls({name: stack.log_path(name) for name in processes})

    def text(self, name: str) -> str:
        """Return what ``name`` logged since the watch began."""
        path = self.paths[name]
        if not path.exists():
            return ""
        with path.open("rb") as handle:
            handle.seek(self._offsets[name])
            return handle.read().decode(errors="replace")

    def matching(self, pattern: str) -> list[tuple[str, re.Match[str]]]:
        """Return (process, match) for each line matching ``pattern``, oldest first.

        Lines are ordered by the timestamp that begins each of them, across
        processes.
        """
        regex = re.compile(pattern)
        found = [
            (name, match)
            for name in self.paths
            for line in self.text(name).splitlines()
            if (match := regex.search(line))
        ]
        return sorted(found, key=lambda item: item[1].string[:_TIMESTAMP_CHARS])

    def wait_for(
        self, pattern: str, timeout_s: float, what: str, count: int = 1
    ) -> list[tuple[str, re.Match[str]]]:
        """Wait until ``count`` lines match ``pattern``; return the matches."""
        deadline = time.monotonic() + timeout_s
        while True:
            found = self.matching(pattern)
            if len(found) >= count:
                return found
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.05)


def received(kind: str, correlation_id: uuid.UUID) -> str:
    """Return a pattern for a worker's log line on receiving a command."""
    return (
        rf"received topic=\S+ partition=\d+ offset=\d+ type={kind} "
        rf"message_id=(?P<id>\S+) correlation_id={correlation_id}"
    )


def answered(message_id: str) -> str:
    """Return a pattern for a worker's log line on answering a command."""
    return rf"answered message_id={re.escape(message_id)} "


# -- flows -------------------------------------------------------------------


@dataclass
class Flow:
    """One active-learning flow run in a process of its own."""

    run_key: str
    parameters: dict[str, Any]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def correlation_id(self) -> uuid.UUID:
        """Return the id every message of this run carries."""
        return RunState.model_construct(run_key=self.run_key).correlation_id

    def start(self, stack: LocalStack, env: dict[str, str] | None = None) -> Flow:
        """Start (or start again) the flow process; its output goes to ``log``."""
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.fault_flow",
                    json.dumps({**self.parameters, "run_key": self.run_key}),
                ],
                cwd=REPO,
                env={**os.environ, **stack.client_env(), **(env or {})},
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        return self

    def wait(self, timeout_s: float = 300) -> int:
        """Wait for the flow process to end; return its exit code."""
        assert self.process is not None
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"flow {self.run_key} still running after {timeout_s} s; "
                f"log: {self.log}\n{self.tail()}"
            ) from None

    def completes(self, timeout_s: float = 300) -> None:
        """Require the flow process to end with exit code 0."""
        code = self.wait(timeout_s)
        assert code == 0, f"flow {self.run_key} exited {code}:\n{self.tail()}"

    def kill(self) -> None:
        """SIGKILL the flow process, wherever it is."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def tail(self, lines: int = 40) -> str:
        """Return the end of the flow's output."""
        if not self.log.exists():
            return "(no output)"
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


# -- results -----------------------------------------------------------------


def rounds_of(state: RunState) -> list[tuple[Any, ...]]:
    """Return what must not change under a fault: rows and scores per round."""
    return [
        (r.round, r.n_labeled, r.labeled, r.selection, r.validation, r.test)
        for r in state.rounds
    ]


def final_state(objects: ObjectStore, run_key: str) -> RunState:
    """Return a finished run's stored state."""
    state = read_state(objects, "reports", run_key)
    assert state is not None, f"run {run_key} left no state"
    assert state.finished, f"run {run_key} did not finish: {state.stopped_reason}"
    return state


def assert_same_results(state: RunState, reference: RunState) -> None:
    """Require a faulted run to end exactly as the undisturbed one did."""
    assert state.stopped_reason == reference.stopped_reason
    assert rounds_of(state) == rounds_of(reference), (
        "selected rows or scores differ from the undisturbed run"
    )


def assert_one_run_per_round_and_one_version(
    tracking_uri: str, state: RunState
) -> None:
    """Require one FINISHED child run per round, and the final model registered once."""
    from mlflow import MlflowClient
    from mlflow.entities import ViewType

    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(EXPERIMENT).experiment_id
    children = client.search_runs(
        [experiment],
        filter_string=f"tags.`mlflow.parentRunId` = '{state.parent_run_id}'",
    )
    finished = Counter(
        int(run.data.tags[ROUND_TAG])
        for run in children
        if run.info.status == "FINISHED"
    )
    rounds = {r.round: 1 for r in state.rounds}
    assert finished == rounds, f"FINISHED child runs per round: {dict(finished)}"
    assert len(children) == len(rounds), "a round left a second, unfinished run"
    assert {r.mlflow_run_id for r in state.rounds} == {
        run.info.run_id for run in children
    }

    # Runs an interrupted attempt left are deleted, not gone: count their
    # model versions too. Only the final round's model is registered.
    every_run = client.search_runs(
        [experiment],
        filter_string=f"tags.`{CORRELATION_TAG}` = '{state.correlation_id}'",
        run_view_type=ViewType.ALL,
    )
    versions = Counter(
        int(run.data.tags[ROUND_TAG])
        for run in every_run
        for _ in client.search_model_versions(f"run_id = '{run.info.run_id}'")
    )
    final = max(rounds)
    assert versions == {final: 1}, f"model versions per round: {dict(versions)}"


# -- the README's table ------------------------------------------------------


@dataclass
class FaultTable:
    """Rows of the README's fault table, written only when every fault passed."""

    faults: tuple[str, ...]
    rows: dict[str, tuple[str, str]] = field(default_factory=dict)

    def record(self, fault: str, happened: str, lost: str) -> None:
        """Record what a fault test observed; call it after its assertions."""
        assert fault in self.faults, f"{fault!r} is not a listed fault"
        self.rows[fault] = (happened, lost)

    def complete(self) -> bool:
        """Return whether every listed fault recorded its row."""
        return set(self.rows) == set(self.faults)

    def markdown(self) -> str:
        """Return the table, one row per fault in the listed order."""
        lines = ["| fault | what happened | data lost |", "|---|---|---|"]
        for fault in self.faults:
            happened, lost = self.rows[fault]
            lines.append(f"| {fault} | {happened} | {lost} |")
        return "\n".join(lines)

    def write(self, readme: Path = README) -> bool:
        """Put the table between the README's markers; return whether it changed."""
        text = readme.read_text()
        begin, end = text.index(TABLE_BEGIN), text.index(TABLE_END)
        updated = (
            text[: begin + len(TABLE_BEGIN)]
            + "\n"
            + self.markdown()
            + "\n"
            + text[end:]
        )
        if updated == text:
            return False
        readme.write_text(updated)
        return True
