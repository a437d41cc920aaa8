"""Our own searchers driven directly (no Ray run): sequences, GP-BO, Fabolas, diverged trials,
save/restore."""

from __future__ import annotations

import math

import numpy as np
import pytest
from ray.tune.search import Searcher
from synthetic import objective, space

from raytune_opt.search import FabolasSearcher, GPSearcher, SearchSpace, SequenceSearcher, make_tune_config
from raytune_opt.search._searcher import penalize


def drive(searcher, n, value, start=0):
    """Suggest and complete ``n`` trials one at a time with ``loss = value(config)``."""
    configs = []
    for i in range(start, start + n):
        c = searcher.suggest(f"t{i}")
        searcher.on_trial_complete(f"t{i}", {"loss": value(c), "cost": c.get("data_fraction", 1.0)})
        configs.append(c)
    return configs


def ready(searcher):
    searcher.set_search_properties("loss", "min", {})
    return searcher


def test_penalty_is_worse_than_every_finite_loss():
    y = penalize(np.array([0.5, math.nan, 2.0, math.inf, -math.inf]))
    assert np.isfinite(y).all() and y[1] == y[3] == y[4] == 2.0 + 1.5
    assert (penalize(np.array([math.nan])) > 1e5).all()


@pytest.mark.parametrize("kind", ["sobol", "halton"])
def test_low_discrepancy_sequences_stratify_each_coordinate(kind):
    sp = SearchSpace({"x": {"uniform": [0, 1]}, "y": {"uniform": [0, 1]}})
    s = ready(SequenceSearcher(sp, kind, seed=0))
    pts = np.array([[c["x"], c["y"]] for c in (s.suggest(f"t{i}") for i in range(16))])
    for col in pts.T:  # 16 points, one in each 1/16 bin (Sobol'), at most 2 per bin (Halton)
        counts = np.bincount((col * 16).astype(int), minlength=16)
        assert counts.max() <= (1 if kind == "sobol" else 2)


@pytest.mark.parametrize("kind", ["random", "sobol", "halton"])
def test_sequence_save_restore_continues_the_sequence(kind, tmp_path):
    a = ready(SequenceSearcher(space(), kind, seed=5))
    drive(a, 3, objective)
    a.save(str(tmp_path / "s.pkl"))
    b = SequenceSearcher(space(), kind, seed=99)
    b.restore(str(tmp_path / "s.pkl"))
    assert drive(a, 3, objective, start=3) == drive(b, 3, objective, start=3)


def test_gp_bo_beats_its_initial_design_and_survives_diverged_trials(tmp_path):
    s = ready(GPSearcher(space(), seed=0, n_initial=5))

    def value(c):  # lr above 0.3 diverges
        return math.nan if c["lr"] > 0.3 else objective(c)

    configs = drive(s, 14, value)
    # the model-guided suggestions are better on average than the Sobol' design
    assert np.median([objective(c) for c in configs[5:]]) < np.median([objective(c) for c in configs[:5]])
    assert min(objective(c) for c in configs) <= 0.05
    losses = s.losses()
    diverged = [i for i, o in enumerate(s.observations) if not math.isfinite(o[2])]
    assert diverged and len(s.observations) == 14  # kept, not dropped
    assert all(losses[i] > max(np.delete(losses, diverged)) for i in diverged)
    for c in configs:
        space().validate(c)
    # save/restore: the restored searcher proposes exactly what the original would
    s.save(str(tmp_path / "bo.pkl"))
    r = GPSearcher(space(), seed=1)
    r.restore(str(tmp_path / "bo.pkl"))
    assert r.suggest("next") == s.suggest("next")


def test_gp_bo_spreads_a_batch_of_concurrent_suggestions():
    s = ready(GPSearcher(space(), seed=0, n_initial=4))
    drive(s, 8, objective)
    batch = [s.suggest(f"p{i}") for i in range(3)]  # three trials running at once
    assert len(s.live) == 3
    enc = s.encoding
    x = np.stack([enc.encode(c) for c in batch])
    assert min(np.linalg.norm(x[i] - x[j]) for i in range(3) for j in range(i)) > 1e-3


def fabolas_value(c):
    s = c["data_fraction"]
    return objective(c) + 0.3 * (1 - s) ** 2


def test_fabolas_spends_early_trials_on_small_fractions_and_recommends_at_full_data(tmp_path):
    f = ready(FabolasSearcher(space(), seed=0, cost_attr="cost", num_samples=14, n_initial=5))
    configs = drive(f, 13, fabolas_value)
    fractions = [c["data_fraction"] for c in configs]
    assert np.median(fractions) <= 0.125 and max(fractions[:5]) <= 0.125
    assert all(f.s_min <= s <= 1 for s in fractions)
    # the last trial evaluates the incumbent on all of the data, unless it already was
    last = f.suggest("final")
    seen = [{k: v for k, v in c.items() if k != "data_fraction"} for c in configs]
    if last == Searcher.FINISHED:
        assert f.incumbent in [s for s, c in zip(seen, configs, strict=True) if c["data_fraction"] == 1.0]
    else:
        assert last["data_fraction"] == 1.0 and f.recommended == ["final"]
        assert {k: v for k, v in last.items() if k != "data_fraction"} in seen
        f.on_trial_complete("final", {"loss": fabolas_value(last), "cost": 1.0})
    assert f.phase == "done" and f.suggest("more") == Searcher.FINISHED
    assert objective(f.recommend()) <= 0.3
    # the recommendation waits for running trials before it is made
    g = ready(FabolasSearcher(space(), seed=0, cost_attr="cost", num_samples=4, n_initial=2))
    drive(g, 2, fabolas_value)
    g.suggest("running")
    assert g.suggest("waits") is None


def test_fabolas_learns_the_cost_of_a_fraction_and_restores(tmp_path):
    f = ready(FabolasSearcher(space(), seed=0, cost_attr="cost", n_initial=4))
    configs = []
    for i in range(4):
        c = f.suggest(f"t{i}")
        f.on_trial_complete(f"t{i}", {"loss": fabolas_value(c), "cost": 2.0 + 10.0 * c["data_fraction"]})
        configs.append(c)
    seen = [{k: v for k, v in c.items() if k != "data_fraction"} for c in configs]
    s = np.array([c["data_fraction"] for c in configs])
    assert f.predicted_cost(seen, s) == pytest.approx(2.0 + 10.0 * s, rel=0.1)  # log c fitted over (x, s)
    grid = np.array([f.s_min, 0.25, 1.0])
    assert np.all(np.diff(f.predicted_cost([seen[0]] * 3, grid)) > 0)  # dearer on more data
    f.save(str(tmp_path / "f.pkl"))
    g = FabolasSearcher(space(), seed=3, cost_attr="cost")
    g.restore(str(tmp_path / "f.pkl"))
    assert g.suggest("x") == f.suggest("x")


def test_fabolas_space_may_declare_the_fraction_range():
    sp = SearchSpace({**{p.name: p for p in space()}, "data_fraction": {"uniform": [0.1, 1.0]}})
    f = FabolasSearcher(sp)
    assert f.s_min == 0.1 and "data_fraction" not in f.space.params


@pytest.mark.parametrize("strategy", ["tpe", "bohb"])
def test_foreign_searchers_get_diverged_results_as_bad_ones(strategy):
    cfg = make_tune_config(strategy, space(), metric="loss", mode="min", num_samples=8, max_t=9, seed=0)
    adapter = cfg.search_alg
    adapter.set_search_properties("loss", "min", {})
    seen = []
    inner_complete = adapter.inner.on_trial_complete
    adapter.inner.on_trial_complete = lambda tid, result=None, error=False: (
        seen.append(result["loss"]),
        inner_complete(tid, result=result, error=error),
    )
    for i, loss in enumerate([0.5, math.nan, 0.2, math.inf]):
        c = adapter.suggest(f"t{i}")
        space().validate(c)
        adapter.on_trial_complete(f"t{i}", {"loss": loss, "hyperband_info": {"budget": 9}})
    assert seen[0] == 0.5 and seen[2] == 0.2
    assert math.isfinite(seen[1]) and math.isfinite(seen[3]) and seen[1] > 0.5 and seen[3] > 0.5
    assert adapter.suggest("t9") is not None


class _Payload:
    """Unpickling this creates ``path`` — what a forged state file could do with any command."""

    def __init__(self, path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.parametrize(
    "make", [lambda: SequenceSearcher(space(), "sobol", seed=0), lambda: GPSearcher(space())]
)
def test_searcher_state_is_plain_data_and_a_forged_pickle_is_refused(make, tmp_path):
    import pickle

    import torch

    s = ready(make())
    drive(s, 3, objective)
    s.save(str(tmp_path / "state"))
    state = torch.load(tmp_path / "state", weights_only=True)  # tensors and plain data only
    assert state["n_suggested"] == 3 and len(state["observations"]) == 3

    marker = tmp_path / "pwned"
    with open(tmp_path / "forged", "wb") as fh:
        pickle.dump({"n_suggested": _Payload(marker)}, fh)
    with pytest.raises(RuntimeError, match="refusing to restore the searcher state"):
        make().restore(str(tmp_path / "forged"))
    assert not marker.exists()
