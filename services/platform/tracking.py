"""The MLflow tracking client the services share."""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from contracts import SplitMetrics

logger = logging.getLogger(__name__)

COMMAND_TAG = "platform.command_id"
CORRELATION_TAG = "platform.correlation_id"
ROUND_TAG = "platform.round"
BEST_ALIAS = "best"


class Tracking:
    """Experiments, runs and registered models on one MLflow server."""

    def __init__(self, tracking_uri: str) -> None:
        import mlflow
        from mlflow import MlflowClient

        mlflow.set_tracking_uri(tracking_uri)
        self.client: Any = MlflowClient(tracking_uri)
        self._experiments: dict[str, str] = {}
        self._lock = threading.Lock()

    def experiment_id(self, name: str) -> str:
        """Return the id of experiment ``name``, creating it if needed."""
        from mlflow.exceptions import MlflowException

        with self._lock:
            if name in self._experiments:
                return self._experiments[name]
            experiment = self.client.get_experiment_by_name(name)
            if experiment is None:
                try:
                    experiment_id = self.client.create_experiment(name)
                except MlflowException:
                    # Another service created it between the lookup and here.
                    experiment_id = self.client.get_experiment_by_name(
                        name
                    ).experiment_id
            else:
                experiment_id = experiment.experiment_id
            self._experiments[name] = str(experiment_id)
            return str(experiment_id)

    def discard_partial_runs(self, experiment_id: str, command_id: str) -> int:
        """Delete runs an earlier, interrupted attempt at a command left behind.

        A command is answered once (the bus's ledger sees to that), but a
        handler killed mid-way may have created a run; removing it keeps one
        run per command in effect.
        """
        runs = self.client.search_runs(
            [experiment_id], filter_string=f"tags.`{COMMAND_TAG}` = '{command_id}'"
        )
        for run in runs:
            logger.warning(
                "deleting run_id=%s left by an interrupted attempt at command_id=%s",
                run.info.run_id,
                command_id,
            )
            self.client.delete_run(run.info.run_id)
        return len(runs)


def split_metrics(validation: SplitMetrics, test: SplitMetrics, step: int) -> list[Any]:
    """Return MLflow metrics ``<split>_<score>`` for both splits at ``step``."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    return [
        Metric(f"{split}_{name}", float(value), now, step)
        for split, scores in (("validation", validation), ("test", test))
        for name, value in scores.model_dump().items()
        if name != "n_rows"
    ]
