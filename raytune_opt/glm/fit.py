"""``fit``: generalized and robust linear regression, validated up front, by the seed's second-order methods.

    >>> import numpy as np
    >>> from raytune_opt import glm
    >>> rng = np.random.default_rng(0)
    >>> X = np.column_stack([np.ones(200), rng.normal(size=(200, 2))])
    >>> y = (rng.random(200) < 1 / (1 + np.exp(-X @ [0.5, 1.0, -1.0]))).astype(float)
    >>> res = glm.fit(X, y, family="binomial")              # logistic regression by IRLS
    >>> res.converged, res.n_iter, np.round(res.coef, 2)    # also res.bse, res.deviance ...
    (True, 5, array([ 0.44,  1.16, -1.07]))
    >>> counts = rng.poisson(np.exp(X @ [0.2, 0.3, -0.2]))
    >>> glm.fit(X, counts, family="poisson", method="newton", num_workers=2).converged  # rows on 2 Ray actors
    True
    >>> glm.fit(X, X @ [1.0, 2.0, 0] + rng.standard_t(2, 200), robust="huber").converged  # M-estimation
    True
    >>> print(res.summary())
    GLM fit: family=binomial, link=logit, method=irls, alpha=0, workers=1
    ...

X is the design matrix as given (no hidden intercept, as statsmodels). Every bad input raises a
``ConfigError`` before the first iteration: unknown names (listing the allowed ones), NaN/inf, y outside the
family's support, mismatched lengths, a rank-deficient X (suggesting ``alpha``), and complete or
quasi-complete separation in binomial regression (found by a linear program before the fit where n p <=
``SEPARATION_LP_LIMIT``, and otherwise confirmed by the same program when the fit runs away). A fit that does
not converge within ``max_iter`` says so in ``converged`` and emits a :class:`GLMConvergenceWarning`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from raytune_opt.errors import ConfigError, ConfigTypeError
from raytune_opt.glm import irls as _irls
from raytune_opt.glm.families import Binomial, Family, NegativeBinomial, get_family
from raytune_opt.glm.robust import ROBUST_COV_TYPES, Norm, get_norm, get_scale_est, rlm, robust_cov
from raytune_opt.glm.separation import check_separation
from raytune_opt.glm.shard import SMALL_MATRIX, Local, Shard, as_numpy, one_thread

__all__ = ["fit", "GLMResult", "GLMConvergenceWarning", "METHODS", "COV_TYPES", "SEPARATION_LP_LIMIT"]

METHODS = ("irls", "newton", "irls-lm", "lm", "bfgs", "lbfgs")
COV_TYPES = ("nonrobust", "HC0", "HC1", "HC2", "HC3", "cluster")  # GLM fits; robust fits: H1, H2, H3
SCALES = ("X2", "dev")
NB_ALPHA_STEP = (
    1e-7  # the ML estimate of the negative binomial's alpha stops at a Newton step in log alpha this small
)
NB_ALPHA_FLOOR = (
    1e-6  # alpha's lower bound: below it lgamma(y + 1/alpha) - lgamma(1/alpha) cancels to noise in l_p
)
ROBUST_METHODS = ("irls", "irls-lm")
SEPARATION_LP_LIMIT = 200_000  # n * p up to which the separation LP runs before every binomial fit
RUNAWAY_ITERS = 15  # a binomial fit this long (on data too big for the LP up front) gets the separation LP
RANK_RTOL = (
    1e-12  # smallest / largest eigenvalue of the column-scaled X^T W X below which X is rank-deficient
)
RANK_SURE = 0.05  # a float32-formed column-scaled X^T W X whose smallest eigenvalue exceeds this: full rank


class GLMConvergenceWarning(RuntimeWarning):
    """A fit stopped at ``max_iter`` before meeting ``tol``."""


@dataclass
class GLMResult:
    """A fitted model. ``coef``, ``bse``, ``cov_params`` are float64 numpy arrays.

    ``cov_params`` (and ``bse`` from it) is computed when first asked for, as statsmodels' results compute
    theirs on access: for IRLS that is one float64 X^T W X at ``coef`` over all rows, which a caller that
    only wants the coefficients (predictions, a hyperparameter sweep) does not pay for. A distributed fit
    computes it before its Ray workers stop; pickling a result computes it too.

    ``df_resid`` is sum(freq_weights) - p (n - p without frequency weights).
    ``deviance`` is sum_i w_i d(y_i, mu_i) (for robust fits: sum rho(r / scale)); ``loglike`` is
    statsmodels' ``llf`` (NaN for robust fits); ``scale`` the dispersion (1 for binomial and Poisson,
    Pearson chi2 / (n - p) otherwise, the MAD scale for robust fits); ``pearson_chi2`` is
    sum w (y - mu)^2 / V(mu) (for robust fits the residual sum of squares); ``history`` one dict per
    iteration (deviance, objective, largest coefficient step, and the method's own entries).
    """

    coef: np.ndarray
    scale: float
    deviance: float
    loglike: float
    n_iter: int
    converged: bool
    method: str
    family: str
    link: str
    robust: str | None
    alpha: float
    nobs: int
    df_resid: int
    pearson_chi2: float
    num_workers: int = 1
    history: list[dict] = field(default_factory=list)
    cov_type: str = "nonrobust"
    family_params: dict[str, float] = field(
        default_factory=dict
    )  # negative binomial alpha, Tweedie var_power
    family_params_bse: dict[str, float] = field(default_factory=dict)  # where estimated (alpha="ml")
    message: str = ""  # why the solver stopped (lm, bfgs, lbfgs: the optimizer's stopping test)
    _cov: Any = field(default=None, repr=False, compare=False)  # the p x p array, or a function making it

    @property
    def cov_params(self) -> np.ndarray:
        """scale * (information + alpha I)^{-1}, or the sandwich of ``cov_type`` (robust fits: H1-H3)."""
        if callable(self._cov):
            self._cov = as_numpy(self._cov())
        return self._cov

    @property
    def bse(self) -> np.ndarray:
        """Standard errors: sqrt of the diagonal of ``cov_params``."""
        cov = self.cov_params
        return np.sqrt(np.clip(np.diag(cov), 0.0, None)) if np.isfinite(cov).all() else np.sqrt(np.diag(cov))

    def __getstate__(self) -> dict[str, Any]:
        self.cov_params  # noqa: B018 - a pickled result carries its covariance, not the data behind it
        return self.__dict__.copy()

    @property
    def zvalues(self) -> np.ndarray:
        """coef / bse."""
        return self.coef / self.bse

    @property
    def pvalues(self) -> np.ndarray:
        """Two-sided normal p-values 2 Phi(-|z|) = erfc(|z| / sqrt 2) (statsmodels' GLM default)."""
        from scipy.special import erfc

        return erfc(np.abs(self.zvalues) / math.sqrt(2.0))

    def conf_int(self, level: float = 0.95) -> np.ndarray:
        """Normal-theory (lower, upper) bounds, one row per coefficient."""
        q = float(torch.special.ndtri(torch.tensor(0.5 + level / 2, dtype=torch.float64)))
        return np.stack([self.coef - q * self.bse, self.coef + q * self.bse], axis=1)

    def summary(self, names: list[str] | None = None) -> str:
        """A statsmodels-style coefficient table as text."""
        names = names or [f"x{j}" for j in range(len(self.coef))]
        what = f"robust={self.robust}" if self.robust else f"family={self.family}, link={self.link}"
        head = [
            f"GLM fit: {what}, method={self.method}, alpha={self.alpha:g}, workers={self.num_workers}",
            f"nobs={self.nobs}  df_resid={self.df_resid}  scale={self.scale:.6g}  "
            f"deviance={self.deviance:.6g}  "
            f"loglike={self.loglike:.6g}  iterations={self.n_iter}  converged={self.converged}",
        ]
        ci = self.conf_int()
        width = max(8, *(len(n) for n in names))
        rows = [
            f"{'':<{width}} {'coef':>12} {'std err':>12} {'z':>9} {'P>|z|':>9} {'[0.025':>12} {'0.975]':>12}"
        ]
        for j, n in enumerate(names):
            rows.append(
                f"{n:<{width}} {self.coef[j]:>12.6g} {self.bse[j]:>12.6g} {self.zvalues[j]:>9.3f} "
                f"{self.pvalues[j]:>9.3g} {ci[j, 0]:>12.6g} {ci[j, 1]:>12.6g}"
            )
        rule = "-" * len(rows[0])
        return "\n".join([*head, rule, *rows, rule])


# -- input checks ---------------------------------------------------------------------------------------
def _as_tensor(
    field_name: str, value: Any, ndim: tuple[int, ...], dtype: torch.dtype, device
) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        t = value.detach()
    else:
        try:
            arr = np.asarray(value)
        except Exception as exc:  # noqa: BLE001 - anything that is not array-like
            raise ConfigTypeError(
                f"{field_name}: cannot read {type(value).__name__} as an array ({exc})"
            ) from exc
        if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
            raise ConfigTypeError(f"{field_name} must be numeric, got an array of dtype {arr.dtype}")
        if np.iscomplexobj(arr):  # numpy would drop the imaginary part with only a ComplexWarning
            raise ConfigTypeError(f"{field_name} must be real, got an array of dtype {arr.dtype}")
        t = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float64))
    if t.is_complex():
        raise ConfigTypeError(f"{field_name} must be real, got {t.dtype}")
    if t.ndim == 2 and 1 in ndim and t.shape[1] == 1:
        t = t[:, 0]
    if t.ndim not in ndim:
        raise ConfigError.invalid(f"{field_name}.ndim", t.ndim, " or ".join(map(str, ndim)))
    t = t.to(device=device, dtype=dtype)
    if not bool(torch.isfinite(t.sum())):  # a NaN or inf anywhere makes the sum non-finite
        bad = (~torch.isfinite(t)).reshape(t.shape[0], -1).any(dim=1)
        rows = torch.nonzero(bad).flatten()
        raise ConfigError(
            f"{field_name} has {rows.numel()} row(s) with NaN or inf (first at rows {rows[:5].tolist()}); "
            "drop or impute them before fitting"
        )
    return t.contiguous()


def _check_names(family, link, method, robust) -> tuple[Family | None, Norm | None]:
    if not isinstance(method, str) or method not in METHODS:
        raise ConfigError.unknown("method", method, METHODS)
    if robust is not None:
        norm = get_norm(robust)
        if method not in ROBUST_METHODS:
            raise ConfigError.invalid(
                "method", method, f"one of {', '.join(ROBUST_METHODS)} for a robust fit"
            )
        name = family.name if isinstance(family, Family) else family
        if name != "gaussian" or link not in (None, "identity"):
            raise ConfigError.invalid("family", family, "'gaussian' (identity link) for a robust linear fit")
        return None, norm
    return get_family(family, link), None


def _check_cov_type(cov_type: Any, robust: bool, groups: Any) -> str:
    allowed = ROBUST_COV_TYPES if robust else COV_TYPES
    cov_type = allowed[0] if cov_type is None else cov_type
    if not isinstance(cov_type, str) or cov_type not in allowed:
        kind = "a robust fit" if robust else "a GLM fit"
        raise ConfigError.unknown(f"cov_type (for {kind})", cov_type, allowed)
    if (cov_type == "cluster") != (groups is not None):
        raise ConfigError.invalid(
            "groups",
            "None" if groups is None else "<array>",
            "an array of cluster labels with cov_type='cluster', else None",
        )
    return cov_type


def _check_scale(scale: Any, robust: bool) -> None:
    if scale is None:
        return
    if robust:
        raise ConfigError.invalid("scale", scale, "None for a robust fit (its scale is scale_est's)")
    if isinstance(scale, str):
        if scale not in SCALES:
            raise ConfigError.unknown("scale", scale, SCALES)
        return
    _check_number("scale", scale, 0.0, strict=True)


def _group_codes(groups: Any, n: int) -> tuple[torch.Tensor, int]:
    """Cluster labels -> integer codes 0..G-1 (``np.unique``) and G; ``ConfigError`` for a bad array."""
    g = np.asarray(groups)
    if g.ndim != 1 or g.shape[0] != n:
        raise ConfigError(f"groups must be one label per row of X ({n}), got shape {g.shape}")
    _, codes = np.unique(g, return_inverse=True)
    n_groups = int(codes.max()) + 1
    if n_groups < 2:
        raise ConfigError.invalid("groups", f"<{n_groups} cluster>", "at least 2 clusters")
    return torch.from_numpy(codes.astype(np.int64)), n_groups


def _binomial_counts(yt, wt, ft, fam):
    """(successes k, failures n - k) -> y = k / n, w * n, the data's log-likelihood term
    sum f w log C(n, k), and the family marked ``counts`` (statsmodels' two-column binomial response)."""
    k, fails = yt[:, 0], yt[:, 1]
    if bool(((k < 0) | (fails < 0)).any()):
        raise ConfigError("y: a two-column binomial response needs successes >= 0 and failures >= 0")
    trials = k + fails
    if bool((trials <= 0).any()):
        raise ConfigError("y: a two-column binomial response needs successes + failures > 0 in every row")
    logc = torch.lgamma(trials + 1.0) - torch.lgamma(k + 1.0) - torch.lgamma(fails + 1.0)
    f = 1.0 if ft is None else ft
    return k / trials, wt * trials, float((f * wt * logc).sum()), Binomial(fam.link.name, counts=True)


@dataclass
class _Options:
    """The GLM fit's options beyond the solver's: scale, covariance, frequency weights, llf constant."""

    scale: str | float | None
    cov_type: str
    codes: torch.Tensor | None
    n_groups: int
    freq: torch.Tensor | None
    ll_const: float
    df_resid: float


def _check_number(field_name: str, value: Any, low: float, strict: bool, integer: bool = False) -> None:
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if (
        isinstance(value, bool)
        or not ok_type
        or not math.isfinite(value)
        or (value <= low if strict else value < low)
    ):
        kind = "an integer" if integer else "a finite number"
        raise ConfigError.invalid(field_name, value, f"{kind} {'>' if strict else '>='} {low:g}")


def _full_rank_surely(G: torch.Tensor) -> bool:
    """Is X^T W X (formed in float32) so far from singular that its rounding cannot hide a rank deficiency?

    Its column-scaled form S = D^{-1/2} G D^{-1/2} has a unit diagonal; float32 rounding perturbs its
    entries by ~1e-5 at most in practice, its eigenvalues by at most p times that (Weyl), so a smallest
    eigenvalue above ``RANK_SURE`` puts the float64 one far above ``RANK_RTOL``.
    """
    d = G.diagonal()
    if bool((d <= 0).any()):
        return False
    s = d.rsqrt()
    with one_thread(G, SMALL_MATRIX):
        return float(torch.linalg.eigvalsh(G * s[:, None] * s[None, :])[0]) > RANK_SURE


def _check_rank(G: torch.Tensor, alpha: float) -> None:
    """Raise when X^T W X (W > 0) is singular: X is rank-deficient, the coefficients not identified."""
    if alpha > 0:
        return
    d = G.diagonal()
    zero = torch.nonzero(d <= 0).flatten().tolist()
    if zero:
        raise ConfigError(
            f"X is rank-deficient: column(s) {zero} are all zero on the rows with positive weight; drop them "
            "or pass alpha > 0 (L2 penalty)"
        )
    s = d.rsqrt()
    with one_thread(G, SMALL_MATRIX):
        evals, evecs = torch.linalg.eigh(G * s[:, None] * s[None, :])
    tiny = evals <= RANK_RTOL * evals[-1]
    if bool(tiny.any()):
        v = evecs[:, 0].abs()
        cols = torch.nonzero(v > 0.05 * v.max()).flatten().tolist()
        p = G.shape[0]
        raise ConfigError(
            f"X is rank-deficient: numerical rank {p - int(tiny.sum())} < {p} columns; columns {cols} are "
            "(nearly) linearly dependent, so the coefficients are not identified. Drop a column or pass "
            "alpha > 0 (L2 penalty)"
        )


# -- fit ------------------------------------------------------------------------------------------------
def fit(
    X: Any,
    y: Any,
    family: str = "gaussian",
    link: str | None = None,
    method: str = "irls",
    robust: str | Norm | None = None,
    weights: Any = None,
    offset: Any = None,
    alpha: float = 0.0,
    max_iter: int = 100,
    tol: float = 1e-8,
    num_workers: int = 1,
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float64,
    freq_weights: Any = None,
    exposure: Any = None,
    scale: str | float | None = None,
    cov_type: str | None = None,
    groups: Any = None,
    scale_est: Any = "mad",
) -> GLMResult:
    """Fit a GLM (or, with ``robust``, a robust linear model) of ``y`` on the columns of ``X``.

    Minimises D(a)/2 + alpha/2 ||a||^2 (D the deviance; for ``gaussian`` least squares, so ``alpha`` is
    scikit-learn's ``Ridge(alpha, fit_intercept=False)``) by ``method``: ``irls`` (Fisher scoring,
    Cholesky), ``newton`` (Newton–Raphson, observed Hessian), ``irls-lm`` (the seed's damped IRLS), ``lm``,
    ``bfgs`` or ``lbfgs`` (the torch optimizers of ``raytune_opt.optim``). ``weights`` are prior (variance)
    weights — statsmodels' ``var_weights``; for binomial proportions, the numbers of trials. ``num_workers``
    > 1 shards the rows over that many Ray actors (``ray.init()`` is called if Ray is not running).

    ``family`` is a name (``FAMILIES``) or an instance carrying its parameters, e.g.
    ``glm.NegativeBinomial(alpha=0.5)``, ``glm.NegativeBinomial(alpha="ml")`` (alpha estimated by maximum
    likelihood jointly with the coefficients, as statsmodels' ``discrete.NegativeBinomial``; its estimate
    and standard error in ``family_params`` / ``family_params_bse``) or ``glm.Tweedie(var_power=1.5)``.
    For ``binomial``, ``y`` may be two columns (successes, failures), as statsmodels.

    Weights and offsets, as statsmodels' GLM: ``weights`` (``var_weights``), ``freq_weights`` (each row
    counts that many times: df_resid = sum(freq_weights) - p), ``offset`` and ``exposure`` (log link only:
    offset + log(exposure)).

    ``scale``: None (1 for binomial, Poisson, negative binomial; Pearson chi2 / df_resid otherwise),
    ``"X2"`` (Pearson chi2 / df_resid), ``"dev"`` (deviance / df_resid) or a fixed number.

    Standard errors (``cov_type``): ``"nonrobust"`` (default) is scale * (information + alpha I)^{-1},
    with the expected information for ``irls`` and ``irls-lm`` and the observed one for the other methods
    (as statsmodels' IRLS and Newton fits). The sandwiches H^-1 S H^-1 use the observed information H (as
    statsmodels) and the scores s_i = x_i w_i (y_i - mu_i) / (V(mu_i) g'(mu_i)): ``HC0`` S = sum s s^T
    (statsmodels' GLM HC0; statsmodels returns HC0 for HC1-HC3 of a GLM too), ``HC1`` n / (n - p) HC0,
    ``HC2`` / ``HC3`` S = sum s s^T / (1 - h_i)^(1 or 2) with h_i the leverage of the IRLS weighted
    least squares (for gaussian identity: statsmodels' OLS HC1-HC3), and ``cluster`` S = sum_g s_g s_g^T over
    the clusters of ``groups`` times G/(G - 1) (n - 1)/(n - p) (statsmodels' ``cov_type="cluster"``).
    Robust fits: ``"H1"`` (default), ``"H2"``, ``"H3"`` as statsmodels' RLM ``cov=``, and ``scale_est``
    ``"mad"`` (default) or ``"huber"`` (Huber's proposal 2, ``robust.HuberScale``).
    """
    fam, norm = _check_names(family, link, method, robust)
    _check_number("alpha", alpha, 0.0, strict=False)
    _check_number("tol", tol, 0.0, strict=True)
    _check_number("max_iter", max_iter, 1, strict=False, integer=True)
    _check_number("num_workers", num_workers, 1, strict=False, integer=True)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ConfigError.invalid("dtype", dtype, "a floating torch dtype (default torch.float64)")
    if num_workers > 1 and method == "lm":
        raise ConfigError.invalid(
            "method",
            method,
            "a method other than 'lm' with num_workers > 1 (lm needs every residual in one "
            "process; 'irls-lm' is its sharded counterpart)",
        )
    if device is None:
        device = X.device if isinstance(X, torch.Tensor) else torch.device("cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError.invalid("device", device, "a torch device such as 'cpu' or 'cuda:0'") from exc

    cov_type = _check_cov_type(cov_type, robust is not None, groups)
    _check_scale(scale, robust is not None)
    scale_fn = get_scale_est(scale_est) if robust is not None else None

    Xt = _as_tensor("X", X, (2,), dtype, device)
    counts = fam is not None and fam.name == "binomial"  # a (successes, failures) response allowed
    yt = _as_tensor("y", y, (1, 2) if counts else (1,), dtype, device)
    n, p = Xt.shape
    if yt.shape[0] != n:
        raise ConfigError(f"X has {n} rows but y has {yt.shape[0]} values; they must match")
    if robust is not None:
        for name, value in (("weights", weights), ("freq_weights", freq_weights), ("exposure", exposure)):
            if value is not None:
                raise ConfigError.invalid(name, "<array>", "None for a robust fit (as statsmodels RLM)")
    wt = torch.ones_like(yt[:, 0] if yt.ndim == 2 else yt)
    wt = wt if weights is None else _as_tensor("weights", weights, (1,), dtype, device)
    ft = None if freq_weights is None else _as_tensor("freq_weights", freq_weights, (1,), dtype, device)
    ot = torch.zeros_like(wt) if offset is None else _as_tensor("offset", offset, (1,), dtype, device)
    et = None if exposure is None else _as_tensor("exposure", exposure, (1,), dtype, device)
    for name, t in (("weights", wt), ("freq_weights", ft), ("offset", ot), ("exposure", et)):
        if t is not None and t.shape[0] != n:
            raise ConfigError(f"X has {n} rows but {name} has {t.shape[0]} values; they must match")
    codes, n_groups = _group_codes(groups, n) if cov_type == "cluster" else (None, 0)
    ll_const = 0.0
    with one_thread(wt):  # O(n) elementwise checks: a fork-join per op costs more than it saves
        if yt.ndim == 2:  # (successes, failures): y = k / n_trials, prior weight * n_trials
            yt, wt, ll_const, fam = _binomial_counts(yt, wt, ft, fam)
        if et is not None:
            if fam is None or fam.link.name != "log":
                link_name = "identity" if fam is None else fam.link.name
                raise ConfigError.invalid(
                    "exposure", "<array>", f"None with the {link_name!r} link (log link only)"
                )
            if bool((et <= 0).any()):
                raise ConfigError.invalid("exposure", "<array with entries <= 0>", "exposure > 0")
            ot = ot + torch.log(et)
        for name, t in (("weights", wt), ("freq_weights", ft)):
            if t is not None and bool((t < 0).any()):
                raise ConfigError.invalid(name, "<array with negative entries>", f"{name} >= 0")
        if ft is not None:
            wt = wt * ft
        n_eff = int((wt > 0).sum())
        if n_eff <= p and alpha == 0:
            raise ConfigError(
                f"{n_eff} rows with positive weight for {p} coefficients: "
                "need more rows than columns, or alpha > 0"
            )
        if fam is not None:
            fam.check_support(yt, wt)
            if fam.name == "poisson" and not bool((yt[wt > 0] != 0).any()):
                raise ConfigError(
                    "y is 0 on every row with positive weight: the Poisson maximum likelihood is at mu = 0 "
                    "(coefficients at -inf), so there is nothing to fit; check y or the weights"
                )
    if num_workers > 1 and num_workers > n:
        raise ConfigError.invalid("num_workers", num_workers, f"at most the number of rows ({n})")

    lp_first = fam is not None and fam.name == "binomial" and alpha == 0 and n * p <= SEPARATION_LP_LIMIT
    if lp_first:
        check_separation(as_numpy(Xt), as_numpy(yt), as_numpy(wt))

    backend = _backend(Xt, yt, wt, ot, fam, num_workers, device, dtype, ft)
    df_resid = (n if ft is None else float(ft.sum())) - p
    try:
        if norm is not None:
            result = _fit_robust(backend, norm, method, n, p, max_iter, tol, cov_type, scale_fn, Xt)
        else:
            opts = _Options(scale, cov_type, codes, n_groups, ft, ll_const, df_resid)
            result = _fit_glm(backend, fam, method, n, p, alpha, max_iter, tol, Xt, yt, wt, lp_first, opts)
    finally:
        backend.close()
    result.num_workers = num_workers
    if not result.converged:
        why = f" ({result.message})" if result.message else ""
        warnings.warn(
            f"glm.fit: method={method!r} did not converge within max_iter={max_iter} iterations "
            f"(tol={tol:g}){why}; "
            "the result is the last iterate — raise max_iter, loosen tol or try method='irls-lm'",
            GLMConvergenceWarning,
            stacklevel=2,
        )
    return result


def _backend(X, y, w, offset, fam, num_workers, device, dtype, freq=None):
    if num_workers == 1:
        return Local(Shard(X, y, w, offset, fam, freq))
    from raytune_opt.glm.distributed import RayShards

    return RayShards(X, y, w, offset, fam, num_workers, device, dtype, freq=freq)


def _solve_method(method: str):
    if method in ("lm", "bfgs", "lbfgs"):
        from raytune_opt.glm.torch_solvers import torch_solver

        return torch_solver(method)
    return {"irls": _irls.irls, "newton": _irls.newton, "irls-lm": _irls.irls_lm}[method]


def _fit_glm(
    backend, fam, method, n, p, alpha, max_iter, tol, Xt, yt, wt, lp_done, opts: _Options
) -> GLMResult:
    # X^T W X at mu_0 in float32 (see irls.irls); in float64 when the rank check needs its precision
    start, low = backend.sum("irls_pieces", None, True), Xt.dtype == torch.float64
    if alpha == 0 and not _full_rank_surely(start[1]):
        start, low = backend.sum("irls_pieces", None), False
        _check_rank(start[1], alpha)
    solver = _solve_method(method)
    kw = {"start_low": low} if method == "irls" else {}
    nb_info = None
    if isinstance(fam, NegativeBinomial) and fam.estimate_alpha:
        out, fam, nb_info = _fit_nb_alpha(backend, fam, solver, start, alpha, max_iter, tol, kw)
    else:
        out = solver(backend, start, alpha, max_iter, tol, **kw)
    if fam.name == "binomial" and alpha == 0 and not lp_done and _runaway(out):
        check_separation(as_numpy(Xt), as_numpy(yt), as_numpy(wt))
    beta = out.beta
    dev, pearson, ssr, _ = backend.sum("fit_stats", beta)
    dev, pearson = float(dev), float(pearson)
    df_resid = opts.df_resid
    if opts.scale is None:
        scale = 1.0 if fam.fixed_scale else pearson / df_resid
    elif isinstance(opts.scale, str):
        scale = (pearson if opts.scale == "X2" else dev) / df_resid
    else:
        scale = float(opts.scale)
    # gaussian identity: statsmodels' concentrated likelihood, scale = sum w (y - mu)^2 / sum(freq_weights)
    if fam.name == "gaussian" and fam.link.name == "identity":
        ll_scale = float(ssr) / (n if opts.freq is None else float(opts.freq.sum()))
    else:
        ll_scale = scale
    loglike = float(backend.sum("loglike", beta, ll_scale)[0]) + opts.ll_const
    params_bse = {}
    if nb_info is not None:
        J_inv = _inv(nb_info)
        params_bse = {"alpha": math.sqrt(max(float(J_inv[-1, -1]), 0.0))}

    def cov() -> torch.Tensor:
        if nb_info is not None and opts.cov_type == "nonrobust":  # joint (beta, alpha) observed information
            return _inv(nb_info)[:p, :p]
        if opts.cov_type != "nonrobust":
            return _sandwich(backend, beta, alpha, Xt, opts, n, p)
        info = out.information
        if method in ("lm", "bfgs", "lbfgs"):  # the observed information at the solution
            info = _irls._ridge(backend.sum("newton_pieces", beta)[1], alpha)
        elif info is None:  # IRLS: the expected information at the solution, in full precision
            info = _irls._ridge(backend.sum("fisher_gram", beta)[0], alpha)
        return scale * _inv(info)

    res = _result(
        beta,
        cov if isinstance(backend, Local) else cov(),
        scale,
        dev,
        loglike,
        out,
        method,
        fam.name,
        fam.link.name,
        None,
        alpha,
        n,
        df_resid,
        pearson,
    )
    res.cov_type, res.family_params, res.family_params_bse = opts.cov_type, fam.param_values, params_bse
    return res


def _inv(A: torch.Tensor) -> torch.Tensor:
    with one_thread(A, SMALL_MATRIX):
        return torch.linalg.inv(A)


def _sandwich(backend, beta, alpha, Xt, opts: _Options, n, p) -> torch.Tensor:
    """H^-1 S H^-1 of ``opts.cov_type`` (see ``fit``); H the observed information (+ alpha I)."""
    H_inv = _inv(_irls._ridge(backend.sum("newton_pieces", beta)[1], alpha))
    rows = backend.gather("score_rows", beta).to(Xt.dtype)
    u, w_irls = rows[:, 0], rows[:, 1]
    with one_thread(u):
        if opts.cov_type == "cluster":
            M = torch.zeros(opts.n_groups, p, dtype=Xt.dtype, device=Xt.device)
            M.index_add_(0, opts.codes.to(Xt.device), u[:, None] * Xt)
            G = opts.n_groups
            return G / (G - 1) * (n - 1) / (n - p) * (H_inv @ (M.T @ M) @ H_inv)
        c = u * u  # statsmodels: frequency weights count once in the meat, not squared
        if opts.freq is not None:
            c = torch.where(opts.freq > 0, c / opts.freq.clamp_min(1e-300), torch.zeros_like(c))
        if opts.cov_type in ("HC2", "HC3"):
            fisher_inv = _inv(_irls._ridge(backend.sum("fisher_gram", beta)[0], alpha))
            h = w_irls * ((Xt @ fisher_inv) * Xt).sum(dim=1)
            c = c / (1.0 - h) ** (1 if opts.cov_type == "HC2" else 2)
        meat = Xt.T @ (c[:, None] * Xt)
    corr = n / (n - p) if opts.cov_type == "HC1" else 1.0
    return corr * (H_inv @ meat @ H_inv)


def _fit_nb_alpha(backend, fam, solver, start, alpha, max_iter, tol, kw):
    """Maximum likelihood over (a, alpha) of the negative binomial: Newton on log alpha of the profile
    log-likelihood l_p(alpha) = l(a(alpha), alpha), a(alpha) the GLM fit at fixed alpha, with its exact
    derivatives dl_p/dalpha = dl/dalpha (the score in a is 0) and
    -d2l_p/dalpha2 = J_aa - J_ab^T J_bb^-1 J_ab (J the joint observed information); a step that lowers
    l_p is halved. Steps stop at ``NB_ALPHA_FLOOR``: where dl_p/dalpha <= 0 there (no overdispersion:
    the maximum is on the boundary alpha -> 0, the Poisson model) the estimate is the floor, a KKT
    point, with a warning. Returns (the last fit, the family at the estimate, J at the estimate,
    (p+1) x (p+1))."""
    fam = NegativeBinomial(fam.link.name, alpha=fam.alpha)

    def at(a: float):
        f = NegativeBinomial(fam.link.name, alpha=a)
        backend.sum("set_family", f)
        st = start if a == fam.alpha else backend.sum("irls_pieces", None)
        out = solver(backend, st, alpha, max_iter, tol, **({} if a == fam.alpha else {k: False for k in kw}))
        beta = out.beta
        ll = float(backend.sum("loglike", beta, 1.0)[0])
        g_a, d2_a, cross = backend.sum("nb_alpha_pieces", beta)
        J_bb = _irls._ridge(backend.sum("newton_pieces", beta)[1], alpha)
        J = torch.empty(J_bb.shape[0] + 1, J_bb.shape[0] + 1, dtype=J_bb.dtype, device=J_bb.device)
        J[:-1, :-1], J[:-1, -1], J[-1, :-1], J[-1, -1] = J_bb, -cross, -cross, -d2_a
        return a, f, out, ll, float(g_a), J

    state = at(fam.alpha)
    outer = 0
    for outer in range(1, max_iter + 1):  # noqa: B007 - the count is reported
        a, _, _, ll, g_a, J = state
        curv = float(J[-1, -1] - J[-1, :-1] @ torch.linalg.solve(J[:-1, :-1], J[:-1, -1]))
        h = a * a * curv - a * g_a  # -d2 l_p / d(log alpha)^2
        step = a * g_a / h if h > 0 else math.copysign(1.0, g_a)
        step = max(-2.0, min(2.0, step), math.log(NB_ALPHA_FLOOR / a))
        if abs(step) <= NB_ALPHA_STEP:
            if a <= NB_ALPHA_FLOOR * (1.0 + NB_ALPHA_STEP) and g_a <= 0:
                warnings.warn(
                    f"negative binomial: the ML estimate of alpha is at its lower bound {NB_ALPHA_FLOOR:g} "
                    "(the log-likelihood still rises toward alpha = 0): the data show no overdispersion, "
                    "a Poisson model fits them as well",
                    GLMConvergenceWarning,
                    stacklevel=4,
                )
            break
        t = 1.0
        while True:
            new = at(a * math.exp(t * step))
            if new[3] >= ll - 1e-12 * (1.0 + abs(ll)) or t < 1e-4:
                break
            t *= 0.5
        state = new
    a, f, out, _, _, J = state
    out.converged = out.converged and outer < max_iter
    out.history.append({"nb_alpha": a, "outer_iterations": outer})
    return out, f, J


def _runaway(out) -> bool:
    """Did a binomial fit stall or need many iterations (the mark of coefficients running to infinity)?"""
    return not out.converged or out.n_iter >= RUNAWAY_ITERS or float(out.beta.abs().max()) > 1e3


def _fit_robust(backend, norm, method, n, p, max_iter, tol, cov_type, scale_est, Xt) -> GLMResult:
    start = backend.sum("wls_pieces", None)
    _check_rank(start[0], 0.0)
    out, scale = rlm(
        backend, start, norm, n, p, max_iter, tol, damped=method == "irls-lm", scale_est=scale_est
    )
    r = backend.gather("resid", out.beta)
    cov = robust_cov(cov_type, norm, r, scale, Xt, start[0]) if scale > 0 else torch.zeros_like(start[0])
    crit = float(norm.rho(r / scale).sum()) if scale > 0 else 0.0
    ssr = float((r * r).sum())
    res = _result(
        out.beta,
        cov,
        scale,
        crit,
        float("nan"),
        out,
        method,
        "gaussian",
        "identity",
        norm.name,
        0.0,
        n,
        n - p,
        ssr,
    )
    res.cov_type = cov_type
    return res


def _result(beta, cov, scale, dev, loglike, out, method, family, link, robust, alpha, n, df_resid, pearson):
    """The GLMResult; ``cov`` is the covariance (a tensor) or a function that computes it on demand."""
    return GLMResult(
        coef=as_numpy(beta),
        _cov=cov if callable(cov) else as_numpy(cov),
        scale=float(scale),
        deviance=dev,
        loglike=loglike,
        n_iter=out.n_iter,
        converged=out.converged,
        method=method,
        family=family,
        link=link,
        robust=robust,
        alpha=float(alpha),
        nobs=n,
        df_resid=df_resid,
        pearson_chi2=pearson,
        history=out.history,
        message=out.message,
    )
