"""Test problems for the second-order and quasi-Newton solvers, written in torch.

Used by the tests and by ``benchmarks/solvers_mgh.py``:

- :func:`rosenbrock` — the n-D Rosenbrock function Σᵢ 100 (x_{i+1} − x_i²)² + (1 − x_i)², minimum 0 at
  (1, …, 1).
- :func:`ill_conditioned_quadratic` — f(x) = ½ (x − x*)ᵀ A (x − x*) with cond(A) chosen.
- :data:`MGH` — residual problems of Moré, Garbow & Hillstrom, "Testing unconstrained optimization
  software", ACM TOMS 7 (1981), with their standard starting points: Rosenbrock (#1), Freudenstein–Roth (#2),
  Brown badly scaled (#4), Box three-dimensional (#12, m = 10), Powell singular (#13).
  Each residual function maps a float tensor ``x`` of shape (n,) to r(x) of shape (m,); the
  least-squares cost is ½‖r(x)‖² (SciPy's ``least_squares`` convention).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

__all__ = ["MGH", "ResidualProblem", "ill_conditioned_quadratic", "mgh", "rosenbrock"]


def rosenbrock(x: torch.Tensor) -> torch.Tensor:
    """f(x) = Σ_{i<n} 100 (x_{i+1} − x_i²)² + (1 − x_i)² for x of shape (n,), n ≥ 2."""
    return (100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2).sum()


def ill_conditioned_quadratic(
    dim: int, cond: float, seed: int = 0, dtype: torch.dtype = torch.float64
) -> tuple[Callable[[torch.Tensor], torch.Tensor], torch.Tensor]:
    """A convex quadratic f(x) = ½ (x − x*)ᵀ A (x − x*) with eigenvalues log-spaced in [1, cond].

    A = Q diag(λ) Qᵀ with Q a random orthogonal matrix (QR of a Gaussian matrix drawn with ``seed``);
    returns ``(f, x_star)``. The minimum value is 0 at ``x_star``.
    """
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=g, dtype=dtype))
    eig = torch.logspace(0.0, math.log10(cond), dim, dtype=dtype)
    a = (q * eig) @ q.T
    a = 0.5 * (a + a.T)
    x_star = torch.randn(dim, generator=g, dtype=dtype)

    def f(x: torch.Tensor) -> torch.Tensor:
        e = x - x_star.to(x)
        return 0.5 * e @ (a.to(x) @ e)

    return f, x_star


@dataclass(frozen=True)
class ResidualProblem:
    """A non-linear least-squares problem min ½‖r(x)‖² with its standard starting point.

    ``f_star`` is the known minimal cost ½‖r(x*)‖² reached from ``x0`` (``None`` if not known);
    ``x_star`` is the minimiser when it is unique (``None`` otherwise).
    """

    name: str
    residuals: Callable[[torch.Tensor], torch.Tensor]
    x0: tuple[float, ...]
    m: int
    f_star: float | None = None
    x_star: tuple[float, ...] | None = None

    @property
    def n(self) -> int:
        return len(self.x0)

    def start(self, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """The standard starting point as a new tensor."""
        return torch.tensor(self.x0, dtype=dtype)

    def cost(self, x: torch.Tensor) -> torch.Tensor:
        """½‖r(x)‖²."""
        r = self.residuals(x)
        return 0.5 * (r * r).sum()


def _mgh_rosenbrock(x: torch.Tensor) -> torch.Tensor:
    """r₁ = 10 (x₂ − x₁²), r₂ = 1 − x₁."""
    return torch.stack([10.0 * (x[1] - x[0] ** 2), 1.0 - x[0]])


def _freudenstein_roth(x: torch.Tensor) -> torch.Tensor:
    """r₁ = −13 + x₁ + ((5 − x₂) x₂ − 2) x₂, r₂ = −29 + x₁ + ((x₂ + 1) x₂ − 14) x₂."""
    return torch.stack(
        [
            -13.0 + x[0] + ((5.0 - x[1]) * x[1] - 2.0) * x[1],
            -29.0 + x[0] + ((x[1] + 1.0) * x[1] - 14.0) * x[1],
        ]
    )


def _brown_badly_scaled(x: torch.Tensor) -> torch.Tensor:
    """r₁ = x₁ − 10⁶, r₂ = x₂ − 2·10⁻⁶, r₃ = x₁ x₂ − 2."""
    return torch.stack([x[0] - 1e6, x[1] - 2e-6, x[0] * x[1] - 2.0])


def _box_3d(x: torch.Tensor, m: int = 10) -> torch.Tensor:
    """r_i = e^{−t_i x₁} − e^{−t_i x₂} − x₃ (e^{−t_i} − e^{−10 t_i}), t_i = 0.1 i, i = 1…m."""
    t = 0.1 * torch.arange(1, m + 1, dtype=x.dtype, device=x.device)
    return torch.exp(-t * x[0]) - torch.exp(-t * x[1]) - x[2] * (torch.exp(-t) - torch.exp(-10.0 * t))


def _powell_singular(x: torch.Tensor) -> torch.Tensor:
    """r₁ = x₁ + 10 x₂, r₂ = √5 (x₃ − x₄), r₃ = (x₂ − 2 x₃)², r₄ = √10 (x₁ − x₄)²."""
    return torch.stack(
        [
            x[0] + 10.0 * x[1],
            math.sqrt(5.0) * (x[2] - x[3]),
            (x[1] - 2.0 * x[2]) ** 2,
            math.sqrt(10.0) * (x[0] - x[3]) ** 2,
        ]
    )


#: The five MGH residual problems by name. Freudenstein–Roth converges from its standard start to the
#: local minimum ½·48.9842… (x ≈ (11.41, −0.8968)); the global one is 0 at (5, 4).
MGH: dict[str, ResidualProblem] = {
    p.name: p
    for p in [
        ResidualProblem("rosenbrock", _mgh_rosenbrock, (-1.2, 1.0), m=2, f_star=0.0, x_star=(1.0, 1.0)),
        ResidualProblem("powell_singular", _powell_singular, (3.0, -1.0, 0.0, 1.0), m=4, f_star=0.0),
        ResidualProblem(
            "freudenstein_roth",
            _freudenstein_roth,
            (0.5, -2.0),
            m=2,
            f_star=0.5 * 48.98425367924,
            x_star=(11.4127789869, -0.896805253274),
        ),
        ResidualProblem("box_3d", _box_3d, (0.0, 10.0, 20.0), m=10, f_star=0.0),
        ResidualProblem(
            "brown_badly_scaled", _brown_badly_scaled, (1.0, 1.0), m=3, f_star=0.0, x_star=(1e6, 2e-6)
        ),
    ]
}


def mgh(name: str) -> ResidualProblem:
    """The MGH problem ``name`` (a ``ConfigError`` listing the names otherwise)."""
    from raytune_opt.errors import ConfigError

    if name not in MGH:
        raise ConfigError.unknown("mgh problem", name, MGH)
    return MGH[name]
