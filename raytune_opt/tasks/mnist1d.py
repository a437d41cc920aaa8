"""MNIST-1D (Greydanus 2020), generated offline by the ``mnist1d`` package.

The data set is made by ``mnist1d.data.make_dataset(get_dataset_args())`` — never downloaded —
and the arrays are cached under ``$RAYTUNE_OPT_CACHE`` (default ``~/.cache/raytune_opt``) in a
file keyed by the generation arguments, so trials after the first load them in milliseconds.
Default arguments give the published split: 4000 training and 1000 test signals of length 40.

Tasks: ``mnist1d-mlp`` (published reference ≈ 68 % test accuracy) and ``mnist1d-cnn`` (≈ 94 %).
With the paper's recipe through ``raytune_opt.train`` (``optimizer="adam", lr=1e-2,
batch_size=100, epochs=150`` = 6000 steps, seed 0) the final test accuracy measured here was
67.0 % for the MLP (25 s on one shared CPU thread) and 92.5 % for the CNN (best epoch 92.9 %; 69 s).

Both tasks take ``shift``: training-time augmentation that translates each training signal by a
random whole number of positions in ``[-shift, shift]`` (the edge values repeated, as
:func:`random_shift`), the nuisance MNIST-1D's generator itself applies (a random translation
of every template); validation and test signals are never shifted. ``mnist1d-mlp`` also takes
``dropout`` (after each ReLU). Their defaults (0) are the paper's models. Single runs in a plain
loop (one thread, AdamW lr 1e-2, weight decay 0.1, batch 100, 6000 steps, seed 0; test accuracy):
MLP 66.9 % plain, 73.5 % with ``hidden=512, dropout=0.5`` (lr 3e-3), 81.5 % with ``shift=4``;
CNN 95.8 % with ``shift=3``, 96.4 % with ``shift=5``, 94.7 % with ``channels=64`` and no shift
(benchmarks/results/comparison_mnist1d.md has the tuned numbers over 5 seeds).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import random
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from raytune_opt.tasks.models import MLP, ConvNet1d
from raytune_opt.tasks.registry import TaskSpec, register_task
from raytune_opt.tasks.subset import holdout

__all__ = ["cache_dir", "load_mnist1d", "random_shift"]


def cache_dir() -> Path:
    """Where generated data sets are cached: ``$RAYTUNE_OPT_CACHE`` or ``~/.cache/raytune_opt``."""
    root = os.environ.get("RAYTUNE_OPT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "raytune_opt"
    )
    return Path(root)


@functools.lru_cache(maxsize=4)
def _load(num_samples: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    from mnist1d.data import get_dataset_args

    args = get_dataset_args(as_dict=True)
    args.update(num_samples=num_samples, seed=seed)
    args.pop("url", None)
    key = hashlib.sha256(json.dumps(args, sort_keys=True).encode()).hexdigest()[:16]
    path = cache_dir() / f"mnist1d-{key}.npz"
    if not path.exists():
        from mnist1d.data import make_dataset
        from mnist1d.utils import ObjectView

        # make_dataset reseeds Python's and NumPy's global RNGs: keep the caller's streams intact.
        py_state, np_state = random.getstate(), np.random.get_state()
        try:
            d = make_dataset(ObjectView(dict(args)))
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(tmp, x=d["x"], y=d["y"], x_test=d["x_test"], y_test=d["y_test"])
        os.replace(tmp, path)
    with np.load(path) as z:
        return tuple(  # type: ignore[return-value]
            torch.from_numpy(z[k]).to(torch.float32 if k.startswith("x") else torch.long)
            for k in ("x", "y", "x_test", "y_test")
        )


def load_mnist1d(num_samples: int = 5000, seed: int = 42) -> tuple[torch.Tensor, ...]:
    """``(x, y, x_test, y_test)`` of MNIST-1D generated with ``num_samples`` and ``seed`` (80/20 split)."""
    return _load(int(num_samples), int(seed))


#: the share of MNIST-1D's training signals held out as the validation set
VAL_FRACTION = 0.2


def random_shift(x: torch.Tensor, shift: int) -> torch.Tensor:
    """Each row of ``x`` (``(N, L)`` signals) translated by its own random whole number of positions
    in ``[-shift, shift]``, the edge values repeated where the signal moved away (torch's global
    RNG: the training loop seeds it per trial and worker)."""
    n, length = x.shape[0], x.shape[-1]
    offsets = torch.randint(-shift, shift + 1, (n, 1), device=x.device)
    idx = (torch.arange(length, device=x.device).unsqueeze(0) - offsets).clamp_(0, length - 1)
    return x.reshape(n, length).gather(1, idx).reshape(x.shape)


def _spec(model: torch.nn.Module, num_samples: int, data_seed: int, shift: int = 0) -> TaskSpec:
    """Train / val / test: MNIST-1D's test signals (20 % of ``num_samples``) are the test set, held
    out from every trial; the validation set is :data:`VAL_FRACTION` of its training signals,
    class-stratified and seeded by ``data_seed``. With the defaults: 3200 / 800 / 1000.
    ``shift > 0`` augments the training batches only (:func:`random_shift`)."""
    if isinstance(shift, bool) or not isinstance(shift, int) or not 0 <= shift < 40:
        raise ValueError(f"shift must be an integer in [0, 40), got {shift!r}")
    x, y, xt, yt = load_mnist1d(num_samples, data_seed)
    kept, held = holdout(y, VAL_FRACTION, seed=data_seed)
    return TaskSpec(
        train=(x[kept], y[kept]),
        val=(x[held], y[held]),
        test=(xt, yt),
        model=model,
        loss=F.cross_entropy,
        num_classes=10,
        augment=functools.partial(random_shift, shift=shift) if shift else None,
    )


@register_task("mnist1d-mlp", _builtin=True)
def mnist1d_mlp(
    hidden: int = 100, num_samples: int = 5000, data_seed: int = 42, dropout: float = 0.0, shift: int = 0
) -> TaskSpec:
    """MNIST-1D with a 40-100-100-10 ReLU MLP (published ≈ 68 % test accuracy); ``dropout`` after
    each ReLU, ``shift``: random-translation augmentation of the training signals."""
    return _spec(MLP(40, 10, (hidden, hidden), dropout=dropout), num_samples, data_seed, shift)


@register_task("mnist1d-cnn", _builtin=True)
def mnist1d_cnn(channels: int = 25, num_samples: int = 5000, data_seed: int = 42, shift: int = 0) -> TaskSpec:
    """MNIST-1D with the paper's 3-layer 1-D CNN (published ≈ 94 % test accuracy); ``shift``:
    random-translation augmentation of the training signals."""
    return _spec(ConvNet1d(40, 10, channels), num_samples, data_seed, shift)
