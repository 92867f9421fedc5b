"""The ledger: each command's answer, stored under the command's message id.

A worker writes the answer to the ledger before it publishes it and before
it commits the command's offset. A command delivered again (after a crash, a
rebalance or a redelivery) finds its answer here: the worker publishes the
stored answer again instead of doing the work twice.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

from services.platform.errors import PlatformError


class LedgerUnavailableError(PlatformError):
    """The ledger could not be read or written."""


@dataclass(frozen=True)
class LedgerEntry:
    """The answer to one command: the topic it goes to and its bytes."""

    topic: str
    payload: bytes


class Ledger(Protocol):
    """Where answers are recorded, keyed by service and command message id."""

    def get(self, service: str, message_id: uuid.UUID) -> LedgerEntry | None:
        """Return the recorded answer, or None if the command is new."""
        ...

    def put(self, service: str, message_id: uuid.UUID, entry: LedgerEntry) -> None:
        """Record the answer to a command."""
        ...


class InMemoryLedger:
    """A ledger that lives as long as the process; for tests and benchmarks."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, uuid.UUID], LedgerEntry] = {}
        self._lock = threading.Lock()

    def get(self, service: str, message_id: uuid.UUID) -> LedgerEntry | None:
        """Return the recorded answer, or None."""
        with self._lock:
            return self._entries.get((service, message_id))

    def put(self, service: str, message_id: uuid.UUID, entry: LedgerEntry) -> None:
        """Record the answer."""
        with self._lock:
            self._entries[(service, message_id)] = entry


class S3Ledger:
    """A ledger in the object store, shared by every replica of a service."""

    def __init__(self, client: Any, bucket: str, prefix: str = "ledger") -> None:
        self._client = client
        self._bucket = bucket
        self._prefix = prefix.strip("/")

    def _key(self, service: str, message_id: uuid.UUID) -> str:
        return f"{self._prefix}/{service}/{message_id}"

    def get(self, service: str, message_id: uuid.UUID) -> LedgerEntry | None:
        """Return the recorded answer, or None."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self._client.get_object(
                Bucket=self._bucket, Key=self._key(service, message_id)
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] in {"NoSuchKey", "404"}:
                return None
            raise LedgerUnavailableError(f"reading the ledger failed: {exc}") from exc
        except BotoCoreError as exc:
            raise LedgerUnavailableError(f"reading the ledger failed: {exc}") from exc
        topic = response["Metadata"].get("topic", "")
        return LedgerEntry(topic=topic, payload=response["Body"].read())

    def put(self, service: str, message_id: uuid.UUID, entry: LedgerEntry) -> None:
        """Record the answer."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._client.put_object(
                Bucket=self._bucket,
                Key=self._key(service, message_id),
                Body=entry.payload,
                Metadata={"topic": entry.topic},
                ContentType="application/json",
            )
        except (BotoCoreError, ClientError) as exc:
            raise LedgerUnavailableError(f"writing the ledger failed: {exc}") from exc
