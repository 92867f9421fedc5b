"""Errors of the dataset store; each message names the problem and where it is."""

from __future__ import annotations

from services.platform.errors import PlatformError


class DatasetError(PlatformError):
    """A dataset is refused before any work starts; the message says why."""


class IntegrityError(DatasetError):
    """A stored object's bytes do not match the hash its reference names."""
