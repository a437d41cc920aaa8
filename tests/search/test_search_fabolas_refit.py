"""Fabolas' refit schedule: GP hyperparameters refitted only once the data grew by ``refit_growth``
since the last fit, the last fit's hyperparameters conditioned on all the data in between."""

from __future__ import annotations

import math

import pytest
import torch
from synthetic import objective, space

from raytune_opt.errors import ConfigError
from raytune_opt.search import FabolasSearcher


def ready(searcher: FabolasSearcher) -> FabolasSearcher:
    searcher.set_search_properties("loss", "min", {})
    return searcher


def value(c: dict) -> float:  # lr above 0.3 diverges: a bad result, fed to the model
    return math.nan if c["lr"] > 0.3 else objective(c) + 0.3 * (1 - c["data_fraction"]) ** 2


def drive(f: FabolasSearcher, n: int, start: int = 0) -> list[int]:
    """``n`` trials one at a time; the searcher's ``fitted_n`` after each suggestion."""
    fitted = []
    for i in range(start, start + n):
        c = f.suggest(f"t{i}")
        fitted.append(f.fitted_n)
        f.on_trial_complete(f"t{i}", {"loss": value(c), "cost": c["data_fraction"]})
    return fitted


def test_fabolas_refits_hyperparameters_only_as_the_data_grow(tmp_path):
    f = ready(FabolasSearcher(space(), seed=0, cost_attr="cost", n_initial=4, n_candidates=64))
    fitted = drive(f, 16)
    fits = sorted(set(fitted) - {0})
    assert fits[0] == 4  # the first model is fitted at once
    assert all(b >= math.ceil(a * 1.2) for a, b in zip(fits, fits[1:], strict=False))
    assert len(fits) < len(fitted) - 4  # fewer fits than model-guided suggestions
    assert any(math.isnan(o[2]) for o in f.observations)  # diverged trials kept
    # between refits the model carries the last fit's hyperparameters, on all of the data
    assert len(f.observations) < f.fitted_n * 1.2
    model = f._fit()
    assert model.train_inputs[0].shape[0] == len(f.observations)
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in f.warm.items())
    # save/restore mid-schedule: the restored searcher continues exactly as the original
    f.save(str(tmp_path / "f.pkl"))
    g = FabolasSearcher(space(), seed=3, cost_attr="cost")
    g.restore(str(tmp_path / "f.pkl"))
    assert g.suggest("x") == f.suggest("x") and g.fitted_n == f.fitted_n


def test_fabolas_refit_growth_zero_refits_every_suggestion_and_negative_is_rejected():
    f = FabolasSearcher(space(), seed=0, cost_attr="cost", n_initial=3, n_candidates=32, refit_growth=0)
    ready(f)
    assert drive(f, 7)[3:] == [3, 4, 5, 6]
    with pytest.raises(ConfigError, match="refit_growth"):
        FabolasSearcher(space(), refit_growth=-0.1)
