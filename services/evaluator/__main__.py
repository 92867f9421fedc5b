"""Start the evaluator service: ``python -m services.evaluator``."""

import sys

from contracts import EvaluateModel
from contracts.topics import EVALUATOR_COMMANDS
from services.evaluator.settings import EvaluatorSettings
from services.platform.bus.worker import Handler
from services.platform.entrypoint import serve


def handlers(settings: EvaluatorSettings) -> dict[type, Handler]:
    """Build the evaluator's handler from its settings."""
    from services.evaluator.handlers import Evaluator
    from services.platform.datasets.store import open_dataset_store
    from services.platform.objectstore import open_object_store
    from services.platform.tracking import Tracking

    evaluator = Evaluator(
        settings,
        open_dataset_store(settings),
        open_object_store(settings.s3),
        Tracking(settings.mlflow.tracking_uri, settings.mlflow.retry_timeout_s),
    )
    evaluator.warm_up()
    return {EvaluateModel: evaluator}


if __name__ == "__main__":
    sys.exit(
        serve("evaluator", EvaluatorSettings, EVALUATOR_COMMANDS, handlers=handlers)
    )
