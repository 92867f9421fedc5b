"""The Kafka bus every service uses: commands in, one answer out, nothing lost.

- :class:`~services.platform.bus.worker.CommandWorker` consumes a command
  topic in the service's consumer group and answers each command once.
- :class:`~services.platform.bus.requests.CommandClient` publishes commands
  and awaits their answers by causation id (the orchestrator's side).
- :class:`~services.platform.bus.ledger.Ledger` records each answer by the
  command's message id, which makes redelivered commands harmless.
"""

from services.platform.bus.ledger import InMemoryLedger, Ledger, LedgerEntry, S3Ledger
from services.platform.bus.requests import CommandClient
from services.platform.bus.worker import CommandWorker, RetryPolicy

__all__ = [
    "CommandClient",
    "CommandWorker",
    "InMemoryLedger",
    "Ledger",
    "LedgerEntry",
    "RetryPolicy",
    "S3Ledger",
]
