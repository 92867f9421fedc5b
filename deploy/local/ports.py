"""Free loopback ports, for a second stack (tests, benchmarks) beside `make up`."""

from __future__ import annotations

import os
import random
import socket

# Below 32768: above it, a client retrying a port that is not listening yet can
# be handed the same port as its own source port and connect to itself.
_LOW, _HIGH = 20000, 32000


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_block(size: int) -> int:
    """Return the first port of ``size`` consecutive free loopback ports."""
    rng = random.Random(os.getpid() ^ int.from_bytes(os.urandom(4), "big"))  # noqa: S311 (not security)
    for _ in range(200):
        base = rng.randrange(_LOW, _HIGH - size)
        if all(_free(base + offset) for offset in range(size)):
            return base
    raise RuntimeError(f"no block of {size} free ports between {_LOW} and {_HIGH}")


def stack_port_settings() -> dict[str, int]:
    """Return port settings for a stack on a free block of ports."""
    base = free_port_block(13)
    return {
        "kafka_port": base,
        "s3_port": base + 1,
        "mlflow_port": base + 2,
        "prefect_port": base + 3,
        "objectstore_internal_port_base": base + 4,
    }
