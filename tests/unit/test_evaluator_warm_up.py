"""The evaluator's warm-up before its first command."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.evaluator.handlers import Evaluator


def test_warm_up_needs_no_server_and_leaves_no_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    # No settings, store or tracking server: a warm-up that reached for one
    # would fail here.
    evaluator = Evaluator(None, None, None, None)  # type: ignore[arg-type]

    evaluator.warm_up()
    evaluator.warm_up()

    assert sorted(p.name for p in tmp_path.iterdir()) == []
