"""Random and low-discrepancy (scrambled Sobol, Halton) sampling through the space's encoding.

Seed section 4, "Random Search": "Low-Discrepancy Sequences can be used to ensure more uniform
sampling". The n-th suggestion is ``space.encoding("ordinal").decode(u_n)`` with ``u_n`` the n-th
point of the sequence in [0, 1]^d:

* ``random``: ``u_n ~ U[0, 1]^d`` i.i.d. (numpy ``default_rng(seed)``);
* ``sobol``:  Owen-scrambled Sobol' points (``scipy.stats.qmc.Sobol(d, scramble=True, seed=seed)``);
* ``halton``: scrambled Halton points (``scipy.stats.qmc.Halton(d, scramble=True, seed=seed)``).

Each parameter owns one coordinate, so a conditional parameter's coordinate is simply unused when
it is inactive. The engine is part of the pickled state: ``Tuner.restore`` continues the sequence.
"""

from __future__ import annotations

import warnings
from typing import Any

from raytune_opt.errors import ConfigError
from raytune_opt.search._searcher import SpaceSearcher
from raytune_opt.search.space import SearchSpace

__all__ = ["SequenceSearcher", "KINDS"]

KINDS = ("random", "sobol", "halton")


class SequenceSearcher(SpaceSearcher):
    """Suggests the points of a random, Sobol or Halton sequence, decoded through the space."""

    def __init__(
        self,
        space: SearchSpace,
        kind: str = "sobol",
        metric: str | None = None,
        mode: str | None = None,
        seed: int | None = None,
    ) -> None:
        if kind not in KINDS:
            raise ConfigError.unknown("sequence kind", kind, KINDS)
        super().__init__(space, metric, mode, seed)
        self.kind = kind
        self.encoding = self.space.encoding("ordinal")
        self.engine: Any = None
        if kind != "random" and self.encoding.n_dims > 0:
            from scipy.stats import qmc

            engine_cls = qmc.Sobol if kind == "sobol" else qmc.Halton
            self.engine = engine_cls(self.encoding.n_dims, scramble=True, seed=seed)

    def _propose(self) -> dict[str, Any]:
        d = self.encoding.n_dims
        if self.engine is None:
            u = self.rng.random(d)
        else:
            with warnings.catch_warnings():  # Sobol' balance warning for n not a power of 2
                warnings.simplefilter("ignore", UserWarning)
                u = self.engine.random(1)[0]
        return self.encoding.decode(u)
