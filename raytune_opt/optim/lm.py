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

__all__ = ["DAMPING_UPDATES", "LM", "STATUS", "jacobian"]

#: Rules for adapting λ (``damping_update``): Moré's trust region (MINPACK lmder), or λ updated directly.
DAMPING_UPDATES = ("trust-region", "nielsen", "marquardt")

#: ``state["status"]`` after a ``step`` and what it means (MINPACK lmder's ``info`` codes where they exist).
#: ``converged`` is True for 0–4: the stated criterion held.
STATUS = {
    0: "the cost ½‖r‖² is 0",
    1: "relative cost reduction: actual and predicted ≤ tolerance_change",
    2: "relative step: ‖D·Δa‖ ≤ tolerance_change·‖D·a‖ (D the scaling)",
    3: "relative cost reduction and relative step both ≤ tolerance_change",
    4: "gradient: max_j |J_jᵀr| / (‖J_j‖·‖r‖) ≤ tolerance_grad (MINPACK's gtol: r orthogonal to J's columns)",
    5: "max_iter accepted steps or max_eval closure calls reached before a stopping test held",
    6: "tolerance_change is below machine precision: no further reduction of the cost is possible",
    7: "tolerance_change is below machine precision: no further improvement of a is possible",
    8: "the damping reached its bound (1e16 × the scale) without a step that decreases the cost",
}
_EPS = torch.finfo(torch.float64).eps
_MAX_DAMPING = 1e16  # λ range of the λ rules, relative to the scaling D
_STEP_BOUND = 100.0  # MINPACK's factor: the first trust region is 100·‖D a₀‖


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


class _Solver:
    """The damped Gauss–Newton steps at one Jacobian, for any λ, from one SVD.

    With the scaling d (d_j² = D_j) and J_s = J diag(d)⁻¹ = U S Vᵀ (a QR of J first when m > p), the
    step of (JᵀJ + λ D) h = −Jᵀr is h(λ) = −diag(d)⁻¹ V z(λ), z_i = s_i c_i / (s_i² + λ), c = Uᵀ r:
    each λ costs O(p²), and J's condition number is never squared (no JᵀJ is factorised).
    ‖D^½ h(λ)‖ = ‖z(λ)‖ decreases with λ; singular values below max(m, p)·eps·s_max count as 0 (the
    Gauss–Newton step is then the minimum-norm one).
    """

    def __init__(self, J: torch.Tensor, r: torch.Tensor, d: torch.Tensor):
        Js = J / d
        m, p = Js.shape
        if m > p:
            Q, R = torch.linalg.qr(Js)
            U, s, Vh = torch.linalg.svd(R)
            c = U.T @ (Q.T @ r)
        else:
            U, s, Vh = torch.linalg.svd(Js, full_matrices=False)
            c = U.T @ r
        self.d, self.s, self.c, self.Vh = d, s, c, Vh
        self.rank_ok = s > max(m, p) * _EPS * float(s.max())
        self.sc = s * c

    def z(self, lam: float) -> torch.Tensor:
        """z(λ) = s c / (s² + λ) (0 for the null space)."""
        if lam == 0.0:
            return torch.where(self.rank_ok, self.c / torch.where(self.rank_ok, self.s, 1.0), 0.0)
        return self.sc / (self.s * self.s + lam)

    def step(self, z: torch.Tensor) -> torch.Tensor:
        """h = −diag(d)⁻¹ V z."""
        return -(self.Vh.T @ z) / self.d

    def trust_region(self, delta: float, lam: float) -> tuple[float, torch.Tensor]:
        """λ ≥ 0 with ‖z(λ)‖ within 10 % of δ (0 when the Gauss–Newton step fits): MINPACK's lmpar.

        Moré's iteration λ ← λ + (ψ/δ − 1)·ψ²/(−ψψ'), ψ = ‖z(λ)‖ (Newton's method on 1/ψ − 1/δ),
        safeguarded in [l, u] with u = ‖S c‖/δ and l = the Newton step from 0 when J has full rank.
        """
        z = self.z(0.0)
        psi = float(z.norm())
        if psi <= 1.1 * delta:
            return 0.0, z
        s2 = self.s * self.s
        lo = 0.0  # a lower bound of the root: one Newton step from λ = 0 when J has full rank
        if bool(self.rank_ok.all()):
            lo = psi * psi * (psi - delta) / (delta * float((z * z / s2).sum()))
        gnorm = float(self.sc.norm())  # ‖J_sᵀ r‖
        hi = gnorm / delta if gnorm > 0 else _EPS
        lam = min(max(lam, lo), hi)
        if lam == 0.0:
            lam = gnorm / psi
        for _ in range(10):
            if lam <= 0.0:
                lam = max(torch.finfo(torch.float64).tiny, 0.001 * hi)
            z = self.sc / (s2 + lam)
            psi = float(z.norm())
            phi = psi - delta
            if abs(phi) <= 0.1 * delta:
                break
            if phi > 0:
                lo = max(lo, lam)
            else:
                hi = min(hi, lam)
            if _ == 9:
                break
            dpsi = -float((z * z / (s2 + lam)).sum()) / psi  # dψ/dλ
            lam = max(lo, lam - (phi / delta) * psi / dpsi)
        return lam, z


class LM(FlatOptimizer):
    """Levenberg–Marquardt / damped least squares (seed §3.2) for min ½‖r(a)‖².

    Step (seed):  Δa = (JᵀJ + λ D)⁻¹ Jᵀ r,   a_new = a_old − lr·Δa   (lr = 1: the seed's step),
    with r = prediction − observed (the residual vector returned by the closure) and J = ∂r/∂a
    computed by :func:`jacobian`. D is Marquardt's scaling (``scale=True``, the default): D_k =
    max(D_{k−1}, diag(JᵀJ)), kept non-decreasing across iterations as MINPACK lmder does, so the
    damping is invariant to the units of each parameter; ``scale=False`` takes D = I (the seed's
    λI). The system is solved from one SVD of J diag(D)^−½ per Jacobian (:class:`_Solver`), so J's
    condition number is not squared and every λ tried costs O(p²).

    ``damping_update`` chooses how λ (state ``"damping"``) is found:

    - ``"trust-region"`` (default; Moré 1978, MINPACK lmder): a trust region ‖D^½ Δa‖ ≤ δ, δ₀ =
      100·‖D^½ a₀‖; λ is the one whose step has length δ (0 when the Gauss–Newton step fits). With
      ρ = actual / predicted reduction of the cost: ρ ≤ ¼ shrinks δ (by MINPACK's quadratic
      interpolation factor in [0.1, 0.5]); ρ ≥ ¾ (or λ = 0) sets δ = 2‖D^½ Δa‖; a trial is
      accepted when ρ ≥ 10⁻⁴. The same iteration as SciPy's ``least_squares(method="lm")``.
    - ``"nielsen"`` (Nielsen 1999): accepted λ ← λ·max(1/3, 1 − (2ρ − 1)³), ν_k ← ν; rejected λ ←
      λ·max(ν_k, 1/t*), ν_k ← 2ν_k, with t* ∈ [0.1, 0.5] MINPACK's step fraction after a failure.
      λ₀ = ``damping`` (× max diag(JᵀJ) with ``scale=False``).
    - ``"marquardt"`` (the classic rule): accepted λ ← λ/ν, rejected λ ← λ·ν.

    For the λ rules λ stays within 1e16 of the scale (1e16·max diag(JᵀJ) with ``scale=False``).
    A trial point costs one closure call; its Jacobian is computed from the same autograd graph
    only if the trial is accepted.

    Stopping, per ``step`` (``state["status"]``, ``state["message"]``, ``state["converged"]``: see
    :data:`STATUS`; ``converged`` means one of the tests held): the gradient test of MINPACK's gtol (4),

        gnorm = max_j |J_jᵀ r| / (‖J_j‖ ‖r‖) ≤ ``tolerance_grad``   (columns J_j = 0 left out),

    the largest cosine of the angle between r and a column of J: 0 at a stationary point, and
    unchanged when r (and J) are multiplied by a constant or a parameter is rescaled;
    actual and predicted relative reductions of the cost ≤ ``tolerance_change`` (1, MINPACK's ftol);
    δ (λ rules: the accepted step ‖D^½ Δa‖) ≤ ``tolerance_change``·‖D^½ a‖ (2, MINPACK's xtol, in the
    scaled norm); cost 0 (0). Not converged: ``max_iter`` accepted steps or ``max_eval`` closure
    calls (5), tolerances below machine precision (6, 7), λ at its bound (8).

    Closure contract: ``step(closure)``; the closure re-evaluates the model and returns the RESIDUAL
    VECTOR r (any shape, flattened) WITHOUT calling ``backward()`` (``ConfigError`` if it did).
    ``closure_returns = "residuals"``. The objective minimised is the cost ½‖r‖², and ``step`` returns
    ½‖r‖² at the START of the step (like torch.optim.LBFGS returns the loss there). ``state`` counts
    ``func_evals`` (closure calls), ``jac_evals`` (Jacobians) and ``n_iter`` (accepted steps). All
    tensors of all groups are flattened into one vector a ∈ ℝᵖ; dense: refuses (``ConfigError``
    suggesting ``lbfgs``) when the p×p matrix would exceed ``max_dense_bytes``.

    Args:
        lr: multiplier of the step Δa (1 = the LM step). max_iter, max_eval: budget per ``step``
            (max_eval defaults to 5·max_iter). tolerance_grad, tolerance_change: see above.
        damping: λ₀ of the λ rules. nu: ν > 1 of the λ rules.
        scale: Marquardt's diag(JᵀJ) (default) instead of I. damping_update: ``"trust-region"``,
            ``"nielsen"`` or ``"marquardt"``. max_dense_bytes: memory limit of p×p matrices (2 GiB).
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
        scale: bool = True,
        damping_update: str = "trust-region",
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

    def _scaling(self, st: dict[str, Any], J: torch.Tensor) -> torch.Tensor:
        """d = D^½: 1, or with ``scale`` d_j = max(d_j of the last iteration, ‖J_j‖) (floored above 0)."""
        if not self.hp["scale"]:
            return torch.ones(J.shape[1], dtype=J.dtype, device=J.device)
        d = J.norm(dim=0)
        if "scale_diag" in st:
            d = torch.maximum(d, st["scale_diag"].sqrt())
        top = float(d.max())
        d = torch.where(d > 0, d, 1.0 if top == 0 else top)  # MINPACK: a zero column gets scale 1
        st["scale_diag"] = d * d
        return d

    @staticmethod
    def _gnorm(J: torch.Tensor, g: torch.Tensor, f: float) -> float:
        """max_j |J_jᵀ r| / (‖J_j‖ ‖r‖) over the non-zero columns of J, with g = Jᵀ r and f = ½‖r‖²."""
        cols = J.norm(dim=0)
        keep = cols > 0
        if not bool(keep.any()):
            return 0.0
        return float((g[keep].abs() / cols[keep]).max()) / math.sqrt(2.0 * f)

    @staticmethod
    def _diag_max(J: torch.Tensor) -> float:
        """max diag(JᵀJ) (1 when J = 0): the scale of λ without ``scale``."""
        return float(J.square().sum(0).max()) or 1.0

    def _finish(self, st: dict[str, Any], status: int) -> None:
        st["status"], st["message"], st["converged"] = status, STATUS[status], status <= 4

    @torch.no_grad()
    def step(self, closure: Callable[[], Any]) -> torch.Tensor:  # type: ignore[override]
        """Run up to ``max_iter`` accepted LM steps; return ½‖r‖² at the start of the step."""
        self._check_closure(closure)
        hp = self.hp
        st = self._state()
        evals_at_start = st["func_evals"]
        ev = self._evaluate(closure)
        orig_loss = ev.loss
        status = 5
        for _ in range(hp["max_iter"]):
            status, ev = self._iterate(closure, st, ev, evals_at_start)
            if status >= 0:
                break
            status = 5
        self._finish(st, status)
        return orig_loss

    def _iterate(
        self, closure: Callable[[], Any], st: dict[str, Any], ev: _ResidualEvaluation, start: int
    ) -> tuple[int, _ResidualEvaluation]:
        """One accepted step from ``ev``: ``(-1, new point)``, or ``(status, point)`` once a test held."""
        hp = self.hp
        lr, ftol, tol_grad = float(hp["lr"]), float(hp["tolerance_change"]), float(hp["tolerance_grad"])
        if ev.f == 0.0:
            return 0, ev
        if ev.stale:
            ev = self._evaluate(closure, ev.x)
        J, r = ev.J, ev.r
        g = J.T @ r
        if not bool(torch.isfinite(J).all() and torch.isfinite(r).all()):
            raise FloatingPointError("lm: the Jacobian or the residuals have non-finite entries")
        st["gnorm"] = gnorm = self._gnorm(J, g, ev.f)
        if gnorm <= tol_grad:
            return 4, ev
        d = self._scaling(st, J)
        solver = _Solver(J, r, d)
        xnorm = float((d * ev.x).norm())
        trust = hp["damping_update"] == "trust-region"
        if trust and "delta" not in st:
            st["delta"] = _STEP_BOUND * xnorm if xnorm > 0 else _STEP_BOUND
            st["first"] = True
        if not trust and "damping" not in st:
            st["damping"] = float(hp["damping"]) * (1.0 if hp["scale"] else self._diag_max(J))
        fnorm2 = 2.0 * ev.f  # ‖r‖²
        while True:
            if st["func_evals"] - start >= hp["max_eval"]:
                self._scatter(ev.x)
                return 5, ev
            if trust:
                lam, z = solver.trust_region(st["delta"], st.get("damping", 0.0))
                st["damping"] = lam
            else:
                if st["damping"] > _MAX_DAMPING * (1.0 if hp["scale"] else self._diag_max(J)):
                    self._scatter(ev.x)
                    return 8, ev
                lam = st["damping"]
                z = solver.z(lam)
            h = lr * solver.step(z)  # a_new = a + h
            pnorm = float((d * h).norm())
            if trust and st.get("first", False):  # until the first accepted step (MINPACK's iter = 1)
                st["delta"] = min(st["delta"], pnorm)
            trial = self._evaluate(closure, ev.x + h)
            f1 = trial.f if math.isfinite(trial.f) else math.inf
            actred = 1.0 - f1 / ev.f if 0.01 * f1 < ev.f else -1.0  # 0.1‖r_new‖ < ‖r‖
            gh = float(g.dot(h))
            Jh2 = float((J @ h).square().sum())
            prered = (-2.0 * gh - Jh2) / fnorm2  # predicted relative reduction of the cost
            dirder = gh / fnorm2  # MINPACK: −(‖Jh‖² + λ‖D^½h‖²)/‖r‖²
            ratio = actred / prered if prered != 0 else 0.0
            if trust:
                self._trust_update(st, ratio, actred, dirder, pnorm, f1, ev.f)
            accepted = ratio >= 1e-4 if trust else (math.isfinite(f1) and f1 < ev.f)
            if not trust:
                if accepted:
                    self._accept(st, ratio if prered > 0 else 1.0)
                else:  # MINPACK's step fraction t* ∈ [0.1, 0.5] after a failure (0.1 if ‖r‖ grew ten-fold)
                    t = 0.1
                    if math.isfinite(f1) and f1 < 100.0 * ev.f and gh < 0 and (f1 - ev.f) - gh > 0:
                        t = min(0.5, max(0.1, -gh / (2.0 * ((f1 - ev.f) - gh))))
                    self._reject(st, t)
            if accepted:
                st["n_iter"] += 1
                st.pop("first", None)
                xnorm = float((d * trial.x).norm())
            small_f = abs(actred) <= ftol and prered <= ftol and ratio <= 2.0
            size = st["delta"] if trust else (pnorm if accepted else math.inf)
            small_x = size <= ftol * xnorm
            if not accepted:
                self._scatter(ev.x)
            now = trial if accepted else ev
            if small_f or small_x:
                return (3 if small_f and small_x else (1 if small_f else 2)), now
            if abs(actred) <= _EPS and prered <= _EPS and ratio <= 2.0:
                return 6, now
            if size <= _EPS * xnorm:
                return 7, now
            if accepted:
                return -1, trial

    def _trust_update(
        self,
        st: dict[str, Any],
        ratio: float,
        actred: float,
        dirder: float,
        pnorm: float,
        f1: float,
        f: float,
    ) -> None:
        """MINPACK lmder's update of δ (and λ) from the ratio ρ of actual to predicted reduction."""
        if ratio <= 0.25:
            temp = 0.5 if actred >= 0 else 0.5 * dirder / (dirder + 0.5 * actred)
            if 0.01 * f1 >= f or temp < 0.1:
                temp = 0.1
            st["delta"] = temp * min(st["delta"], pnorm / 0.1)
            st["damping"] = st["damping"] / temp
        elif st["damping"] == 0.0 or ratio >= 0.75:
            st["delta"] = pnorm / 0.5
            st["damping"] = 0.5 * st["damping"]


register(
    "lm",
    LM,
    kind="second-order",
    summary="Levenberg-Marquardt for least squares: closure returns residuals r, minimises ½‖r‖²",
    hparams=[
        Fixed("lr", doc="multiplier of the LM step Δa"),
        Fixed("max_iter", doc="accepted steps per step(closure)"),
        Fixed("max_eval", doc="closure calls per step (default 5·max_iter)"),
        Fixed("tolerance_grad", doc="stop when max_j |J_jᵀr| / (‖J_j‖‖r‖) ≤ tolerance_grad (MINPACK's gtol)"),
        Fixed("tolerance_change", doc="relative cost decrease / step size stopping rule"),
        Range(
            "damping",
            1e-6,
            1.0,
            log=True,
            doc="nielsen/marquardt: initial damping λ₀ (relative to the scale)",
        ),
        Range(
            "nu",
            2.0,
            10.0,
            log=True,
            doc="nielsen/marquardt: ν > 1, λ·ν after a rejected step (nielsen: ν doubles)",
            bounds=(1.0, math.inf),
        ),
        Choices(
            "scale",
            (True, False),
            doc="Marquardt/Moré scaling of the damping by the columns of J, instead of I",
        ),
        Choices(
            "damping_update",
            ("trust-region", "nielsen", "marquardt"),
            doc="MINPACK's trust region (Moré's λ), Nielsen's gain-ratio rule, or Marquardt's λ/ν, λ·ν",
        ),
        Fixed("max_dense_bytes", doc="memory limit of the p×p matrix JᵀJ"),
    ],
)
