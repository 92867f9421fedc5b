"""Start the sampler service: ``python -m services.sampler``."""

import sys

from contracts.topics import SAMPLER_COMMANDS
from services.platform.entrypoint import serve
from services.sampler.settings import SamplerSettings

if __name__ == "__main__":
    sys.exit(serve("sampler", SamplerSettings, SAMPLER_COMMANDS))
