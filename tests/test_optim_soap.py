"""SOAP against its reference, nikhilvyas/SOAP, transcribed (no package carries it).

``ReferenceSOAP`` is ``soap.py`` at a1e553530fde97d0e6b307d7c82ac6d38b072340 (2 Dec 2024,
"momentum change": m kept in the eigenbasis and carried into each new one), operation by
operation; only the ``channels_last`` branches are left out (optsweep's conv kernels are torch's
channels_first, the reference's default). It is the oracle of ``test_optim_parity`` (both
semantics) and of the cases here: K trials with different hyperparameters in one batched
update, each against the reference stepped alone; conv kernels (one factor per axis, or
merged); vectors with and without a factor; an axis too long for one; the memory estimate.

The reference runs float64 parameters only with torch's default dtype float64 (its factors are
allocated in the default dtype), as ``run`` here and the parity harness run it.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from itertools import chain
from typing import Any

import pytest
import torch
from torch import Tensor

from optsweep.optim import (
    create,
    inplace,
    resolve,
    stack_hyperparameters,
    state_slots,
)
from optsweep.optim.families.soap import factor_floats, merged_shape

F64 = torch.float64


class ReferenceSOAP(torch.optim.Optimizer):
    """nikhilvyas/SOAP's ``SOAP`` (soap.py, a1e5535), channels_first, transcribed."""

    def __init__(
        self,
        params: Any,
        lr: float = 3e-3,
        betas: tuple[float, float] = (0.95, 0.95),
        shampoo_beta: float = -1,
        eps: float = 1e-8,
        weight_decay: float = 0.01,
        precondition_frequency: int = 10,
        max_precond_dim: int = 10000,
        merge_dims: bool = False,
        precondition_1d: bool = False,
        normalize_grads: bool = False,
        correct_bias: bool = True,
    ) -> None:
        defaults = {
            "lr": lr,
            "betas": betas,
            "shampoo_beta": shampoo_beta,
            "eps": eps,
            "weight_decay": weight_decay,
            "precondition_frequency": precondition_frequency,
            "max_precond_dim": max_precond_dim,
            "merge_dims": merge_dims,
            "precondition_1d": precondition_1d,
            "normalize_grads": normalize_grads,
            "correct_bias": correct_bias,
        }
        super().__init__(params, defaults)

    def merge_dims(self, grad: Tensor, max_precond_dim: int) -> Tensor:
        shape = grad.shape
        new_shape = []
        curr_shape = 1
        for sh in shape:
            temp_shape = curr_shape * sh
            if temp_shape > max_precond_dim:
                if curr_shape > 1:
                    new_shape.append(curr_shape)
                    curr_shape = sh
                else:
                    new_shape.append(sh)
                    curr_shape = 1
            else:
                curr_shape = temp_shape
        if curr_shape > 1 or len(new_shape) == 0:
            new_shape.append(curr_shape)
        return grad.reshape(new_shape)

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                state = self.state[p]
                if "step" not in state:
                    state["step"] = 0
                if "exp_avg" not in state:
                    state["exp_avg"] = torch.zeros_like(grad)
                    state["exp_avg_sq"] = torch.zeros_like(grad)
                if "Q" not in state:
                    self.init_preconditioner(
                        grad,
                        state,
                        precondition_frequency=group["precondition_frequency"],
                        precondition_1d=group["precondition_1d"],
                        shampoo_beta=(
                            group["shampoo_beta"]
                            if group["shampoo_beta"] >= 0
                            else group["betas"][1]
                        ),
                        max_precond_dim=group["max_precond_dim"],
                        merge_dims=group["merge_dims"],
                    )
                    self.update_preconditioner(
                        grad,
                        state,
                        max_precond_dim=group["max_precond_dim"],
                        merge_dims=group["merge_dims"],
                        precondition_1d=group["precondition_1d"],
                    )
                    continue
                grad_projected = self.project(
                    grad,
                    state,
                    merge_dims=group["merge_dims"],
                    max_precond_dim=group["max_precond_dim"],
                )
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                beta1, beta2 = group["betas"]
                state["step"] += 1
                exp_avg.mul_(beta1).add_(grad_projected, alpha=(1.0 - beta1))
                exp_avg_sq.mul_(beta2).add_(grad_projected.square(), alpha=(1.0 - beta2))
                denom = exp_avg_sq.sqrt().add_(group["eps"])
                exp_avg_projected = exp_avg
                step_size = group["lr"]
                if group["correct_bias"]:
                    bias_correction1 = 1.0 - beta1 ** (state["step"])
                    bias_correction2 = 1.0 - beta2 ** (state["step"])
                    step_size = step_size * (bias_correction2**0.5) / bias_correction1
                norm_grad = self.project_back(
                    exp_avg_projected / denom,
                    state,
                    merge_dims=group["merge_dims"],
                    max_precond_dim=group["max_precond_dim"],
                )
                if group["normalize_grads"]:
                    norm_grad = norm_grad / (1e-30 + torch.mean(norm_grad**2) ** 0.5)
                p.add_(norm_grad, alpha=-step_size)
                if group["weight_decay"] > 0.0:
                    p.add_(p, alpha=(-group["lr"] * group["weight_decay"]))
                self.update_preconditioner(
                    grad,
                    state,
                    max_precond_dim=group["max_precond_dim"],
                    merge_dims=group["merge_dims"],
                    precondition_1d=group["precondition_1d"],
                )

    def init_preconditioner(
        self,
        grad: Tensor,
        state: dict,
        precondition_frequency: int = 10,
        shampoo_beta: float = 0.95,
        max_precond_dim: int = 10000,
        precondition_1d: bool = False,
        merge_dims: bool = False,
    ) -> None:
        state["GG"] = []
        if grad.dim() == 1:
            if not precondition_1d or grad.shape[0] > max_precond_dim:
                state["GG"].append([])
            else:
                state["GG"].append(torch.zeros(grad.shape[0], grad.shape[0], device=grad.device))
        else:
            if merge_dims:
                grad = self.merge_dims(grad, max_precond_dim)
            for sh in grad.shape:
                if sh > max_precond_dim:
                    state["GG"].append([])
                else:
                    state["GG"].append(torch.zeros(sh, sh, device=grad.device))
        state["Q"] = None
        state["precondition_frequency"] = precondition_frequency
        state["shampoo_beta"] = shampoo_beta

    def project(
        self, grad: Tensor, state: dict, merge_dims: bool = False, max_precond_dim: int = 10000
    ) -> Tensor:
        original_shape = grad.shape
        if merge_dims:
            grad = self.merge_dims(grad, max_precond_dim)
        for mat in state["Q"]:
            if len(mat) > 0:
                grad = torch.tensordot(grad, mat, dims=[[0], [0]])
            else:
                permute_order = [*range(1, len(grad.shape)), 0]  # the reference: list(...) + [0]
                grad = grad.permute(permute_order)
        if merge_dims:
            grad = grad.reshape(original_shape)
        return grad

    def update_preconditioner(
        self,
        grad: Tensor,
        state: dict,
        max_precond_dim: int = 10000,
        merge_dims: bool = False,
        precondition_1d: bool = False,
    ) -> None:
        if state["Q"] is not None:
            state["exp_avg"] = self.project_back(
                state["exp_avg"], state, merge_dims=merge_dims, max_precond_dim=max_precond_dim
            )
        if grad.dim() == 1:
            if precondition_1d and grad.shape[0] <= max_precond_dim:
                state["GG"][0].lerp_(
                    grad.unsqueeze(1) @ grad.unsqueeze(0), 1 - state["shampoo_beta"]
                )
        else:
            new_grad = self.merge_dims(grad, max_precond_dim) if merge_dims else grad
            for idx, sh in enumerate(new_grad.shape):
                if sh <= max_precond_dim:
                    outer_product = torch.tensordot(
                        new_grad,
                        new_grad,
                        dims=[[*chain(range(idx), range(idx + 1, len(new_grad.shape)))]] * 2,
                    )
                    state["GG"][idx].lerp_(outer_product, 1 - state["shampoo_beta"])
        if state["Q"] is None:
            state["Q"] = self.get_orthogonal_matrix(state["GG"])
        if state["step"] > 0 and state["step"] % state["precondition_frequency"] == 0:
            state["Q"] = self.get_orthogonal_matrix_QR(state, max_precond_dim, merge_dims)
        if state["step"] > 0:
            state["exp_avg"] = self.project(
                state["exp_avg"], state, merge_dims=merge_dims, max_precond_dim=max_precond_dim
            )

    def project_back(
        self, grad: Tensor, state: dict, merge_dims: bool = False, max_precond_dim: int = 10000
    ) -> Tensor:
        original_shape = grad.shape
        if merge_dims:
            grad = self.merge_dims(grad, max_precond_dim)
        for mat in state["Q"]:
            if len(mat) > 0:
                grad = torch.tensordot(grad, mat, dims=[[0], [1]])
            else:
                permute_order = [*range(1, len(grad.shape)), 0]  # the reference: list(...) + [0]
                grad = grad.permute(permute_order)
        if merge_dims:
            grad = grad.reshape(original_shape)
        return grad

    def get_orthogonal_matrix(self, mat: list) -> list:
        matrix = []
        for m in mat:
            if len(m) == 0:
                matrix.append([])
                continue
            if m.data.dtype != torch.float:
                float_data = False
                original_type = m.data.dtype
                original_device = m.data.device
                matrix.append(m.data.float())
            else:
                float_data = True
                matrix.append(m.data)
        final = []
        for m in matrix:
            if len(m) == 0:
                final.append([])
                continue
            try:
                _, Q = torch.linalg.eigh(m + 1e-30 * torch.eye(m.shape[0], device=m.device))
            except Exception:  # the reference's bare except
                _, Q = torch.linalg.eigh(
                    m.to(torch.float64) + 1e-30 * torch.eye(m.shape[0], device=m.device)
                )
                Q = Q.to(m.dtype)
            Q = torch.flip(Q, [1])
            if not float_data:
                Q = Q.to(original_device).type(original_type)
            final.append(Q)
        return final

    def get_orthogonal_matrix_QR(
        self, state: dict, max_precond_dim: int = 10000, merge_dims: bool = False
    ) -> list:
        precond_list = state["GG"]
        orth_list = state["Q"]
        matrix = []
        orth_matrix = []
        for m, o in zip(precond_list, orth_list, strict=True):
            if len(m) == 0:
                matrix.append([])
                orth_matrix.append([])
                continue
            if m.data.dtype != torch.float:
                float_data = False
                original_type = m.data.dtype
                original_device = m.data.device
                matrix.append(m.data.float())
                orth_matrix.append(o.data.float())
            else:
                float_data = True
                matrix.append(m.data.float())
                orth_matrix.append(o.data.float())
        orig_shape = state["exp_avg_sq"].shape
        if merge_dims:
            exp_avg_sq = self.merge_dims(state["exp_avg_sq"], max_precond_dim)
        else:
            exp_avg_sq = state["exp_avg_sq"]
        final = []
        for ind, (m, o) in enumerate(zip(matrix, orth_matrix, strict=True)):
            if len(m) == 0:
                final.append([])
                continue
            est_eig = torch.diag(o.T @ m @ o)
            sort_idx = torch.argsort(est_eig, descending=True)
            exp_avg_sq = exp_avg_sq.index_select(ind, sort_idx)
            o = o[:, sort_idx]
            power_iter = m @ o
            Q, _ = torch.linalg.qr(power_iter)
            if not float_data:
                Q = Q.to(original_device).type(original_type)
            final.append(Q)
        if merge_dims:
            exp_avg_sq = exp_avg_sq.reshape(orig_shape)
        state["exp_avg_sq"] = exp_avg_sq
        return final


# The reference's keyword arguments that optsweep names alike.
SAME_NAMES = (
    "precondition_frequency",
    "max_precond_dim",
    "merge_dims",
    "precondition_1d",
    "normalize_grads",
    "correct_bias",
)


def reference_kwargs(values: dict[str, Any]) -> dict[str, Any]:
    """The reference's keyword arguments for resolved optsweep values."""
    return {
        "lr": values["learning_rate"],
        "betas": (values["beta_1"], values["beta_2"]),
        "shampoo_beta": -1 if values["shampoo_beta"] is None else values["shampoo_beta"],
        "eps": values["epsilon"],
        "weight_decay": values["weight_decay"] or 0.0,
        **{k: values[k] for k in SAME_NAMES},
    }


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype) -> Iterator[None]:
    """``dtype`` as torch's default for the block: the reference allocates its factors in the
    default dtype (float64 parameters need it), torch.optim its scalar state (NAdam's
    mu_product)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


# ---------------------------------------------------------------------------------------------
# A problem with a conv kernel, its bias and a dense matrix
# ---------------------------------------------------------------------------------------------

SHAPES = ((4, 2, 3, 3), (4,), (5, 6), (7,))  # conv kernel, its bias, a matrix, a vector
STEPS = 25  # two refreshes at the reference's frequency 10; more with smaller ones


def start(seed: int = 3) -> list[Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=gen, dtype=F64) for s in SHAPES]


def gradient(params: list[Tensor], t: int) -> list[Tensor]:
    """A parameter-dependent gradient with a seeded noise: ∇ of Σ (θ − 0.3)² plus ξₜ."""
    gen = torch.Generator().manual_seed(100 + t)
    return [2 * (p - 0.3) + 0.5 * torch.randn(p.shape, generator=gen, dtype=F64) for p in params]


def run_reference(values: dict[str, Any], steps: int = STEPS) -> list[list[Tensor]]:
    """θ after every step, the reference stepped alone."""
    params = [p.clone().requires_grad_(True) for p in start()]
    with default_dtype(F64):
        opt = ReferenceSOAP(params, **reference_kwargs(values))
        out = []
        for t in range(steps):
            for p, g in zip(params, gradient([p.detach() for p in params], t), strict=True):
                p.grad = g
            opt.step()
            out.append([p.detach().clone() for p in params])
    return out


# the structures a batch shares, and per-trial hyperparameters that differ
STRUCTURES = {
    "defaults": {},
    "frequency-3": {"precondition_frequency": 3},
    "merge_dims": {"merge_dims": True, "precondition_frequency": 4},
    "precondition_1d": {"precondition_1d": True, "precondition_frequency": 5},
    "normalize+no-bias-correction": {"normalize_grads": True, "correct_bias": False},
    "max_precond_dim-4": {"max_precond_dim": 4, "precondition_frequency": 3},
    "merge-max-8": {"merge_dims": True, "max_precond_dim": 8, "precondition_frequency": 3},
}
TRIALS = [
    {"learning_rate": 0.01},
    {"learning_rate": 0.003, "betas": (0.9, 0.99), "weight_decay": 0.1},
    {"learning_rate": 0.02, "shampoo_beta": 0.8, "epsilon": 1e-6, "weight_decay": 0.0},
]


@pytest.mark.parametrize("structure", list(STRUCTURES))
def test_trials_with_their_own_hyperparameters_follow_the_reference(structure: str) -> None:
    """One batched update of three trials with different η, β's, β_sh, ε and λ, against the
    reference run once per trial, at every step (float64)."""
    trials = [resolve("soap", "torch", {**STRUCTURES[structure], **t}) for t in TRIALS]
    kernel = inplace("soap", "torch", trials[0])
    hp = stack_hyperparameters("soap", trials)
    params = [torch.stack([p] * len(trials)) for p in start()]
    state = kernel.init(params)
    want = [run_reference(v) for v in trials]
    for t in range(STEPS):
        rows = [gradient([p[k] for p in params], t) for k in range(len(trials))]
        grads = [torch.stack([r[i] for r in rows]) for i in range(len(params))]
        kernel.update_(grads, state, params, hp)
        for k in range(len(trials)):
            for ours, ref in zip(params, want[k][t], strict=True):
                torch.testing.assert_close(ours[k], ref, rtol=1e-9, atol=1e-12)
    assert not torch.allclose(params[0][0], params[0][1])


@pytest.mark.parametrize("structure", ["defaults", "merge_dims", "precondition_1d"])
def test_the_wrapper_follows_the_reference(structure: str) -> None:
    values = resolve("soap", "torch", {**STRUCTURES[structure], **TRIALS[1]})
    ours = [p.clone().requires_grad_(True) for p in start()]
    opt = create(ours, "soap", **values)
    want = run_reference(values)
    for t in range(STEPS):
        for p, g in zip(ours, gradient([p.detach() for p in ours], t), strict=True):
            p.grad = g
        opt.step()
        for a, b in zip(ours, want[t], strict=True):
            torch.testing.assert_close(a.detach(), b, rtol=1e-9, atol=1e-12)


def test_the_first_step_only_builds_the_bases() -> None:
    params = [p.clone().requires_grad_(True) for p in start()]
    opt = create(params, "soap", lr=0.1)
    for p, g in zip(params, gradient(start(), 0), strict=True):
        p.grad = g
    opt.step()
    assert all(torch.equal(p.detach(), q) for p, q in zip(params, start(), strict=True))
    kernel_state = opt.state[params[0]]
    assert kernel_state["preconditioner"].shape == (sum(d * d for d in SHAPES[0]),)
    q = kernel_state["eigenbasis"][:16].view(4, 4)
    torch.testing.assert_close(q.T @ q, torch.eye(4, dtype=F64))


def test_a_trial_whose_factor_is_not_finite_diverges_alone() -> None:
    """eigh refuses a NaN matrix: the trial's basis is NaN, the others go on."""
    values = resolve("soap", "torch", {"learning_rate": 0.01})
    kernel = inplace("soap", "torch", values)
    hp = stack_hyperparameters("soap", [values, values])
    params = [torch.stack([p, p]) for p in start()]
    state = kernel.init(params)
    grads = [torch.stack([g, g]) for g in gradient(start(), 0)]
    grads[0][1, 0, 0, 0, 0] = torch.nan
    kernel.update_(grads, state, params, hp)
    kernel.update_([torch.stack([g, g]) for g in gradient(start(), 1)], state, params, hp)
    assert torch.isnan(params[0][1]).all() and torch.isfinite(params[0][0]).all()
    assert torch.isfinite(params[2]).all()


@pytest.mark.parametrize(
    ("shape", "max_dim", "merged"),
    [
        ((64, 32, 3, 3), 10000, (6144, 3)),
        ((4, 2, 3, 3), 10000, (72,)),
        ((4, 2, 3, 3), 8, (8, 3, 3)),
        ((3, 20000), 10000, (3, 20000)),
        ((), 10000, (1,)),
    ],
)
def test_merged_shapes_are_the_reference_merge(
    shape: tuple[int, ...], max_dim: int, merged: tuple[int, ...]
) -> None:
    assert merged_shape(shape, max_dim) == merged
    reference = ReferenceSOAP([torch.zeros(1, requires_grad=True)])
    assert tuple(reference.merge_dims(torch.zeros(shape), max_dim).shape) == merged


def test_the_memory_estimate_counts_factors_and_bases() -> None:
    """The MLP 784-128-10: 2·(784² + 128²) + 2·(10² + 128²) floats of factors and bases per
    trial, 12.7 times its 101,770 parameters: counted as 13 copies beyond the three."""
    shapes = [(128, 784), (128,), (10, 128), (10,)]
    values = resolve("soap", "torch", {})
    floats = 2 * (784**2 + 128**2) + 2 * (10**2 + 128**2)
    assert factor_floats(values, shapes) == floats
    size = sum(math.prod(s) for s in shapes)
    assert state_slots(values, "soap", shapes) == 3 + math.ceil(floats / size) == 16
    assert state_slots(values, "soap") == 3  # without shapes: the copies only
    one_d = resolve("soap", "torch", {"precondition_1d": True, "max_precond_dim": 200})
    assert factor_floats(one_d, shapes) == 2 * (128**2 + 128**2 + 10**2 + 128**2 + 10**2)
    assert state_slots(resolve("adam", "torch", {}), "adam", shapes) == 3  # unchanged


def test_dynamic_loss_scaling_is_refused() -> None:
    with pytest.raises(ValueError, match=r"soap: dynamic_loss_scale is not supported"):
        resolve("soap", "torch", {"dynamic_loss_scale": True})
    with pytest.raises(ValueError, match=r"soap: dynamic_loss_scale is not supported"):
        create([torch.zeros(2, 2, requires_grad=True)], "soap", dynamic_loss_scale=True)
