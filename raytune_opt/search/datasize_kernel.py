"""Fabolas' kernel over the data fraction ``s`` (Klein et al. 2017, section 3.1), for gpytorch.

    k_s(s, s') = φ(s)ᵀ Σ φ(s'),   Σ = L Lᵀ  (2 × 2, positive semi-definite, learnt)

with the basis ``φ(s) = (1, (1 − s)²)`` for the loss (``basis="loss"``): a loss model
``f(x, s) = a(x) + (1 − s)² b(x)`` (``a``, ``b`` correlated GPs over ``x`` when this kernel
multiplies a kernel over ``x``), so that observations at small ``s`` inform ``s = 1``, where
``f(x, 1) = a(x)``, to the degree the data say. For the *log* cost (``basis="cost"``) the basis is
``φ(s) = (1, log s)``: ``log c(x, s) = a(x) + log(s) b(x)``, a power law ``c ∝ s^b`` per
configuration (the paper's ``(1, s)`` models ``c`` itself, linear in ``s``; on ``log c`` the power
law is what keeps a cost proportional to ``s`` inside the model).

``Σ = [[σ₀², ρ σ₀ σ₁], [ρ σ₀ σ₁, σ₁²]]`` with ``σ_i = softplus(raw_scale_i)`` and ``ρ =
tanh(raw_rho)``, and weak priors that keep the split of the data between ``a`` and ``b``
identified while only a few fractions have been tried (the likelihood alone cannot tell ``a`` from
``(1 − s_min)² b`` on trials at ``s_min``, and a free ``Σ`` then drifts to extrapolations such as
``f(x, 1) ≈ −6 f(x, s_min)``): ``σ₀ ~ LogNormal(0, 1)`` (the outcome is standardised),
``σ₁ ~ LogNormal(log ½, 1)`` (a bias half the size of the signal: a correlation ≈ 0.9 between
``f(x, s_min)`` and ``f(x, 1)`` a priori) and ``atanh ρ ~ Normal(0, ½)``. Data at several fractions
move them.
"""

from __future__ import annotations

import math

import torch
from gpytorch.kernels import Kernel

__all__ = ["DataSizeKernel", "BASES"]

#: the bases of the two models
BASES = ("loss", "cost")


class DataSizeKernel(Kernel):
    """``k_s(s, s') = φ(s)ᵀ Σ φ(s')`` on one input dimension (``active_dims=[j]``, the raw
    fraction ``s ∈ (0, 1]``); see the module docstring."""

    has_lengthscale = False

    def __init__(self, basis: str = "loss", **kwargs) -> None:
        if basis not in BASES:
            raise ValueError(f"basis = {basis!r}: one of {BASES}")
        super().__init__(**kwargs)
        self.basis = basis
        from gpytorch.priors import LogNormalPrior, NormalPrior

        # σ₀ = 1, σ₁ = ½, ρ = 0 at the start (softplus(0.5413) = 1, softplus(−0.4328) = ½)
        self.register_parameter("raw_scale", torch.nn.Parameter(torch.tensor([0.5413, -0.4328])))
        self.register_parameter("raw_rho", torch.nn.Parameter(torch.tensor(0.0)))
        self.register_prior("scale0_prior", LogNormalPrior(0.0, 1.0), lambda m: m.scales[0])
        self.register_prior("scale1_prior", LogNormalPrior(math.log(0.5), 1.0), lambda m: m.scales[1])
        self.register_prior("rho_prior", NormalPrior(0.0, 0.5), lambda m: m.raw_rho)

    @property
    def scales(self) -> torch.Tensor:
        """``(σ₀, σ₁)``."""
        return torch.nn.functional.softplus(self.raw_scale)

    @property
    def rho(self) -> torch.Tensor:
        return torch.tanh(self.raw_rho)

    @property
    def covariance(self) -> torch.Tensor:
        """Σ (2 × 2)."""
        s0, s1 = self.scales
        c = self.rho * s0 * s1
        return torch.stack([torch.stack([s0**2, c]), torch.stack([c, s1**2])])

    def features(self, s: torch.Tensor) -> torch.Tensor:
        """φ(s) for ``s`` of shape ``(..., n, 1)``: ``(..., n, 2)``."""
        b = (1.0 - s) ** 2 if self.basis == "loss" else torch.log(s.clamp_min(1e-12))
        return torch.cat([torch.ones_like(s), b], dim=-1)

    def forward(
        self,
        x1: torch.Tensor,
        x2: torch.Tensor,
        diag: bool = False,
        last_dim_is_batch: bool = False,
        **params,
    ) -> torch.Tensor:
        if last_dim_is_batch:
            raise NotImplementedError("DataSizeKernel: last_dim_is_batch")
        S = self.covariance.to(x1)
        p1, p2 = self.features(x1), self.features(x2)
        if diag:
            return ((p1 @ S) * p2).sum(-1)
        return p1 @ S @ p2.transpose(-1, -2)
