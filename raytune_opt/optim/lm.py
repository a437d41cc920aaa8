"""Levenberg–Marquardt (seed §3.2): damped Gauss–Newton for non-linear least squares."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from raytune_opt.errors import ConfigError
from raytune_opt.optim import _checks
from raytune_opt.optim._flat import DEFAULT_MAX_DENSE_BYTES, Evaluation, FlatOptimizer
from raytune_opt.optim.registry import Choices, Fixed, Range, register

__all__ = ["DAMPING_UPDATES", "LM", "jacobian"]

#: Rules for adapting λ (``damping_update``).
DAMPING_UPDATES = ("nielsen", "marquardt")


def jacobian(r: torch.Tensor, params: list[torch.Tensor]) -> torch.Tensor:
    """J = ∂r/∂a (m × p) of the residual vector r built from ``params``, by the double-vjp trick.

    With a dummy u ∈ ℝᵐ, g(u) = Jᵀu = ∂(uᵀr)/∂a is one reverse pass with ``create_graph=True``; g is
    linear in u, so ∂(e_jᵀ g)/∂u = J e_j is column j of J. The p columns are one batched backward
    (``is_grads_batched=True`` over the rows of I_p): cost ~ one forward and a few reverse passes over
    the m residuals, never m separate passes (m may be 200 000 with p small). Falls back to p
    backward passes when an op has no batching rule.
    """
    m = r.numel()
    p = sum(q.numel() for q in params)
    if not r.requires_grad:
        return torch.zeros(m, p, dtype=r.dtype, device=r.device)
    u = torch.zeros_like(r, requires_grad=True)
    gs = torch.autograd.grad(r, params, u, create_graph=True, allow_unused=True, materialize_grads=True)
    g = torch.cat([x.reshape(-1) for x in gs])
    if not g.requires_grad:  # r does not depend on the parameters
        return torch.zeros(m, p, dtype=r.dtype, device=r.device)
    eye = torch.eye(p, dtype=r.dtype, device=r.device)
    try:
        (Jt,) = torch.autograd.grad(
            g, u, eye, retain_graph=True, is_grads_batched=True, materialize_grads=True
        )
    except RuntimeError:
        Jt = torch.stack(
            [
                torch.autograd.grad(g, u, eye[j], retain_graph=True, materialize_grads=True)[0]
                for j in range(p)
            ]
        )
    return Jt.reshape(p, m).T


class _ResidualEvaluation(Evaluation):
    """Residuals r at one point: cost f = ½‖r‖² and, on demand, the Jacobian J (and g = Jᵀ r)."""

    def __init__(self, x: torch.Tensor, r: torch.Tensor, opt: LM):
        self.r = r.detach().reshape(-1)
        super().__init__(x, 0.5 * self.r.dot(self.r), self._grad)
        self._r_graph = r.reshape(-1)
        self._opt = opt
        self._J: torch.Tensor | None = None

    def _grad(self) -> torch.Tensor:
        return self.J.T @ self.r

    @property
    def J(self) -> torch.Tensor:  # noqa: N802 (the seed's symbol)
        if self._J is None:
            if not self.live:
                raise RuntimeError("LM: the Jacobian was not computed before the parameters moved")
            with torch.enable_grad():
                self._J = jacobian(self._r_graph, self._opt._params).detach()
            self._r_graph = None
            self._opt._state()["jac_evals"] += 1
        return self._J

    @property
    def stale(self) -> bool:
        return self._J is None and not self.live


class LM(FlatOptimizer):
    """Levenberg–Marquardt / damped least squares (seed §3.2) for min ½‖r(a)‖².

    Step (seed):  Δa = (JᵀJ + λ I)⁻¹ Jᵀ r,   a_new = a_old − lr·Δa   (lr = 1: the seed's step),
    with r = prediction − observed (the residual vector returned by the closure) and J = ∂r/∂a
    computed by :func:`jacobian`; the system is solved by Cholesky. ``scale=True`` replaces I by
    Marquardt's diagonal scaling D = diag(JᵀJ) (kept non-decreasing across iterations, as MINPACK
    does, so a column that momentarily vanishes does not undo the damping).

    λ (state ``"damping"``) starts at λ₀ = ``damping``·max diag(JᵀJ) (``damping`` itself with
    ``scale=True``) and is adapted after every trial. A trial with a smaller cost is accepted, a
    rejected one leaves a unchanged and the system is solved again with the same J (no new
    Jacobian). ``damping_update`` selects the rule:

    - ``"marquardt"`` (the classic rule): accepted λ ← λ/ν, rejected λ ← λ·ν.
    - ``"nielsen"`` (default; Nielsen 1999, Madsen–Nielsen–Tingleff §3.2): with the gain ratio
      ρ = (F(a) − F(a_new)) / (L(0) − L(h)), L(0) − L(h) = Jᵀr·h − ½ hᵀJᵀJ h the decrease predicted
      by the Gauss–Newton model for the step h: accepted λ ← λ·max(1/3, 1 − (2ρ − 1)³), ν_k ← ν;
      rejected λ ← λ·max(ν_k, 1/t*), ν_k ← 2ν_k, where t* ∈ [0.1, 0.5] is MINPACK's step fraction
      after a failure — the minimiser gᵀh / (2 (F(a − h) − F(a) + gᵀh)) of the quadratic through the
      cost along the rejected step, 0.1 when ‖r‖ grew ten-fold — so a wild trial raises λ ten-fold
      at once instead of through a doubling sequence. It needs fewer evaluations than the classic
      rule on the MGH problems (benchmarks/solvers_mgh.py).

    A trial point costs one closure call; its Jacobian is computed from the same autograd graph
    only if the trial is accepted.

    Closure contract: ``step(closure)``; the closure re-evaluates the model and returns the RESIDUAL
    VECTOR r (any shape, flattened) WITHOUT calling ``backward()`` (``ConfigError`` if it did).
    ``closure_returns = "residuals"``. The objective minimised is the cost ½‖r‖², and ``step`` returns
    ½‖r‖² at the START of the step (like torch.optim.LBFGS returns the loss there). ``state`` counts
    ``func_evals`` (closure calls), ``jac_evals`` (Jacobians) and ``n_iter`` (accepted steps). All
    tensors of all groups are flattened into one vector a ∈ ℝᵖ; dense: refuses (``ConfigError``
    suggesting ``lbfgs``) when the p×p matrix JᵀJ would exceed ``max_dense_bytes``.

    Stopping (per ``step``): ``max_iter`` accepted steps or ``max_eval`` closure calls; max|Jᵀr| ≤
    ``tolerance_grad``; after an accepted step, relative cost decrease (F − F_new) ≤
    ``tolerance_change``·F or step ‖h‖ ≤ ``tolerance_change``·(‖a‖ + ``tolerance_change``) (MINPACK's
    ftol and xtol); cost 0; λ beyond 1e16·max D (no step decreases the cost).

    Args:
        lr: multiplier of the step Δa (1 = the LM step). max_iter, max_eval: budget per ``step``
            (max_eval defaults to 5·max_iter). tolerance_grad, tolerance_change: see above.
        damping: λ₀ relative to max diag(JᵀJ) (absolute with ``scale=True``). nu: ν > 1 of the λ update.
        scale: Marquardt's diag(JᵀJ) instead of I. damping_update: ``"nielsen"`` or ``"marquardt"``.
        max_dense_bytes: memory limit of the p×p normal matrix (default 2 GiB).
    """

    name = "lm"
    dense = True
    closure_returns = "residuals"

    def __init__(
        self,
        params: Any,
        lr: float = 1.0,
        max_iter: int = 20,
        max_eval: int | None = None,
        tolerance_grad: float = 1e-10,
        tolerance_change: float = 1e-10,
        damping: float = 1e-3,
        nu: float = 2.0,
        scale: bool = False,
        damping_update: str = "nielsen",
        max_dense_bytes: int = DEFAULT_MAX_DENSE_BYTES,
    ):
        n = self.name
        _checks.check_positive(n, "lr", lr)
        _checks.check_int(n, "max_iter", max_iter)
        max_eval = 5 * max_iter if max_eval is None else max_eval
        _checks.check_int(n, "max_eval", max_eval)
        _checks.check_nonneg(n, "tolerance_grad", tolerance_grad)
        _checks.check_nonneg(n, "tolerance_change", tolerance_change)
        _checks.check_positive(n, "damping", damping)
        _checks.check_positive(n, "nu", nu)
        if float(nu) <= 1.0:
            raise ConfigError.invalid(
                "lm.nu", nu, "a number > 1 (λ is multiplied by ν after a rejected step)"
            )
        _checks.check_choice(n, "scale", scale, (True, False))
        _checks.check_choice(n, "damping_update", damping_update, DAMPING_UPDATES)
        _checks.check_int(n, "max_dense_bytes", max_dense_bytes)
        defaults = dict(
            lr=lr,
            max_iter=max_iter,
            max_eval=max_eval,
            tolerance_grad=tolerance_grad,
            tolerance_change=tolerance_change,
            damping=damping,
            nu=nu,
            scale=scale,
            damping_update=damping_update,
            max_dense_bytes=max_dense_bytes,
        )
        super().__init__(params, defaults)

    def _state(self) -> dict[str, Any]:
        st = super()._state()
        st.setdefault("jac_evals", 0)
        return st

    def _evaluate(self, closure: Callable[[], Any], x: torch.Tensor | None = None) -> _ResidualEvaluation:
        x, r = self._call(closure, x)
        self._require_no_backward("the residual vector r")
        with torch.enable_grad():  # step() runs under no_grad; keep the reshape on the graph
            ev = _ResidualEvaluation(x, r, self)
        self._last_eval = ev
        return ev

    def _accept(self, st: dict[str, Any], rho: float) -> None:
        """λ after an accepted trial: λ/ν (marquardt) or λ·max(1/3, 1 − (2ρ − 1)³), ν_k ← ν (nielsen)."""
        if self.hp["damping_update"] == "marquardt":
            st["damping"] /= float(self.hp["nu"])
        else:
            st["damping"] *= max(1.0 / 3.0, 1.0 - (2.0 * rho - 1.0) ** 3)
            st["nu_k"] = float(self.hp["nu"])

    def _reject(self, st: dict[str, Any], t: float = 0.5) -> None:
        """λ after a rejected trial: λ·ν (marquardt) or λ·max(ν_k, 1/t), ν_k ← 2ν_k (nielsen)."""
        if self.hp["damping_update"] == "marquardt":
            st["damping"] *= float(self.hp["nu"])
        else:
            nu_k = st.get("nu_k", float(self.hp["nu"]))
            st["damping"] *= max(nu_k, 1.0 / t)
            st["nu_k"] = 2.0 * nu_k

    def _scaling(self, st: dict[str, Any], A: torch.Tensor) -> torch.Tensor:
        """D = I, or with ``scale`` Marquardt's D_k = max(D_{k−1}, diag(JᵀJ)) (floored above 0)."""
        if not self.hp["scale"]:
            return torch.ones(A.shape[0], dtype=A.dtype, device=A.device)
        D = A.diagonal().clone()
        if "scale_diag" in st:
            D = torch.maximum(D, st["scale_diag"])
        D = D.clamp_min(max(float(D.max()) * torch.finfo(D.dtype).eps, torch.finfo(D.dtype).tiny))
        st["scale_diag"] = D
        return D

    @torch.no_grad()
    def step(self, closure: Callable[[], Any]) -> torch.Tensor:  # type: ignore[override]
        """Run up to ``max_iter`` accepted LM steps; return ½‖r‖² at the start of the step."""
        self._check_closure(closure)
        hp = self.hp
        st = self._state()
        lr, tol = float(hp["lr"]), float(hp["tolerance_change"])
        evals_at_start = st["func_evals"]
        ev = self._evaluate(closure)
        orig_loss = ev.loss
        for _ in range(hp["max_iter"]):
            if ev.f == 0.0:
                break
            if ev.stale:
                ev = self._evaluate(closure, ev.x)
            J, r = ev.J, ev.r
            A, g = J.T @ J, J.T @ r
            if not bool(torch.isfinite(A).all() and torch.isfinite(g).all()):
                raise FloatingPointError("lm: the Jacobian or the residuals have non-finite entries")
            if float(g.abs().max()) <= hp["tolerance_grad"]:
                break
            D = self._scaling(st, A)
            if "damping" not in st:
                st["damping"] = float(hp["damping"]) * (
                    1.0 if hp["scale"] else max(float(A.diagonal().max()), 1e-300)
                )
            new, h = None, None
            budget_left = lambda: st["func_evals"] - evals_at_start < hp["max_eval"]  # noqa: E731
            while budget_left() and st["damping"] <= 1e16 * float(D.max()):
                L, info = torch.linalg.cholesky_ex(A + torch.diag(st["damping"] * D))
                if int(info) != 0:
                    self._reject(st)
                    continue
                h = lr * torch.cholesky_solve(g.unsqueeze(1), L).squeeze(1)  # a_new = a − h
                trial = self._evaluate(closure, ev.x - h)
                if math.isfinite(trial.f) and trial.f < ev.f:
                    predicted = float(g.dot(h)) - 0.5 * float(h.dot(A @ h))
                    self._accept(st, (ev.f - trial.f) / predicted if predicted > 0 else 1.0)
                    new = trial
                    break
                # MINPACK's quadratic interpolation of the cost along the rejected step: its minimiser
                # t* = gᵀh / (2 (F_trial − F + gᵀh)), bounded to [0.1, 0.5] (0.1 if ‖r‖ grew ten-fold)
                gh = float(g.dot(h))
                grew = trial.f - ev.f
                t = 0.1
                if math.isfinite(trial.f) and trial.f < 100.0 * ev.f and gh > 0 and grew + gh > 0:
                    t = min(0.5, max(0.1, gh / (2.0 * (grew + gh))))
                self._reject(st, t)
            if new is None:  # no trial decreased the cost: stay at the current point
                self._scatter(ev.x)
                break
            st["n_iter"] += 1
            small_f = ev.f - new.f <= tol * ev.f
            small_x = float(h.norm()) <= tol * (float(ev.x.norm()) + tol)
            ev = new
            if small_f or small_x or not budget_left():
                break
        return orig_loss


register(
    "lm",
    LM,
    kind="second-order",
    summary="Levenberg-Marquardt for least squares: closure returns residuals r, minimises ½‖r‖²",
    hparams=[
        Fixed("lr", doc="multiplier of the LM step Δa"),
        Fixed("max_iter", doc="accepted steps per step(closure)"),
        Fixed("max_eval", doc="closure calls per step (default 5·max_iter)"),
        Fixed("tolerance_grad", doc="stop when max|Jᵀr| ≤ tolerance_grad"),
        Fixed("tolerance_change", doc="relative cost decrease / step size stopping rule"),
        Range("damping", 1e-6, 1.0, log=True, doc="initial damping λ₀ (relative to max diag JᵀJ)"),
        Range("nu", 2.0, 10.0, log=True, doc="ν > 1: λ·ν after a rejected step (nielsen: ν doubles)"),
        Choices("scale", (False, True), doc="Marquardt's diagonal scaling diag(JᵀJ) instead of I"),
        Fixed("damping_update", doc="λ update rule: 'nielsen' (gain ratio) or 'marquardt' (λ/ν, λ·ν)"),
        Fixed("max_dense_bytes", doc="memory limit of the p×p matrix JᵀJ"),
    ],
)
