"""Hyperparameter search (seed section 4): one :class:`SearchSpace`, every strategy by name.

    >>> from raytune_opt.search import SearchSpace, make_tune_config, strategies
    >>> space = SearchSpace.for_optimizers(["adamw", "lion"])
    >>> tune_config = make_tune_config("bohb", space, metric="val_loss", mode="min", num_samples=40, max_t=27)

``strategies()`` lists the names: grid, random, sobol, halton, bo, tpe, hyperband, asha, bohb,
fabolas, pbt, pb2. Our own searchers: :class:`SequenceSearcher` (random/Sobol/Halton),
:class:`GPSearcher` (botorch GP-BO), :class:`FabolasSearcher` (Klein et al. 2017).
"""

from raytune_opt.search.bo import GPSearcher
from raytune_opt.search.fabolas import FabolasSearcher
from raytune_opt.search.qmc import SequenceSearcher
from raytune_opt.search.space import Choice, Encoding, Fixed, Float, Int, Param, SearchSpace, split_optimizer
from raytune_opt.search.strategies import STRATEGIES, declare, make_tune_config, strategies

__all__ = [
    "SearchSpace",
    "Param",
    "Float",
    "Int",
    "Choice",
    "Fixed",
    "Encoding",
    "split_optimizer",
    "make_tune_config",
    "strategies",
    "declare",
    "STRATEGIES",
    "SequenceSearcher",
    "GPSearcher",
    "FabolasSearcher",
]
