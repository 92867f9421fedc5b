"""Run one active-learning flow in this process: ``python -m tests.fault_flow``.

The fault tests start the orchestrator's flow this way, in a process of
their own, so they can SIGKILL it mid-round and start it again with the same
run key. The only argument is the flow's parameters as JSON; the stack's
addresses and keys come from the environment, as in the orchestrator.
"""

from __future__ import annotations

import json
import logging
import sys


def main(argv: list[str]) -> int:
    """Run the flow with the parameters in ``argv[0]``; exit 0 when it completed."""
    from services.orchestrator.flows import active_learning
    from services.platform.logs import configure_logging

    configure_logging("orchestrator")
    summary = active_learning(**json.loads(argv[0]))
    logging.getLogger(__name__).info("flow finished summary=%s", json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
