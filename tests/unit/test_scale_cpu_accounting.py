"""How the scale benchmark charges CPU time to the stack's components."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from types import SimpleNamespace

from benchmarks.scale import TRAINER_COMPONENT, cpu_seconds, cpu_table

# A child that spins for this long, then exits.
_SPIN_S = 0.6
_SPIN = (
    "import time\n"
    f"end = time.process_time() + {_SPIN_S}\n"
    "while time.process_time() < end: pass\n"
)


class _Stack:
    """Stands in for a LocalStack: one component, this process."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def status(self) -> list[SimpleNamespace]:
        return [
            SimpleNamespace(component=TRAINER_COMPONENT, pid=self.pid),
            SimpleNamespace(component="stopped replica", pid=0),
        ]


def test_cpu_seconds_charges_a_reaped_child_to_its_parents_component() -> None:
    stack = _Stack(os.getpid())
    before = cpu_seconds(stack)

    subprocess.run([sys.executable, "-c", _SPIN], check=True)
    after = cpu_seconds(stack)

    used = after[TRAINER_COMPONENT] - before[TRAINER_COMPONENT]
    assert used >= _SPIN_S * 0.9, f"child's {_SPIN_S} s charged as {used:.2f} s"
    assert "stopped replica" not in after
    assert after["machine"] - before["machine"] >= used * 0.9


def test_cpu_seconds_charges_a_live_child_to_its_parents_component() -> None:
    stack = _Stack(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", _SPIN + "time.sleep(30)\n"])
    try:
        time.sleep(0.05)
        before = cpu_seconds(stack)
        deadline = time.monotonic() + 10
        used = 0.0
        while used < _SPIN_S * 0.5 and time.monotonic() < deadline:
            time.sleep(0.1)
            used = cpu_seconds(stack)[TRAINER_COMPONENT] - before[TRAINER_COMPONENT]
    finally:
        child.kill()
        child.wait()
    assert used >= _SPIN_S * 0.5, f"a live child's CPU not charged ({used:.2f} s)"


def test_cpu_table_gives_each_component_and_the_trainers_share() -> None:
    one = {
        "cpu_seconds": {TRAINER_COMPONENT: 300.0, "MLflow": 20.0, "machine": 340.0},
        "wall_seconds": 340.0,
        "jobs_trained": 85,
    }
    two = {
        "cpu_seconds": {TRAINER_COMPONENT: 320.0, "MLflow": 30.0, "machine": 360.0},
        "wall_seconds": 200.0,
        "jobs_trained": 80,
    }

    lines = cpu_table(one, two)

    assert "| trainer service | 300.0 | 320.0 |" in lines
    assert "| MLflow | 20.0 | 30.0 |" in lines
    assert any(
        line.startswith("| the rest:") and "| 20.0 | 10.0 |" in line for line in lines
    )
    assert (
        "| all, and cores busy on average | 340.0 (1.00 cores) | 360.0 (1.80 cores) |"
        in lines
    )
    assert "| share that went to the trainers | 88% | 89% |" in lines
    assert "| trainer CPU seconds per fit | 3.53 | 4.00 |" in lines
