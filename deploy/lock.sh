#!/usr/bin/env bash
# Re-resolve the pinned dependency sets from pyproject.toml.
# requirements.lock: what the container images install (runtime + PostgreSQL driver).
# requirements-dev.lock: what `make install` puts in .venv (runtime + local stack + dev),
# constrained by requirements.lock so both install the same versions.
set -euo pipefail
cd "$(dirname "$0")/.."
uv="${UV:-.venv/bin/uv}"
"$uv" pip compile pyproject.toml --extra postgres --python-version 3.11 \
  --no-header --annotation-style line -o requirements.lock -q
"$uv" pip compile pyproject.toml --extra postgres --extra local --extra dev \
  -c requirements.lock --python-version 3.11 \
  --no-header --annotation-style line -o requirements-dev.lock -q
