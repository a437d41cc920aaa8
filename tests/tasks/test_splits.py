"""Every built-in data set task has train / val / test: disjoint, class-stratified, seeded; trials see
val only (the loop never touches ``test``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from raytune_opt.tasks import get_task
from raytune_opt.tasks.subset import holdout


def _rows(x: torch.Tensor) -> set[bytes]:
    return {bytes(r.numpy().tobytes()) for r in x.reshape(len(x), -1)}


@pytest.mark.parametrize("name", ["digits-mlp", "mnist1d-mlp"])
def test_splits_are_disjoint_and_stratified(name: str) -> None:
    spec = get_task(name).build()
    parts = {"train": spec.train, "val": spec.val, "test": spec.test}
    rows = {k: _rows(x) for k, (x, _) in parts.items()}
    assert (
        not rows["train"] & rows["val"]
        and not rows["train"] & rows["test"]
        and not rows["val"] & rows["test"]
    )
    shares = {k: torch.bincount(y, minlength=10).double() / len(y) for k, (_, y) in parts.items()}
    assert (shares["train"] - shares["val"]).abs().max() < 0.02  # class-stratified
    again = get_task(name).build()
    assert torch.equal(again.val[1], spec.val[1]) and torch.equal(again.test[1], spec.test[1])  # seeded


def test_holdout_partitions_every_index() -> None:
    y = torch.arange(100) % 4
    kept, held = holdout(y, 0.25, seed=3)
    assert len(held) == 25 and torch.equal(torch.sort(torch.cat([kept, held])).values, torch.arange(100))
    assert sorted(torch.bincount(y[held]).tolist()) == [6, 6, 6, 7]
    kept2, held2 = holdout(y, 0.25, seed=3)
    assert torch.equal(held, held2)


def test_the_loop_evaluates_val_not_test(tmp_path: Path) -> None:
    """Reports name their split (``val_*``); the numbers are the val set's, whatever the test set holds."""
    from raytune_opt.tasks import register_task
    from raytune_opt.train import run_local

    base = get_task("digits-mlp").build()

    @register_task("test-splits-digits", overwrite=True)
    def task():
        spec = get_task("digits-mlp").build()
        spec.test = (spec.test[0], (spec.test[1] + 1) % 10)  # every test label wrong: must not show
        return spec

    session = run_local({"task": "test-splits-digits", "optimizer": "adam", "lr": 1e-2, "epochs": 3})
    last = session.results[-1]
    assert "val_accuracy" in last and not any(k.startswith("test_") for k in last)
    assert last["val_accuracy"] > 0.8 and len(base.val[1]) == 288


def test_digits_are_scikit_learns_images_and_labels() -> None:
    """The digits tasks read scikit-learn's bundled table themselves (no ``sklearn.datasets`` import in
    a trial worker): exactly ``sklearn.datasets.load_digits``'s 1797 images and labels, split as
    documented (1150 / 288 / 359) with every image used once."""
    import numpy as np
    from sklearn.datasets import load_digits as sk_load_digits

    from raytune_opt.tasks.digits import _digits_table, load_digits

    d = sk_load_digits()
    table = _digits_table()
    np.testing.assert_array_equal(table[:, :-1], d.data)
    np.testing.assert_array_equal(table[:, -1].astype(int), d.target)
    x, y, xv, yv, xt, yt = load_digits()
    assert (len(y), len(yv), len(yt)) == (1150, 288, 359)
    assert sorted(torch.cat([y, yv, yt]).tolist()) == sorted(d.target.tolist())
    pixels = torch.cat([x, xv, xt]) * 16.0
    assert sorted(map(tuple, pixels.tolist())) == sorted(map(tuple, d.data.tolist()))
