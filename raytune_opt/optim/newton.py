"""Newton's method (seed §3.2): exact Hessian, Cholesky solve with Levenberg damping, line search."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from raytune_opt.errors import ConfigError
from raytune_opt.optim._flat import DEFAULT_MAX_DENSE_BYTES, Evaluation
from raytune_opt.optim.linesearch import LineSearchOptimizer, loop_hparams
from raytune_opt.optim.registry import Fixed, Range, register

__all__ = ["Newton", "damped_newton_direction", "hessian"]


def hessian(g: torch.Tensor, params: list[torch.Tensor]) -> torch.Tensor:
    """H = ∂²J/∂a² from the gradient g = ∇_a J built with ``create_graph=True``.

    Row i is ∂g_i/∂a: one batched double-backward over the n rows of the identity
    (``torch.autograd.grad(g, params, eye(n), is_grads_batched=True)``), falling back to n
    separate backward passes when an op has no batching rule. Symmetrised: H ← ½ (H + Hᵀ).
    """
    n = g.numel()
    if not g.requires_grad:
        return torch.zeros(n, n, dtype=g.dtype, device=g.device)
    eye = torch.eye(n, dtype=g.dtype, device=g.device)
    try:
        rows = torch.autograd.grad(
            g,
            params,
            eye,
            retain_graph=True,
            is_grads_batched=True,
            allow_unused=True,
            materialize_grads=True,
        )
        H = torch.cat([r.reshape(n, -1) for r in rows], dim=1)
    except RuntimeError:
        H = torch.stack(
            [
                torch.cat(
                    [
                        r.reshape(-1)
                        for r in torch.autograd.grad(
                            g, params, eye[i], retain_graph=True, allow_unused=True, materialize_grads=True
                        )
                    ]
                )
                for i in range(n)
            ]
        )
    return 0.5 * (H + H.T)


def damped_newton_direction(
    H: torch.Tensor, g: torch.Tensor, mu0: float = 1e-3
) -> tuple[torch.Tensor, float]:
    """d = −(H + μ I)⁻¹ g by Cholesky, with μ = 0 when H is positive definite.

    Otherwise (Nocedal & Wright Alg. 3.3, Levenberg damping) μ starts at max(β − min diag H, β) with
    β = ``mu0`` · max(1, mean |diag H|) and doubles (×10 after the first try) until the Cholesky
    factorisation of H + μ I succeeds. Returns ``(d, μ)``.
    """
    n = H.shape[0]
    eye = torch.eye(n, dtype=H.dtype, device=H.device)
    L, info = torch.linalg.cholesky_ex(H)
    mu = 0.0
    if int(info) != 0 or not bool(torch.isfinite(L).all()):
        diag = H.diagonal()
        beta = mu0 * max(1.0, float(diag.abs().mean()))
        mu = max(beta - float(diag.min()), beta)
        for _ in range(200):
            L, info = torch.linalg.cholesky_ex(H + mu * eye)
            if int(info) == 0 and bool(torch.isfinite(L).all()):
                break
            mu *= 10.0
        else:
            raise FloatingPointError(
                "Newton: H + μI is not positive definite for any μ (non-finite Hessian?)"
            )
    d = -torch.cholesky_solve(g.unsqueeze(1), L).squeeze(1)
    return d, mu


class _NewtonEvaluation(Evaluation):
    """An evaluation whose gradient keeps its graph, so the Hessian can be taken on demand."""

    def __init__(self, x: torch.Tensor, loss: torch.Tensor, opt: Newton):
        super().__init__(x, loss, self._grad)
        self._loss_graph = loss
        self._opt = opt
        self._g_graph: torch.Tensor | None = None
        self._H: torch.Tensor | None = None

    def _grad(self) -> torch.Tensor:
        with torch.enable_grad():
            self._g_graph = self._opt._grad_of(self._loss_graph, create_graph=True)
        return self._g_graph.detach()

    @property
    def stale(self) -> bool:
        return self._H is None and not self.live

    @property
    def H(self) -> torch.Tensor:  # noqa: N802 (the seed's symbol)
        if self._H is None:
            _ = self.g
            if not self.live:
                raise RuntimeError("Newton: the Hessian was not computed before the parameters moved")
            with torch.enable_grad():
                self._H = hessian(self._g_graph, self._opt._params).detach()
            self._g_graph = self._loss_graph = None
        return self._H


class Newton(LineSearchOptimizer):
    """Newton's method / Newton–Raphson (seed §3.2) with an exact Hessian and a line search.

    Update (seed):  a_new = a_old − H⁻¹ ∇_a J   (θ_new = θ_old − (∂²L/∂θ²)⁻¹ ∂L/∂θ for a negative
    log-likelihood J = −log L: maximum likelihood by Newton–Raphson).
    Here a_new = a_old + t d with d = −(H + μI)⁻¹ ∇_a J solved by Cholesky; μ = 0 when H is positive
    definite, otherwise Levenberg damping: μ increased until the factorisation succeeds
    (:func:`damped_newton_direction`; the last μ is in ``state["mu"]``). The step t starts at ``lr`` = 1
    and is chosen by ``line_search_fn``: ``"backtracking"`` (Armijo, default: the full Newton step is
    accepted near the minimum, so convergence is quadratic) or ``"strong_wolfe"``, or None (t = lr).

    Closure contract: ``step(closure)``; the closure re-evaluates the model and returns the scalar
    loss WITHOUT calling ``backward()``: Newton differentiates it itself, the gradient by
    ``torch.autograd.grad(create_graph=True)`` and the exact Hessian by a batched double-backward
    (:func:`hessian`). A closure that called ``backward()`` raises ``ConfigError``.
    ``closure_returns = "loss"``. ``step`` returns the loss at the START of the step. A trial step
    rejected by the line search never pays for a gradient or Hessian. All tensors of all groups are
    flattened into one vector; dense: refuses (``ConfigError`` suggesting ``lbfgs``) when the n×n Hessian
    would exceed ``max_dense_bytes``.

    Args:
        lr: initial step t₀ (1 = the Newton step). max_iter: iterations per ``step``. max_eval:
            closure calls per ``step`` (default 1.25·max_iter). tolerance_grad, tolerance_change: the
            stopping rules of torch.optim.LBFGS. line_search_fn: ``"backtracking"`` (default),
            ``"strong_wolfe"`` or None. damping: β of the Levenberg damping (relative to mean |diag H|).
        max_dense_bytes: memory limit of the Hessian (default 2 GiB).
    """

    name = "newton"
    dense = True
    closure_returns = "loss"

    def __init__(
        self,
        params: Any,
        lr: float = 1.0,
        max_iter: int = 20,
        max_eval: int | None = None,
        tolerance_grad: float = 1e-7,
        tolerance_change: float = 1e-9,
        line_search_fn: str | None = "backtracking",
        damping: float = 1e-3,
        max_dense_bytes: int = DEFAULT_MAX_DENSE_BYTES,
    ):
        defaults = self.common_defaults(
            lr, max_iter, max_eval, tolerance_grad, tolerance_change, line_search_fn
        )
        defaults.update(damping=damping, max_dense_bytes=max_dense_bytes)
        self._check_common(self.name, defaults)
        from raytune_opt.optim import _checks

        _checks.check_positive(self.name, "damping", damping)
        super().__init__(params, defaults)

    def _evaluate(self, closure: Callable[[], Any], x: torch.Tensor | None = None) -> Evaluation:
        x, loss = self._call(closure, x)
        self._require_no_backward("the loss")
        if loss.numel() != 1:
            raise ConfigError(
                f"newton: the closure returned a tensor of shape {tuple(loss.shape)}: "
                "expected the scalar loss"
            )
        with torch.enable_grad():  # step() runs under no_grad; keep the reshape on the graph
            ev = _NewtonEvaluation(x, loss.reshape(()), self)
        self._last_eval = ev
        return ev

    def _direction(self, st: dict[str, Any], ev: Evaluation) -> torch.Tensor:
        assert isinstance(ev, _NewtonEvaluation)
        d, st["mu"] = damped_newton_direction(ev.H, ev.g, self.hp["damping"])
        return d


register(
    "newton",
    Newton,
    kind="second-order",
    summary="Newton-Raphson: exact Hessian, Cholesky with Levenberg damping, line search; closure-driven",
    hparams=[
        *loop_hparams("initial step t₀ (1 = full Newton step)"),
        Range("damping", 1e-6, 1e-1, log=True, doc="Levenberg damping β when H is not positive definite"),
        Fixed("max_dense_bytes", doc="memory limit of the n×n Hessian"),
    ],
)
