"""A small residual CNN for 32x32 colour images, to train with optsweep's generic path:

    model: {module: residual_cnn.py:ResidualCNN, args: {width: 16, blocks: 2}}

Two stages of residual blocks (3x3 convolutions, each followed by BatchNorm, identity
shortcuts; a strided 1x1 shortcut where the width doubles), global average pooling, one linear
layer: He et al.'s CIFAR ResNet shape, smaller. optsweep keeps each trial's BatchNorm running
statistics apart, as if it trained alone.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class Block(nn.Module):
    def __init__(self, channels_in: int, channels_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels_in, channels_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels_out)
        self.conv2 = nn.Conv2d(channels_out, channels_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels_out)
        self.shortcut = (
            nn.Conv2d(channels_in, channels_out, 1, stride=stride)
            if stride != 1 or channels_in != channels_out
            else nn.Identity()
        )

    def forward(self, x: Tensor) -> Tensor:
        h = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(h)) + self.shortcut(x))


class ResidualCNN(nn.Module):
    def __init__(self, width: int = 16, blocks: int = 2, classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, width, 3, padding=1, bias=False)
        self.stem_bn = nn.BatchNorm2d(width)
        layers: list[nn.Module] = []
        for stage, channels in enumerate((width, 2 * width)):
            for i in range(blocks):
                channels_in = channels if i else (width if stage == 0 else channels // 2)
                layers.append(Block(channels_in, channels, 2 if stage and i == 0 else 1))
        self.blocks = nn.Sequential(*layers)
        self.head = nn.Linear(2 * width, classes)

    def forward(self, x: Tensor) -> Tensor:
        h = self.blocks(F.relu(self.stem_bn(self.stem(x))))
        return self.head(h.mean(dim=(2, 3)))
