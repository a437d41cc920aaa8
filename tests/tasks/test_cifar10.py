"""The CIFAR-10 loader reads a tiny data set written in torchvision's on-disk pickle format."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from raytune_opt.errors import ConfigError
from raytune_opt.tasks import get_task
from raytune_opt.tasks.cifar10 import FOLDER, TEST_FILES, TRAIN_FILES, random_crop_flip


def write_tiny_cifar10(root: Path, per_file: int = 4, seed: int = 0) -> dict[str, np.ndarray]:
    """Write ``root/cifar-10-batches-py`` the way the CIFAR-10 python tarball lays it out."""
    rng = np.random.default_rng(seed)
    folder = root / FOLDER
    folder.mkdir(parents=True)
    written = {}
    for i, name in enumerate(TRAIN_FILES + TEST_FILES):
        data = rng.integers(0, 256, (per_file, 3072), dtype=np.uint8)
        labels = [int(v) for v in (np.arange(per_file) + i) % 10]
        entry = {
            "batch_label": f"batch {i}",
            "labels": labels,
            "data": data,
            "filenames": [f"img_{i}_{j}.png" for j in range(per_file)],
        }
        with open(folder / name, "wb") as f:
            pickle.dump(entry, f, protocol=2)
        written[name] = data
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"c{k}" for k in range(10)], "num_vis": 3072}, f)
    return written


def test_loader_reads_the_pickle_format(tmp_path: Path) -> None:
    written = write_tiny_cifar10(tmp_path)
    spec = get_task("cifar10-resnet").build(data_dir=str(tmp_path), width=4)
    # train + val: the training batches (val carved from them, class-stratified); test: test_batch
    x = torch.cat([spec.train[0], spec.val[0]])
    y = torch.cat([spec.train[1], spec.val[1]])
    assert x.shape == (20, 3, 32, 32) and x.dtype == torch.uint8 and y.shape == (20,)
    assert len(spec.val[1]) >= 1 and len(spec.train[1]) >= 1
    # row-major 3072 = channel-major 3×32×32 (red plane first), in file order
    first = torch.from_numpy(written["data_batch_1"][0].reshape(3, 32, 32))
    assert any(torch.equal(img, first) for img in x)
    assert torch.equal(spec.test[0][-1], torch.from_numpy(written["test_batch"][-1].reshape(3, 32, 32)))
    assert sorted(y.tolist()) == sorted(sum(([v % 10 for v in range(i, i + 4)] for i in range(5)), []))
    assert spec.test[1].tolist() == [5, 6, 7, 8]
    out = spec.model(x[:2])
    assert out.shape == (2, 10)
    assert spec.loss(out, y[:2]).isfinite()
    # the folder itself works too
    again = get_task("cifar10-resnet").build(data_dir=str(tmp_path / FOLDER), width=4)
    assert len(again.train[0]) + len(again.val[0]) == 20


def test_missing_folder_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="data_dir"):
        get_task("cifar10-resnet").build(data_dir=str(tmp_path))


def test_random_crop_flip_keeps_pixels() -> None:
    torch.manual_seed(0)
    x = torch.randint(0, 255, (16, 3, 8, 8), dtype=torch.uint8)
    out = random_crop_flip(x, padding=0)
    # no padding: each image is itself or its mirror image
    assert all(torch.equal(o, i) or torch.equal(o, i.flip(-1)) for o, i in zip(out, x, strict=True))
    padded = random_crop_flip(x, padding=2)
    assert padded.shape == x.shape and padded.dtype == torch.uint8


def test_write_cifar10_round_trip(tmp_path: Path) -> None:
    from raytune_opt.tasks.cifar10 import load_cifar10, write_cifar10

    x = torch.randint(0, 256, (12, 3, 32, 32), dtype=torch.uint8)
    y = torch.arange(12) % 10
    write_cifar10(tmp_path, train=(x[:10], y[:10]), test=(x[10:], y[10:]))
    xr, yr, xt, yt = load_cifar10(tmp_path)
    assert (
        torch.equal(xr, x[:10])
        and torch.equal(yr, y[:10])
        and torch.equal(xt, x[10:])
        and torch.equal(yt, y[10:])
    )
