"""The object store: client construction, bucket set-up, checked reads and writes.

Reads and writes are retried with backoff while the store is unreachable
(connection refused or dropped, timeouts, 5xx answers), with a WARNING
naming it, for at most ``S3_RETRY_TIMEOUT_S``; then they fail with
:class:`ObjectStoreUnavailableError`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from contracts import ObjectRef
from services.platform.errors import (
    ComponentUnavailableError,
    PlatformError,
    retry_while_unavailable,
)

if TYPE_CHECKING:
    from services.platform.settings import S3Settings

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_RETRY_TIMEOUT_S = 60.0


class ObjectStoreError(PlatformError):
    """The object store refused or failed a read or write, or bytes were corrupt."""


class ObjectStoreUnavailableError(ObjectStoreError, ComponentUnavailableError):
    """The object store stayed unreachable for the whole retry window."""


def make_s3_client(
    endpoint_url: str,
    access_key_id: str,
    secret_access_key: str,
    region: str,
    timeout_s: float = 10.0,
) -> Any:
    """Return a boto3 S3 client for a path-style, S3-compatible endpoint."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        region_name=region,
        config=Config(
            s3={"addressing_style": "path"},
            connect_timeout=timeout_s,
            read_timeout=timeout_s,
            retries={"max_attempts": 2, "mode": "standard"},
        ),
    )


def ensure_buckets(client: Any, buckets: tuple[str, ...]) -> list[str]:
    """Create each bucket that does not exist yet; return the ones created."""
    from botocore.exceptions import ClientError

    present = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    created = []
    for bucket in buckets:
        if bucket in present:
            continue
        try:
            client.create_bucket(Bucket=bucket)
        except ClientError as exc:
            # Another init step may have created it between the list and here.
            if exc.response["Error"]["Code"] not in {
                "BucketAlreadyOwnedByYou",
                "BucketAlreadyExists",
            }:
                raise
        else:
            created.append(bucket)
    return created


_KEY_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._=+-]{0,199}$")


def safe_key(*parts: str) -> str:
    """Join key parts, refusing any that could leave its prefix.

    Raises:
        ValueError: a part is empty, holds a '/', is '.' or '..', or has
            characters outside letters, digits and ``._=+-``.
    """
    for part in parts:
        if not _KEY_PART.fullmatch(part) or part in {".", ".."}:
            raise ValueError(f"object key part {part!r} is not allowed")
    return "/".join(parts)


class ObjectStore:
    """Content-checked reads and writes of whole objects.

    Every write returns an :class:`~contracts.ObjectRef` naming the SHA-256
    of the bytes; every read checks the bytes against it.
    """

    def __init__(
        self, client: Any, retry_timeout_s: float = DEFAULT_RETRY_TIMEOUT_S
    ) -> None:
        self.client = client
        self.retry_timeout_s = retry_timeout_s
        self.address = str(client.meta.endpoint_url)

    def put(
        self,
        bucket: str,
        key: str,
        data: bytes,
        content_type: str = "application/octet-stream",
    ) -> ObjectRef:
        """Store ``data`` at ``bucket/key`` and return its reference."""
        return self._put(
            bucket, key, data, hashlib.sha256(data).hexdigest(), content_type
        )

    def put_by_content(
        self,
        bucket: str,
        key_for: Callable[[str], str],
        data: bytes,
        content_type: str = "application/octet-stream",
    ) -> ObjectRef:
        """Store ``data`` under the key ``key_for`` makes of its SHA-256 (hex)."""
        digest = hashlib.sha256(data).hexdigest()
        return self._put(bucket, key_for(digest), data, digest, content_type)

    def _put(
        self, bucket: str, key: str, data: bytes, digest: str, content_type: str
    ) -> ObjectRef:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._call(
                lambda: self.client.put_object(
                    Bucket=bucket,
                    Key=key,
                    Body=data,
                    ContentType=content_type,
                    Metadata={"sha256": digest},
                )
            )
        except (BotoCoreError, ClientError) as exc:
            raise ObjectStoreError(
                f"writing s3://{bucket}/{key} failed: {exc}"
            ) from exc
        return ObjectRef(
            uri=f"s3://{bucket}/{key}", sha256=digest, size_bytes=len(data)
        )

    def get(self, ref: ObjectRef) -> bytes:
        """Return the bytes ``ref`` names, checked against its hash."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            data = self._read(ref.bucket, ref.key)
        except (BotoCoreError, ClientError) as exc:
            raise ObjectStoreError(f"reading {ref.uri} failed: {exc}") from exc
        _verify(ref, hashlib.sha256(data).hexdigest())
        return data

    def delete(self, ref: ObjectRef) -> None:
        """Remove the object ``ref`` names (nothing happens if it is gone)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._call(
                lambda: self.client.delete_object(Bucket=ref.bucket, Key=ref.key)
            )
        except (BotoCoreError, ClientError) as exc:
            raise ObjectStoreError(f"deleting {ref.uri} failed: {exc}") from exc

    def read(self, bucket: str, key: str) -> bytes:
        """Return the bytes at ``bucket/key``; for objects no reference names."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            data = self._read(bucket, key)
        except (BotoCoreError, ClientError) as exc:
            raise ObjectStoreError(
                f"reading s3://{bucket}/{key} failed: {exc}"
            ) from exc
        return data

    def download(self, ref: ObjectRef, path: Path) -> Path:
        """Write the object to ``path`` (checked) unless an intact copy is there."""
        if path.is_file() and _file_sha256(path) == ref.sha256:
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        data = self.get(ref)
        # A temporary file of its own per caller, renamed into place: threads
        # and processes filling one cache at once each replace a whole file.
        handle, temporary = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=".part", dir=path.parent
        )
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(data)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return path

    def exists(self, bucket: str, key: str) -> bool:
        """Return whether ``bucket/key`` exists."""
        from botocore.exceptions import ClientError

        try:
            self._call(lambda: self.client.head_object(Bucket=bucket, Key=key))
        except ClientError as exc:
            if exc.response["Error"]["Code"] in {"404", "NoSuchKey", "NotFound"}:
                return False
            raise ObjectStoreError(
                f"checking s3://{bucket}/{key} failed: {exc}"
            ) from exc
        return True

    def _read(self, bucket: str, key: str) -> bytes:
        def read() -> bytes:
            # The body is read inside the retried call: a store that drops the
            # connection mid-object is retried like one that refuses it.
            data: bytes = self.client.get_object(Bucket=bucket, Key=key)["Body"].read()
            return data

        return self._call(read)

    def _call(self, call: Callable[[], T]) -> T:
        return retry_while_unavailable(
            call,
            component="object store",
            address=self.address,
            transient=_unreachable,
            timeout_s=self.retry_timeout_s,
            logger=logger,
            error=ObjectStoreUnavailableError,
        )


def _unreachable(error: BaseException) -> bool:
    """Return whether ``error`` says the store could not be reached or answer."""
    from botocore.exceptions import ClientError, HTTPClientError
    from botocore.exceptions import ConnectionError as StoreConnectionError

    if isinstance(error, StoreConnectionError | HTTPClientError):
        return True
    if isinstance(error, ClientError):
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return int(status) >= 500
    return False


def _verify(ref: ObjectRef, digest: str) -> None:
    if digest != ref.sha256:
        raise ObjectStoreError(
            f"{ref.uri} has SHA-256 {digest[:12]}..., its reference says "
            f"{ref.sha256[:12]}...: the object changed or is corrupt"
        )


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def open_object_store(settings: S3Settings) -> ObjectStore:
    """Return an object store for the given settings group."""
    return ObjectStore(
        make_s3_client(
            settings.endpoint_url,
            settings.access_key_id.get_secret_value(),
            settings.secret_access_key.get_secret_value(),
            settings.region,
        ),
        retry_timeout_s=settings.retry_timeout_s,
    )
