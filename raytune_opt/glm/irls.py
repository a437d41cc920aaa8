"""The seed's curvature iterations for a GLM (section 3.2): IRLS, Newton–Raphson and IRLS combined with LM.

All three minimise the penalised objective

    F(a) = D(a) / 2 + alpha/2 ||a||^2,      D = sum_i w_i d(y_i, mu_i) (the deviance, = -2 loglik + const)

over sums supplied by a backend (``shard.Local`` or ``distributed.RayShards``): each iteration asks the
backend for the p x p and p-vector pieces, and takes one step from their sums. Every solver returns the
coefficients, the p x p information matrix at the solution (for the covariance) and a per-iteration history.

Convergence: |D*_k - D*_{k-1}| <= tol (1 + 1e-4 |D*_k|) on the penalised deviance D* = 2F — absolute
on the deviance scale like statsmodels' ``atol`` (deviance differences are chi-square units, so tol means
the same whatever n), relaxed for huge deviances so that summation rounding cannot block it — and, for
the linearly converging Fisher scoring of non-canonical links on flat likelihoods (where D* stalls while a
still moves), a small distance to the solution, e_k <= tol (1 + max|a_k|), with e_k the last step
s_k = max|a_k - a_{k-1}| (IRLS: the a-posteriori bound of a contraction, below). For canonical links
(quadratic convergence) that costs no Gram matrix: the step after the deviance has settled is already
that small.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from raytune_opt.errors import ConfigError
from raytune_opt.glm.shard import SMALL_MATRIX, one_thread

__all__ = ["SolverOutput", "irls", "newton", "irls_lm", "solve_spd", "converged_by"]

_MAX_HALVINGS = 40
CHORD_STEP = 1e-2  # a step under this (relative) and CHORD_RATIO times the one before it (quadratic
CHORD_RATIO = 0.05  # convergence) is followed by a chord step: the last X^T W X is reused
CONTRACTION = 0.5  # IRLS: steps shrinking by less than this ratio count as a contraction (error estimate)


@dataclass
class SolverOutput:
    """What a solver hands back to ``fit``: coefficients, information at the solution, iterations."""

    beta: torch.Tensor
    information: torch.Tensor | None  # p x p, unscaled (X^T W X + alpha I or the observed analogue);
    # None: fit forms the expected information at beta when the covariance is asked for
    n_iter: int
    converged: bool
    history: list[dict] = field(default_factory=list)
    message: str = ""  # why the solver stopped, when it says (the torch optimizers' state["message"])


def small_step(step: float, beta: torch.Tensor, tol: float) -> bool:
    """max|Delta a| <= tol (1 + max|a|)."""
    return step <= tol * (1.0 + float(beta.abs().max()))


def converged_by(new: float, old: float, tol: float) -> bool:
    """|D*_new - D*_old| <= tol (1 + 1e-4 |D*_new|) for objectives F = D*/2."""
    return 2.0 * abs(new - old) <= tol * (1.0 + 2e-4 * abs(new))


def solve_spd(A: torch.Tensor, b: torch.Tensor) -> torch.Tensor | None:
    """x = A^{-1} b by Cholesky, or None when A is not (numerically) positive definite."""
    with one_thread(A, SMALL_MATRIX):
        L, info = torch.linalg.cholesky_ex(A)
        if int(info) != 0:
            return None
        return torch.cholesky_solve(b[:, None], L)[:, 0]


def _ridge(G: torch.Tensor, alpha: float) -> torch.Tensor:
    if alpha == 0.0:
        return G
    return G + alpha * torch.eye(G.shape[0], dtype=G.dtype, device=G.device)


def _objective(dev: torch.Tensor | float, beta: torch.Tensor, alpha: float) -> float:
    """F = D/2 + alpha/2 ||a||^2."""
    return 0.5 * float(dev) + 0.5 * alpha * float(beta @ beta)


def _solve(A: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    x = solve_spd(A, b)
    if x is None:  # only reachable from rounding: fit() has checked the rank before the first step
        with one_thread(A, SMALL_MATRIX):
            x = torch.linalg.lstsq(A, b[:, None]).solution[:, 0]
    return x


def _bad(value: float) -> bool:
    return value != value or value in (float("inf"), float("-inf"))


def irls(
    backend,
    start: tuple,
    alpha: float,
    max_iter: int,
    tol: float,
    mixed_precision: bool = True,
    start_low: bool = False,
) -> SolverOutput:
    """IRLS, the seed's w_{k+1} = (X^T W_k X + alpha I)^{-1} X^T W_k z_k, solved by Cholesky.

    ``start`` holds the pieces (D, X^T W X, X^T W z) at statsmodels' mu_0. Each iteration solves, then
    evaluates only the deviance at the new coefficients (one matrix-vector pass) and forms the next
    X^T W X only if not converged. A step that makes F non-finite or larger (mu leaving the domain, e.g. a
    negative mean under the inverse link) is halved towards the previous coefficients (R's ``glm.fit``
    safeguard).

    From a current a the step is a + (X^T W X)^{-1} X^T W r with X^T W r at a in full precision, so the
    X^T W X used only sets how fast the iteration contracts, never its fixed point X^T W r = 0. Two
    savings follow:

    * Mixed precision (``mixed_precision``, float64 data): X^T W X is formed in float32 (a quarter to a
      half of the time; ``start_low`` says whether the one at mu_0 in ``start`` was). It changes a step by
      a relative ~1e-7 cond(X^T W X).
    * Chord steps: once the iteration converges quadratically (a step under ``CHORD_STEP`` relative and
      under ``CHORD_RATIO`` times the one before), the next step reuses the last X^T W X (a chord, or
      lazy-Hessian, Newton step: ``Shard.irls_rhs``, no Gram matrix) — that matrix was formed a relative
      distance s ≤ 1e-2 away, so the step contracts by a factor ~s (Newton's would by ~s as well: the
      error is then ~s²): a chord step costs two passes over X where a Newton step costs those plus a
      Gram matrix (p = 100: ~3x as much), and the fit typically ends one or two Gram matrices sooner for
      at most one more iteration. A chord step that contracts less than 1/``CHORD_RATIO`` times is
      followed by a fresh X^T W X. When a full step s_k (known before the deviance at a_k is evaluated)
      already meets the chord test, the deviance D(a_k) and the chord step's X^T W r(a_k) are asked for
      together (``Shard.deviance_rhs``: one pass over X for the canonical binomial and Poisson fits);
      a step then halved asks for X^T W r at the halved a instead.

    Stop: the deviance test and the distance to the solution e_k <= tol (1 + max|a_k|) (module
    docstring). Chord steps contract linearly (each by rho ~ 1e-2 here), Newton's faster: once two
    consecutive full (unhalved) steps shrink by rho = s_k / s_{k-1} < ``CONTRACTION``, the a-posteriori
    bound of a contraction, |a_k - a*| <= s_k rho / (1 - rho), is e_k — the step after, which the plain
    test s_k <= tol would wait for, is that small; otherwise e_k = s_k (``history``: ``error_estimate``).

    ``information`` in the output is None: the covariance's X^T W X (float64, at the returned a) is
    formed by ``fit`` when it is asked for.
    """
    dev, G, rhs = start
    F = 0.5 * float(dev)
    beta: torch.Tensor | None = None
    history: list[dict] = []
    converged = False
    low = start_low  # was G formed in float32?
    prev_step, prev_halvings = math.inf, 0
    n_iter = 0
    while n_iter < max_iter:
        ahead = None  # X^T W r at ``new``, when a chord step is expected to follow (``Shard.deviance_rhs``)
        if beta is None:
            new = _solve(_ridge(G, alpha), rhs)
            F_n = _objective(backend.sum("deviance", new)[0], new, alpha)
        else:
            new = beta + _solve(_ridge(G, alpha), rhs - alpha * beta)
            if _chord(float((new - beta).abs().max()), new, prev_step):
                dev_n, ahead = backend.sum("deviance_rhs", new)
                F_n = _objective(dev_n, new, alpha)
            else:
                F_n = _objective(backend.sum("deviance", new)[0], new, alpha)
        if beta is None and _bad(F_n):  # no previous coefficients to halve towards
            raise ConfigError(
                "glm.fit: the deviance is not finite after the first IRLS step from statsmodels' start: the "
                "linear predictor left the domain of the link (e.g. 1/mu^2 < 0 for 'inverse_squared'); "
                "choose another link (e.g. 'log') for these data"
            )
        halvings = 0
        while (
            beta is not None and (_bad(F_n) or F_n > F + 1e-7 * (abs(F) + 0.1)) and halvings < _MAX_HALVINGS
        ):
            new = 0.5 * (beta + new)
            F_n = _objective(backend.sum("deviance", new)[0], new, alpha)
            halvings += 1
        n_iter += 1
        step = float((new - beta).abs().max()) if beta is not None else float(new.abs().max())
        history.append(
            {
                "iter": n_iter,
                "deviance": 2.0 * F_n - alpha * float(new @ new),
                "objective": F_n,
                "step": step,
                "halvings": halvings,
                "float32_gram": low,
            }
        )
        # the distance to the solution: a contraction by rho = s_k / s_{k-1} < CONTRACTION (two full steps)
        # leaves |a_k - a*| <= s_k rho / (1 - rho) (the a-posteriori bound of a contraction mapping)
        rho = step / prev_step if halvings == 0 and prev_halvings == 0 else math.inf
        error = step * rho / (1.0 - rho) if rho < CONTRACTION else step
        history[-1]["error_estimate"] = error
        done = converged_by(F_n, F, tol) and small_step(error, new, tol)
        beta, F = new, F_n
        if done:
            converged = True
            break
        if n_iter < max_iter:
            chord = _chord(step, beta, prev_step)
            if chord:  # keep G: X^T W r at the new a only
                rhs = ahead if ahead is not None and halvings == 0 else backend.sum("irls_rhs", beta)[0]
            else:
                low = mixed_precision
                dev, G, rhs = backend.sum("irls_pieces", beta, low)
            history[-1]["next_step_chord"] = chord
        prev_step, prev_halvings = step, halvings
    return SolverOutput(beta, None, n_iter, converged, history)


def _chord(step: float, beta: torch.Tensor, prev_step: float) -> bool:
    """Is the next IRLS step a chord step: s_k <= min(CHORD_STEP (1 + max|a_k|), CHORD_RATIO s_{k-1})?"""
    return step <= min(CHORD_STEP * (1.0 + float(beta.abs().max())), CHORD_RATIO * prev_step)


def first_step(start: tuple, alpha: float) -> torch.Tensor:
    """One IRLS step from mu_0: the starting coefficients of every other method."""
    _, G, rhs = start
    return _solve(_ridge(G, alpha), rhs)


def newton(backend, start: tuple, alpha: float, max_iter: int, tol: float) -> SolverOutput:
    """Newton–Raphson on the log-likelihood: theta_new = theta_old - (d2L/dtheta2)^{-1} dL/dtheta.

    With the penalty, the step solves (H_obs + alpha I) s = X^T (w (y - mu) mu'/V) - alpha a, H_obs the
    observed information (``Shard.newton_pieces``; the expected one for canonical links). Where H_obs is
    not positive definite (possible far from the optimum for non-canonical links) the step uses the
    expected information instead. A backtracking (Armijo) line search keeps F decreasing. Starts from one
    IRLS step from mu_0.
    """
    beta = first_step(start, alpha)
    F_prev = 0.5 * float(start[0])
    history: list[dict] = []
    converged = False
    n_iter = 0
    while True:
        dev, H, score = backend.sum("newton_pieces", beta)
        F = _objective(dev, beta, alpha)
        H = _ridge(H, alpha)
        if history and converged_by(F, F_prev, tol) and small_step(history[-1]["step"], beta, tol):
            converged = True
            break
        if n_iter >= max_iter:
            break
        grad = alpha * beta - score  # dF/da
        step = solve_spd(H, -grad)
        fisher = step is None
        if fisher:
            step = _solve(_ridge(backend.sum("fisher_gram", beta)[0], alpha), -grad)
        t, slope = 1.0, float(grad @ step)
        F_t = _objective(backend.sum("deviance", beta + step)[0], beta + step, alpha)
        while (_bad(F_t) or F_t > F + 1e-4 * t * slope) and t > 2.0**-_MAX_HALVINGS:
            t *= 0.5
            F_t = _objective(backend.sum("deviance", beta + t * step)[0], beta + t * step, alpha)
        n_iter += 1
        beta, F_prev = beta + t * step, F
        history.append(
            {
                "iter": n_iter,
                "deviance": 2.0 * (F_t - 0.5 * alpha * float(beta @ beta)),
                "objective": F_t,
                "step": float((t * step).abs().max()),
                "t": t,
                "fisher": fisher,
            }
        )
    return SolverOutput(beta, H, n_iter, converged, history)


def irls_lm(
    backend, start: tuple, alpha: float, max_iter: int, tol: float, lam0: float = 1e-3
) -> SolverOutput:
    """The seed's IRLS combined with Levenberg–Marquardt.

    J_k = W_k^{1/2} X,  Delta a = (J_k^T J_k + lambda I)^{-1} J_k^T W_k^{1/2} r_k,  a_new = a_old + Delta a,
    with r_k = (y - mu) g'(mu) the working residual, so J^T W^{1/2} r = X^T W r
    (``Shard.irls_pieces``; plus -alpha a and alpha I for the penalty). lambda starts at ``lam0`` times
    the mean diagonal of J^T J; a step that lowers F is accepted and lambda /= 10, otherwise
    lambda *= 10 and the step is recomputed from the same pieces. lambda -> 0 is IRLS; large lambda is a
    short gradient step.
    """
    beta = first_step(start, alpha)
    dev, G, rhs = backend.sum("irls_pieces", beta)
    F = _objective(dev, beta, alpha)
    lam = lam0 * float(G.diagonal().mean())
    eye = torch.eye(G.shape[0], dtype=G.dtype, device=G.device)
    history: list[dict] = [
        {"iter": 0, "deviance": float(dev), "objective": F, "step": float("nan"), "lambda": float("nan")}
    ]
    converged = False
    n_iter = 0
    while n_iter < max_iter:
        g = rhs - alpha * beta  # J^T W^{1/2} r - alpha a
        A = G + (alpha + lam) * eye
        for _ in range(_MAX_HALVINGS):
            delta = _solve(A, g)
            F_t = _objective(backend.sum("deviance", beta + delta)[0], beta + delta, alpha)
            if not _bad(F_t) and F_t <= F:
                break
            lam *= 10.0
            A = G + (alpha + lam) * eye
        n_iter += 1
        beta = beta + delta
        dev, G, rhs = backend.sum("irls_pieces", beta)
        F_new = _objective(dev, beta, alpha)
        history.append(
            {
                "iter": n_iter,
                "deviance": float(dev),
                "objective": F_new,
                "step": float(delta.abs().max()),
                "lambda": lam,
            }
        )
        lam /= 10.0
        done = converged_by(F_new, F, tol) and small_step(float(delta.abs().max()), beta, tol)
        F = F_new
        if done:
            converged = True
            break
    return SolverOutput(beta, _ridge(G, alpha), n_iter, converged, history)
