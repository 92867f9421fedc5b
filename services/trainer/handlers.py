"""Handle ``TrainModel``: fit CatBoost on the labeled rows, store, log, answer.

Consumes ``trainer.commands``; answers on ``trainer.events`` with
``ModelTrained`` (or ``TrainingFailed``). The model goes to the models
bucket; the round's MLflow run gets its params, fit time and tree count.
The evaluator logs the model itself into that run and registers it, once
it has scores to register it with: that keeps the slow model logging out of
the trainer, which every round waits for.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from contracts import Event, ModelTrained, TrainModel
from services.platform import models
from services.platform.datasets import DatasetStore
from services.platform.errors import CommandRefusedError
from services.platform.objectstore import ObjectStore, safe_key
from services.platform.timing import StepTimer
from services.platform.tracking import (
    COMMAND_TAG,
    CORRELATION_TAG,
    ROUND_TAG,
    TRAINED_TAG,
    Tracking,
)
from services.trainer.settings import TrainerSettings

logger = logging.getLogger(__name__)


class Trainer:
    """Fit, store and log one model per ``TrainModel`` command."""

    def __init__(
        self,
        settings: TrainerSettings,
        datasets: DatasetStore,
        objects: ObjectStore,
        tracking: Tracking,
    ) -> None:
        self.settings = settings
        self.datasets = datasets
        self.objects = objects
        self.tracking = tracking

    def __call__(self, command: TrainModel) -> ModelTrained:
        """Answer one command."""
        timer = StepTimer()
        with timer.step("load"):
            dataset = self.datasets.load(command.dataset)
            labeled = self.datasets.get_rows(command.labeled)
            _check_rows(labeled, dataset.n_rows)
            labels = np.asarray(dataset.labels[labeled])
            _check_classes(labels, dataset.class_names)
            pool = models.make_pool(
                np.asarray(dataset.features[labeled]),
                dataset.categorical_features,
                labels,
            )
            init_model = (
                models.from_bytes(self.objects.get(command.init_model))
                if command.init_model
                else None
            )
        model = models.new_classifier(
            command.params, dataset.n_classes, command.seed, self.settings.thread_count
        )
        # The round's MLflow run is opened while the model fits: those are
        # requests to a server, not work for this process's cores.
        with ThreadPoolExecutor(1, "mlflow-run") as background:
            opening = background.submit(self._open_run, command)
            try:
                with timer.step("fit"):
                    model.fit(pool, init_model=init_model)
            except BaseException:
                # No run for a fit that failed; a retry opens its own.
                background.submit(self._close_unused, opening)
                raise
            fit_seconds = timer.seconds["fit"]
            # The fit's parameters and times are logged while the model uploads.
            logged = background.submit(
                self._log, command, opening, model, fit_seconds, len(labeled)
            )
            with timer.step("store"):
                # Named by content too: a second attempt at the command (a
                # member handling it after being dropped from the group) must
                # not overwrite the model an earlier answer refers to.
                model_ref = self.objects.put_by_content(
                    self.settings.s3.models_bucket,
                    lambda digest: safe_key(
                        command.experiment,
                        str(command.correlation_id),
                        f"round-{command.round:04d}-{command.message_id}-"
                        f"{digest[:16]}.cbm",
                    ),
                    models.to_bytes(model),
                )
            with timer.step("log"):
                run_id = logged.result()
        logger.info(
            "trained correlation_id=%s round=%s labeled=%s fit_seconds=%.2f",
            command.correlation_id,
            command.round,
            len(labeled),
            fit_seconds,
        )
        return command.reply(
            ModelTrained,
            producer="trainer",
            round=command.round,
            model=model_ref,
            mlflow_run_id=run_id,
            n_labeled=len(labeled),
            fit_seconds=fit_seconds,
            timings=timer.seconds,
        )

    def discard(self, answer: Event) -> None:
        """Delete the run and model of an answer another replica's superseded."""
        if not isinstance(answer, ModelTrained):
            return  # a failure made nothing to take back
        self.tracking.client.delete_run(answer.mlflow_run_id)
        self.objects.delete(answer.model)
        logger.info(
            "discarded run_id=%s model=%s of a superseded answer",
            answer.mlflow_run_id,
            answer.model.uri,
        )

    def _open_run(self, command: TrainModel) -> str:
        """Create the round's MLflow run, removing one an interrupted attempt left."""
        experiment_id = self.tracking.experiment_id(command.experiment)
        self.tracking.discard_partial_runs(experiment_id, str(command.message_id))
        tags = {
            COMMAND_TAG: str(command.message_id),
            CORRELATION_TAG: str(command.correlation_id),
            ROUND_TAG: str(command.round),
            "mlflow.runName": f"round-{command.round:03d}",
        }
        if command.parent_run_id:
            tags["mlflow.parentRunId"] = command.parent_run_id
        run = self.tracking.client.create_run(experiment_id, tags=tags)
        return str(run.info.run_id)

    def _close_unused(self, opening: Future[str]) -> None:
        """Delete the run opened for a fit that failed."""
        try:
            self.tracking.client.delete_run(opening.result())
        except Exception as exc:  # noqa: BLE001 (the fit's error is the one raised)
            logger.warning("left the MLflow run of a failed fit: %s", exc)

    def _log(
        self,
        command: TrainModel,
        opening: Future[str],
        model: Any,
        fit_seconds: float,
        n_labeled: int,
    ) -> str:
        """Log the fit into the round's run once it is open; return the run's id."""
        from mlflow.entities import Metric, Param, RunTag

        run_id = opening.result()

        params = {
            **command.params.model_dump(),
            "seed": command.seed,
            "thread_count": self.settings.thread_count,
            "dataset_id": command.dataset.dataset_id,
            "warm_start": command.init_model is not None,
        }
        now = int(time.time() * 1000)
        self.tracking.client.log_batch(
            run_id,
            # A run marked trained belongs to a finished attempt: a later
            # attempt at the same command leaves it alone.
            tags=[RunTag(TRAINED_TAG, "true")],
            params=[Param(k, str(v)) for k, v in params.items()],
            metrics=[
                Metric("fit_seconds", fit_seconds, now, command.round),
                Metric("n_labeled", n_labeled, now, command.round),
                Metric("tree_count", model.tree_count_, now, command.round),
            ],
        )
        return run_id


def _check_rows(rows: np.ndarray, n_rows: int) -> None:
    if rows.size == 0:
        raise CommandRefusedError("the labeled set is empty; nothing to train on")
    if rows.min() < 0 or rows.max() >= n_rows:
        raise CommandRefusedError(
            f"labeled rows reach {int(rows.max())} but the dataset has {n_rows} rows"
        )
    if np.unique(rows).size != rows.size:
        raise CommandRefusedError("the labeled set names some rows twice")


def _check_classes(labels: np.ndarray, class_names: list[str]) -> None:
    present = np.unique(labels)
    if present.size < 2:
        shown = ", ".join(repr(class_names[int(c)]) for c in present)
        raise CommandRefusedError(
            f"the {labels.size} labeled rows hold {present.size} class ({shown}); "
            "CatBoost needs at least two"
        )
