"""Trainer, sampler and evaluator, driven through the real broker, store and MLflow.

The services are the stack's own processes; each test sends commands the way
the orchestrator does and checks the answer, the stored artifact and the
MLflow run.
"""

from __future__ import annotations

import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from contracts import (
    CatBoostParams,
    DatasetRef,
    EvaluateModel,
    ModelTrained,
    ObjectRef,
    SelectBatch,
    TrainModel,
)
from deploy.local.stack import LocalStack
from services.platform.bus import CommandClient
from services.platform.bus.requests import CommandFailedError
from services.platform.datasets import DatasetStore, digits
from services.platform.objectstore import ObjectStore
from services.platform.settings import KafkaSettings

FAST = CatBoostParams(iterations=60, learning_rate=0.3, depth=4)
TIMEOUT_S = 180


@dataclass
class Platform:
    client: CommandClient
    objects: ObjectStore
    datasets: DatasetStore
    dataset: DatasetRef
    tracking_uri: str
    experiment: str


@pytest.fixture(scope="module")
def platform(local_stack: LocalStack, tmp_path_factory: pytest.TempPathFactory):
    env = local_stack.client_env()
    objects = local_stack.object_store()
    datasets = DatasetStore(objects, "datasets", tmp_path_factory.mktemp("cache"))
    kafka = KafkaSettings(bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"])
    with CommandClient("test", kafka) as client:
        yield Platform(
            client=client,
            objects=objects,
            datasets=datasets,
            dataset=datasets.put(digits()),
            tracking_uri=env["MLFLOW_TRACKING_URI"],
            experiment=f"services-{uuid.uuid4().hex[:8]}",
        )


@pytest.fixture(scope="module")
def labeled(platform: Platform) -> np.ndarray:
    pool = platform.datasets.load(platform.dataset).split["pool"]
    return np.random.default_rng(42).choice(pool, size=57, replace=False)


@pytest.fixture(scope="module")
def trained(platform: Platform, labeled: np.ndarray) -> tuple[TrainModel, ModelTrained]:
    command = TrainModel(
        correlation_id=uuid.uuid4(),
        producer="test",
        experiment=platform.experiment,
        round=0,
        dataset=platform.dataset,
        labeled=platform.datasets.put_rows(labeled),
        params=FAST,
        seed=42,
    )
    answer = platform.client.request(command, timeout_s=TIMEOUT_S)
    assert isinstance(answer, ModelTrained)
    return command, answer


def _mlflow(platform: Platform) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(platform.tracking_uri)


def test_trainer_stores_the_model_and_logs_the_run(
    platform: Platform, trained: tuple[TrainModel, ModelTrained]
) -> None:
    command, answer = trained

    model_bytes = platform.objects.get(answer.model)  # checked against its SHA-256
    run = _mlflow(platform).get_run(answer.mlflow_run_id)

    assert answer.causation_id == command.message_id
    assert answer.n_labeled == 57
    assert len(model_bytes) == answer.model.size_bytes > 0
    assert run.data.params["iterations"] == "60"
    assert run.data.params["dataset_id"] == platform.dataset.dataset_id
    assert run.data.metrics["fit_seconds"] == pytest.approx(answer.fit_seconds)
    assert run.data.tags["platform.command_id"] == str(command.message_id)
    assert set(answer.timings) == {"load", "fit", "store", "log"}


def test_evaluator_scores_both_splits_and_logs_metrics_and_confusion_matrix(
    platform: Platform, trained: tuple[TrainModel, ModelTrained]
) -> None:
    command, model = trained
    evaluate = EvaluateModel(
        correlation_id=command.correlation_id,
        producer="test",
        experiment=platform.experiment,
        round=0,
        dataset=platform.dataset,
        model=model.model,
        n_labeled=model.n_labeled,
        mlflow_run_id=model.mlflow_run_id,
    )

    answer = platform.client.request(evaluate, timeout_s=TIMEOUT_S)

    report = json.loads(platform.objects.get(answer.report))
    client = _mlflow(platform)
    run = client.get_run(model.mlflow_run_id)
    artifacts = {
        a.path for a in client.list_artifacts(model.mlflow_run_id, "evaluation")
    }
    best = client.get_model_version_by_alias(platform.experiment, "best")
    versions = client.search_model_versions(f"run_id = '{model.mlflow_run_id}'")
    assert (answer.validation.n_rows, answer.test.n_rows) == (288, 360)
    assert 0.5 < answer.test.accuracy <= 1.0
    assert np.asarray(report["test"]["confusion_matrix"]).sum() == 360
    assert np.asarray(report["test"]["confusion_matrix"]).shape == (10, 10)
    assert run.data.metrics["test_accuracy"] == pytest.approx(answer.test.accuracy)
    assert run.data.metrics["validation_f1_macro"] == pytest.approx(
        answer.validation.f1_macro
    )
    assert "evaluation/confusion_matrix_test.png" in artifacts
    assert "evaluation/report.json" in artifacts
    assert best.run_id == model.mlflow_run_id
    assert [v.name for v in versions] == [platform.experiment]
    # The registered model carries its scores and its fit time.
    logged = {
        m.key: m.value
        for m in client.get_logged_model(
            versions[0].source.removeprefix("models:/")
        ).metrics
    }
    assert logged["test_accuracy"] == pytest.approx(answer.test.accuracy)
    assert logged["fit_seconds"] == pytest.approx(model.fit_seconds)
    assert run.info.status == "FINISHED"
    assert {"predict", "log", "register"} <= set(answer.timings)


def test_evaluator_asked_not_to_register_logs_scores_but_no_model_or_pictures(
    platform: Platform, labeled: np.ndarray
) -> None:
    train = TrainModel(
        correlation_id=uuid.uuid4(),
        producer="test",
        experiment=platform.experiment,
        round=1,
        dataset=platform.dataset,
        labeled=platform.datasets.put_rows(labeled),
        params=FAST,
        seed=7,
    )
    model = platform.client.request(train, timeout_s=TIMEOUT_S)
    assert isinstance(model, ModelTrained)
    evaluate = EvaluateModel(
        correlation_id=train.correlation_id,
        producer="test",
        experiment=platform.experiment,
        round=1,
        dataset=platform.dataset,
        model=model.model,
        n_labeled=model.n_labeled,
        mlflow_run_id=model.mlflow_run_id,
        register_model=False,
    )

    answer = platform.client.request(evaluate, timeout_s=TIMEOUT_S)

    client = _mlflow(platform)
    run = client.get_run(model.mlflow_run_id)
    artifacts = {
        a.path for a in client.list_artifacts(model.mlflow_run_id, "evaluation")
    }
    assert run.data.metrics["test_accuracy"] == pytest.approx(answer.test.accuracy)
    assert run.info.status == "FINISHED"
    assert artifacts == {"evaluation/report.json"}
    assert client.search_model_versions(f"run_id = '{model.mlflow_run_id}'") == []
    assert "register" not in answer.timings


@pytest.mark.parametrize("strategy", ["entropy", "margin", "least_confident", "random"])
def test_sampler_selects_unlabeled_pool_rows(
    platform: Platform,
    trained: tuple[TrainModel, ModelTrained],
    labeled: np.ndarray,
    strategy: str,
) -> None:
    command, model = trained
    select = SelectBatch(
        correlation_id=command.correlation_id,
        producer="test",
        round=0,
        dataset=platform.dataset,
        model=model.model,
        labeled=command.labeled,
        strategy=strategy,
        batch_size=57,
        seed=42,
    )

    answer = platform.client.request(select, timeout_s=TIMEOUT_S)

    rows = platform.datasets.get_rows(answer.selection)
    pool = platform.datasets.load(platform.dataset).split["pool"]
    assert answer.batch_size == len(rows) == 57
    assert np.unique(rows).size == 57
    assert np.isin(rows, pool).all()
    assert not np.isin(rows, labeled).any()


def test_sampler_refuses_a_batch_larger_than_the_pool_with_the_counts(
    platform: Platform, trained: tuple[TrainModel, ModelTrained]
) -> None:
    command, model = trained
    select = SelectBatch(
        correlation_id=command.correlation_id,
        producer="test",
        round=0,
        dataset=platform.dataset,
        model=model.model,
        labeled=command.labeled,
        strategy="margin",
        batch_size=5000,
        seed=42,
    )

    with pytest.raises(CommandFailedError, match=r"5000.*1092") as failure:
        platform.client.request(select, timeout_s=TIMEOUT_S)

    assert failure.value.failure.retryable is False
    assert failure.value.failure.error_type == "BatchTooLargeError"


def test_trainer_refuses_a_labeled_set_with_one_class(platform: Platform) -> None:
    snapshot = platform.datasets.load(platform.dataset)
    pool = snapshot.split["pool"]
    only_zeros = pool[np.asarray(snapshot.labels[pool]) == 0][:10]
    command = TrainModel(
        correlation_id=uuid.uuid4(),
        producer="test",
        experiment=platform.experiment,
        round=0,
        dataset=platform.dataset,
        labeled=platform.datasets.put_rows(only_zeros),
        params=FAST,
        seed=1,
    )

    with pytest.raises(CommandFailedError, match=r"10 labeled rows hold 1 class"):
        platform.client.request(command, timeout_s=TIMEOUT_S)


def test_threads_loading_one_dataset_into_an_empty_cache_all_get_it(
    platform: Platform, tmp_path: Path
) -> None:
    # A benchmark flow's experiments load their dataset at the same moment.
    datasets = DatasetStore(platform.objects, "datasets", tmp_path / "cache")
    start = threading.Barrier(8)

    def load() -> int:
        start.wait()
        return int(datasets.load(platform.dataset).features.shape[0])

    with ThreadPoolExecutor(8) as pool:
        loaded = list(pool.map(lambda _: load(), range(8)))

    assert loaded == [1797] * 8
    leftovers = [p.name for p in (tmp_path / "cache").rglob("*.part")]
    assert leftovers == []


def test_concurrent_downloads_to_one_path_each_leave_a_whole_file(
    platform: Platform, tmp_path: Path
) -> None:
    ref = platform.objects.put("datasets", f"tests/{uuid.uuid4().hex}", b"x" * 500_000)
    target = tmp_path / "object.bin"
    start = threading.Barrier(8)

    def download() -> bytes:
        start.wait()
        return platform.objects.download(ref, target).read_bytes()

    with ThreadPoolExecutor(8) as pool:
        contents = list(pool.map(lambda _: download(), range(8)))

    assert contents == [b"x" * 500_000] * 8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["object.bin"]


def test_a_flow_run_finds_digits_by_its_recipe_instead_of_building_it(
    platform: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from services.orchestrator import experiment

    recipe = f"digits, as a test builds it {uuid.uuid4().hex}"
    monkeypatch.setattr(experiment, "digits_recipe", lambda: recipe)

    def run_platform() -> experiment.Platform:
        # What a flow run's process has: its own platform, an empty cache.
        datasets = DatasetStore(platform.objects, "datasets", tmp_path / "cache")
        return experiment.Platform(
            settings=None,  # type: ignore[arg-type]
            client=platform.client,
            objects=platform.objects,
            datasets=datasets,
            tracking=None,  # type: ignore[arg-type]
        )

    first = run_platform().resolve_dataset("digits")

    def refuse() -> None:
        raise AssertionError("digits was built again")

    monkeypatch.setattr(experiment, "digits", refuse)
    assert run_platform().resolve_dataset("digits") == first == platform.dataset


def test_a_recipe_whose_snapshot_is_gone_finds_nothing(platform: Platform) -> None:
    recipe = f"a recipe {uuid.uuid4().hex}"
    missing = DatasetRef(
        dataset_id="gone-000000000000",
        manifest=ObjectRef(
            uri="s3://datasets/snapshots/gone-000000000000/manifest.json",
            sha256="0" * 64,
            size_bytes=1,
        ),
    )
    assert platform.datasets.find_recipe(recipe) is None
    platform.datasets.put_recipe(recipe, missing)

    assert platform.datasets.find_recipe(recipe) is None
