"""A surrogate that fails is never silent: logged with the error, counted in ``fallbacks`` (saved and
restored with the searcher), fatal with ``on_surrogate_error="raise"``.

botorch does not fail on any data we could give it deterministically (huge, constant or tiny
losses all fit), so the failures are botorch's own ``ModelFittingError`` raised from its fitting
entry point and an acquisition that scores NaN, patched in.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from botorch.exceptions.errors import ModelFittingError

from raytune_opt.errors import ConfigError
from raytune_opt.search import FabolasSearcher, GPSearcher, SearchSpace, make_tune_config
from raytune_opt.search._searcher import SurrogateError

SPACE = {"x": {"uniform": [0.0, 1.0]}, "k": {"choice": ["a", "b"]}}


def _failing_fit(*args, **kwargs):
    raise ModelFittingError("All attempts to fit the model have failed.")


@pytest.fixture
def broken_fit(monkeypatch):
    import botorch.fit

    monkeypatch.setattr(botorch.fit, "fit_gpytorch_mll", _failing_fit)


def _observe(searcher, n: int) -> None:
    """``n`` finished trials of the first (design) suggestions, loss = x."""
    for i in range(n):
        config = searcher.suggest(f"t{i}")
        searcher.on_trial_complete(f"t{i}", {"loss": config["x"], "time_total_s": 1.0})


def _make(kind: str, **kw):
    sp = SearchSpace(SPACE)
    if kind == "bo":
        return GPSearcher(sp, "loss", "min", seed=0, n_initial=2, n_candidates=32, **kw)
    return FabolasSearcher(sp, "loss", "min", seed=0, n_initial=2, n_candidates=32, **kw)


@pytest.mark.parametrize("kind", ["bo", "fabolas"])
def test_a_failed_fit_is_logged_counted_and_a_valid_random_suggestion(kind, broken_fit, caplog, tmp_path):
    searcher = _make(kind)
    _observe(searcher, 2)
    assert searcher.fallback_count == 0
    with caplog.at_level(logging.WARNING, logger="raytune_opt.search"):
        config = searcher.suggest("next")
    sp = SearchSpace(SPACE)
    sp.validate({k: v for k, v in config.items() if k in sp.params})
    assert searcher.fallback_count == 1
    (message,) = searcher.fallbacks
    assert "after 2 suggestions and 2 results" in message and "ModelFittingError: All attempts" in message
    (record,) = [r for r in caplog.records if r.name == "raytune_opt.search"]
    assert record.levelno == logging.WARNING and message in record.getMessage()
    assert "on_surrogate_error='raise'" in record.getMessage()

    # the count travels with the searcher's state (Tuner.restore)
    path = str(tmp_path / "searcher.pkl")
    searcher.save(path)
    restored = _make(kind)
    restored.restore(path)
    assert restored.fallbacks == [message] and restored.fallback_count == 1


@pytest.mark.parametrize("kind", ["bo", "fabolas"])
def test_on_surrogate_error_raise_makes_the_failure_fatal(kind, broken_fit):
    searcher = _make(kind, on_surrogate_error="raise")
    _observe(searcher, 2)
    with pytest.raises(SurrogateError, match="ModelFittingError") as info:
        searcher.suggest("next")
    assert isinstance(info.value.__cause__, ModelFittingError)
    assert searcher.fallbacks == []


def test_fabolas_recommendation_falls_back_to_the_best_at_the_largest_fraction(broken_fit):
    searcher = _make("fabolas")
    _observe(searcher, 2)
    fractions = [o[1]["data_fraction"] for o in searcher.observations]
    best = min(
        (o for o in searcher.observations if o[1]["data_fraction"] == max(fractions)), key=lambda o: o[2]
    )
    assert searcher.recommend() == {k: v for k, v in best[1].items() if k != "data_fraction"}
    assert searcher.fallback_count == 1 and "recommendation" in searcher.fallbacks[0]
    strict = _make("fabolas", on_surrogate_error="raise")
    _observe(strict, 2)
    with pytest.raises(SurrogateError, match="recommendation"):
        strict.recommend()


def test_an_acquisition_without_a_finite_score_is_a_fallback(monkeypatch):
    from botorch.acquisition.logei import qLogExpectedImprovement

    def nan_scores(self, X):
        return torch.full(X.shape[:-2], float("nan"), dtype=X.dtype)

    monkeypatch.setattr(qLogExpectedImprovement, "forward", nan_scores)
    searcher = _make("bo")
    _observe(searcher, 2)
    searcher.suggest("next")
    assert searcher.fallback_count == 1 and "qLogEI failed (no finite score)" in searcher.fallbacks[0]


def test_a_working_surrogate_counts_no_fallback():
    searcher = _make("bo")
    _observe(searcher, 4)
    assert searcher.fallbacks == []
    assert np.isfinite(searcher.suggest("next")["x"])


@pytest.mark.parametrize("strategy", ["bo", "fabolas"])
def test_the_option_reaches_the_searcher_and_is_checked(strategy):
    args = {"metric": "loss", "mode": "min", "num_samples": 4}
    cfg = make_tune_config(strategy, SPACE, on_surrogate_error="raise", **args)
    assert cfg.search_alg.on_surrogate_error == "raise"
    assert make_tune_config(strategy, SPACE, **args).search_alg.on_surrogate_error == "random"
    with pytest.raises(ConfigError, match="on_surrogate_error = 'ignore'.*raise, random"):
        make_tune_config(strategy, SPACE, on_surrogate_error="ignore", **args)
