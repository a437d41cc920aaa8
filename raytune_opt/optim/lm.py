"""Levenberg–Marquardt (seed §3.2): damped Gauss–Newton for non-linear least squares."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from raytune_opt.errors import ConfigError
from raytune_opt.optim import _checks
from raytune_opt.optim._flat import DEFAULT_MAX_DENSE_BYTES, Evaluation, FlatOptimizer
from raytune_opt.optim.registry import HParam, register

__all__ = ["LM", "jacobian"]


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
    def J(self) -> torch.Tensor:
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

    Step (seed):  Δa = (JᵀJ + λ I)⁻¹ Jᵀ r,   a_new = a_old − Δa,
    with r = prediction − observed (the residual vector returned by the closure) and J = ∂r/∂a
    computed by :func:`jacobian`. ``scale=True`` replaces I by Marquardt's diagonal scaling
    D = diag(JᵀJ) (kept non-decreasing across iterations, as MINPACK does, so a column that
    vanishes does not undo the damping). The step is a_new = a_old − lr·Δa (lr = 1 by default).
    λ (``damping``, state ``"damping"``) is adapted: a trial with a smaller cost is accepted and
    λ ← λ/ν; a rejected trial leaves a unchanged, λ ← λ·ν, and the system is solved again with the
    same J (no new Jacobian). A trial point costs one closure call; its Jacobian is computed from the
    same autograd graph only if the trial is accepted.

    Closure contract: ``step(closure)``; the closure re-evaluates the model and returns the RESIDUAL
    VECTOR r (any shape, flattened) WITHOUT calling ``backward()`` (``ConfigError`` if it did).
    ``closure_returns = "residuals"``. The objective is the cost ½‖r‖²: ``step`` returns ½‖r‖² at the
    START of the step (like torch.optim.LBFGS returns the loss there). ``state`` counts ``func_evals``
    (closure calls), ``jac_evals`` (Jacobians) and ``n_iter`` (accepted steps). All tensors of all groups
    are flattened into one vector a ∈ ℝᵖ; dense: refuses (``ConfigError`` suggesting ``lbfgs``) when the
    p×p matrix JᵀJ would exceed ``max_dense_bytes``.

    Stopping (per ``step``): ``max_iter`` accepted steps or ``max_eval`` closure calls; max|Jᵀr| ≤
    ``tolerance_grad``; after an accepted step, relative cost decrease (f − f_new) ≤ ``tolerance_change``·f
    or step ‖Δa‖ ≤ ``tolerance_change``·(‖a‖ + ``tolerance_change``) (MINPACK's ftol and xtol); cost 0;
    λ beyond 1e16.

    Args:
        lr: multiplier of the step Δa (1 = the LM step). max_iter, max_eval: budget per ``step``
            (max_eval defaults to 5·max_iter). tolerance_grad, tolerance_change: see above.
        damping: initial λ. nu: ν > 1, the factor of the λ update. scale: Marquardt's diag(JᵀJ).
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
        nu: float = 10.0,
        scale: bool = False,
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
            max_dense_bytes=max_dense_bytes,
        )
        super().__init__(params, defaults)

    def _state(self) -> dict[str, Any]:
        st = super()._state()
        st.setdefault("jac_evals", 0)
        st.setdefault("damping", float(self.hp["damping"]))
        return st

    def _evaluate(self, closure: Callable[[], Any], x: torch.Tensor | None = None) -> _ResidualEvaluation:
        x, r = self._call(closure, x)
        self._require_no_backward("the residual vector r")
        with torch.enable_grad():  # step() runs under no_grad; keep the reshape on the graph
            ev = _ResidualEvaluation(x, r, self)
        self._last_eval = ev
        return ev

    @torch.no_grad()
    def step(self, closure: Callable[[], Any]) -> torch.Tensor:  # type: ignore[override]
        """Run up to ``max_iter`` accepted LM steps; return ½‖r‖² at the start of the step."""
        self._check_closure(closure)
        hp = self.hp
        st = self._state()
        nu, lr, tol = float(hp["nu"]), float(hp["lr"]), float(hp["tolerance_change"])
        evals_at_start = st["func_evals"]
        ev = self._evaluate(closure)
        orig_loss = ev.loss
        accepted = 0
        while accepted < hp["max_iter"] and ev.f > 0:
            if ev.stale:
                ev = self._evaluate(closure, ev.x)
            J, r = ev.J, ev.r
            A = J.T @ J
            g = J.T @ r
            if not bool(torch.isfinite(A).all()):
                raise FloatingPointError("lm: the Jacobian has non-finite entries")
            if float(g.abs().max()) <= hp["tolerance_grad"]:
                break
            if hp["scale"]:
                D = A.diagonal().clone()
                if "scale_diag" in st:
                    D = torch.maximum(D, st["scale_diag"])
                D = D.clamp_min(torch.finfo(D.dtype).tiny ** 0.5 + float(D.max()) * 1e-30)
                st["scale_diag"] = D
            else:
                D = torch.ones_like(g)
            new = None
            while st["func_evals"] - evals_at_start < hp["max_eval"] and st["damping"] <= 1e16:
                L, info = torch.linalg.cholesky_ex(A + st["damping"] * torch.diag(D))
                if int(info) != 0:
                    st["damping"] *= nu
                    continue
                delta = torch.cholesky_solve(g.unsqueeze(1), L).squeeze(1)
                trial = self._evaluate(closure, ev.x - lr * delta)
                if math.isfinite(trial.f) and trial.f < ev.f:
                    st["damping"] /= nu
                    new = trial
                    break
                st["damping"] *= nu
            if new is None:  # no decrease: stay at the current point
                self._scatter(ev.x)
                break
            accepted += 1
            st["n_iter"] += 1
            small_f = ev.f - new.f <= tol * ev.f
            small_x = float((lr * delta).norm()) <= tol * (float(ev.x.norm()) + tol)
            ev = new
            if small_f or small_x:
                break
            if st["func_evals"] - evals_at_start >= hp["max_eval"]:
                break
        return orig_loss


register(
    "lm",
    LM,
    kind="second-order",
    summary="Levenberg-Marquardt for least squares: closure returns residuals r, minimises ½‖r‖²",
    hparams=[
        HParam("lr", 1.0, doc="multiplier of the LM step Δa"),
        HParam("max_iter", 20, doc="accepted steps per step(closure)"),
        HParam("max_eval", None, doc="closure calls per step (default 5·max_iter)"),
        HParam("tolerance_grad", 1e-10, doc="stop when max|Jᵀr| ≤ tolerance_grad"),
        HParam("tolerance_change", 1e-10, doc="relative cost decrease / step size stopping rule"),
        HParam("damping", 1e-3, 1e-6, 1e2, log=True, doc="initial damping λ"),
        HParam("nu", 10.0, 2.0, 10.0, log=True, doc="λ ← λ/ν after an accepted, λ·ν after a rejected step"),
        HParam(
            "scale", False, choices=(False, True), doc="Marquardt's diagonal scaling diag(JᵀJ) instead of I"
        ),
        HParam("max_dense_bytes", DEFAULT_MAX_DENSE_BYTES, doc="memory limit of the p×p matrix JᵀJ"),
    ],
)
