"""Start the trainer service: ``python -m services.trainer``."""

import sys

from contracts.topics import TRAINER_COMMANDS
from services.platform.entrypoint import serve
from services.trainer.settings import TrainerSettings

if __name__ == "__main__":
    sys.exit(serve("trainer", TrainerSettings, TRAINER_COMMANDS))
