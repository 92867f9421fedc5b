"""Handle ``EvaluateModel``: score a model on validation and test, log, answer.

Consumes ``evaluator.commands``; answers on ``evaluator.events`` with
``ModelEvaluated`` (or ``EvaluationFailed``). The full report (confusion
matrices and per-class scores) goes to the reports bucket; metrics (stepped
by round) and the report as JSON go to the model's MLflow run. When the
command asks to register the model (flows do for a run's final model), the
confusion matrices as pictures and the model itself go to that run too, and
the model is registered under the experiment's name, with its scores and
fit time linked to it; the registered model version with the best
validation accuracy so far carries the alias ``best``.
Registering takes several MLflow requests and uploads, and CPU that the
fits running beside it would otherwise have, which is why flows leave it out
of the rounds before the last.
"""

from __future__ import annotations

import io
import json
import logging
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from contracts import EvaluateModel, ModelEvaluated, SplitMetrics
from services.evaluator.metrics import scores
from services.evaluator.settings import EvaluatorSettings
from services.platform import models
from services.platform.datasets import DatasetSnapshot, DatasetStore
from services.platform.objectstore import ObjectStore, safe_key
from services.platform.plots import close_figure, confusion_figure
from services.platform.timing import StepTimer
from services.platform.tracking import BEST_ALIAS, Tracking, split_metrics

logger = logging.getLogger(__name__)

_ACCURACY_TAG = "validation_accuracy"
# Listing requirements explicitly spares MLflow inferring them (5-6 s a model).
_PIP_REQUIREMENTS = ["catboost", "numpy", "pandas"]


class Evaluator:
    """Score one model per ``EvaluateModel`` command."""

    def __init__(
        self,
        settings: EvaluatorSettings,
        datasets: DatasetStore,
        objects: ObjectStore,
        tracking: Tracking,
    ) -> None:
        self.settings = settings
        self.datasets = datasets
        self.objects = objects
        self.tracking = tracking

    def warm_up(self) -> None:
        """Pay the one-time costs of registering a model before the first command.

        A process's first model save imports MLflow's model flavour and maps
        every installed package to its modules (to check the model's
        requirements), and its first picture loads the fonts: about a second
        together, which would otherwise fall on the registration that the
        end of the first flow waits for. Nothing is logged or uploaded.
        """
        import mlflow.catboost
        from catboost import CatBoostClassifier

        model = CatBoostClassifier(
            iterations=1, thread_count=1, verbose=False, allow_writing_files=False
        )
        model.fit(np.array([[0.0], [1.0]]), np.array([0, 1]))
        with tempfile.TemporaryDirectory() as folder:
            mlflow.catboost.save_model(
                model, str(Path(folder) / "model"), pip_requirements=_PIP_REQUIREMENTS
            )
        figure = confusion_figure(np.eye(2, dtype=int), ["0", "1"], "warm-up")
        figure.savefig(io.BytesIO(), format="png")
        close_figure(figure)

    def __call__(self, command: EvaluateModel) -> ModelEvaluated:
        """Answer one command."""
        timer = StepTimer()
        with timer.step("load"):
            dataset = self.datasets.load(command.dataset)
            model = models.from_bytes(self.objects.get(command.model))
        scorer = models.CatBoostScorer(model, dataset.categorical_features)

        with timer.step("predict"):
            scores = {
                split: score_split(dataset, scorer, split)
                for split in ("validation", "test")
            }
        report = {
            "dataset_id": command.dataset.dataset_id,
            "round": command.round,
            "n_labeled": command.n_labeled,
            "class_names": dataset.class_names,
            **{split: detail for split, (_, detail) in scores.items()},
        }
        key = safe_key(
            command.experiment,
            str(command.correlation_id),
            f"round-{command.round:04d}-{command.message_id}.json",
        )
        with timer.step("store"):
            report_ref = self.objects.put(
                self.settings.s3.reports_bucket,
                key,
                json.dumps(report, indent=1).encode(),
                "application/json",
            )
        validation, test = scores["validation"][0], scores["test"][0]
        registered: _Registered | None = None
        if command.mlflow_run_id and command.register_model:
            with timer.step("register"), ThreadPoolExecutor(1, "figures") as drawing:
                # The pictures are drawn and uploaded while the model is logged:
                # drawing is CPU, logging mostly waits on MLflow and the store.
                figures = drawing.submit(
                    self._log_figures, command, report, dataset.class_names
                )
                registered = self._register(command, model)
                figures.result()
        if command.mlflow_run_id:
            with timer.step("log"):
                self._log(command, validation, test, report, registered)
        if registered is not None:
            with timer.step("register"):
                self._promote_if_best(command.experiment, registered, validation)
        logger.info(
            "evaluated correlation_id=%s round=%s validation_accuracy=%.4f "
            "test_accuracy=%.4f",
            command.correlation_id,
            command.round,
            validation.accuracy,
            test.accuracy,
        )
        return command.reply(
            ModelEvaluated,
            producer="evaluator",
            round=command.round,
            n_labeled=command.n_labeled,
            validation=validation,
            test=test,
            report=report_ref,
            timings=timer.seconds,
        )

    def _log(
        self,
        command: EvaluateModel,
        validation: SplitMetrics,
        test: SplitMetrics,
        report: dict[str, Any],
        registered: _Registered | None,
    ) -> None:
        run_id = command.mlflow_run_id
        assert run_id is not None  # noqa: S101 (checked by the caller)
        client = self.tracking.client
        # Scores of a registered model are logged against it too: MLflow shows
        # them with the model and its registered version.
        model_id = registered.model_id if registered else None
        client.log_batch(
            run_id, metrics=split_metrics(validation, test, command.round, model_id)
        )
        client.log_dict(run_id, report, "evaluation/report.json")
        # The trainer opened the round's run; its scores are the last thing
        # logged into it.
        client.set_terminated(run_id, "FINISHED")

    def _log_figures(
        self, command: EvaluateModel, report: dict[str, Any], class_names: list[str]
    ) -> None:
        client = self.tracking.client
        for split in ("validation", "test"):
            figure = confusion_figure(
                np.asarray(report[split]["confusion_matrix"]),
                class_names,
                f"{split}, round {command.round}, {command.n_labeled} labels",
            )
            client.log_figure(
                command.mlflow_run_id,
                figure,
                f"evaluation/confusion_matrix_{split}.png",
            )
            close_figure(figure)

    def _register(self, command: EvaluateModel, model: Any) -> _Registered:
        """Log the model into its training run and register it, once per run.

        This comes before the round's scores are logged: MLflow links every
        metric the run holds at the model's step to the new model, reading
        each metric's whole history to do it, so the fewer the run holds by
        then, the fewer requests. The scores are linked as they are logged.
        """
        import mlflow.catboost

        run_id = command.mlflow_run_id
        versions = self.tracking.client.search_model_versions(f"run_id = '{run_id}'")
        if versions:  # an earlier attempt got this far
            # Versions read back from the server name their model in the
            # source only (models:/<model id>).
            version = versions[0]
            model_id = str(version.source).removeprefix("models:/")
            return _Registered(model_id, str(version.version))
        info = mlflow.catboost.log_model(
            model,
            name="model",
            registered_model_name=command.experiment,
            pip_requirements=_PIP_REQUIREMENTS,
            run_id=run_id,
            step=command.round,
        )
        return _Registered(info.model_id, str(info.registered_model_version))

    def _promote_if_best(
        self, model_name: str, registered: _Registered, validation: SplitMetrics
    ) -> None:
        """Give the alias ``best`` to this run's model version if it beats the holder.

        Warning:
            Two evaluators promoting versions of one registered model at the
            same moment may both read the old holder; the later write wins.
            Flows of one experiment evaluate one model at a time, so this
            needs concurrent flows writing the same experiment to happen.
        """
        from mlflow.exceptions import MlflowException

        client = self.tracking.client
        accuracy = validation.accuracy
        client.set_model_version_tag(
            model_name, registered.version, _ACCURACY_TAG, f"{accuracy:.6f}"
        )
        try:
            holder = client.get_model_version_by_alias(model_name, BEST_ALIAS)
            best = float(holder.tags.get(_ACCURACY_TAG, "-1"))
        except MlflowException:
            best = -1.0
        if accuracy > best:
            client.set_registered_model_alias(
                model_name, BEST_ALIAS, registered.version
            )
            logger.info(
                "alias=%s model=%s version=%s validation_accuracy=%.4f",
                BEST_ALIAS,
                model_name,
                registered.version,
                accuracy,
            )


@dataclass(frozen=True)
class _Registered:
    """The logged model and registered version of a run's final model."""

    model_id: str
    version: str


def score_split(
    dataset: DatasetSnapshot, scorer: models.CatBoostScorer, split: str
) -> tuple[SplitMetrics, dict[str, Any]]:
    """Return a model's metrics on one split, and the detailed report."""
    rows = dataset.split[split]
    predicted = scorer.predict_proba(np.asarray(dataset.features[rows])).argmax(axis=1)
    return scores(np.asarray(dataset.labels[rows]), predicted, dataset.class_names)
