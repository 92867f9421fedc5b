"""Log configuration, called once by each entry point."""

from __future__ import annotations

import logging


def configure_logging(service: str, level: str = "INFO") -> None:
    """Send key=value log lines with the service name to standard error."""
    logging.basicConfig(
        level=level,
        format=f"%(asctime)s %(levelname)s service={service} %(name)s %(message)s",
    )
    # kafka-python logs every reconnect attempt at WARNING/ERROR; the service
    # reports dependency trouble once itself.
    logging.getLogger("kafka").setLevel(logging.ERROR)
