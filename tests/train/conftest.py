"""Fixtures of the training tests: one thread per test process, a tiny CIFAR-10 folder on disk."""

from __future__ import annotations

import pytest
import torch

from raytune_opt.tasks.cifar10 import write_cifar10


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_cifar(tmp_path_factory: pytest.TempPathFactory) -> str:
    """40 training and 10 test random images with labels 0…9, in torchvision's CIFAR-10 format."""
    g = torch.Generator().manual_seed(0)
    root = tmp_path_factory.mktemp("cifar")

    def make(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8), torch.arange(n) % 10

    write_cifar10(root, train=make(40), test=make(10))
    return str(root)
