# One image for the four services and the MLflow server: the same pinned
# dependency set (requirements.lock) that `make install` resolves from.
FROM python:3.11.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MLFLOW_DISABLE_TELEMETRY=true \
    DO_NOT_TRACK=true

WORKDIR /app

COPY requirements.lock ./
RUN pip install --no-cache-dir --requirement requirements.lock

COPY pyproject.toml README.md ./
COPY contracts ./contracts
COPY services ./services
COPY deploy/__init__.py ./deploy/__init__.py
RUN pip install --no-cache-dir --no-deps . \
    && useradd --create-home --uid 10001 platform

USER 10001
