"""data_fraction subsets: sizes, class balance, seeding and nesting."""

from __future__ import annotations

import pytest
import torch

from raytune_opt.errors import ConfigError
from raytune_opt.tasks import stratified_subset


def _labels() -> torch.Tensor:
    # imbalanced: 500 of class 0, 300 of class 1, 200 of class 2
    return torch.cat([torch.zeros(500), torch.ones(300), torch.full((200,), 2)]).long()[torch.randperm(1000)]


@pytest.mark.parametrize("fraction", [0.05, 0.1, 0.25, 0.5, 0.77])
def test_size_and_class_balance(fraction: float) -> None:
    y = _labels()
    idx = stratified_subset(y, fraction, seed=3)
    assert len(idx) == round(fraction * 1000)
    assert len(torch.unique(idx)) == len(idx)
    counts = torch.bincount(y[idx], minlength=3).double()
    expected = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64) * len(idx)
    assert torch.all((counts - expected).abs() <= 1.0), (counts, expected)


def test_seeded_nested_and_whole() -> None:
    y = _labels()
    assert torch.equal(stratified_subset(y, 0.3, seed=1), stratified_subset(y, 0.3, seed=1))
    assert not torch.equal(stratified_subset(y, 0.3, seed=1), stratified_subset(y, 0.3, seed=2))
    small, large = (
        set(stratified_subset(y, 0.2, seed=1).tolist()),
        set(stratified_subset(y, 0.6, seed=1).tolist()),
    )
    assert small <= large
    assert torch.equal(stratified_subset(y, 1.0), torch.arange(1000))


def test_every_class_kept_and_unstratified() -> None:
    y = torch.cat([torch.zeros(995), torch.ones(5)]).long()
    idx = stratified_subset(y, 0.01, seed=0)
    assert set(y[idx].tolist()) == {0, 1}
    assert len(stratified_subset(torch.randn(400), 0.25, seed=0, stratify=False)) == 100


@pytest.mark.parametrize("bad", [0, -0.1, 1.5, float("nan"), "half", True])
def test_bad_fraction(bad: object) -> None:
    with pytest.raises(ConfigError, match="data_fraction"):
        stratified_subset(_labels(), bad)  # type: ignore[arg-type]
