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
