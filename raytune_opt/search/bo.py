"""Gaussian-process Bayesian optimisation on botorch (seed section 4, "Surrogate Models").

The surrogate is ``SingleTaskGP`` (Matérn-5/2 ARD kernel, standardised outcome) over the space's
one-hot encoding in [0, 1]^d, fitted to the losses ``y`` (``log y`` when ``log_loss``; diverged
trials enter with the penalty of :func:`~raytune_opt.search._searcher.penalize`). The next point
maximises the log expected improvement (Ament et al. 2023) of ``f = −y``

    qLogEI(x) = log E[ max(0, max_j f(x_j) − f*) ],   {x_j} = {x} ∪ X_pending,   f* = max_i f(x_i)

where ``X_pending`` are the configurations of the trials still running: concurrent trials get a
batch of suggestions that do not collapse onto one point (the expectation integrates over the
pending outcomes). The acquisition is maximised over a candidate pool — Sobol' points of the
space and perturbations of the best configurations seen — decoded and re-encoded, so every
candidate is a valid point of a mixed (continuous, integer, categorical, conditional) space.
The first ``n_initial`` suggestions are a scrambled Sobol' design. A fit or acquisition that
fails is logged and counted (``GPSearcher.fallbacks``), or fatal with ``on_surrogate_error="raise"``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import numpy as np

from raytune_opt.search._searcher import ModelSearcher, penalize
from raytune_opt.search.qmc import SequenceSearcher
from raytune_opt.search.space import Encoding, SearchSpace

__all__ = ["GPSearcher", "candidate_pool", "fit_gp", "hyperparameters", "single_threaded", "targets"]


def targets(losses: np.ndarray, log_loss: bool) -> np.ndarray:
    """What the GP models: ``log y`` when ``log_loss`` and every finite loss is > 0, else ``y``;
    then non-finite values → :func:`penalize` (in the modelled scale)."""
    y = np.asarray(losses, dtype=float)
    finite = y[np.isfinite(y)]
    if log_loss and finite.size and (finite > 0).all():
        with np.errstate(divide="ignore", invalid="ignore"):
            y = np.where(np.isfinite(y), np.log(np.where(y > 0, y, 1.0)), np.nan)
    return penalize(y)


def candidate_pool(
    space: SearchSpace,
    n: int,
    rng: np.random.Generator,
    around: list[dict[str, Any]] = (),
    n_local: int = 64,
    scale: float = 0.08,
) -> list[dict[str, Any]]:
    """``n`` configurations spread over the space (scrambled Sobol') and ``n_local`` perturbations of
    each configuration in ``around`` (Gaussian steps of ``scale`` on a random subset of coordinates
    of the ordinal encoding), all decoded through the space: valid, only active parameters."""
    from scipy.stats import qmc

    ordinal = space.encoding("ordinal")
    d = ordinal.n_dims
    if d == 0:
        return [ordinal.decode([])]
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        u = qmc.Sobol(d, scramble=True, seed=rng).random(n)
    pool = [ordinal.decode(x) for x in u]
    p = max(0.2, 1.0 / d)
    for c in around:
        x0 = ordinal.encode(c)
        for _ in range(n_local):
            mask = rng.random(d) < p
            mask[rng.integers(d)] = True
            pool.append(ordinal.decode(x0 + mask * rng.normal(0.0, scale, d)))
    return pool


@contextmanager
def single_threaded() -> Iterator[None]:
    """Torch on one intra-op thread for the block. The searchers run in Tune's driver on models of
    tens to hundreds of points, where more threads do not pay; on a loaded machine the
    oversubscribed threads made one 6-d BO step 15× slower (0.9 s → 14.6 s, load 8 on 2 cores)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def hyperparameters(model: Any) -> dict[str, Any]:
    """The fitted GP's hyperparameters (its ``state_dict`` less the data-dependent outcome
    transform): the warm start of the next fit."""
    return {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("outcome_transform")}


def fit_gp(model: Any, warm: dict[str, Any] | None = None) -> Any:
    """Fit the GP hyperparameters by maximising the exact marginal log likelihood, starting from
    ``warm`` (:func:`hyperparameters` of the previous fit of the same kind of model) when given:
    one observation more moves the optimum little, and L-BFGS then needs a fraction of the steps
    (Fabolas' 7-d fit on 41 points: 2.3 s cold, 0.9 s warm, same posterior mean to 3 decimals)."""
    from botorch.fit import fit_gpytorch_mll
    from gpytorch.mlls import ExactMarginalLogLikelihood

    if warm:
        with suppress(RuntimeError):  # another shape (another encoding): start from the defaults
            model.load_state_dict(warm, strict=False)
    with single_threaded():
        fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
    return model.eval()


class GPSearcher(ModelSearcher):
    """GP-BO with qLogEI over a mixed, possibly conditional space; batch-aware through X_pending.

    Options: ``n_initial`` (Sobol' design size, default ``max(4, min(10, d + 1))``),
    ``n_candidates`` (pool size, 512), ``log_loss`` (model ``log y``, default False),
    ``on_surrogate_error`` (``"random"``: a failed fit or acquisition is logged, counted in
    ``fallbacks`` and that suggestion is a random pool candidate; ``"raise"``: fatal).
    """

    def __init__(
        self,
        space: SearchSpace,
        metric: str | None = None,
        mode: str | None = None,
        seed: int | None = None,
        n_initial: int | None = None,
        n_candidates: int = 512,
        log_loss: bool = False,
        on_surrogate_error: str = "random",
    ) -> None:
        super().__init__(space, metric, mode, seed, on_surrogate_error)
        self.encoding: Encoding = self.space.encoding("onehot")
        self.initial = SequenceSearcher(self.space, "sobol", seed=seed)
        self.n_initial = n_initial if n_initial is not None else max(4, min(10, self.encoding.n_dims + 1))
        self.n_candidates = n_candidates
        self.log_loss = log_loss
        self.warm: dict[str, Any] | None = None  # the last fit's hyperparameters

    def _propose(self) -> dict[str, Any]:
        if self.n_suggested < self.n_initial or len(self.observations) < 2:
            return self.initial._propose()
        import torch
        from botorch.acquisition.logei import qLogExpectedImprovement
        from botorch.models import SingleTaskGP
        from botorch.models.transforms.outcome import Standardize
        from botorch.sampling import SobolQMCNormalSampler

        configs = [o[1] for o in self.observations]
        f = -targets(np.array([o[2] for o in self.observations]), self.log_loss)
        X = torch.tensor(np.stack([self.encoding.encode(c) for c in configs]), dtype=torch.float64)
        Y = torch.tensor(f, dtype=torch.float64).unsqueeze(-1)
        best = [configs[i] for i in np.argsort(-f)[:3]]
        pool = candidate_pool(self.space, self.n_candidates, self.rng, around=best)
        P = torch.tensor(np.stack([self.encoding.encode(c) for c in pool]), dtype=torch.float64)
        pending = (
            torch.tensor(np.stack([self.encoding.encode(c) for c in self.live.values()]), dtype=torch.float64)
            if self.live
            else None
        )
        with torch.random.fork_rng():
            torch.manual_seed(int(self.rng.integers(2**31)))
            try:
                model = fit_gp(SingleTaskGP(X, Y, outcome_transform=Standardize(m=1)), self.warm)
                self.warm = hyperparameters(model)
                acq = qLogExpectedImprovement(
                    model, best_f=Y.max(), X_pending=pending, sampler=SobolQMCNormalSampler(torch.Size([128]))
                )
                with torch.no_grad(), single_threaded():
                    scores = acq(P.unsqueeze(1)).numpy()
            except Exception as e:  # noqa: BLE001 - logged, counted, fatal on request
                self._surrogate_failed("the GP fit or qLogEI", e, "a random candidate")
                scores = np.zeros(len(pool))
        scores = np.where(np.isfinite(scores), scores, -math.inf)
        if not np.isfinite(scores).any():
            self._surrogate_failed("qLogEI", None, "a random candidate")
            scores = np.zeros(len(pool))
        top = np.flatnonzero(scores == scores.max())
        return pool[int(self.rng.choice(top))]
