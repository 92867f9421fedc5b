"""Query strategies of the sampler, registered by name.

Importing this package imports every module in it, which registers every
strategy: ``entropy``, ``least_confident``, ``margin``, ``margin_kmeans`` and
``random``. A new strategy is one class decorated with :func:`register`, in
any module of this package.
"""

import importlib
import pkgutil

from services.sampler.strategies.base import (
    STRATEGIES,
    QueryStrategy,
    Scorer,
    UnlabeledPool,
    get_strategy,
    register,
    strategy_names,
)
from services.sampler.strategies.uncertainty import UncertaintyStrategy

__all__ = [
    "STRATEGIES",
    "QueryStrategy",
    "Scorer",
    "UncertaintyStrategy",
    "UnlabeledPool",
    "get_strategy",
    "register",
    "strategy_names",
]

# Registration is the import's side effect, so no module has to be listed here.
for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
