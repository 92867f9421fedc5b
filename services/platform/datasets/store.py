"""Store and load dataset snapshots and row sets in the object store.

Layout in the datasets bucket::

    snapshots/<dataset_id>/manifest.json   names, split sizes, and a reference
                                           (key, SHA-256, size) to each array
    snapshots/<dataset_id>/<array>.npy     features, labels, pool, validation, test
    index/<dataset_id>.json                the reference to a snapshot, by its id
    recipes/<sha256>.json                  the reference to a snapshot, by the
                                           recipe that builds it
    rows/<sha256>.npy                      a set of row indices (labeled, selected)

Loading downloads each array once into a local cache folder (checked against
its hash) and memory-maps the features, so a large pool is never read whole
into memory and a service does not read the same dataset twice.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from contracts import DatasetRef, ObjectRef
from services.platform.datasets.errors import DatasetError
from services.platform.datasets.snapshot import SPLITS, DatasetSnapshot
from services.platform.objectstore import ObjectStore, open_object_store, safe_key
from services.platform.settings import ServiceSettings

logger = logging.getLogger(__name__)

_ARRAYS = ("features", "labels", *SPLITS)
_LOADED_SNAPSHOTS = 4


class DatasetStore:
    """Content-addressed dataset snapshots and row sets in one bucket."""

    def __init__(self, objects: ObjectStore, bucket: str, cache_dir: Path) -> None:
        self.objects = objects
        self.bucket = bucket
        self.cache_dir = cache_dir
        self._loaded: OrderedDict[str, DatasetSnapshot] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}

    # -- snapshots -------------------------------------------------------------

    def put(self, snapshot: DatasetSnapshot) -> DatasetRef:
        """Store ``snapshot`` (once: the same content keeps its id) and refer to it."""
        dataset_id = snapshot.dataset_id
        prefix = safe_key("snapshots", dataset_id)
        references = {}
        for name in _ARRAYS:
            array = snapshot.features if name == "features" else _array(snapshot, name)
            references[name] = self.objects.put(
                self.bucket, f"{prefix}/{name}.npy", _npy_bytes(array)
            ).model_dump()
        manifest = {
            "dataset_id": dataset_id,
            "content_sha256": snapshot.content_hash,
            **snapshot.describe(),
            "row_ids": snapshot.row_ids,
            "arrays": references,
        }
        body = json.dumps(manifest, sort_keys=True, indent=1).encode()
        ref = self.objects.put(
            self.bucket, f"{prefix}/manifest.json", body, "application/json"
        )
        dataset = DatasetRef(dataset_id=dataset_id, manifest=ref)
        self.objects.put(
            self.bucket,
            safe_key("index", f"{dataset_id}.json"),
            dataset.model_dump_json().encode(),
            "application/json",
        )
        logger.info("stored dataset_id=%s rows=%s", dataset_id, snapshot.n_rows)
        return dataset

    def resolve(self, dataset_id: str) -> DatasetRef:
        """Return the reference of a stored snapshot, by its id.

        Raises:
            DatasetError: no snapshot with that id was registered.
        """
        try:
            key = safe_key("index", f"{dataset_id}.json")
        except ValueError as exc:
            raise DatasetError(f"{dataset_id!r} is not a dataset id") from exc
        if not self.objects.exists(self.bucket, key):
            raise DatasetError(
                f"no dataset {dataset_id!r} is registered; register it with "
                "`python -m services.platform.datasets` first"
            )
        return DatasetRef.model_validate_json(self.objects.read(self.bucket, key))

    def put_recipe(self, recipe: str, dataset: DatasetRef) -> None:
        """Record that ``recipe`` builds the stored snapshot ``dataset``."""
        self.objects.put(
            self.bucket,
            _recipe_key(recipe),
            dataset.model_dump_json().encode(),
            "application/json",
        )

    def find_recipe(self, recipe: str) -> DatasetRef | None:
        """Return the stored snapshot ``recipe`` builds, or None if there is none."""
        key = _recipe_key(recipe)
        if not self.objects.exists(self.bucket, key):
            return None
        dataset = DatasetRef.model_validate_json(self.objects.read(self.bucket, key))
        manifest = dataset.manifest
        if not self.objects.exists(manifest.bucket, manifest.key):
            return None  # the snapshot was removed since
        return dataset

    def load(self, ref: DatasetRef) -> DatasetSnapshot:
        """Return the snapshot ``ref`` names, from memory, the cache, or the store."""
        with self._lock:
            loading = self._loading.setdefault(ref.dataset_id, threading.Lock())
        # Callers wanting one dataset at once (a benchmark's experiments)
        # wait for the first to read it rather than each downloading it.
        with loading:
            with self._lock:
                if ref.dataset_id in self._loaded:
                    self._loaded.move_to_end(ref.dataset_id)
                    return self._loaded[ref.dataset_id]
            snapshot = self._read(ref)
            with self._lock:
                self._loaded[ref.dataset_id] = snapshot
                while len(self._loaded) > _LOADED_SNAPSHOTS:
                    self._loaded.popitem(last=False)
            return snapshot

    def _read(self, ref: DatasetRef) -> DatasetSnapshot:
        manifest = json.loads(self.objects.get(ref.manifest))
        if manifest.get("dataset_id") != ref.dataset_id:
            raise DatasetError(
                f"manifest {ref.manifest.uri} describes "
                f"{manifest.get('dataset_id')!r}, not {ref.dataset_id!r}"
            )
        folder = self.cache_dir / safe_key(ref.dataset_id)
        arrays = {}
        for name in _ARRAYS:
            object_ref = ObjectRef.model_validate(manifest["arrays"][name])
            path = self.objects.download(object_ref, folder / f"{name}.npy")
            # Features stay on disk, paged in as rows are used.
            arrays[name] = np.load(path, mmap_mode="r" if name == "features" else None)
        return DatasetSnapshot(
            name=manifest["name"],
            features=arrays["features"],
            labels=arrays["labels"],
            split={name: arrays[name] for name in SPLITS},
            feature_names=manifest["feature_names"],
            class_names=manifest["class_names"],
            categorical_features=manifest["categorical_features"],
            row_ids=manifest["row_ids"],
            split_seed=manifest["split_seed"],
            metadata=manifest["metadata"],
        )

    # -- row sets --------------------------------------------------------------

    def put_rows(self, rows: Any) -> ObjectRef:
        """Store a sequence of row indices (order kept) and refer to it."""
        data = _npy_bytes(np.asarray(rows, dtype=np.int64))
        return self.objects.put_by_content(
            self.bucket, lambda digest: safe_key("rows", f"{digest}.npy"), data
        )

    def get_rows(self, ref: ObjectRef) -> np.ndarray:
        """Return the row indices ``ref`` names."""
        data = self.objects.get(ref)
        rows: np.ndarray = np.load(io.BytesIO(data), allow_pickle=False)
        if rows.ndim != 1 or rows.dtype != np.int64:
            raise DatasetError(f"{ref.uri} is not a list of row indices")
        return rows


def open_dataset_store(settings: ServiceSettings) -> DatasetStore:
    """Return the dataset store a service's settings describe."""
    return DatasetStore(
        open_object_store(settings.s3), settings.s3.datasets_bucket, settings.cache_dir
    )


def _array(snapshot: DatasetSnapshot, name: str) -> np.ndarray:
    return snapshot.labels if name == "labels" else snapshot.split[name]


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def _recipe_key(recipe: str) -> str:
    return safe_key("recipes", f"{hashlib.sha256(recipe.encode()).hexdigest()}.json")
