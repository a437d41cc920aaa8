"""MNIST-1D: generated offline by the mnist1d package and cached on disk by its arguments."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from raytune_opt.tasks import get_task
from raytune_opt.tasks import mnist1d as m


def test_generated_once_then_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAYTUNE_OPT_CACHE", str(tmp_path))
    m._load.cache_clear()
    random.seed(7)
    np.random.seed(7)
    before = (random.random(), np.random.rand())
    random.seed(7)
    np.random.seed(7)
    x, y, xt, yt = m.load_mnist1d(num_samples=400, seed=1)
    assert (random.random(), np.random.rand()) == before  # the caller's global RNG streams untouched
    assert x.shape == (320, 40) and xt.shape == (80, 40) and x.dtype == torch.float32
    assert set(y.tolist()) == set(range(10))
    files = list(tmp_path.glob("mnist1d-*.npz"))
    assert len(files) == 1
    m._load.cache_clear()
    stamp = files[0].stat().st_mtime_ns
    again = m.load_mnist1d(num_samples=400, seed=1)
    assert files[0].stat().st_mtime_ns == stamp and torch.equal(again[0], x)
    m.load_mnist1d(num_samples=400, seed=2)
    assert len(list(tmp_path.glob("mnist1d-*.npz"))) == 2
    m._load.cache_clear()


@pytest.mark.parametrize("name", ["mnist1d-mlp", "mnist1d-cnn"])
def test_models_fit_the_signal(name: str) -> None:
    spec = get_task(name).build()
    out = spec.model(spec.val[0][:8])
    assert out.shape == (8, 10) and spec.metric.name == "accuracy" and spec.num_classes == 10
    assert (len(spec.train[1]), len(spec.val[1]), len(spec.test[1])) == (3200, 800, 1000)


def test_random_shift_translates_each_row_with_edge_padding() -> None:
    x = torch.arange(40.0).repeat(64, 1)
    torch.manual_seed(0)
    out = m.random_shift(x, 3)
    assert out.shape == x.shape
    offsets = set()
    for row in out:
        d = int(row[20] - 20)  # the row moved by -d positions: out[i] = x[clamp(i + d)]
        assert -3 <= d <= 3 and torch.equal(row, torch.arange(40.0).add(d).clamp(0, 39))
        offsets.add(d)
    assert len(offsets) > 1  # each row draws its own shift
    assert m.random_shift(x[:, None, :], 2).shape == (64, 1, 40)  # (N, 1, L) batches too


def test_shift_and_dropout_args_train_only() -> None:
    plain = get_task("mnist1d-mlp").build()
    assert plain.augment is None and not any(isinstance(l, torch.nn.Dropout) for l in plain.model)
    spec = get_task("mnist1d-mlp").build(shift=4, dropout=0.5)
    assert sum(isinstance(l, torch.nn.Dropout) for l in spec.model) == 2
    # the splits are the plain task's: augmentation touches training batches only, in the loop
    for a, b in zip((spec.train, spec.val, spec.test), (plain.train, plain.val, plain.test), strict=True):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    torch.manual_seed(1)
    xb = spec.augment(spec.train[0][:16])
    assert xb.shape == (16, 40) and not torch.equal(xb, spec.train[0][:16])
    cnn = get_task("mnist1d-cnn").build(shift=5)
    assert cnn.augment is not None and cnn.model(cnn.augment(cnn.val[0][:4])).shape == (4, 10)


@pytest.mark.parametrize(
    ("name", "args"),
    [("mnist1d-mlp", {"shift": -1}), ("mnist1d-mlp", {"dropout": 1.0}), ("mnist1d-cnn", {"shift": 40})],
)
def test_bad_shift_or_dropout_is_a_config_error(name: str, args: dict) -> None:
    from raytune_opt.errors import ConfigError

    with pytest.raises(ConfigError, match="shift|dropout"):
        get_task(name).build(**args)
