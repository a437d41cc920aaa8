"""Hyperparameter search (seed section 4): one :class:`SearchSpace`, every strategy by name.

    >>> from raytune_opt.search import SearchSpace, available_strategies, make_tune_config
    >>> space = SearchSpace.for_optimizers(["adamw", "lion"])
    >>> tune_config = make_tune_config("bohb", space, metric="val_loss", mode="min", num_samples=40, max_t=27)
    >>> tune_config.num_samples, type(tune_config.scheduler).__name__
    (40, 'ResumableHyperBandForBOHB')

``available_strategies()`` lists the names: grid, random, sobol, halton, bo, tpe, hyperband, asha,
bohb, fabolas, pbt, pb2. Our own searchers: :class:`SequenceSearcher` (random/Sobol/Halton),
:class:`GPSearcher` (botorch GP-BO), :class:`FabolasSearcher` (Klein et al. 2017). A trainable
declares what the strategies need of it with :func:`capabilities` (checkpoints for PBT/PB2, a data
fraction for Fabolas). A GP surrogate that fails is logged and counted (``searcher.fallbacks``),
or fatal with the option ``on_surrogate_error="raise"`` (:class:`SurrogateError`).
"""

from raytune_opt.capabilities import capabilities, declare
from raytune_opt.search._searcher import SurrogateError
from raytune_opt.search.bo import GPSearcher
from raytune_opt.search.fabolas import FabolasSearcher
from raytune_opt.search.qmc import SequenceSearcher
from raytune_opt.search.space import Choice, Encoding, Fixed, Float, Int, Param, SearchSpace
from raytune_opt.search.strategies import STRATEGIES, available_strategies, make_tune_config

__all__ = [
    "SearchSpace",
    "Param",
    "Float",
    "Int",
    "Choice",
    "Fixed",
    "Encoding",
    "make_tune_config",
    "available_strategies",
    "capabilities",
    "declare",
    "STRATEGIES",
    "SequenceSearcher",
    "GPSearcher",
    "FabolasSearcher",
    "SurrogateError",
]
