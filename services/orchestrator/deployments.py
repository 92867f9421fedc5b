"""The deployments the orchestrator serves: baseline, active learning, benchmark.

Baseline and active learning run on a schedule (cron by default, or an
interval) with the parameters the settings give; the benchmark runs when
triggered. Schedules are not paused when the orchestrator stops, so a
restart keeps them running.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from services.orchestrator.settings import OrchestratorSettings

TAGS = ["al-platform"]


def build(settings: OrchestratorSettings) -> list[Any]:
    """Return the runner deployments for ``settings``."""
    from prefect.deployments.runner import EntrypointType

    from services.orchestrator.flows import active_learning, baseline, benchmark

    def schedule(cron: str) -> dict[str, Any]:
        if settings.schedule_interval_s is not None:
            return {"interval": settings.schedule_interval_s}
        return {"cron": cron}

    common = {
        "name": settings.deployment_name,
        "tags": TAGS,
        # Flow runs import the flows by module, whatever the working folder.
        "entrypoint_type": EntrypointType.MODULE_PATH,
    }
    return [
        baseline.to_deployment(
            **common,
            **schedule(settings.baseline_cron),
            paused=not settings.schedules_active,
            parameters=settings.baseline_parameters,
        ),
        active_learning.to_deployment(
            **common,
            **schedule(settings.active_learning_cron),
            paused=not settings.schedules_active,
            parameters=settings.active_learning_parameters,
        ),
        benchmark.to_deployment(**common),
    ]


def serve_forever(
    settings: OrchestratorSettings, ready: Callable[[], None] = lambda: None
) -> None:
    """Register the deployments, call ``ready``, then serve them until interrupted."""
    from prefect import serve

    deployments = build(settings)
    for deployment in deployments:
        deployment.apply()
    ready()
    serve(
        *deployments,
        pause_on_shutdown=False,
        limit=settings.flow_run_limit,
        print_starting_message=False,
    )
