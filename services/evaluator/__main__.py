"""Start the evaluator service: ``python -m services.evaluator``."""

import sys

from contracts.topics import EVALUATOR_COMMANDS
from services.evaluator.settings import EvaluatorSettings
from services.platform.entrypoint import serve

if __name__ == "__main__":
    sys.exit(serve("evaluator", EvaluatorSettings, EVALUATOR_COMMANDS))
