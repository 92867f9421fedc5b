"""Health probes for the servers the platform depends on.

Each probe makes one real request (broker metadata, S3 bucket list, an HTTP
health endpoint) and raises :class:`ProbeFailedError` with the reason; the
local stack and every service use the same probes.
"""

from __future__ import annotations

import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable

from services.platform.errors import DependencyUnavailableError

logger = logging.getLogger(__name__)


class ProbeFailedError(Exception):
    """One probe attempt failed; the message says why."""


def probe_kafka(bootstrap_servers: list[str], timeout_s: float = 5.0) -> set[str]:
    """Ask the broker for cluster metadata and return the topic names it knows."""
    from kafka import KafkaConsumer
    from kafka.errors import KafkaError

    try:
        consumer = KafkaConsumer(
            bootstrap_servers=bootstrap_servers,
            request_timeout_ms=int(timeout_s * 1000) + 1000,
            connections_max_idle_ms=int(timeout_s * 1000) + 2000,
        )
    except KafkaError as exc:
        raise ProbeFailedError(f"no broker answered: {exc}") from exc
    try:
        return set(consumer.topics())
    except KafkaError as exc:
        raise ProbeFailedError(f"metadata request failed: {exc}") from exc
    finally:
        consumer.close()


def probe_http(url: str, timeout_s: float = 5.0) -> None:
    """GET ``url`` and require a 2xx answer."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 (URL comes from settings, http only)
            status = response.status
    except urllib.error.HTTPError as exc:
        raise ProbeFailedError(f"GET {url} answered {exc.code}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise ProbeFailedError(f"GET {url} failed: {exc}") from exc
    if not 200 <= status < 300:
        raise ProbeFailedError(f"GET {url} answered {status}")


def probe_s3(
    endpoint_url: str,
    access_key_id: str,
    secret_access_key: str,
    region: str,
    buckets: tuple[str, ...] = (),
    timeout_s: float = 5.0,
) -> None:
    """List the store's buckets and require each of ``buckets`` to exist."""
    from botocore.exceptions import BotoCoreError, ClientError

    from services.platform.objectstore import make_s3_client

    client = make_s3_client(
        endpoint_url, access_key_id, secret_access_key, region, timeout_s=timeout_s
    )
    try:
        present = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    except (BotoCoreError, ClientError) as exc:
        raise ProbeFailedError(f"ListBuckets at {endpoint_url} failed: {exc}") from exc
    missing = [b for b in buckets if b not in present]
    if missing:
        raise ProbeFailedError(f"bucket(s) missing: {', '.join(missing)}")


def wait_until(
    component: str,
    address: str,
    probe: Callable[[], object],
    timeout_s: float,
    interval_s: float = 0.5,
) -> None:
    """Call ``probe`` until it succeeds, logging a WARNING while it does not.

    Raises:
        DependencyUnavailableError: ``probe`` still failed after ``timeout_s``;
            the message names the component, its address and the last reason.
    """
    deadline = time.monotonic() + timeout_s
    warned = False
    while True:
        try:
            probe()
        except ProbeFailedError as exc:
            if time.monotonic() >= deadline:
                raise DependencyUnavailableError(
                    component, address, timeout_s, str(exc)
                ) from exc
            if not warned:
                logger.warning(
                    "waiting for component=%s address=%s reason=%s",
                    component,
                    address,
                    exc,
                )
                warned = True
            time.sleep(interval_s)
        else:
            return
