"""Start the trainer service: ``python -m services.trainer``."""

import sys

from contracts import TrainModel
from contracts.topics import TRAINER_COMMANDS
from services.platform.bus.worker import Handler
from services.platform.entrypoint import serve
from services.trainer.settings import TrainerSettings


def handlers(settings: TrainerSettings) -> dict[type, Handler]:
    """Build the trainer's handler from its settings."""
    from services.platform.datasets.store import open_dataset_store
    from services.platform.objectstore import open_object_store
    from services.platform.tracking import Tracking
    from services.trainer.handlers import Trainer

    trainer = Trainer(
        settings,
        open_dataset_store(settings),
        open_object_store(settings.s3),
        Tracking(settings.mlflow.tracking_uri, settings.mlflow.retry_timeout_s),
    )
    return {TrainModel: trainer}


if __name__ == "__main__":
    sys.exit(serve("trainer", TrainerSettings, TRAINER_COMMANDS, handlers=handlers))
