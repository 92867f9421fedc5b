"""A trainer-topic worker in its own process, for the bus's fault tests.

Usage: python -m tests.integration.bus_member EFFECTS_FILE HANDLER_SECONDS

Each command is logged to EFFECTS_FILE as ``started <id> <pid>`` when the
handler begins and ``done <id> <pid>`` when its work is complete, so a test
can kill this process mid-handler and count what took effect.
Configured by the KAFKA_*, S3_* variables and TEST_GROUP, TEST_LEDGER_PREFIX.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from pathlib import Path

from contracts import TrainModel
from services.platform.bus import S3Ledger
from services.platform.objectstore import open_object_store
from services.platform.settings import KafkaSettings, S3Settings
from tests.bus_helpers import running_worker, trained


def main() -> int:
    effects = Path(sys.argv[1])
    seconds = float(sys.argv[2])
    logging.basicConfig(level=logging.INFO)
    kafka = KafkaSettings()
    s3 = S3Settings()
    client = open_object_store(s3).client
    ledger = S3Ledger(client, s3.ledger_bucket, prefix=os.environ["TEST_LEDGER_PREFIX"])

    def handle(command: TrainModel):
        with effects.open("a") as log:
            log.write(f"started {command.message_id} {os.getpid()}\n")
        time.sleep(seconds)
        with effects.open("a") as log:
            log.write(f"done {command.message_id} {os.getpid()}\n")
        return trained(command)

    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    with running_worker(kafka, ledger, handle, os.environ["TEST_GROUP"]) as worker:
        with effects.open("a") as log:
            log.write(f"member {os.getpid()}\n")
        while not stopping:
            time.sleep(0.1)
        worker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
