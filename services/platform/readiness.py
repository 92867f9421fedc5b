"""Readiness as a heartbeat file, the probe both local mode and compose use.

A service refreshes its file while its main loop runs; the probe calls a
service ready when the file exists and is younger than ``max_age``. A file
probe needs no port per replica, and works with any number of replicas.

Run ``python -m services.platform.readiness PATH [--max-age S]`` to probe:
exit 0 when ready, 1 with the reason otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

DEFAULT_MAX_AGE_S = 30.0


class ReadinessFile:
    """The heartbeat file of one service process."""

    def __init__(self, path: Path, min_interval_s: float = 1.0) -> None:
        self.path = path
        self._min_interval_s = min_interval_s
        self._last_beat = 0.0

    def beat(self, force: bool = False) -> None:
        """Refresh the file, at most once per ``min_interval_s`` unless forced."""
        now = time.monotonic()
        if not force and now - self._last_beat < self._min_interval_s:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        temporary.write_text(f"{time.time():.3f} pid={os.getpid()}\n")
        temporary.replace(self.path)
        self._last_beat = now

    def clear(self) -> None:
        """Remove the file: the process is no longer ready."""
        self.path.unlink(missing_ok=True)


def check(path: Path, max_age_s: float = DEFAULT_MAX_AGE_S) -> str | None:
    """Return why ``path`` does not show a ready service, or None if it does."""
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return f"{path} does not exist (service not ready yet, or stopped)"
    if age > max_age_s:
        return f"{path} is {age:.0f} s old (limit {max_age_s:.0f} s): main loop stuck"
    return None


def main(argv: list[str] | None = None) -> int:
    """Probe one readiness file from the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path)
    parser.add_argument("--max-age", type=float, default=DEFAULT_MAX_AGE_S)
    args = parser.parse_args(argv)
    reason = check(args.path, args.max_age)
    if reason:
        sys.stderr.write(reason + "\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
