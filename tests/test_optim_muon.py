"""Muon on a conv net's tensors: what each convention does with a 4-D kernel and a bias.

torch: ``torch.optim.Muon`` refuses anything but a matrix; optsweep's torch semantics flatten a
kernel to (out, −1) as Keller Jordan's reference does and step the rest with
``torch.optim.AdamW`` (the torch user's recipe). keras: ``keras.optimizers.Muon`` steps every
tensor that is not 2-D, the kernel too, with its AdamW half. Both against the libraries.
"""

from __future__ import annotations

import pytest
import torch
from _keras import ARRAY_WARNING, keras
from torch import Tensor

from optsweep.optim import create

pytestmark = pytest.mark.filterwarnings(ARRAY_WARNING)

F64 = torch.float64
SHAPES = ((4, 2, 3, 3), (4,), (5, 36))  # conv kernel, its bias, a dense matrix
STEPS = 20


def start() -> list[Tensor]:
    gen = torch.Generator().manual_seed(3)
    return [torch.randn(s, generator=gen, dtype=F64) for s in SHAPES]


def grads(t: int) -> list[Tensor]:
    gen = torch.Generator().manual_seed(100 + t)
    return [torch.randn(s, generator=gen, dtype=F64) for s in SHAPES]


def run_ours(semantics: str, **kwargs: float) -> list[Tensor]:
    params = [p.clone().requires_grad_(True) for p in start()]
    opt = create(params, "muon", semantics=semantics, **kwargs)
    for t in range(STEPS):
        for p, g in zip(params, grads(t), strict=True):
            p.grad = g
        opt.step()
    return [p.detach() for p in params]


def test_torch_flattens_a_conv_kernel_and_steps_the_bias_with_adamw() -> None:
    kwargs = {"lr": 0.02, "weight_decay": 0.1, "momentum": 0.9}
    ours = run_ours("torch", **kwargs)
    kernel, bias, dense = [p.clone() for p in start()]
    kernel_2d = kernel.reshape(4, -1).requires_grad_(True)
    dense.requires_grad_(True)
    bias.requires_grad_(True)
    muon = torch.optim.Muon([kernel_2d, dense], **kwargs)
    adamw = torch.optim.AdamW([bias], lr=kwargs["lr"])  # AdamW's defaults otherwise
    for t in range(STEPS):
        g_kernel, g_bias, g_dense = grads(t)
        kernel_2d.grad, bias.grad, dense.grad = g_kernel.reshape(4, -1), g_bias, g_dense
        muon.step()
        adamw.step()
    want = [kernel_2d.detach().reshape(SHAPES[0]), bias.detach(), dense.detach()]
    for a, b in zip(ours, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.skipif(keras is None, reason="keras is not installed")
def test_keras_steps_a_conv_kernel_with_its_adamw_half() -> None:
    lr = float(torch.tensor(0.02, dtype=torch.float32))  # keras keeps η in float32
    ours = run_ours("keras", learning_rate=lr)
    variables = [keras.Variable(p.numpy(), dtype="float64") for p in start()]
    opt = keras.optimizers.Muon(learning_rate=0.02, exclude_embeddings=False)
    for t in range(STEPS):
        opt.apply_gradients(zip(grads(t), variables, strict=True))
    # keras's Python-float constants are float32 on the torch backend (test_optim_parity)
    for a, v in zip(ours, variables, strict=True):
        torch.testing.assert_close(a, v.value.detach(), rtol=2e-5, atol=1e-7)
    # the kernel took AdamW steps: moved by about η per element per step, not by a matrix's O
    moved = (ours[0] - start()[0]).abs().max()
    assert 0.5 * lr < moved <= STEPS * lr * 1.01
