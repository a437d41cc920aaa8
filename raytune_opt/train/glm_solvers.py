"""The GLM solvers of ``raytune_opt.glm`` as optimizers of the ``glm-*`` tasks, so one tuning run
can compare IRLS with Newton, L-BFGS, LM and Adam on the same model and data.

``optimizer: "irls"`` (Fisher scoring) or ``"irls-lm"`` (the seed's damped IRLS) on a task whose
spec carries a ``glm_family`` (a ``raytune_opt.glm.families.Family`` with its link): epoch k sets the
linear predictor's (β, b) to the k-th iterate of
``raytune_opt.glm.fit(X, y, family, method, max_iter=k)`` from the same start, so a checkpoint
holds only the weights and the iteration count and resuming is exact. (Each epoch refits from the
start: k iterations at epoch k; GLMs converge in a handful of iterations.)
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from raytune_opt.errors import ConfigError
from raytune_opt.glm.families import Family, get_family

__all__ = ["GLM_METHODS", "GLMSolver"]

GLM_METHODS = ("irls", "irls-lm")


class GLMSolver(torch.optim.Optimizer):
    """``raytune_opt.glm.fit(method=...)`` driving an ``nn.Linear`` with one output: step k → k-th iterate.

    The design matrix is ``[X, 1]`` (the last coefficient is the bias); fitting runs in float64.
    """

    closure_returns = "loss"

    def __init__(
        self, module: nn.Module, method: str, family: Family | str, x: torch.Tensor, y: torch.Tensor
    ) -> None:
        if method not in GLM_METHODS:
            raise ConfigError.unknown("optimizer", method, GLM_METHODS)
        if not isinstance(module, nn.Linear) or module.out_features != 1 or module.bias is None:
            raise ConfigError(f"optimizer {method!r} fits a GLM linear predictor (nn.Linear with one output)")
        super().__init__(module.parameters(), {"lr": 1.0, "iterations": 0})
        self.module, self.method, self.family = module, method, get_family(family)
        self.x1 = torch.cat([x.double(), torch.ones(len(x), 1, dtype=torch.float64)], dim=1)
        self.y = y.double()

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Set (β, b) to the solver's next iterate; returns ``closure()`` if given (the loss before)."""
        from raytune_opt import glm

        loss = closure() if closure is not None else None
        group = self.param_groups[0]
        k = group["iterations"] + 1
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", glm.GLMConvergenceWarning)
            res = glm.fit(self.x1, self.y, family=self.family, method=self.method, max_iter=k)
        coef = torch.as_tensor(res.coef, dtype=self.module.weight.dtype)
        self.module.weight.copy_(coef[:-1].view_as(self.module.weight))
        self.module.bias.copy_(coef[-1:])
        group["iterations"] = k
        return loss
