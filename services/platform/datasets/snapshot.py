"""One dataset snapshot in memory: arrays, names and split."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

SPLITS = ("pool", "validation", "test")


@dataclass(frozen=True, eq=False)
class DatasetSnapshot:
    """Features, labels and their split; rows are addressed by index.

    ``features`` may be a read-only memory map: a large pool is never read
    whole into memory.
    """

    name: str
    features: np.ndarray
    labels: np.ndarray
    split: dict[str, np.ndarray]
    feature_names: list[str]
    class_names: list[str]
    categorical_features: list[int] = field(default_factory=list)
    row_ids: list[str] | None = None
    split_seed: int = 42
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def n_rows(self) -> int:
        """Return the number of rows."""
        return int(self.features.shape[0])

    @property
    def n_classes(self) -> int:
        """Return the number of classes."""
        return len(self.class_names)

    def describe(self) -> dict[str, Any]:
        """Return what the manifest records besides the arrays."""
        return {
            "name": self.name,
            "n_rows": self.n_rows,
            "n_features": int(self.features.shape[1]),
            "feature_names": self.feature_names,
            "class_names": self.class_names,
            "categorical_features": self.categorical_features,
            "split_seed": self.split_seed,
            "split_sizes": {name: len(self.split[name]) for name in SPLITS},
            "metadata": self.metadata,
        }

    @cached_property
    def content_hash(self) -> str:
        """Return the SHA-256 of everything the snapshot holds."""
        digest = hashlib.sha256()
        for array in (self.features, self.labels, *(self.split[s] for s in SPLITS)):
            contiguous = np.ascontiguousarray(array)
            digest.update(str((contiguous.dtype.str, contiguous.shape)).encode())
            digest.update(contiguous.tobytes())
        digest.update(json.dumps(self.describe(), sort_keys=True).encode())
        digest.update(json.dumps(self.row_ids).encode())
        return digest.hexdigest()

    @property
    def dataset_id(self) -> str:
        """Return the snapshot's id: its name and a prefix of its content hash."""
        return f"{self.name}-{self.content_hash[:12]}"
