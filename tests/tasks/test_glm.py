"""GLM tasks: the family losses are the negative log-likelihoods, residuals are μ − y; the families are
raytune_opt.glm.families' (one definition)."""

from __future__ import annotations

import pytest
import torch
from torch.distributions import Bernoulli, Gamma, Normal, Poisson

from raytune_opt.glm.families import Family
from raytune_opt.tasks import get_task
from raytune_opt.tasks.glm import TASK_FAMILIES as FAMILIES


@pytest.mark.parametrize("name", ["glm-logistic", "glm-gaussian", "glm-poisson", "glm-gamma"])
def test_glm_tasks_build(name: str) -> None:
    spec = get_task(name).build()
    eta = spec.model(spec.train[0])
    assert eta.shape == spec.train[1].shape and isinstance(spec.glm_family, Family)
    assert spec.glm_family is FAMILIES[spec.glm_family.name]
    assert spec.loss(eta, spec.train[1]).isfinite()
    r = spec.residuals(eta, spec.train[1])
    assert torch.allclose(r, spec.glm_family.link.inverse(eta) - spec.train[1])


def test_losses_are_negative_log_likelihoods_up_to_constants() -> None:
    """ℓ(η₁) − ℓ(η₂) equals the difference of torch.distributions' log-probabilities."""
    torch.manual_seed(0)
    e1, e2 = torch.randn(50, dtype=torch.float64), torch.randn(50, dtype=torch.float64)
    y_bin = (torch.rand(50) < 0.5).double()
    y_cnt = torch.poisson(torch.full((50,), 3.0)).double()
    y_pos = torch.rand(50, dtype=torch.float64) + 0.1
    y_real = torch.randn(50, dtype=torch.float64)
    shape = 2.0
    cases = {
        "gaussian": (y_real, lambda e: Normal(e, 1.0)),
        "binomial": (y_bin, lambda e: Bernoulli(logits=e)),
        "poisson": (y_cnt, lambda e: Poisson(e.exp())),
        # gamma with fixed shape k: ℓ = k (y/μ + log μ) + const; the family drops the factor k
        "gamma": (y_pos, lambda e: Gamma(shape, shape / e.exp())),
    }
    for name, (y, dist) in cases.items():
        fam = FAMILIES[name]
        ours = fam.nll(e1, y) - fam.nll(e2, y)  # the glm family's, the tasks' loss
        ref = -(dist(e1).log_prob(y) - dist(e2).log_prob(y))
        scale = shape if name == "gamma" else 1.0
        assert torch.allclose(ours * scale, ref, atol=1e-9), name


def test_deviance_zero_at_the_data() -> None:
    y = torch.tensor([0.5, 1.0, 3.0], dtype=torch.float64)
    for name in ("gaussian", "poisson", "gamma"):
        assert torch.allclose(FAMILIES[name].unit_deviance(y, y), torch.zeros(3, dtype=torch.float64))


def test_logistic_loss_is_finite_where_the_sigmoid_saturates() -> None:
    eta = torch.tensor([-200.0, 200.0])
    y = torch.tensor([1.0, 0.0])
    loss = FAMILIES["binomial"].nll(eta, y)
    torch.testing.assert_close(loss, torch.tensor([200.0, 200.0]))
