"""SOAP: Adam in the eigenbasis of Shampoo's preconditioner (Vyas et al., 2024), as the
reference nikhilvyas/SOAP (``soap.py`` at a1e5535) computes it.

A tensor G is viewed with its axes merged (``merge_dims``: neighbours multiplied while the
product stays ≤ ``max_precond_dim``) or as it is; each axis i of size dᵢ ≤ ``max_precond_dim``
has a factor Lᵢ (dᵢ × dᵢ) and its eigenbasis Qᵢ, columns by decreasing eigenvalue (a vector
only with ``precondition_1d``; a 0-d tensor none, or 1 × 1 merged). P(X) rotates every axis i of
X into Qᵢ (X ×ᵢ Qᵢᵀ), P⁻¹ back; Gᵢ is G with axis i first and the others flattened.

first step:  Lᵢ ← lerp(0, GᵢGᵢᵀ, 1 − β_sh);  Qᵢ = eigh(Lᵢ), θ unchanged (the reference never
             projects a gradient with the basis it built)
then t = 1, 2, …:
G' = P(G);  m ← β₁m + (1 − β₁)G';  v ← β₂v + (1 − β₂)G'²;  u = P⁻¹(m/(√v + ε))
(``normalize_grads``: u ← u/(1e-30 + RMS(u)));  θ ← θ − η √(1 − β₂ᵗ)/(1 − β₁ᵗ) u (without
``correct_bias``: θ − η u);  θ ← θ − ηλθ
m ← P⁻¹(m);  Lᵢ ← lerp(Lᵢ, GᵢGᵢᵀ, 1 − β_sh);  every f-th t (``precondition_frequency``):
Qᵢ ← QR(Lᵢ Qᵢ[:, s]) with s sorting diag(QᵢᵀLᵢQᵢ) down (one power iteration) and v's axis i
permuted by s;  m ← P(m) (m lives in the eigenbasis and follows it).
β_sh (``shampoo_beta``) defaults to β₂.

Precision as the reference's: Lᵢ is rounded to float32 before its eigenbasis is computed (its
``.float()``); the first eigh runs in the parameters' dtype (the reference adds 1e-30·I in
torch's default dtype, float32 in a float32 run: it runs float64 parameters only with float64
as the default), the QR refreshes in float32. Each refresh's two float32 products are formed
matrix by matrix, as the reference forms them: a batched product of small float32 matrices
rounds differently (CPU, d ≤ 6: its last bit), and a Q moved by 1e-7 would carry that into
every later step; the QR and eigh are batched (LAPACK runs them matrix by matrix anyway).
Everything else is batched over the trial axis (``bmm``). A trial whose factor is not finite
gets a NaN basis (its parameters turn NaN: a divergence, recorded) instead of stopping eigh
for every trial.

Neither torch nor keras ships SOAP: torch semantics are the reference, keras semantics the
same rule and defaults with keras's knobs (keras's clipping); its decay, after the step at η
(θ ← θ − ηλθ), is the reference's in both. Not taken: ``data_format`` (channels_last conv
kernels: optsweep's are torch's channels_first), and the reference's habit of keeping
``shampoo_beta`` and ``precondition_frequency`` as they were at the first step (here the
values of each step; a sweep never changes them). Dynamic loss scaling is refused: the first
step and the refreshes follow one step count, kept on the host (no device sync to decide a
refresh), that a trial skipping a step alone would need for itself.

State: ``step`` (calls, a CPU counter), m and v per tensor (``exp_avg``, ``exp_avg_sq``, the
rotated space), and per tensor its factors and eigenbases packed each in one tensor
(``preconditioner``, ``eigenbasis``: (…, Σᵢ dᵢ²), allocated on the first update, when the
trial axis is known; 0-d zeros before it): 2·Σᵢ dᵢ² floats per tensor and trial.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from ..base import HyperParams, Kernel, rows, zeros_like_all
from ..lazy import torch
from ..parameters import (
    OptimizerInfo,
    ParamInfo,
    beta,
    flag,
    learning_rate,
    with_common_knobs,
)

if TYPE_CHECKING:
    from torch import Tensor


class SOAPState(NamedTuple):
    """The reference's names: ``step`` (calls so far: the first builds the bases), ``exp_avg``
    m and ``exp_avg_sq`` v (in the eigenbasis), ``preconditioner`` (its ``GG``: every Lᵢ of a
    tensor, flattened one after the other) and ``eigenbasis`` (its ``Q``, packed alike)."""

    step: Tensor
    exp_avg: list[Tensor]
    exp_avg_sq: list[Tensor]
    preconditioner: list[Tensor]
    eigenbasis: list[Tensor]


def _init(params: Sequence[Tensor]) -> SOAPState:
    def placeholders() -> list[Tensor]:
        return [p.new_zeros(()) for p in params]

    # on the host: whether this call builds or refreshes the bases is read without a sync
    step = torch.zeros((), dtype=torch.int64)
    return SOAPState(
        step, zeros_like_all(params), zeros_like_all(params), placeholders(), placeholders()
    )


# ---------------------------------------------------------------------------------------------
# The axes of a tensor and their factors
# ---------------------------------------------------------------------------------------------


def merged_shape(shape: Sequence[int], max_dim: int) -> tuple[int, ...]:
    """The reference's ``merge_dims``: neighbouring axes multiplied together while the product
    stays ≤ ``max_dim`` (a 0-d shape becomes (1,))."""
    merged: list[int] = []
    current = 1
    for size in shape:
        if current * size > max_dim:
            if current > 1:
                merged.append(current)
                current = size
            else:
                merged.append(size)
                current = 1
        else:
            current *= size
    if current > 1 or not merged:
        merged.append(current)
    return tuple(merged)


def factored_axes(
    shape: Sequence[int], values: Mapping[str, Any]
) -> tuple[tuple[int, ...], tuple[bool, ...]]:
    """How SOAP views a tensor of ``shape`` (one trial's): its axes (merged or not) and
    whether each has a factor (the reference's ``init_preconditioner``)."""
    max_dim = values["max_precond_dim"]
    if len(shape) == 1:
        return tuple(shape), (values["precondition_1d"] and shape[0] <= max_dim,)
    axes = merged_shape(shape, max_dim) if values["merge_dims"] else tuple(shape)
    return axes, tuple(d <= max_dim for d in axes)


def factor_floats(values: Mapping[str, Any], shapes: Sequence[tuple[int, ...]]) -> int:
    """Floats of the factors and eigenbases per trial: 2·d² per factored axis."""
    total = 0
    for shape in shapes:
        axes, factored = factored_axes(shape, values)
        total += sum(2 * d * d for d, f in zip(axes, factored, strict=True) if f)
    return total


def _unpack(packed: Tensor, axes: tuple[int, ...], factored: tuple[bool, ...]) -> list:
    """Views (B, d, d) of a packed (B, Σd²) tensor, None for the axes without a factor."""
    out: list[Tensor | None] = []
    offset = 0
    for d, f in zip(axes, factored, strict=True):
        if f:
            out.append(packed[:, offset : offset + d * d].view(-1, d, d))
            offset += d * d
        else:
            out.append(None)
    return out


def _rotate(x: Tensor, bases: Sequence[Tensor | None], *, back: bool) -> Tensor:
    """The reference's ``project`` (P) or ``project_back`` (P⁻¹) of ``x`` (B, *axes): axis by
    axis, contracted with Qᵢ's rows (Qᵢ's columns back) and moved last; an axis without a
    factor only moved."""
    batch = x.shape[0]
    for q in bases:
        d, rest = x.shape[1], x.shape[2:]
        if q is None:
            x = x.movedim(1, -1)
            continue
        flat = x.reshape(batch, d, -1).transpose(1, 2)  # (B, R, d)
        x = torch.matmul(flat, q.transpose(1, 2) if back else q).reshape(batch, *rest, d)
    return x


def _outer(g: Tensor, axis: int) -> Tensor:
    """GᵢGᵢᵀ (B, d, d): the gradient contracted with itself over every axis but ``axis``."""
    gi = g.movedim(1 + axis, 1)
    gi = gi.reshape(gi.shape[0], gi.shape[1], -1)
    return torch.matmul(gi, gi.transpose(1, 2))


def _eigenbasis(factor: Tensor) -> Tensor:
    """Qᵢ = eigh(fl32(Lᵢ) + 1e-30 I), columns by decreasing eigenvalue (the reference's
    ``get_orthogonal_matrix``); NaN for a trial whose Lᵢ is not finite."""
    d = factor.shape[-1]
    eye = torch.eye(d, dtype=factor.dtype, device=factor.device)
    low = factor.float().to(factor.dtype) + 1e-30 * eye
    finite = torch.isfinite(low).flatten(1).all(1).view(-1, 1, 1)
    _, q = torch.linalg.eigh(torch.where(finite, low, eye))
    return torch.where(finite, torch.flip(q, [-1]), torch.nan)


def _refreshed(factor: Tensor, basis: Tensor) -> tuple[Tensor, Tensor]:
    """One power iteration and QR, in float32 (the reference's ``get_orthogonal_matrix_QR``):
    (the new Qᵢ, the order s of the old columns by diag(QᵢᵀLᵢQᵢ), descending), per trial."""
    bases, orders = [], []
    for m, o in zip(factor.float(), basis.float(), strict=True):
        order = torch.argsort(torch.diag(o.T @ m @ o), descending=True)
        q, _ = torch.linalg.qr(m @ o[:, order])
        bases.append(q)
        orders.append(order)
    return torch.stack(bases).to(factor.dtype), torch.stack(orders)


# ---------------------------------------------------------------------------------------------
# The update
# ---------------------------------------------------------------------------------------------


def soap_kernel(values: Mapping[str, Any]) -> Kernel:
    """SOAP (the module docstring's rule) for the structural ``values`` (frequency, max
    dimension, merge_dims, precondition_1d, normalize_grads, correct_bias), K-batched."""
    frequency = values["precondition_frequency"]
    normalize, correct_bias = values["normalize_grads"], values["correct_bias"]

    def update_(
        grads: Sequence[Tensor], state: SOAPState, params: Sequence[Tensor], hp: HyperParams
    ) -> None:
        lr, b1, b2 = hp["learning_rate"], hp["beta_1"], hp["beta_2"]
        trial_axes = lr.ndim
        batch = lr.numel()
        t = int(state.step)  # the Adam step this call takes: the first call (0) takes none
        state.step.add_(1)
        shampoo = torch.where(hp["shampoo_beta"] < 0, b2, hp["shampoo_beta"])  # < 0: β₂
        lerp_weight = (1 - shampoo).reshape(batch, 1, 1).to(params[0])
        if t > 0:
            step_size = lr * torch.sqrt(1 - b2**t) / (1 - b1**t) if correct_bias else lr
            coefs = torch.stack(
                [b1, 1 - b1, b2, 1 - b2, hp["epsilon"], -step_size, -lr * hp["weight_decay"]]
            )
            coefs = coefs.reshape(len(coefs), batch).to(params[0])
        refresh = t > 0 and t % frequency == 0
        for i, (g, p) in enumerate(zip(grads, params, strict=True)):
            axes, factored = factored_axes(p.shape[trial_axes:], values)
            g = g.reshape(batch, *axes)
            size = sum(d * d for d, f in zip(axes, factored, strict=True) if f)
            if state.preconditioner[i].shape != (*p.shape[:trial_axes], size):
                state.preconditioner[i] = p.new_zeros((*p.shape[:trial_axes], size))
                state.eigenbasis[i] = p.new_zeros((*p.shape[:trial_axes], size))
            packed = state.preconditioner[i].view(batch, -1)
            factors = _unpack(packed, axes, factored)
            bases = _unpack(state.eigenbasis[i].view(batch, -1), axes, factored)
            if t == 0:  # the bases are built from this gradient; θ does not move
                for axis, (factor, q) in enumerate(zip(factors, bases, strict=True)):
                    if factor is not None:
                        factor.lerp_(_outer(g, axis), lerp_weight)
                        q.copy_(_eigenbasis(factor))
                continue
            b1_, w1, b2_, w2, eps, neg_step, shrink = rows(coefs, g)
            m = state.exp_avg[i].view(batch, *axes)
            v = state.exp_avg_sq[i].view(batch, *axes)
            rotated = _rotate(g, bases, back=False)
            m.mul_(b1_).addcmul_(rotated, w1)
            v.mul_(b2_).addcmul_(rotated.square(), w2)
            u = _rotate(m / v.sqrt().add_(eps), bases, back=True)
            if normalize:
                dims = tuple(range(1, u.ndim))
                u = u / (1e-30 + torch.mean(u**2, dim=dims, keepdim=True) ** 0.5)
            view = p.view(batch, *axes)
            view.addcmul_(u, neg_step)
            view.addcmul_(view, shrink)  # decoupled, after the step: θ − ηλθ
            # the preconditioner learns this gradient after it was used; m follows the basis
            m_back = _rotate(m, bases, back=True)
            for axis, factor in enumerate(factors):
                if factor is not None:
                    factor.lerp_(_outer(g, axis), lerp_weight)
            if refresh:
                for axis, (factor, q) in enumerate(zip(factors, bases, strict=True)):
                    if factor is None:
                        continue
                    new_q, order = _refreshed(factor, q)
                    q.copy_(new_q)
                    index = order.view(batch, *(1,) * axis, -1, *(1,) * (len(axes) - axis - 1))
                    v.copy_(torch.take_along_dim(v, index, dim=1 + axis))
            m.copy_(_rotate(m_back, bases, back=False))

    return Kernel(_init, update_)


# ---------------------------------------------------------------------------------------------
# Definitions
# ---------------------------------------------------------------------------------------------


def _kernel(values: Mapping[str, Any], keras: bool) -> Kernel:
    return soap_kernel(values)


def _state_floats(values: Mapping[str, Any], shapes: Sequence[tuple[int, ...]]) -> int:
    return factor_floats(values, shapes)


_PARAMS = with_common_knobs(
    learning_rate(3e-3, 3e-3),
    beta(1, 0.95, "decay of m, the gradient's EMA in the eigenbasis"),
    beta(2, 0.95, "decay of v, the squared rotated gradient's EMA"),
    ParamInfo(
        "shampoo_beta",
        "float",
        "decay of the factors Lᵢ (null: β₂, the reference's −1)",
        None,
        None,
        low=0.0,
        high=1.0,
        high_open=True,
        optional=True,
        neutral=-1.0,  # the kernel reads a negative shampoo_beta as β₂
    ),
    ParamInfo(
        "epsilon",
        "float",
        "ε added to √v",
        1e-8,
        1e-8,
        aliases=("eps",),
        low=0.0,
    ),
    ParamInfo(
        "precondition_frequency",
        "int",
        "f: the eigenbases are refreshed (power iteration + QR) every f-th step",
        10,
        10,
        structural=True,
        low=1.0,
    ),
    ParamInfo(
        "max_precond_dim",
        "int",
        "an axis longer than this has no factor (only m, v; and the most merge_dims joins)",
        10000,
        10000,
        structural=True,
        low=1.0,
    ),
    flag("merge_dims", "merge neighbouring axes while their product ≤ max_precond_dim"),
    flag("precondition_1d", "give vectors (biases) a factor too"),
    flag("normalize_grads", "scale each tensor's step to RMS 1 (for large f)"),
    flag("correct_bias", "Adam's bias corrections √(1 − β₂ᵗ)/(1 − β₁ᵗ) in the step", True),
)
_PARAMS["weight_decay"] = ParamInfo(
    "weight_decay",
    "float",
    "λ: θ ← θ − ηλθ after the step (the reference's, both semantics)",
    0.01,
    0.01,
    low=0.0,
    optional=True,
    neutral=0.0,
)
_REFUSED = (
    "its first step and its eigenbasis refreshes follow one step count for all trials; a trial "
    "that skipped a step would need its own (use loss_scale_factor)"
)
_PARAMS["dynamic_loss_scale"] = ParamInfo(
    "dynamic_loss_scale",
    "bool",
    f"not supported by soap: {_REFUSED}",
    False,
    False,
    structural=True,
)

_RULE = (
    "1st step: Lᵢ = (1−β_sh)GᵢGᵢᵀ, Qᵢ = eigh(Lᵢ), θ unchanged;  then G' = P(G) (each axis in "
    "Qᵢ);  m ← β₁m + (1−β₁)G';  v ← β₂v + (1−β₂)G'²;  θ ← θ − η√(1−β₂ᵗ)/(1−β₁ᵗ)·P⁻¹(m/(√v + "
    "ε));  θ ← θ − ηλθ;  Lᵢ ← lerp(Lᵢ, GᵢGᵢᵀ, 1−β_sh);  every f steps Qᵢ ← QR(LᵢQᵢ)"
)

SOAP = OptimizerInfo(
    name="soap",
    params=_PARAMS,
    summary="Adam in the eigenbasis of Shampoo's preconditioner, one factor per axis",
    reference="Vyas et al., 2024",
    update_rule={"torch": _RULE, "keras": _RULE},
    differences=(
        "Neither library ships SOAP: torch semantics are the reference nikhilvyas/SOAP, keras "
        "semantics the same rule and defaults with keras's knobs (clipping); weight decay is "
        "the reference's, after the step, in both. Conv kernels get one factor per axis "
        "(merge_dims joins axes up to max_precond_dim). Memory: 2·d² floats per factored axis "
        "of size d, beyond m and v. dynamic_loss_scale is refused."
    ),
    kernel=_kernel,
    decoupled_decay=True,
    own_weight_decay=True,
    state_floats=_state_floats,
    refuses={"dynamic_loss_scale": _REFUSED},
)

OPTIMIZERS = (SOAP,)
