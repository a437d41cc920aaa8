"""Line searches along a descent direction d, and the iteration loop of the line-search solvers.

With φ(t) = J(a + t d) and φ'(t) = ∇J(a + t d)ᵀ d (φ'(0) < 0):

- :func:`strong_wolfe` finds t with the strong Wolfe conditions
  φ(t) ≤ φ(0) + c₁ t φ'(0) (sufficient decrease) and |φ'(t)| ≤ c₂ |φ'(0)| (curvature),
  by bracketing then zooming with safeguarded cubic interpolation (Nocedal & Wright, Alg. 3.5/3.6;
  the same scheme as minFunc and ``torch.optim.LBFGS``).
- :func:`backtracking` finds t = t₀ ρᵏ with the Armijo condition φ(t) ≤ φ(0) + c₁ t φ'(0),
  using function values only.

:class:`LineSearchOptimizer` is the loop shared by Newton, BFGS and L-BFGS: at each iteration a
direction d_k from the subclass (d = −H⁻¹∇J, −B_k⁻¹∇J, two-loop recursion), a step length t_k from the
line search, a ← a + t_k d_k, and the stopping rules of ``torch.optim.LBFGS``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from raytune_opt.optim import _checks
from raytune_opt.optim._flat import Evaluation, FlatOptimizer
from raytune_opt.optim.registry import Choices, Entry, Fixed, Range

__all__ = [
    "LINE_SEARCHES",
    "STATUS",
    "LineSearchOptimizer",
    "backtracking",
    "cubic_minimizer",
    "strong_wolfe",
]

#: Accepted values of ``line_search_fn``.
LINE_SEARCHES = ("strong_wolfe", "backtracking", None)

#: ``state["status"]`` after a ``step`` and its meaning; ``state["converged"]`` is True for status 1 only
#: (the gradient test held), as SciPy's BFGS reports ``success`` only for its ``gtol``.
STATUS = {
    1: "gradient: max|∇J| ≤ tolerance_grad",
    2: "step max|t·d| ≤ tolerance_change before the gradient test held",
    3: "loss change |J_new − J_old| < tolerance_change before the gradient test held",
    4: "no acceptable step along the search direction (line search failed: rounding or a bad direction)",
    5: "max_iter iterations or max_eval closure calls reached before the gradient test held",
    6: "the search direction is not a descent direction",
}

Phi = Callable[[float], Evaluation]


def cubic_minimizer(
    t1: float,
    f1: float,
    d1: float,
    t2: float,
    f2: float,
    d2: float,
    bounds: tuple[float, float] | None = None,
) -> float:
    """Minimiser of the cubic through (t₁, f₁, f′₁) and (t₂, f₂, f′₂), clipped to ``bounds``.

    d₁' = f′₁ + f′₂ − 3 (f₁ − f₂)/(t₁ − t₂), d₂' = sign(t₂ − t₁) √(d₁'² − f′₁ f′₂),
    t = t₂ − (t₂ − t₁)(f′₂ + d₂' − d₁')/(f′₂ − f′₁ + 2 d₂') (Nocedal & Wright eq. 3.59); the bisection
    of the bounds when the cubic has no real minimiser.
    """
    lo, hi = bounds if bounds is not None else (min(t1, t2), max(t1, t2))
    e1 = d1 + d2 - 3.0 * (f1 - f2) / (t1 - t2)
    sq = e1 * e1 - d1 * d2
    if sq >= 0 and math.isfinite(sq):
        e2 = math.sqrt(sq)
        if t1 > t2:
            e2 = -e2
        den = d2 - d1 + 2.0 * e2
        if den != 0:
            t = t2 - (t2 - t1) * ((d2 + e2 - e1) / den)
            if math.isfinite(t):
                return min(max(t, lo), hi)
    return 0.5 * (lo + hi)


def strong_wolfe(
    phi: Phi,
    t: float,
    d: torch.Tensor,
    ev0: Evaluation,
    gtd0: float,
    c1: float = 1e-4,
    c2: float = 0.9,
    tolerance_change: float = 1e-9,
    max_ls: int = 25,
) -> tuple[float, Evaluation, int]:
    """Step length t satisfying the strong Wolfe conditions along ``d`` from ``ev0``.

    ``phi(t)`` evaluates the loss and gradient at a + t d. Returns ``(t, evaluation at t, number of
    evaluations)``; after ``max_ls`` evaluations the best point found so far is returned.
    """
    d_norm = float(d.abs().max())
    ev = phi(t)
    n_evals = 1
    gtd = float(ev.g.dot(d))
    t_prev, ev_prev, gtd_prev = 0.0, ev0, gtd0
    done = False
    bracket: list[float] = []
    b_ev: list[Evaluation] = []
    b_gtd: list[float] = []
    while n_evals <= max_ls:
        if ev.f > ev0.f + c1 * t * gtd0 or (n_evals > 1 and ev.f >= ev_prev.f):
            bracket, b_ev, b_gtd = [t_prev, t], [ev_prev, ev], [gtd_prev, gtd]
            break
        if abs(gtd) <= -c2 * gtd0:
            bracket, b_ev, b_gtd = [t], [ev], [gtd]
            done = True
            break
        if gtd >= 0:
            bracket, b_ev, b_gtd = [t_prev, t], [ev_prev, ev], [gtd_prev, gtd]
            break
        # extrapolate: the minimiser of the cubic in [t + 0.01 (t − t_prev), 10 t]
        t_new = cubic_minimizer(
            t_prev, ev_prev.f, gtd_prev, t, ev.f, gtd, (t + 0.01 * (t - t_prev), 10.0 * t)
        )
        t_prev, ev_prev, gtd_prev = t, ev, gtd
        t = t_new
        if n_evals == max_ls:
            break
        ev = phi(t)
        n_evals += 1
        gtd = float(ev.g.dot(d))
    if not bracket:  # budget spent while extrapolating
        bracket, b_ev, b_gtd = [0.0, t_prev], [ev0, ev_prev], [gtd0, gtd_prev]
        if ev_prev.f >= ev0.f:
            return 0.0, ev0, n_evals
        return t_prev, ev_prev, n_evals

    # zoom: shrink [t_lo, t_hi] until the strong Wolfe conditions hold
    insufficient = False
    lo, hi = (0, 1) if len(bracket) == 1 or b_ev[0].f <= b_ev[-1].f else (1, 0)
    while not done and n_evals < max_ls:
        if abs(bracket[1] - bracket[0]) * d_norm < tolerance_change:
            break
        t = cubic_minimizer(bracket[0], b_ev[0].f, b_gtd[0], bracket[1], b_ev[1].f, b_gtd[1])
        # safeguard: stay at least 10 % of the interval away from its ends
        b_max, b_min = max(bracket), min(bracket)
        eps = 0.1 * (b_max - b_min)
        if min(b_max - t, t - b_min) < eps:
            if insufficient or t >= b_max or t <= b_min:
                t = b_max - eps if abs(t - b_max) < abs(t - b_min) else b_min + eps
                insufficient = False
            else:
                insufficient = True
        else:
            insufficient = False
        ev = phi(t)
        n_evals += 1
        gtd = float(ev.g.dot(d))
        if ev.f > ev0.f + c1 * t * gtd0 or ev.f >= b_ev[lo].f:
            bracket[hi], b_ev[hi], b_gtd[hi] = t, ev, gtd
            lo, hi = (0, 1) if b_ev[0].f <= b_ev[1].f else (1, 0)
        else:
            if abs(gtd) <= -c2 * gtd0:
                done = True
            elif gtd * (bracket[hi] - bracket[lo]) >= 0:
                bracket[hi], b_ev[hi], b_gtd[hi] = bracket[lo], b_ev[lo], b_gtd[lo]
            bracket[lo], b_ev[lo], b_gtd[lo] = t, ev, gtd
    lo = 0 if len(bracket) == 1 else lo
    return bracket[lo], b_ev[lo], n_evals


def backtracking(
    phi: Phi, t: float, ev0: Evaluation, gtd0: float, c1: float = 1e-4, rho: float = 0.5, max_ls: int = 25
) -> tuple[float, Evaluation, int]:
    """Largest t = t₀ ρᵏ (k < ``max_ls``) with φ(t) ≤ φ(0) + c₁ t φ'(0) (Armijo).

    Uses loss values only. Returns ``(t, evaluation, number of evaluations)``; ``(0, ev0, n)`` when no
    trial decreased the loss enough (the caller then stops).
    """
    for k in range(1, max_ls + 1):
        ev = phi(t)
        if math.isfinite(ev.f) and ev.f <= ev0.f + c1 * t * gtd0:
            return t, ev, k
        t *= rho
    return 0.0, ev0, max_ls


class LineSearchOptimizer(FlatOptimizer):
    """The loop of Newton, BFGS and L-BFGS: direction, line search, a ← a + t d, stopping rules.

    One ``step(closure)`` evaluates the closure at the current point and runs up to ``max_iter``
    iterations (at most ``max_eval`` closure calls) of

        d_k = direction(∇J(a_k))                      (subclass: Newton, BFGS or L-BFGS)
        t_k = line search along d_k from t = lr        (``line_search_fn``: strong_wolfe, backtracking,
                                                        or None: the fixed step t_k = lr)
        a_{k+1} = a_k + t_k d_k

    stopping early when max|∇J| ≤ ``tolerance_grad``, max|t_k d_k| ≤ ``tolerance_change``, or
    |J(a_{k+1}) − J(a_k)| < ``tolerance_change`` (the rules of ``torch.optim.LBFGS``). It returns the
    loss at the START of the step. ``state`` counts ``func_evals`` (closure calls) and ``n_iter``, and
    says why the step ended: ``status`` and ``message`` (:data:`STATUS`) and ``converged`` — True only
    when the gradient test held (a stall on the step or loss-change rules is reported, not converged).
    """

    @staticmethod
    def _check_common(name: str, hp: dict[str, Any]) -> None:
        _checks.check_positive(name, "lr", hp["lr"])
        _checks.check_int(name, "max_iter", hp["max_iter"])
        if hp["max_eval"] is not None:
            _checks.check_int(name, "max_eval", hp["max_eval"])
        _checks.check_nonneg(name, "tolerance_grad", hp["tolerance_grad"])
        _checks.check_nonneg(name, "tolerance_change", hp["tolerance_change"])
        _checks.check_choice(name, "line_search_fn", hp["line_search_fn"], LINE_SEARCHES)
        if "max_dense_bytes" in hp:
            _checks.check_int(name, "max_dense_bytes", hp["max_dense_bytes"])

    @staticmethod
    def common_defaults(
        lr: float,
        max_iter: int,
        max_eval: int | None,
        tolerance_grad: float,
        tolerance_change: float,
        line_search_fn: str | None,
    ) -> dict[str, Any]:
        return {
            "lr": lr,
            "max_iter": max_iter,
            "max_eval": max_iter * 5 // 4 if max_eval is None else max_eval,
            "tolerance_grad": tolerance_grad,
            "tolerance_change": tolerance_change,
            "line_search_fn": line_search_fn,
        }

    # ------------------------------------------------------------ hooks for the subclasses
    def _evaluate(self, closure: Callable[[], Any], x: torch.Tensor | None = None) -> Evaluation:
        raise NotImplementedError

    def _direction(self, st: dict[str, Any], ev: Evaluation) -> torch.Tensor:
        raise NotImplementedError

    def _update(self, st: dict[str, Any], s: torch.Tensor, y: torch.Tensor) -> None:
        """Curvature pair s_k = a_{k+1} − a_k, y_k = ∇J_{k+1} − ∇J_k (quasi-Newton memory); none here."""

    def _first_step(self, st: dict[str, Any], ev: Evaluation, d: torch.Tensor) -> float:
        """Initial trial step t₀ of the line search: ``lr``."""
        return float(self.hp["lr"])

    # ------------------------------------------------------------ the loop
    @torch.no_grad()
    def step(self, closure: Callable[[], Any]) -> torch.Tensor:  # type: ignore[override]
        """Run up to ``max_iter`` iterations; return the loss at the start of the step."""
        self._check_closure(closure)
        st = self._state()
        ev = self._evaluate(closure)
        orig_loss = ev.loss
        evals_at_start = st["func_evals"] - 1
        status = self._iterations(closure, st, ev, evals_at_start)
        st["status"], st["message"], st["converged"] = status, STATUS[status], status == 1
        return orig_loss

    def _iterations(self, closure: Callable[[], Any], st: dict[str, Any], ev: Evaluation, start: int) -> int:
        """The iterations of one ``step`` from ``ev``; returns the :data:`STATUS` code it ended with."""
        hp = self.hp
        if float(ev.g.abs().max()) <= hp["tolerance_grad"]:
            return 1
        for n in range(1, hp["max_iter"] + 1):
            st["n_iter"] += 1
            if "prev_x" in st:
                s, y = ev.x - st["prev_x"], ev.g - st["prev_g"]
                if float(s.abs().max()) > 0:
                    self._update(st, s, y)
            if ev.stale:  # what the direction needs was not computed before the parameters moved
                ev = self._evaluate(closure, ev.x)
            d = self._direction(st, ev)
            gtd = float(ev.g.dot(d))
            if not gtd < 0:  # not a descent direction (g = 0 or a broken update)
                return 6
            t = self._first_step(st, ev, d)
            x0 = ev.x

            def phi(t_: float, x0: torch.Tensor = x0, d: torch.Tensor = d) -> Evaluation:
                return self._evaluate(closure, x0 + t_ * d)

            ls = hp["line_search_fn"]
            if ls == "strong_wolfe":
                t, ev_new, _ = strong_wolfe(phi, t, d, ev, gtd, tolerance_change=hp["tolerance_change"])
            elif ls == "backtracking":
                t, ev_new, _ = backtracking(phi, t, ev, gtd)
            else:
                ev_new = phi(t)
            if t == 0.0:  # no acceptable step along d
                if not ev.live:
                    self._scatter(ev.x)
                return 4
            if not ev_new.live:  # the line search returned an earlier trial point: move back to it
                self._scatter(ev_new.x)
            st["prev_x"], st["prev_g"] = ev.x, ev.g
            f_old, ev = ev.f, ev_new
            if float(ev.g.abs().max()) <= hp["tolerance_grad"]:
                return 1
            if n == hp["max_iter"] or st["func_evals"] - start >= hp["max_eval"]:
                return 5
            if float((t * d).abs().max()) <= hp["tolerance_change"]:
                return 2
            if abs(ev.f - f_old) < hp["tolerance_change"]:
                return 3
        return 5


def loop_hparams(lr_doc: str) -> list[Entry]:
    """The registry entries of the iteration-control hyperparameters that Newton, BFGS and L-BFGS share
    (as torch.optim.LBFGS); their defaults are each class's signature."""
    return [
        Range("lr", 0.1, 1.0, log=True, doc=lr_doc),
        Fixed("max_iter", doc="iterations per step(closure)"),
        Fixed("max_eval", doc="closure calls per step (default 1.25·max_iter)"),
        Fixed("tolerance_grad", doc="stop when max|∇J| ≤ tolerance_grad"),
        Fixed("tolerance_change", doc="stop when the step or loss change is smaller"),
        Choices("line_search_fn", LINE_SEARCHES, doc="line search"),
    ]
