"""Start the sampler service: ``python -m services.sampler``."""

import sys

from contracts import SelectBatch
from contracts.topics import SAMPLER_COMMANDS
from services.platform.bus.worker import Handler
from services.platform.entrypoint import serve
from services.sampler.settings import SamplerSettings


def handlers(settings: SamplerSettings) -> dict[type, Handler]:
    """Build the sampler's handler from its settings."""
    from services.platform.datasets.store import open_dataset_store
    from services.platform.objectstore import open_object_store
    from services.sampler.handlers import Sampler

    sampler = Sampler(
        settings, open_dataset_store(settings), open_object_store(settings.s3)
    )
    return {SelectBatch: sampler}


if __name__ == "__main__":
    sys.exit(serve("sampler", SamplerSettings, SAMPLER_COMMANDS, handlers=handlers))
