"""The readiness probe tells ready, missing and stuck apart."""

from __future__ import annotations

import os
import time
from pathlib import Path

from services.platform.readiness import ReadinessFile, check, main


def test_fresh_file_is_ready(tmp_path: Path) -> None:
    path = tmp_path / "svc.ready"
    ReadinessFile(path).beat(force=True)

    assert check(path) is None
    assert main([str(path)]) == 0


def test_missing_file_is_not_ready_and_says_so(tmp_path: Path) -> None:
    path = tmp_path / "svc.ready"

    assert "does not exist" in (check(path) or "")
    assert main([str(path)]) == 1


def test_stale_file_reports_a_stuck_main_loop(tmp_path: Path) -> None:
    path = tmp_path / "svc.ready"
    ReadinessFile(path).beat(force=True)
    old = time.time() - 120
    os.utime(path, (old, old))

    reason = check(path, max_age_s=30)

    assert reason is not None and "main loop stuck" in reason
    assert main([str(path), "--max-age", "30"]) == 1


def test_clear_removes_the_file(tmp_path: Path) -> None:
    readiness = ReadinessFile(tmp_path / "svc.ready")
    readiness.beat(force=True)

    readiness.clear()

    assert not readiness.path.exists()
