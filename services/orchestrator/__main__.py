"""Start the orchestrator service: ``python -m services.orchestrator``.

It waits for the broker, the object store, MLflow and Prefect, registers
the baseline, active-learning and benchmark deployments, reports ready (so
a flow can be triggered as soon as the stack is up), then serves them; each
flow run executes in its own process.
"""

import sys

from services.orchestrator.settings import OrchestratorSettings
from services.platform.entrypoint import serve
from services.platform.probes import probe_http
from services.platform.runtime import Dependency
from services.platform.settings import ServiceSettings


def _prefect(settings: ServiceSettings) -> list[Dependency]:
    assert isinstance(settings, OrchestratorSettings)  # noqa: S101 (narrowing for mypy)
    health = settings.prefect.api_url.rstrip("/") + "/health"
    return [Dependency("Prefect", settings.prefect.api_url, lambda: probe_http(health))]


def _serve_deployments(settings: OrchestratorSettings):  # type: ignore[no-untyped-def]
    from services.orchestrator.deployments import serve_forever

    return lambda ready: serve_forever(settings, ready)


if __name__ == "__main__":
    sys.exit(
        serve(
            "orchestrator",
            OrchestratorSettings,
            None,
            _prefect,
            main_loop=_serve_deployments,
        )
    )
