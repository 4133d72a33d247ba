"""The CIFAR ResNets of He et al. 2016 as plain ``nn.Module``\\ s (trained K at a time through
``optsweep.usermodels``, as a user's module is).

"Deep Residual Learning for Image Recognition", section 4.2: a 3×3 convolution of 16 filters,
then three stages of n basic blocks (two 3×3 convolutions each, BatchNorm after every
convolution) of 16, 32 and 64 filters on 32×32, 16×16 and 8×8 maps, the first convolution of
stages 2 and 3 with stride 2; global average pooling, one fully connected layer: 6n + 2 layers
(ResNet-20, 32, 44, 56, 110). The shortcut that changes shape is the paper's option A for
CIFAR, parameter-free: the input subsampled by 2 and its new channels zero. The initialisation
follows the paper's (He et al. 2015, ``kaiming_normal_`` on convolutions and the dense layer),
as the widely used reimplementation akamaster/pytorch_resnet_cifar10 (ResNet-20: 91.25%) does;
``init="keras"`` draws glorot_uniform kernels and zero biases instead, as Keras layers start.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["DEPTHS", "CifarResNet"]

DEPTHS = (20, 32, 56)  # the depths optimizer papers compare on (6n + 2)


class _Block(nn.Module):
    """Two 3×3 convolutions with BatchNorm; the input added back before the last ReLU."""

    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.pad = (planes - in_planes) // 2 if stride != 1 or in_planes != planes else None

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x
        if self.pad is not None:  # option A: subsample, and the new channels are zero
            shortcut = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))
        return F.relu(out + shortcut)


class CifarResNet(nn.Module):
    """ResNet-``depth`` for 32×32 images (``depth`` = 6n + 2), ``num_classes`` logits."""

    def __init__(
        self, depth: int = 20, num_classes: int = 10, in_channels: int = 3, init: str = "torch"
    ) -> None:
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"a CIFAR ResNet's depth is 6n + 2 (20, 32, 56…), got {depth}")
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        blocks: list[nn.Module] = []
        in_planes = 16
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(n):
                blocks.append(_Block(in_planes, planes, stride if i == 0 else 1))
                in_planes = planes
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(64, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d | nn.Linear):
                if init == "keras":
                    nn.init.xavier_uniform_(module.weight)
                    if module.bias is not None:
                        nn.init.zeros_(module.bias)
                else:
                    nn.init.kaiming_normal_(module.weight)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.blocks(out)
        return self.fc(out.mean(dim=(2, 3)))
