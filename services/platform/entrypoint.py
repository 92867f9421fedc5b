"""The one way a service process starts: settings, logging, runtime, exit code."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

from contracts import Command
from services.platform.bus.worker import Handler
from services.platform.errors import ConfigurationError, DependencyUnavailableError
from services.platform.logs import configure_logging
from services.platform.runtime import Dependency, ServiceRuntime
from services.platform.settings import ServiceSettings, load_settings

logger = logging.getLogger(__name__)

EXIT_DEPENDENCY_UNAVAILABLE = 1
EXIT_BAD_CONFIGURATION = 2


def serve(
    name: str,
    settings_class: type[ServiceSettings],
    command_topic: str | None,
    extra_dependencies: Callable[[ServiceSettings], list[Dependency]] | None = None,
    handlers: Callable[[Any], dict[type[Command], Handler]] | None = None,
    main_loop: Callable[[Any], Callable[[Callable[[], None]], None]] | None = None,
) -> int:
    """Load settings, then run the service until it is stopped.

    Returns the process exit code: 0 after a clean stop, 1 when a dependency
    never answered, 2 when the configuration is invalid.
    """
    try:
        settings = load_settings(settings_class)
    except ConfigurationError as exc:
        sys.stderr.write(f"{name}: {exc}\n")
        return EXIT_BAD_CONFIGURATION

    configure_logging(name, settings.log_level)
    runtime = ServiceRuntime(
        name=name,
        settings=settings,
        command_topic=command_topic,
        handlers=handlers(settings) if handlers else {},
        extra_dependencies=extra_dependencies(settings) if extra_dependencies else [],
        startup_timeout_s=settings.startup_timeout_s,
    )
    try:
        return runtime.run(main_loop(settings) if main_loop else None)
    except DependencyUnavailableError as exc:
        logger.error("cannot start: %s", exc)
        return EXIT_DEPENDENCY_UNAVAILABLE
