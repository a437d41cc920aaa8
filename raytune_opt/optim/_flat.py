"""Flat-vector view of an optimizer's parameters, shared by Newton, BFGS, L-BFGS and LM.

The second-order and quasi-Newton solvers work on one vector a ∈ ℝⁿ: every parameter tensor of
every group, flattened and concatenated in ``param_groups`` order. :class:`FlatOptimizer` owns that
view (gather / scatter of the parameters and gradients), the solver hyperparameters (global: every
group must carry the same values), the dense-memory guard and the bookkeeping of closure
evaluations; :class:`Evaluation` is one closure call: the loss at a point and its gradient.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from raytune_opt.errors import ConfigError, ConfigTypeError

__all__ = ["Evaluation", "FlatOptimizer", "flat_grad", "flat_params", "set_flat_params"]

#: Default limit for an n×n matrix held by a dense method (``max_dense_bytes``): 2 GiB.
DEFAULT_MAX_DENSE_BYTES = 2**31


def flat_params(params: Sequence[torch.Tensor]) -> torch.Tensor:
    """a = concat(p.reshape(-1) for p in params), a new tensor (never a view of a parameter)."""
    return (
        torch.cat([p.detach().reshape(-1) for p in params])
        if len(params) > 1
        else params[0].detach().reshape(-1).clone()
    )


def flat_grad(grads: Sequence[torch.Tensor | None], params: Sequence[torch.Tensor]) -> torch.Tensor:
    """∇_a J as one vector: the gradients concatenated like :func:`flat_params`, zeros where ``None``."""
    parts = [
        torch.zeros(p.numel(), dtype=p.dtype, device=p.device) if g is None else g.reshape(-1)
        for g, p in zip(grads, params, strict=True)
    ]
    return torch.cat(parts) if len(parts) > 1 else parts[0].clone()


@torch.no_grad()
def set_flat_params(params: Sequence[torch.Tensor], a: torch.Tensor) -> None:
    """Scatter the vector ``a`` back into the parameter tensors, in place."""
    offset = 0
    for p in params:
        n = p.numel()
        p.copy_(a[offset : offset + n].view_as(p))
        offset += n


class Evaluation:
    """One closure call at the point ``x``: the loss ``f`` and, on demand, the flat gradient ``g``.

    ``grad_fn`` computes g when first asked (Newton and LM derive it from the autograd graph of the
    closure's output, so a trial point that is rejected never pays for it). ``live`` is ``False`` once
    another point has been evaluated: the parameters have moved, so the graph can no longer be
    differentiated and anything not computed yet must be re-evaluated.
    """

    def __init__(
        self, x: torch.Tensor, loss: torch.Tensor, grad_fn: Callable[[], torch.Tensor] | None = None
    ):
        self.x = x
        self.loss = loss.detach()
        self.f = float(self.loss)
        self._grad_fn = grad_fn
        self._g: torch.Tensor | None = None
        self.live = True

    @property
    def g(self) -> torch.Tensor:
        if self._g is None:
            if self._grad_fn is None or not self.live:
                raise RuntimeError("Evaluation.g: the gradient was not computed before the parameters moved")
            self._g = self._grad_fn()
        return self._g

    @property
    def stale(self) -> bool:
        """True when a derivative the solver needs here can no longer be computed (re-evaluate)."""
        return self._g is None and not self.live

    @g.setter
    def g(self, value: torch.Tensor) -> None:
        self._g = value


class FlatOptimizer(torch.optim.Optimizer):
    """Base of the closure-driven solvers: flat parameter vector, global hyperparameters, counters.

    Subclasses set ``name`` (registry name, used in error messages), ``dense`` (``True`` when the
    method holds an n×n matrix) and ``closure_returns`` (``"loss"`` or ``"residuals"``). All solver
    state lives in ``self.state[first parameter]`` (like ``torch.optim.LBFGS``), so ``state_dict()``
    and ``load_state_dict()`` round-trip it.
    """

    name = "flat"
    dense = False
    closure_returns = "loss"

    def __init__(self, params: Any, defaults: dict[str, Any]):
        if isinstance(params, torch.Tensor):
            raise ConfigTypeError(
                f"{self.name}: params = a single Tensor is not allowed: expected an iterable of tensors "
                "or parameter-group dicts"
            )
        params = list(params)
        if not params:
            raise ConfigError(f"{self.name}: params is empty: expected at least one tensor to optimize")
        super().__init__(params, defaults)
        self._ready = True
        self._setup()

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        if getattr(self, "_ready", False):
            self._setup()

    # ---------------------------------------------------------------- set-up and checks
    def _setup(self) -> None:
        """Collect the parameters, check they can share one flat vector and the hyperparameters agree."""
        self._params: list[torch.Tensor] = [p for g in self.param_groups for p in g["params"]]
        if not self._params:
            raise ConfigError(f"{self.name}: params is empty: expected at least one tensor to optimize")
        first = self._params[0]
        for p in self._params:
            if not p.is_floating_point():
                raise ConfigTypeError(
                    f"{self.name}: a parameter has dtype {p.dtype}: expected a floating dtype"
                )
            if p.dtype != first.dtype or p.device != first.device:
                raise ConfigError(
                    f"{self.name}: parameters mix dtypes/devices ({first.dtype}@{first.device} and "
                    f"{p.dtype}@{p.device}): the flattened solver needs one dtype and one device"
                )
            if p.is_sparse:
                raise ConfigError(f"{self.name}: sparse parameters are not supported")
        g0 = self.param_groups[0]
        for i, g in enumerate(self.param_groups[1:], start=1):
            for key in self.defaults:
                if g[key] != g0[key]:
                    raise ConfigError(
                        f"{self.name}: param_groups[{i}].{key} = {g[key]!r} differs from "
                        f"param_groups[0].{key} = {g0[key]!r}: {self.name} flattens all groups into one "
                        "vector, so its hyperparameters must be the same in every group"
                    )
        self._numel = sum(p.numel() for p in self._params)
        if self.dense:
            self._check_dense(self._numel, g0["max_dense_bytes"])

    def _check_dense(self, n: int, limit: int) -> None:
        need = n * n * self._params[0].element_size()
        if need > limit:
            raise ConfigError(
                f"{self.name}: {n} parameters need an {n}×{n} matrix of {need / 2**30:.2f} GiB, more than "
                f"max_dense_bytes = {limit} ({limit / 2**30:.2f} GiB): use 'lbfgs' (memory linear in n), "
                "or raise max_dense_bytes"
            )

    @property
    def hp(self) -> dict[str, Any]:
        """The solver hyperparameters (every group holds the same values)."""
        return self.param_groups[0]

    # ---------------------------------------------------------------- flat vector and state
    def _state(self) -> dict[str, Any]:
        st = self.state[self._params[0]]
        st.setdefault("func_evals", 0)
        st.setdefault("n_iter", 0)
        return st

    def _gather(self) -> torch.Tensor:
        return flat_params(self._params)

    def _scatter(self, x: torch.Tensor) -> None:
        set_flat_params(self._params, x)

    def _call(self, closure: Callable[[], Any], x: torch.Tensor | None) -> Any:
        """Move to ``x`` (if given), clear the grads and call ``closure`` with autograd on."""
        if x is not None:
            self._scatter(x)
        else:
            x = self._gather()
        for p in self._params:
            p.grad = None
        last = getattr(self, "_last_eval", None)
        if last is not None:
            last.live = False
        st = self._state()
        st["func_evals"] += 1
        with torch.enable_grad():
            out = closure()
        if not isinstance(out, torch.Tensor):
            raise ConfigTypeError(
                f"{self.name}: the closure returned {type(out).__name__}: expected a tensor "
                f"({'the residual vector r' if self.closure_returns == 'residuals' else 'the scalar loss'})"
            )
        return x, out

    def _require_no_backward(self, what: str) -> None:
        """Newton and LM differentiate the closure's output themselves: it must not call backward()."""
        if any(p.grad is not None for p in self._params):
            raise ConfigError(
                f"{self.name}: the closure called backward() (a parameter has .grad set): "
                f"{self.name}'s closure must only return {what} WITHOUT calling backward(); "
                f"{self.name} computes the derivatives itself from the autograd graph"
            )

    def _grad_of(self, out: torch.Tensor, create_graph: bool = False) -> torch.Tensor:
        """∇_a out, flat, by ``torch.autograd.grad`` (zeros for parameters ``out`` does not depend on)."""
        if not out.requires_grad:
            return torch.zeros(self._numel, dtype=self._params[0].dtype, device=self._params[0].device)
        grads = torch.autograd.grad(
            out, self._params, create_graph=create_graph, allow_unused=True, materialize_grads=True
        )
        return torch.cat([g.reshape(-1) for g in grads])

    def _evaluate_loss(self, closure: Callable[[], Any], x: torch.Tensor | None = None) -> Evaluation:
        """The BFGS / L-BFGS closure contract: the closure returns the loss and may or may not backward.

        Grads are set to ``None`` before the call; if the closure called ``loss.backward()`` they are
        read from ``p.grad`` (``None`` → 0), otherwise computed by ``torch.autograd.grad(loss, params)``.
        """
        x, loss = self._call(closure, x)
        if loss.numel() != 1:
            raise ConfigError(
                f"{self.name}: the closure returned a tensor of shape {tuple(loss.shape)}: "
                "expected the scalar loss"
            )
        if all(p.grad is None for p in self._params):
            with torch.enable_grad():
                g = self._grad_of(loss.reshape(()))
        else:
            g = flat_grad([p.grad for p in self._params], self._params)
        ev = Evaluation(x, loss.reshape(()))
        ev.g = g
        self._last_eval = ev
        return ev

    def _check_closure(self, closure: Any) -> None:
        if closure is None or not callable(closure):
            what = "the residual vector r" if self.closure_returns == "residuals" else "the loss"
            raise ConfigError(
                f"{self.name}.step(closure): closure = {closure!r} is not allowed: expected a callable that "
                f"re-evaluates the model and returns {what}"
            )
