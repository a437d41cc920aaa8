"""Fabolas: fast Bayesian optimisation on large data sets (Klein et al. 2017; seed section 4,
"Dedicated Algorithms": "train on a sample of the dataset but evaluate on the full validation set").

Each suggestion is a configuration ``x`` *and* a data fraction ``s ∈ [s_min, 1]`` (the trial's
``config["data_fraction"]``: the trainable trains on that share of the training set and reports
the loss on the full validation set). Two GPs are learnt from the finished trials, both with the
paper's kernel: a Matérn-5/2 ARD kernel on ``x`` (botorch's dimension-scaled prior) times the
data-size kernel of :mod:`raytune_opt.search.datasize_kernel`,

* the loss model, of ``log y`` over ``(x, s)``, ``k_s = φ(s)ᵀ Σ φ(s')`` with ``φ(s) = (1, (1 − s)²)``:
  ``f(x, s) = a(x) + (1 − s)² b(x)``, so that small fractions inform ``f(x, 1) = a(x)`` as much
  as the data show they do — and, once ``a + (1 − s_min)² b`` is known near ``x``, more trials at
  ``s_min`` tell little more about ``a``: the information per cost then moves up in ``s``;
* the cost model, of ``log c`` (``cost_attr``, Ray's ``time_total_s`` by default) over
  ``(x, s)``, ``φ(s) = (1, log s)`` (a power law ``c ∝ s^b`` per configuration); before two
  trials with a cost at different fractions, ``ĉ(x, s) = s``.

Hyperparameters of both are refitted (marginal likelihood, warm-started from the last fit) only
once the data have grown by ``refit_growth`` (20 %) since the last fit; in between, the last
fit's hyperparameters are conditioned on all the data.

**Acquisition.** The next ``(x, s)`` maximises the information an observation ``y(x, s)`` gives
about the optimum at ``s = 1`` per unit of predicted cost — the paper's Entropy Search per cost,
with the cheaper max-value entropy search in its place (multi-fidelity MES, Takeno et al. 2020,
botorch's ``qMultiFidelityMaxValueEntropy``: the mutual information between ``y(x, s)`` and the
maximum ``f*`` of ``−f(·, 1)``, max values sampled over the candidates at ``s = 1``):

    α(x, s) = I(y(x, s); f*₁) / ĉ(x, s)

over a candidate pool of configurations (Sobol' points and perturbations of the predicted best)
at every fraction of the grid ``s_min · 2^k`` and 1. The first ``n_initial`` trials are a Sobol'
design at the four smallest fractions (as in the paper's initial design).

**Budget and end.** ``cost_budget`` (in full-data-equivalents) counts ``Σ s`` over every trial
suggested — running, finished or failed: a trial on the share ``s`` of the data for the
trainable's fixed number of epochs costs ``s`` full-data trainings (``fraction × epochs /
max_t`` with ``epochs = max_t``); a fixed per-trial overhead is not counted (the cost model sees
it in ``cost_attr``). ``num_samples`` caps the trials. When the next search trial would not fit
in either (one full-data evaluation is held back for the end), the search is over: once the
running trials finish, the incumbent (the evaluated configuration of lowest predicted loss at
``s = 1``) is evaluated at ``s = 1`` unless it already was, and the searcher says
``Searcher.FINISHED``. :meth:`FabolasSearcher.recommend` then names the configuration of lowest
loss *observed* at ``s = 1`` — the incumbent's own evaluation among them, so the recommendation
is never worse than a configuration evaluated on all of the data.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from ray.tune.search import Searcher

from raytune_opt.errors import ConfigError
from raytune_opt.search._searcher import ModelSearcher
from raytune_opt.search.bo import candidate_pool, fit_gp, hyperparameters, single_threaded, targets
from raytune_opt.search.qmc import SequenceSearcher
from raytune_opt.search.space import Float, SearchSpace

__all__ = ["FabolasSearcher", "fidelity_range"]

_AT_SMALLEST = "a random candidate at the smallest fraction drawn"
#: the phases of a run: searching, the incumbent's full-data evaluation suggested, finished
PHASES = ("search", "verify", "done")


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


def _posterior_mean(model: Any, P: Any) -> np.ndarray:
    """The posterior mean of ``model`` at each row of ``P`` (one-point batches: no joint
    covariance of the rows is built)."""
    import torch

    with torch.no_grad(), single_threaded():
        return model.posterior(P.unsqueeze(-2)).mean.reshape(-1).numpy()


class _Unweighted:
    """botorch's cost-aware utility slot left as the raw information gain (the division by the
    predicted cost is done on the scores, with the fitted cost model)."""

    def __call__(self, X: Any, deltas: Any, sampler: Any = None) -> Any:
        return deltas


class FabolasSearcher(ModelSearcher):
    """Cost-aware multi-fidelity GP search over ``(config, data_fraction)``; see the module docstring.

    ``cost_budget``: full-data-equivalents (``Σ data_fraction`` of the trials suggested) after
    which the search ends, ``None``: only ``num_samples`` ends it. ``on_surrogate_error``:
    ``"random"`` (default) logs a failed fit or acquisition, counts it in ``fallbacks`` and
    suggests a random candidate at the smallest fraction in the pool (a failed recommendation:
    the best configuration observed at the largest fraction); ``"raise"``: fatal.
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
        cost_budget: float | None = None,
        n_initial: int | None = None,
        n_candidates: int = 256,
        log_loss: bool = True,
        refit_growth: float = 0.2,
        on_surrogate_error: str = "random",
    ) -> None:
        space = space if isinstance(space, SearchSpace) else SearchSpace(space)
        space, self.s_min = fidelity_range(space, fidelity, s_min)
        super().__init__(space, metric, mode, seed, on_surrogate_error)
        if refit_growth < 0:
            raise ConfigError.invalid("fabolas.refit_growth", refit_growth, "a growth fraction >= 0")
        if cost_budget is not None and (
            isinstance(cost_budget, bool)
            or not isinstance(cost_budget, (int, float))
            or not cost_budget >= 1 + self.s_min
        ):
            raise ConfigError.invalid(
                "fabolas.cost_budget",
                cost_budget,
                f"a number of full-data-equivalents >= 1 + s_min = {1 + self.s_min:g} (one trial at "
                "s_min and the full-data evaluation of the recommendation), or None",
            )
        self.fidelity = fidelity
        self.cost_attr = cost_attr
        self.num_samples = num_samples
        self.cost_budget = None if cost_budget is None else float(cost_budget)
        self.encoding = self.space.encoding("onehot")
        self.initial = SequenceSearcher(self.space, "sobol", seed=seed)
        self.n_initial = n_initial if n_initial is not None else max(4, min(8, self.encoding.n_dims + 1))
        self.n_candidates = n_candidates
        self.log_loss = log_loss
        k = int(math.floor(math.log2(1 / self.s_min)))
        self.fractions = sorted({min(1.0, self.s_min * 2**i) for i in range(k + 1)} | {1.0})
        self.refit_growth = refit_growth
        self.warm: dict[str, Any] | None = None  # the loss model's last fit
        self.fitted_n = 0  # observations at the loss model's last hyperparameter fit
        self.cost_warm: dict[str, Any] | None = None  # the cost model's last fit
        self.cost_fitted_n = 0
        #: Σ data fraction of every trial suggested (what ``cost_budget`` counts)
        self.spent = 0.0
        self.phase = "search"
        self.recommended: list[str] = []  # trial ids that evaluate the incumbent at s = 1
        self._recommending = False
        #: the configuration of lowest predicted loss at s = 1 per the last model fitted (the
        #: paper's incumbent), the best observed at s = 1 once the search is over; ``None`` before
        #: the first model
        self.incumbent: dict[str, Any] | None = None

    # ------------------------------------------------------------------ models
    def _features(self, config: dict[str, Any], s: float) -> np.ndarray:
        return np.append(self.encoding.encode(config), s)

    def _gp(self, X: Any, Y: Any, basis: str) -> Any:
        """A ``SingleTaskGP`` with the kernel ``Matérn(x) · DataSizeKernel(s; basis)``."""
        from botorch.models import SingleTaskGP
        from botorch.models.transforms.outcome import Standardize
        from botorch.models.utils.gpytorch_modules import get_covar_module_with_dim_scaled_prior

        from raytune_opt.search.datasize_kernel import DataSizeKernel

        d = self.encoding.n_dims
        k_x = get_covar_module_with_dim_scaled_prior(
            ard_num_dims=d, use_rbf_kernel=False, active_dims=range(d)
        )
        kernel = k_x * DataSizeKernel(basis, active_dims=[d])
        return SingleTaskGP(X, Y, covar_module=kernel, outcome_transform=Standardize(m=1))

    def _refit(self, model: Any, warm: dict[str, Any] | None, fitted_n: int, n: int) -> tuple[Any, bool]:
        """``model`` with the last fit's hyperparameters while the data grew by less than
        ``refit_growth`` since it (``False``), else refitted from them (``True``)."""
        if warm is not None and n < fitted_n * (1 + self.refit_growth):
            try:  # the last fit's hyperparameters, conditioned on all the data
                model.load_state_dict(warm, strict=False)
                return model.eval(), False
            except RuntimeError:
                pass
        return fit_gp(model, warm), True

    def _fit(self) -> Any:
        """The loss model on every observation (``log y`` when ``log_loss``)."""
        import torch

        X = torch.tensor(
            np.stack([self._features(o[1], o[1][self.fidelity]) for o in self.observations]),
            dtype=torch.float64,
        )
        y = targets(np.array([o[2] for o in self.observations]), self.log_loss)
        Y = torch.tensor(-y, dtype=torch.float64).unsqueeze(-1)
        n = len(self.observations)
        model, refitted = self._refit(self._gp(X, Y, "loss"), self.warm, self.fitted_n, n)
        if refitted:
            self.warm, self.fitted_n = hyperparameters(model), n
        return model

    def _cost_data(self) -> tuple[list[dict[str, Any]], np.ndarray, np.ndarray]:
        configs, s, c = [], [], []
        for o in self.observations:
            value = o[3].get(self.cost_attr)
            try:
                value = float(value)
            except (TypeError, ValueError):
                continue
            if math.isfinite(value) and value > 0:
                configs.append(o[1])
                s.append(float(o[1][self.fidelity]))
                c.append(value)
        return configs, np.array(s), np.array(c)

    def _fit_cost(self) -> Any | None:
        """The GP of ``log c`` over ``(x, s)``; ``None`` without two costs at different fractions."""
        import torch

        configs, s, c = self._cost_data()
        if len(c) < 2 or np.ptp(s) == 0:
            return None
        X = torch.tensor(np.stack([self._features(k, v) for k, v in zip(configs, s, strict=True)]))
        Y = torch.tensor(np.log(c)).unsqueeze(-1)
        model, refitted = self._refit(self._gp(X, Y, "cost"), self.cost_warm, self.cost_fitted_n, len(c))
        if refitted:
            self.cost_warm, self.cost_fitted_n = hyperparameters(model), len(c)
        return model

    def predicted_cost(self, configs: list[dict[str, Any]], fractions: Any) -> np.ndarray:
        """``ĉ(x, s) = exp(E[log c(x, s)])`` under the cost model, in ``cost_attr`` units (``s``
        itself before the cost model has data)."""
        import torch

        fractions = np.broadcast_to(np.asarray(fractions, dtype=float), (len(configs),))
        with torch.random.fork_rng():
            torch.manual_seed(0)
            model = self._fit_cost()
        if model is None:
            return fractions.copy()
        P = torch.tensor(np.stack([self._features(c, s) for c, s in zip(configs, fractions, strict=True)]))
        return np.exp(_posterior_mean(model, P))

    def _config(self, observed: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in observed.items() if k != self.fidelity}

    def _seen(self) -> list[dict[str, Any]]:
        return [self._config(o[1]) for o in self.observations]

    def _predicted_best(self, model: Any) -> dict[str, Any]:
        """The evaluated configuration whose predicted loss at ``s = 1`` is lowest under ``model``."""
        import torch

        seen = self._seen()
        P = torch.tensor(np.stack([self._features(c, 1.0) for c in seen]), dtype=torch.float64)
        return seen[int(np.argmax(_posterior_mean(model, P)))]  # of −y: the largest is the best

    def best_at_full_data(self) -> dict[str, Any] | None:
        """The configuration of lowest loss observed at ``s = 1`` (``None``: none evaluated there)."""
        losses = self.losses()
        full = [i for i, o in enumerate(self.observations) if o[1][self.fidelity] >= 1.0]
        return self._config(self.observations[min(full, key=lambda i: losses[i])][1]) if full else None

    def recommend(self) -> dict[str, Any]:
        """The configuration Fabolas names best: once the search is over (``phase == "done"``),
        the one of lowest loss observed at ``s = 1``; before that the incumbent, the evaluated
        configuration of lowest predicted loss at ``s = 1`` (the model's extrapolation of each
        evaluated configuration to the full data set)."""
        if not self.observations:
            raise RuntimeError("Fabolas has no finished trial to recommend from")
        if self.phase == "done" and self.best_at_full_data() is not None:
            self.incumbent = self.best_at_full_data()
            return self.incumbent
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

    @property
    def finished(self) -> bool:
        """Whether the search is over (budget or trial cap spent): no search trial follows, only
        the incumbent's full-data evaluation if it is still running."""
        return self.phase != "search"

    # ------------------------------------------------------------------ suggestions
    def _room(self) -> float:
        """The largest fraction the next search trial may take (``< s_min``: the search is over):
        the budget left less one full-data evaluation held back for the recommendation."""
        room = 1.0
        if self.cost_budget is not None:
            room = min(room, self.cost_budget - self.spent - 1.0 + 1e-9)
        if self.num_samples is not None and self.n_suggested >= self.num_samples - 1:
            room = 0.0
        return room

    def _propose(self) -> dict[str, Any] | str | None:
        if self.phase == "search" and self._room() < self.s_min:
            if self.live:
                return None  # the recommendation waits for every other trial
            if not self.observations:  # nothing learnt (num_samples = 1): one full-data trial
                self.phase, self._recommending = "verify", True
                return {**self.initial._propose(), self.fidelity: 1.0}
            incumbent = self.recommend()
            if incumbent in [self._config(o[1]) for o in self.observations if o[1][self.fidelity] >= 1.0]:
                self.phase = "done"
                return Searcher.FINISHED
            self.phase = "verify"
            self._recommending = True
            return {**incumbent, self.fidelity: 1.0}
        if self.phase != "search":
            return Searcher.FINISHED
        n = self.n_suggested
        room = self._room()
        if n < self.n_initial or len(self.observations) < 2:
            small = [s for s in self.fractions[: max(1, min(4, len(self.fractions) - 1))] if s <= room]
            return {**self.initial._propose(), self.fidelity: small[n % len(small)]}
        return self._acquire([s for s in self.fractions if s <= room])

    def _acquire(self, fractions: list[float]) -> dict[str, Any]:
        """The pool's ``(x, s)`` of highest information gain about the optimum at ``s = 1`` per
        predicted cost, ``s`` in ``fractions``."""
        import torch
        from botorch.acquisition.max_value_entropy_search import qMultiFidelityMaxValueEntropy
        from botorch.acquisition.utils import project_to_target_fidelity

        d = self.encoding.n_dims
        losses = self.losses()
        best = [self._config(self.observations[i][1]) for i in np.argsort(losses)[:2]]
        if self.incumbent is not None:
            best.append(self.incumbent)
        configs = candidate_pool(self.space, self.n_candidates, self.rng, around=best, n_local=32)
        pairs = [(c, s) for c in configs for s in fractions]
        P = torch.tensor(np.stack([self._features(c, s) for c, s in pairs]), dtype=torch.float64)
        target = torch.tensor(
            np.stack([self._features(c, 1.0) for c in [*configs, *self._seen()]]), dtype=torch.float64
        )
        pending = [self._features(self._config(c), c[self.fidelity]) for c in self.live.values()]
        with torch.random.fork_rng():
            torch.manual_seed(int(self.rng.integers(2**31)))
            try:
                model = self._fit()
                self.incumbent = self._predicted_best(model)
                cost = self.predicted_cost([c for c, _ in pairs], [s for _, s in pairs])
                acq = qMultiFidelityMaxValueEntropy(
                    model,
                    candidate_set=target,
                    num_fantasies=8,
                    X_pending=torch.tensor(np.stack(pending), dtype=torch.float64) if pending else None,
                    cost_aware_utility=_Unweighted(),
                    project=lambda X: project_to_target_fidelity(X=X, target_fidelities={d: 1.0}, d=d + 1),
                )
                with torch.no_grad(), single_threaded():
                    gain = np.concatenate([acq(p.unsqueeze(1)).numpy() for p in torch.split(P, 512)])
                scores = gain / np.maximum(cost, 1e-12)
            except Exception as e:  # noqa: BLE001 - logged, counted, fatal on request
                self._surrogate_failed("the GP fit or the MES acquisition", e, _AT_SMALLEST)
                scores = -np.array([s for _, s in pairs]) + 1e-9 * self.rng.random(len(pairs))
        scores = np.where(np.isfinite(scores), scores, -math.inf)
        if not np.isfinite(scores).any():
            self._surrogate_failed("the MES acquisition", None, _AT_SMALLEST)
            scores = -np.array([s for _, s in pairs]) + 1e-9 * self.rng.random(len(pairs))
        i = int(self.rng.choice(np.flatnonzero(scores == scores.max())))
        return {**pairs[i][0], self.fidelity: float(pairs[i][1])}

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        config = super().suggest(trial_id)
        if isinstance(config, dict):
            self.spent += float(config[self.fidelity])
            if self._recommending:
                self.recommended.append(trial_id)
                self._recommending = False
        return config

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        super().on_trial_complete(trial_id, result, error)
        if trial_id in self.recommended and self.phase == "verify":
            self.phase = "done"
            self.recommend()
