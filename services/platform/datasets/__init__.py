"""Datasets as immutable, content-addressed snapshots in the object store.

A snapshot holds features, labels and the pool / validation / test split
with its seed. Its id ends in a hash of all of it, so the same data always
gets the same id and a changed byte gets a new one. Sets of rows (what is
labeled after a round, what a sampler selected) are stored the same way.
"""

from services.platform.datasets.errors import DatasetError
from services.platform.datasets.registration import (
    SplitSpec,
    digits,
    digits_recipe,
    from_arrays,
    read_table,
)
from services.platform.datasets.snapshot import DatasetSnapshot
from services.platform.datasets.store import DatasetStore

__all__ = [
    "DatasetError",
    "DatasetSnapshot",
    "DatasetStore",
    "SplitSpec",
    "digits",
    "digits_recipe",
    "from_arrays",
    "read_table",
]
