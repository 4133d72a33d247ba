"""An MLP for whatever images a user's .npz holds, sized from its arguments:

model: {module: digits_mlp.py:mlp, args: {pixels: 784, hidden: [128, 64]}}
"""

from __future__ import annotations

import itertools

from torch import nn


def mlp(pixels: int, hidden: list[int], classes: int = 10) -> nn.Module:
    widths = [pixels, *hidden]
    layers: list[nn.Module] = [nn.Flatten()]
    for a, b in itertools.pairwise(widths):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(widths[-1], classes))
