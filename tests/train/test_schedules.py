"""Learning-rate schedule multipliers f(t) at known points."""

from __future__ import annotations

import math

import pytest
import torch

from raytune_opt.train.schedules import SCHEDULES, factor, make_scheduler


def test_constant_step_cosine() -> None:
    assert factor(123, "constant", 1000, 10) == 1.0
    assert factor(19, "step", 100, 10, step_epochs=2, step_gamma=0.5) == 1.0
    assert factor(20, "step", 100, 10, step_epochs=2, step_gamma=0.5) == 0.5
    assert factor(65, "step", 100, 10, step_epochs=2, step_gamma=0.5) == 0.125
    assert factor(0, "cosine", 100, 10) == 1.0
    assert factor(50, "cosine", 100, 10) == pytest.approx(0.5)
    assert factor(100, "cosine", 100, 10) == pytest.approx(0.0)


def test_warmup_cosine() -> None:
    # W = 2 epochs × 10 steps = 20 steps of linear warm-up, then half a cosine over the other 80
    assert factor(0, "warmup_cosine", 100, 10, warmup_epochs=2) == pytest.approx(1 / 20)
    assert factor(19, "warmup_cosine", 100, 10, warmup_epochs=2) == pytest.approx(1.0)
    assert factor(60, "warmup_cosine", 100, 10, warmup_epochs=2) == pytest.approx(0.5)
    assert factor(0, "warmup_cosine", 100, 10, warmup_epochs=0) == 1.0


def test_onecycle_matches_torch() -> None:
    """Same lr curve as torch's OneCycleLR (cos annealing, no momentum cycling)."""
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=0.1)
    ref = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=0.1, total_steps=50, pct_start=0.3, cycle_momentum=False
    )
    for t in range(50):
        assert factor(t, "onecycle", 50, 5, pct_start=0.3) * 0.1 == pytest.approx(
            ref.get_last_lr()[0], rel=1e-9
        )
        opt.step()
        ref.step()


@pytest.mark.parametrize("kind", SCHEDULES)
def test_scheduler_sets_lr_of_every_group(kind: str) -> None:
    groups = [
        {"params": [torch.zeros(1, requires_grad=True)], "lr": 0.2},
        {"params": [torch.zeros(1)], "lr": 0.4},
    ]
    opt = torch.optim.SGD(groups, lr=0.2)
    sched = make_scheduler(opt, kind, total_steps=40, steps_per_epoch=4)
    for _ in range(7):
        opt.step()
        sched.step()
    f = factor(7, kind, 40, 4)
    assert [g["lr"] for g in opt.param_groups] == [pytest.approx(0.2 * f), pytest.approx(0.4 * f)]
    assert math.isfinite(f) and f >= 0
