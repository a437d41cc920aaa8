"""Fabolas: fast Bayesian optimisation on large data sets (Klein et al. 2017; seed section 4,
"Dedicated Algorithms": "train on a sample of the dataset but evaluate on the full validation set").

Each suggestion is a configuration ``x`` *and* a data fraction ``s ∈ [s_min, 1]`` (the trial's
``config["data_fraction"]``: the trainable trains on that share of the training set and reports
the loss on the full validation set). Two models are learnt from the finished trials:

* the loss model, a GP over ``(x, s)`` of ``log y`` with Fabolas' dataset-size kernel
  (``SingleTaskMultiFidelityGP(data_fidelities=[s], linear_truncated=False)``, i.e. a Matérn
  kernel on ``x`` times botorch's ``DownsamplingKernel`` on ``s``)

      k((x, s), (x', s')) = k_x(x, x') · (c + (1 − s)^(1+δ) (1 − s')^(1+δ))

  so that the model extrapolates from small ``s`` to the target ``s = 1``. Its hyperparameters
  are refitted (marginal likelihood, warm-started from the last fit) only once the data have
  grown by ``refit_growth`` (20 %) since the last fit; in between, the last fit's hyperparameters
  are conditioned on all the data. One trial more moves the optimum little, and the fit is
  nearly all of a suggestion's cost (Hartmann-6, 40 trials: 28 → 9 CPU s a run; 200 trials in
  34 CPU s, ~17 fits instead of ~190), so that many more cheap small-``s`` trials fit in a run;
* the cost model: the measured seconds of each trial (``cost_attr``, Ray's ``time_total_s`` by
  default) against ``s``, fitted by least squares as ``c(s) = c0 + c1 · s`` (``c0, c1 > 0``;
  Klein et al. fit a second GP, the affine model is botorch's ``AffineFidelityCostModel``).

The next ``(x, s)`` maximises the information gained about the value of the optimum *at s = 1*
per second of cost: multi-fidelity max-value entropy search with an inverse-cost utility

    α(x, s) = MES(x, s; projected to s = 1) / c(s)

(``qMultiFidelityMaxValueEntropy`` + ``InverseCostWeightedUtility``), over a candidate pool of
configurations at fractions ``s_min · 2^k`` and 1. The first ``n_initial`` trials are a Sobol'
design at the smallest fractions (as in the paper's initial design). The recommendation
(:meth:`FabolasSearcher.recommend`) is the configuration of lowest predicted loss at ``s = 1``;
given ``num_samples``, the last trial evaluates it at ``s = 1``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from raytune_opt.errors import ConfigError
from raytune_opt.search._searcher import ModelSearcher
from raytune_opt.search.bo import candidate_pool, fit_gp, hyperparameters, single_threaded, targets
from raytune_opt.search.qmc import SequenceSearcher
from raytune_opt.search.space import Float, SearchSpace

__all__ = ["FabolasSearcher"]

_AT_SMALLEST = "a random candidate at the smallest fraction drawn"


def fidelity_range(space: SearchSpace, fidelity: str, s_min: float | None) -> tuple[SearchSpace, float]:
    """The space less the fidelity parameter, and ``s_min`` (from the space's ``Float(s_min, 1)``
    domain of ``fidelity`` when it has one, else the ``s_min`` option, default 1/64)."""
    if fidelity in space.params:
        d = space.params[fidelity].domain
        if not isinstance(d, Float) or d.high != 1.0 or space.params[fidelity].when is not None:
            raise ConfigError.invalid(
                fidelity, d, "an unconditional uniform [s_min, 1] domain (or leave it out)"
            )
        space, s_min = space.without(fidelity), d.low
    s_min = 1 / 64 if s_min is None else s_min
    if not 0 < s_min < 1:
        raise ConfigError.invalid("fabolas.s_min", s_min, "a data fraction in (0, 1)")
    return space, float(s_min)


class FabolasSearcher(ModelSearcher):
    """Cost-aware multi-fidelity GP search over ``(config, data_fraction)``; see the module docstring.

    ``on_surrogate_error``: ``"random"`` (default) logs a failed fit or acquisition, counts it in
    ``fallbacks`` and suggests a random candidate at the smallest fraction in the pool (a failed
    recommendation: the best configuration observed at the largest fraction); ``"raise"``: fatal.
    """

    def __init__(
        self,
        space: SearchSpace,
        metric: str | None = None,
        mode: str | None = None,
        seed: int | None = None,
        s_min: float | None = None,
        fidelity: str = "data_fraction",
        cost_attr: str = "time_total_s",
        num_samples: int | None = None,
        n_initial: int | None = None,
        n_candidates: int = 256,
        log_loss: bool = True,
        refit_growth: float = 0.2,
        on_surrogate_error: str = "random",
    ) -> None:
        space = space if isinstance(space, SearchSpace) else SearchSpace(space)
        space, self.s_min = fidelity_range(space, fidelity, s_min)
        super().__init__(space, metric, mode, seed, on_surrogate_error)
        self.fidelity = fidelity
        self.cost_attr = cost_attr
        self.num_samples = num_samples
        self.encoding = self.space.encoding("onehot")
        self.initial = SequenceSearcher(self.space, "sobol", seed=seed)
        self.n_initial = n_initial if n_initial is not None else max(4, min(8, self.encoding.n_dims + 1))
        self.n_candidates = n_candidates
        self.log_loss = log_loss
        k = int(math.floor(math.log2(1 / self.s_min)))
        self.fractions = [min(1.0, self.s_min * 2**i) for i in range(k + 1)] + [1.0]
        self.fractions = sorted(set(self.fractions))
        self.recommended: list[str] = []  # trial ids that evaluate the recommendation at s = 1
        self._recommending = False
        if refit_growth < 0:
            raise ConfigError.invalid("fabolas.refit_growth", refit_growth, "a growth fraction >= 0")
        self.refit_growth = refit_growth
        self.warm: dict[str, Any] | None = None  # the last fit's hyperparameters
        self.fitted_n = 0  # observations at the last hyperparameter fit
        #: the configuration of lowest predicted loss at s = 1 per the last model fitted (the
        #: paper's incumbent; ``None`` before the first model)
        self.incumbent: dict[str, Any] | None = None

    # ------------------------------------------------------------------ models
    def _features(self, config: dict[str, Any], s: float) -> np.ndarray:
        return np.append(self.encoding.encode(config), s)

    def _fit(self) -> Any:
        import torch
        from botorch.models import SingleTaskMultiFidelityGP
        from botorch.models.transforms.outcome import Standardize

        X = torch.tensor(
            np.stack([self._features(o[1], o[1][self.fidelity]) for o in self.observations]),
            dtype=torch.float64,
        )
        y = targets(np.array([o[2] for o in self.observations]), self.log_loss)
        Y = torch.tensor(-y, dtype=torch.float64).unsqueeze(-1)
        model = SingleTaskMultiFidelityGP(
            X,
            Y,
            data_fidelities=[self.encoding.n_dims],
            linear_truncated=False,
            outcome_transform=Standardize(m=1),
        )
        n = len(self.observations)
        if self.warm is not None and n < self.fitted_n * (1 + self.refit_growth):
            try:  # the last fit's hyperparameters, conditioned on all the data
                model.load_state_dict(self.warm, strict=False)
                return model.eval()
            except RuntimeError:
                pass
        model = fit_gp(model, self.warm)
        self.warm, self.fitted_n = hyperparameters(model), n
        return model

    def cost_model(self) -> tuple[float, float]:
        """``(c0, c1)`` of ``cost(s) = c0 + c1 · s``, least squares on the measured costs, both > 0."""
        s = np.array([o[1][self.fidelity] for o in self.observations], dtype=float)
        c = np.array([float(o[3].get(self.cost_attr, math.nan)) for o in self.observations], dtype=float)
        ok = np.isfinite(c) & (c >= 0)
        if ok.sum() < 2 or np.ptp(s[ok]) == 0:
            return 1e-3, 1.0  # no information yet: cost proportional to s
        c1, c0 = np.polyfit(s[ok], c[ok], 1)
        scale = max(float(np.mean(c[ok])), 1e-9)
        return max(float(c0), 1e-3 * scale), max(float(c1), 1e-3 * scale)

    def recommend(self) -> dict[str, Any]:
        """The evaluated configuration of lowest predicted loss at ``s = 1`` (the incumbent: the
        model's extrapolation of each evaluated configuration to the full data set)."""
        if not self.observations:
            raise RuntimeError("Fabolas has no finished trial to recommend from")
        import torch

        with torch.random.fork_rng():
            torch.manual_seed(int(self.rng.integers(2**31)))
            try:
                self.incumbent = self._predicted_best(self._fit())
            except Exception as e:  # noqa: BLE001 - logged, counted, fatal on request
                self._surrogate_failed(
                    "the GP fit for the recommendation", e, "the best configuration at the largest fraction"
                )
                best = min(
                    range(len(self.observations)),
                    key=lambda i: (-self.observations[i][1][self.fidelity], self.losses()[i]),
                )
                self.incumbent = self._seen()[best]
        return self.incumbent

    def _seen(self) -> list[dict[str, Any]]:
        return [{k: v for k, v in o[1].items() if k != self.fidelity} for o in self.observations]

    def _predicted_best(self, model: Any) -> dict[str, Any]:
        """The evaluated configuration whose predicted loss at ``s = 1`` is lowest under ``model``."""
        import torch

        seen = self._seen()
        P = torch.tensor(np.stack([self._features(c, 1.0) for c in seen]), dtype=torch.float64)
        with torch.no_grad(), single_threaded():
            mean = model.posterior(P).mean.squeeze(-1).numpy()  # of −y: the largest is the best
        return seen[int(np.argmax(mean))]

    # ------------------------------------------------------------------ suggestions
    def _propose(self) -> dict[str, Any] | None:
        n = self.n_suggested
        if self.num_samples is not None and n >= self.num_samples - 1 and self.observations:
            if self.live:
                return None  # the recommendation waits for every other trial
            self._recommending = True
            return {**self.recommend(), self.fidelity: 1.0}
        if n < self.n_initial or len(self.observations) < 2:
            small = self.fractions[: max(1, min(4, len(self.fractions) - 1))]
            return {**self.initial._propose(), self.fidelity: small[n % len(small)]}
        import torch
        from botorch.acquisition.cost_aware import InverseCostWeightedUtility
        from botorch.acquisition.max_value_entropy_search import qMultiFidelityMaxValueEntropy
        from botorch.acquisition.utils import project_to_target_fidelity
        from botorch.models.cost import AffineFidelityCostModel

        d = self.encoding.n_dims
        losses = self.losses()
        best = [
            {k: v for k, v in self.observations[i][1].items() if k != self.fidelity}
            for i in np.argsort(losses)[:3]
        ]
        configs = candidate_pool(self.space, self.n_candidates, self.rng, around=best, n_local=32)
        fractions = self.rng.choice(self.fractions, size=len(configs))
        P = torch.tensor(
            np.stack([self._features(c, s) for c, s in zip(configs, fractions, strict=True)]),
            dtype=torch.float64,
        )
        target = torch.tensor(
            np.stack([self._features(c, 1.0) for c in configs[: self.n_candidates]]), dtype=torch.float64
        )
        pending = [
            self._features({k: v for k, v in c.items() if k != self.fidelity}, c[self.fidelity])
            for c in self.live.values()
        ]
        c0, c1 = self.cost_model()
        with torch.random.fork_rng():
            torch.manual_seed(int(self.rng.integers(2**31)))
            try:
                model = self._fit()
                self.incumbent = self._predicted_best(model)
                acq = qMultiFidelityMaxValueEntropy(
                    model,
                    candidate_set=target,
                    num_fantasies=8,
                    X_pending=torch.tensor(np.stack(pending), dtype=torch.float64) if pending else None,
                    cost_aware_utility=InverseCostWeightedUtility(
                        AffineFidelityCostModel(fidelity_weights={d: c1}, fixed_cost=c0)
                    ),
                    project=lambda X: project_to_target_fidelity(X=X, target_fidelities={d: 1.0}),
                )
                with torch.no_grad(), single_threaded():
                    scores = acq(P.unsqueeze(1)).numpy()
            except Exception as e:  # noqa: BLE001 - logged, counted, fatal on request
                self._surrogate_failed("the GP fit or the MES acquisition", e, _AT_SMALLEST)
                scores = -fractions
        scores = np.where(np.isfinite(scores), scores, -math.inf)
        if not np.isfinite(scores).any():
            self._surrogate_failed("the MES acquisition", None, _AT_SMALLEST)
            scores = -fractions
        i = int(self.rng.choice(np.flatnonzero(scores == scores.max())))
        return {**configs[i], self.fidelity: float(fractions[i])}

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        config = super().suggest(trial_id)
        if self._recommending:
            self.recommended.append(trial_id)
            self._recommending = False
        return config
