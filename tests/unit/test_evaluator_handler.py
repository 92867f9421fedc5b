"""The evaluator's warm-up before its first command, and a repeated registration."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from unittest.mock import MagicMock

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


def test_register_again_finds_the_version_an_earlier_attempt_made(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import mlflow.catboost

    tracking = SimpleNamespace(client=MagicMock())
    tracking.client.search_model_versions.return_value = [
        SimpleNamespace(source="models:/m-0123", version=3)
    ]
    log_model = MagicMock()
    monkeypatch.setattr(mlflow.catboost, "log_model", log_model)
    evaluator = Evaluator(None, None, None, tracking)  # type: ignore[arg-type]
    command = SimpleNamespace(mlflow_run_id="run-1", experiment="e", round=4)

    registered = evaluator._register(command, model=None)  # type: ignore[arg-type]

    assert (registered.model_id, registered.version) == ("m-0123", "3")
    tracking.client.search_model_versions.assert_called_once_with("run_id = 'run-1'")
    log_model.assert_not_called()
