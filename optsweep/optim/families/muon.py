"""Muon: momentum orthogonalised by a Newton–Schulz iteration, for weight matrices; AdamW for
the other parameters (Jordan et al., 2024; the scale of Liu et al., 2025 "Moonlight").

Matrices (torch: every tensor of ≥ 2 axes, ≥ 3 flattened to (out, −1) as Keller Jordan's
reference flattens conv kernels; keras: exactly 2 axes):
torch:  b ← μ b + (1 − μ) g;  u = g + μ(b − g) (Nesterov) or b
keras:  b ← μ b + g;          u = g + μ b (Nesterov) or b
O = NS₅(u): X ← u/‖u‖ (transposed when rows > columns);  5×: A = XXᵀ;  X ← aX + (bA + cA²)X
θ ← θ(1 − ηλ) − η s O,  s = √max(1, A/B) (torch; ``rms_rate`` r: r√max(A, B)), r√max(A, B)
(keras, r = 0.2; ``rms_rate`` null: 1), A × B the matrix's shape.
Other tensors (biases, and keras's conv kernels): AdamW at η·``adam_lr_ratio`` with its own
β's, ε and decay λₐ (torch: ``torch.optim.AdamW``'s rule, decaying with that rate; keras:
``keras.optimizers.Muon``'s Adam step, ε-hat, decaying with η).

torch (``torch.optim.Muon``) runs NS in bfloat16 with ‖u‖ clamped to ε; keras
(``keras.optimizers.Muon``) in the parameters' dtype with ε added to ‖u‖. torch's Muon refuses
any tensor that is not a matrix: the torch user's recipe is a second optimizer, AdamW, for the
rest, which torch semantics build in (AdamW's defaults). NS is batched over the trial axis
(``baddbmm``); a, b, c, the step count, Nesterov and ``rms_rate`` are structural (one batched
iteration per group of trials), the rest per trial.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from ..base import HyperParams, Kernel, per_trial, rows, step_counter
from ..lazy import torch
from ..parameters import (
    OptimizerInfo,
    ParamInfo,
    flag,
    learning_rate,
    momentum,
    with_common_knobs,
)

if TYPE_CHECKING:
    from torch import Tensor


class MuonState(NamedTuple):
    """``momentum_buffer``: Muon's b for matrices, AdamW's m for the others; ``exp_avg_sq``:
    AdamW's v (allocated on the first update, when the trial axis tells matrices apart; a 0-d
    zero for matrices)."""

    step: Tensor
    momentum_buffer: list[Tensor]
    exp_avg_sq: list[Tensor]


def _init(params: Sequence[Tensor]) -> MuonState:
    return MuonState(
        step_counter(params),
        [torch.zeros_like(p) for p in params],
        [p.new_zeros(()) for p in params],
    )


def newton_schulz(
    u: Tensor,
    coefficients: tuple[float, float, float],
    steps: int,
    eps: float,
    *,
    keras: bool,
    per_matrix: bool = False,
) -> Tensor:
    """NS of a batch of matrices ``(N, A, B)``, each on its own: torch's in bfloat16, keras's
    in ``u``'s dtype.

    torch's batched with ``baddbmm`` unless ``per_matrix``: then with ``addmm`` matrix by
    matrix, bit for bit ``torch.optim.Muon``. In bfloat16 the two differ in the last
    bit now and then (CPU, 3×4 matrices: 14 of 2000 five-step runs), which a bfloat16 step
    turns into a relative 2⁻⁸ of one element's update. The K-batched form stays: on a CPU,
    32 trials of a 784-128-10 MLP took 38 ms a step batched against 1.4 s matrix by matrix
    (bfloat16 ``addmm`` of a 128×784 matrix ≈ 1.4 ms; 2 loaded cores)."""
    a, b, c = coefficients
    tall = u.size(-2) > u.size(-1)
    x = u if keras else u.bfloat16()
    if tall:
        x = x.transpose(-2, -1)
    norm = torch.linalg.vector_norm(x, dim=(-2, -1), keepdim=True)
    x = x / (norm + eps) if keras else x / norm.clamp(min=eps)
    if keras:
        for _ in range(steps):
            gram = x @ x.transpose(-2, -1)
            x = a * x + (b * gram + c * gram @ gram) @ x
    elif per_matrix:
        out = []
        for m in x:
            for _ in range(steps):
                gram = m @ m.T
                m = torch.addmm(m, torch.addmm(gram, gram, gram, beta=b, alpha=c), m, beta=a)
            out.append(m)
        x = torch.stack(out)
    else:
        for _ in range(steps):
            gram = x @ x.transpose(-2, -1)
            x = torch.baddbmm(x, torch.baddbmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    return x.transpose(-2, -1) if tall else x


def muon_kernel(
    *,
    keras: bool,
    nesterov: bool,
    coefficients: tuple[float, float, float],
    ns_steps: int,
    ns_epsilon: float,
    rms_rate: float | None,
) -> Kernel:
    """Muon with AdamW for the non-matrices (the module docstring's rule), K-batched: NS by
    ``baddbmm`` over the trials; one trial without a trial axis (the pure form of one trial,
    the ``torch.optim`` wrapper) by ``addmm``, bit for bit torch's (:func:`newton_schulz`)."""

    def update_(
        grads: Sequence[Tensor], state: MuonState, params: Sequence[Tensor], hp: HyperParams
    ) -> None:
        lr, mu = hp["learning_rate"], hp["momentum"]
        b1, b2, eps = hp["adam_beta_1"], hp["adam_beta_2"], hp["epsilon"]
        trial_axes = lr.ndim
        state.step.add_(1)
        t = state.step
        bc1, bc2 = 1 - b1**t, 1 - b2**t
        adam_lr = lr * hp["adam_lr_ratio"]
        # AdamW: θ ← θ − step · m / (√v + e)
        if keras:  # keras's Adam: η√(1−β₂ᵗ)/(1−β₁ᵗ) · m/(√v + ε), decay with η
            adam_step, e, adam_decay = adam_lr * torch.sqrt(bc2) / bc1, eps, lr
        else:  # torch's AdamW: η/(1−β₁ᵗ) · m/(√v/√(1−β₂ᵗ) + ε), decay with its own η
            adam_step, e, adam_decay = (
                adam_lr * torch.sqrt(bc2) / bc1,
                eps * torch.sqrt(bc2),
                adam_lr,
            )
        coefs = torch.stack(
            [
                mu,
                1 - mu,
                1 - lr * hp["weight_decay"],
                1 - b1,
                1 - b2,
                e,
                -adam_step,
                1 - adam_decay * hp["adam_weight_decay"],
            ]
        ).to(params[0])
        for i, (g, p) in enumerate(zip(grads, params, strict=True)):
            mu_, w, shrink, w1, w2, e_, neg_step, adam_shrink = rows(coefs, p)
            axes = p.ndim - trial_axes
            buf = state.momentum_buffer[i]
            if axes == 2 or (axes > 2 and not keras):
                p.mul_(shrink)
                if keras:
                    buf.add_(g + buf * (mu_ - 1))
                    u = g + mu_ * buf if nesterov else buf
                else:
                    buf.lerp_(g, w)
                    u = g.lerp(buf, mu_) if nesterov else buf
                out = p.shape[trial_axes]
                matrix = u.reshape(-1, out, math.prod(p.shape[trial_axes + 1 :]))
                # one trial without a trial axis (the pure form, the wrapper): torch's own way
                o = newton_schulz(
                    matrix,
                    coefficients,
                    ns_steps,
                    ns_epsilon,
                    keras=keras,
                    per_matrix=trial_axes == 0,
                )
                if rms_rate is not None:
                    scale = rms_rate * max(matrix.shape[-2:]) ** 0.5
                elif keras:
                    scale = 1.0
                else:
                    scale = max(1.0, matrix.size(-2) / matrix.size(-1)) ** 0.5
                p.add_(o.reshape(p.shape).to(p.dtype) * (-per_trial(lr, p) * scale))
            else:
                p.mul_(adam_shrink)
                v = state.exp_avg_sq[i]
                if v.shape != p.shape:
                    v = state.exp_avg_sq[i] = torch.zeros_like(p) + v.reshape(
                        v.shape + (1,) * (p.ndim - v.ndim)
                    )
                buf.lerp_(g, w1)
                v.lerp_(g.mul_(g), w2)
                denom = torch.sqrt(v, out=g).add_(e_)
                p.addcmul_(torch.div(buf, denom, out=denom), neg_step)

    return Kernel(_init, update_)


# ---------------------------------------------------------------------------------------------
# Definitions
# ---------------------------------------------------------------------------------------------


def _kernel(values: Mapping[str, Any], keras: bool) -> Kernel:
    return muon_kernel(
        keras=keras,
        nesterov=values["nesterov"],
        coefficients=(values["muon_a"], values["muon_b"], values["muon_c"]),
        ns_steps=values["ns_steps"],
        ns_epsilon=values["ns_epsilon"],
        rms_rate=values["rms_rate"],
    )


def _coefficient(name: str, value: float, doc: str) -> ParamInfo:
    return ParamInfo(name, "float", doc, value, value, structural=True)


_PARAMS = with_common_knobs(
    learning_rate(1e-3, 1e-3),
    momentum(0.95, "μ of the matrices' momentum (torch: an EMA; keras: a sum)"),
    flag("nesterov", "orthogonalise g + μ(b − g) (torch) or g + μb (keras) instead of b", True),
    ParamInfo(
        "ns_steps",
        "int",
        "Newton–Schulz iterations",
        5,
        5,
        structural=True,
        low=0.0,
        high=99.0,
    ),
    _coefficient("muon_a", 3.4445, "a of the quintic Newton–Schulz step aX + (bA + cA²)X"),
    _coefficient("muon_b", -4.7750, "b of the quintic Newton–Schulz step"),
    _coefficient("muon_c", 2.0315, "c of the quintic Newton–Schulz step"),
    ParamInfo(
        "ns_epsilon",
        "float",
        "ε of X = u/‖u‖: torch clamps ‖u‖ to it, keras adds it (torch's eps)",
        1e-7,
        1e-7,
        aliases=("eps",),
        structural=True,
        low=0.0,
    ),
    ParamInfo(
        "rms_rate",
        "float",
        "r: scale the step by r√max(A, B) (torch's match_rms_adamw: 0.2); null: torch "
        "√max(1, A/B), keras 1",
        None,
        0.2,
        structural=True,
        low=0.0,
        low_open=True,
        optional=True,
    ),
    ParamInfo(
        "adam_beta_1",
        "float",
        "β₁ of the AdamW step for the other parameters",
        0.9,
        0.9,
        low=0.0,
        high=1.0,
        high_open=True,
    ),
    ParamInfo(
        "adam_beta_2",
        "float",
        "β₂ of the AdamW step for the other parameters",
        0.999,
        0.999,
        low=0.0,
        high=1.0,
        high_open=True,
    ),
    ParamInfo(  # no alias: torch's Muon calls ns_epsilon eps
        "epsilon",
        "float",
        "ε of the AdamW step for the other parameters (torch AdamW's, keras's)",
        1e-8,
        1e-7,
        low=0.0,
    ),
    ParamInfo(
        "adam_weight_decay",
        "float",
        "λₐ, the decoupled decay of the other parameters (torch AdamW's 0.01, keras 0.004)",
        0.01,
        0.004,
        low=0.0,
    ),
    ParamInfo(
        "adam_lr_ratio",
        "float",
        "the AdamW step's rate as a multiple of η",
        1.0,
        1.0,
        low=0.0,
        low_open=True,
    ),
)
_PARAMS["weight_decay"] = ParamInfo(
    "weight_decay",
    "float",
    "λ, the decoupled decay θ ← θ − ηλθ of the matrices (torch Muon's 0.1, keras 0.004)",
    0.1,
    0.004,
    low=0.0,
    optional=True,
    neutral=0.0,
)

_MUON_RULE = "O = NS₅(u);  θ ← θ(1 − ηλ) − η s O"
MUON = OptimizerInfo(
    name="muon",
    params=_PARAMS,
    summary="momentum orthogonalised by Newton–Schulz for matrices, AdamW for the rest",
    reference="Jordan et al., 2024; Liu et al., 2025",
    update_rule={
        "torch": (
            "matrices (≥ 3 axes as (out, −1)): b ← μb + (1−μ)g;  u = g + μ(b − g);  "
            f"{_MUON_RULE}, s = √max(1, A/B), NS in bfloat16;  other tensors: AdamW"
        ),
        "keras": (
            f"2-D: b ← μb + g;  u = g + μb;  {_MUON_RULE}, s = 0.2√max(A, B);  "
            "other tensors (conv kernels too): keras's AdamW step"
        ),
    },
    differences=(
        "torch: EMA momentum, s = √max(1, A/B), NS in bfloat16 with ‖u‖ clamped to ε, λ 0.1; "
        "torch's Muon takes matrices only: conv kernels are flattened to (out, −1) (Keller "
        "Jordan's reference) and the rest goes to an AdamW with torch's defaults. keras: summed "
        "momentum, s = 0.2√max(A, B), NS in the parameters' dtype with ε added, λ 0.004; every "
        "tensor not 2-D (conv kernels too) takes keras's AdamW step. keras's exclude_layers and "
        "exclude_embeddings (by variable name) are not taken."
    ),
    kernel=_kernel,
    own_weight_decay=True,
    hints={
        "adjust_lr_fn": "use rms_rate: null for 'original' (√max(1, A/B)), 0.2 for "
        "'match_rms_adamw'; 'spectral_unclamped' is not supported.",
        "ns_coefficients": "give muon_a, muon_b and muon_c.",
    },
)

OPTIMIZERS = (MUON,)
