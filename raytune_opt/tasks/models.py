"""The models behind the built-in tasks.

- :class:`MLP` — fully connected ReLU network (MNIST-1D's MLP: 40 → 100 → 100 → 10).
- :class:`ConvNet1d` — MNIST-1D's CNN: three stride-2 1-D convolutions with 25 channels, then a linear layer.
- :class:`ResNet` — a small CIFAR ResNet (He et al. 2016, §4.2: 3 stages of basic blocks, widths 16/32/64).
- :class:`LinearPredictor` — the GLM linear predictor η = Xβ + b.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = ["MLP", "ConvNet1d", "ResNet", "LinearPredictor"]


class MLP(nn.Sequential):
    """``in → hidden[0] → … → hidden[-1] → out`` with ReLU between the linear layers, and dropout
    with probability ``dropout`` after each ReLU when it is above 0 (none at 0: the layers, and
    the state dict's keys, are then those of the plain MLP)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        hidden: Sequence[int] = (100, 100),
        dropout: float = 0.0,
    ) -> None:
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        widths = [in_features, *hidden]
        layers: list[nn.Module] = [nn.Flatten()]
        for a, b in zip(widths[:-1], widths[1:], strict=False):
            layers += [nn.Linear(a, b), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(widths[-1], out_features))
        super().__init__(*layers)


class ConvNet1d(nn.Module):
    """MNIST-1D CNN (Greydanus 2020): conv(k5,s2) → conv(k3,s2) → conv(k3,s2), ReLU, then linear.

    A length-40 signal becomes 19 → 10 → 5 positions, so the linear layer sees ``channels * 5`` inputs.
    """

    def __init__(self, length: int, out_features: int, channels: int = 25) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(1, channels, 5, stride=2, padding=1)
        self.conv2 = nn.Conv1d(channels, channels, 3, stride=2, padding=1)
        self.conv3 = nn.Conv1d(channels, channels, 3, stride=2, padding=1)
        n = length
        for k in (5, 3, 3):
            n = (n + 2 - k) // 2 + 1
        self.linear = nn.Linear(channels * n, out_features)

    def forward(self, x: Tensor) -> Tensor:
        h = x.view(x.shape[0], 1, x.shape[-1])
        h = F.relu(self.conv1(h))
        h = F.relu(self.conv2(h))
        h = F.relu(self.conv3(h))
        return self.linear(h.flatten(1))


class _BasicBlock(nn.Module):
    """y = ReLU(BN(conv(ReLU(BN(conv(x))))) + shortcut(x)), shortcut a strided 1×1 conv when shapes change."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: Tensor) -> Tensor:
        h = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(h)) + self.shortcut(x))


class ResNet(nn.Module):
    """CIFAR ResNet-(6n+2): stem conv, 3 stages of ``blocks`` basic blocks (widths ``width``, 2·width,
    4·width; stride 2 between stages), global average pooling, linear classifier.

    Takes ``uint8`` images ``(N, 3, H, W)`` and normalises them itself with the per-channel
    ``mean``/``std`` (in [0, 1] units), so the data set can stay compact in memory.
    """

    def __init__(
        self,
        num_classes: int = 10,
        blocks: int = 1,
        width: int = 16,
        mean: Sequence[float] = (0.4914, 0.4822, 0.4465),
        std: Sequence[float] = (0.2470, 0.2435, 0.2616),
    ) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1) * 255.0, persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1) * 255.0, persistent=False)
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        stages: list[nn.Module] = []
        c_in = width
        for i, c_out in enumerate((width, 2 * width, 4 * width)):
            for b in range(blocks):
                stages.append(_BasicBlock(c_in, c_out, 2 if (i > 0 and b == 0) else 1))
                c_in = c_out
        self.stages = nn.Sequential(*stages)
        self.fc = nn.Linear(c_in, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        h = (x.float() - self.mean) / self.std
        h = self.stages(self.stem(h))
        return self.fc(F.adaptive_avg_pool2d(h, 1).flatten(1))


class LinearPredictor(nn.Linear):
    """The GLM linear predictor η = Xβ + b (one output), returned as a vector of shape ``(N,)``."""

    def __init__(self, in_features: int) -> None:
        super().__init__(in_features, 1)
        nn.init.zeros_(self.weight)
        nn.init.zeros_(self.bias)

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x).squeeze(-1)
