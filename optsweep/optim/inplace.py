"""In-place forms of the update rules, for a caller that owns params, grads and state.

The rules in :mod:`~optsweep.optim.rules` are pure: every step allocates a fresh tensor per
operation (a dozen per parameter for Adam). For K stacked trials those tensors are large, and
on a CPU the update then costs far more than the forward/backward it follows. Measured on 2
AVX-512 cores, 32-trial 784-128-10 MLP (3.3M parameters), batch 64: forward+backward 6 ms,
pure Adam update 11-38 ms (noisy, shared machine), this in-place form 2.4-3.0 ms inside a
training step (7 passes over memory, no allocation).

On a CPU, Adam goes further: torch's own fused kernel (``torch._fused_adam_``, one pass over
memory, vectorised) called once per trial on that trial's slices, with the trial's
hyperparameters as scalars (keras' ε̂ maps to ε/√(1 − β₂ᵗ)). Measured inside the training step
of the same model: 1.6-2.3 ms against 2.9-3.0 ms for the K-batched form below (one fused call
over all K at once, were the learning rates equal, would take 1.2-1.4 ms; the rest is the cost
of 32 calls). On CUDA the K-batched form stays: 32 kernel launches per tensor for one update
would cost more than the passes they save.

Tried and not kept (same machine and model, measured inside the training step, where the
state is not in cache): ``torch.compile`` of this update with the coefficients as inputs took
1.2-1.8 ms in the step but compiling cost 9 s (cold cache) or 2.9 s (warm), more than it saves
in an epoch (~1 s); doing the 7 passes in cache-sized chunks of trials was slower (4.0-5.0 ms).

The other rules are written the same way: per-trial coefficients computed once per step in
float64 and cast once, then a few in-place passes per tensor; AdaGrad, RMSprop, AdaDelta, NAdam
and NAdaMax, which still need g once their denominator is formed, take one scratch tensor per
step. One thread, 32 MLP trials, update alone (noisy): 1.5 ms (momentum) to 8 ms (AdaDelta, 11
passes) against 4-37 ms for the pure rules.

Same mathematics as the pure rules, with per-trial hyperparameters as ``(K,)`` tensors; the
rounding differs slightly (``lerp`` for the second moment, multiplication by reciprocals), so
these are tested against the pure rules (``tests/test_engine.py``), not bit for bit.

``inplace(optimizer, semantics, params)`` returns an :class:`InplaceRule`, the stages before
the rule (loss unscaling, clipping, weight decay) included, or ``None`` where gradient
accumulation needs the pure pipeline. ``update_`` overwrites ``params`` and the state, and
uses ``grads`` as scratch space. ``kernels`` picks the Adam form: ``auto`` (per trial on CPU,
batched elsewhere), ``batched`` or ``per_trial``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from .base import HyperParams
from .build import RULES, decoupled_weight_decay
from .registry import resolve
from .rules import (
    AdadeltaState,
    AdagradState,
    AdamaxState,
    AdamState,
    MomentumState,
    NesterovAdamState,
    RMSpropState,
    SGDState,
    _mu,
)
from .transforms import clip_by_global_norm_coefficient, clip_by_norm_coefficients

__all__ = ["InplaceRule", "inplace"]

UpdateFn = Callable[[Sequence[Tensor], Any, Sequence[Tensor], HyperParams], None]
Kernels = Literal["auto", "batched", "per_trial"]


@dataclass(frozen=True)
class InplaceRule:
    """``init(params) -> state`` (the pure rule's state) and ``update_(grads, state, params,
    hp)``, which overwrites ``params`` and ``state`` and clobbers ``grads``."""

    init: Callable[[Sequence[Tensor]], Any]
    update_: UpdateFn


def _per_trial(h: Tensor, like: Tensor) -> Tensor:
    """``(K,)`` (or ``()``) coefficients as ``like``'s dtype, broadcasting over its trial axis."""
    h = h.to(dtype=like.dtype, device=like.device)
    return h.reshape(h.shape + (1,) * (like.ndim - h.ndim))


def _decay_(grads: Sequence[Tensor], params: Sequence[Tensor], hp: HyperParams, decoupled: bool):
    """Weight decay in place: θ ← θ(1 − ηλ) (decoupled) or g ← g + λθ (coupled L2)."""
    wd = hp["weight_decay"]
    if decoupled:
        factor = 1 - hp["learning_rate"] * wd
        for p in params:
            p.mul_(_per_trial(factor, p))
    else:
        for g, p in zip(grads, params, strict=True):
            g.addcmul_(p, _per_trial(wd, p))


def _rows(coefs: Tensor, p: Tensor) -> Tensor:
    """``(n, K)`` coefficient rows viewed as ``(n, K, 1, …)``, to broadcast over ``p``."""
    return coefs.view(coefs.shape + (1,) * (p.ndim - 1))


def _scratch(params: Sequence[Tensor]) -> Callable[[Tensor], Tensor]:
    """A buffer the size of the largest tensor, viewed as ``p``: for the rules that still need g
    after a denominator is formed. Allocated once per step: freed and allocated again it costs no
    page faults (3.2M floats, one thread: 0.001 ms, against 0.15 ms for one pass over them)."""
    buf = params[0].new_empty(max(p.numel() for p in params))
    return lambda p: buf[: p.numel()].view_as(p)


def _adam(amsgrad: bool, keras: bool) -> UpdateFn:
    """Adam / AMSGrad, torch or keras convention (see ``rules.adam``), in 7 passes per tensor."""

    def update_(
        grads: Sequence[Tensor], state: AdamState, params: Sequence[Tensor], hp: HyperParams
    ) -> None:
        lr, b1, b2, eps = hp["learning_rate"], hp["beta_1"], hp["beta_2"], hp["epsilon"]
        state.step.add_(1)
        t = state.step
        bc1, bc2 = 1 - b1**t, 1 - b2**t
        # θ ← θ − step · m / (√v · scale + ε) = θ − (step/scale) · m / (√v + ε/scale),
        # coefficients in hp's dtype (float64)
        if keras:
            step, scale = lr * torch.sqrt(bc2) / bc1, torch.ones_like(bc2)
        else:
            step, scale = lr / bc1, 1 / torch.sqrt(bc2)
        # one cast of the four coefficient rows per step, then a view per tensor
        coefs = torch.stack([1 - b1, 1 - b2, eps / scale, -step / scale]).to(params[0])
        maxes = state.max_exp_avg_sq if amsgrad else [None] * len(params)
        for g, p, m, v, vmax in zip(
            grads, params, state.exp_avg, state.exp_avg_sq, maxes, strict=True
        ):
            w1, w2, e, neg_step = _rows(coefs, p)
            m.lerp_(g, w1)
            v.lerp_(g.mul_(g), w2)
            if vmax is not None:
                torch.maximum(vmax, v, out=vmax)
            denom = torch.sqrt(vmax if vmax is not None else v, out=g)  # g is scratch now
            # ε/scale folded in as one broadcast add_: addcmul(ε, √v, scale) with two (K, 1, 1)
            # operands took 0.74 ms over 3.3M floats against 0.08 ms (2 AVX-512 cores); the
            # update of 32 MLP trials inside a training step went from 3.3-3.9 ms to 2.4-3.0 ms
            denom.add_(e)
            p.addcmul_(torch.div(m, denom, out=denom), neg_step)

    return update_


def _slices(group: Sequence[Tensor]) -> list[list[Tensor]]:
    """``[k][i]``: trial k's slice of ``group[i]`` (one ``unbind`` per tensor)."""
    return [list(trial) for trial in zip(*(t.unbind(0) for t in group), strict=True)]


def _adam_per_trial(amsgrad: bool, keras: bool, decoupled: bool) -> UpdateFn:
    """Adam / AMSGrad as torch's fused kernel, one call per trial (see the module docstring).

    The kernel computes torch's form, θ ← θ − η/(1 − β₁ᵗ) · m / (√v/√(1 − β₂ᵗ) + ε); keras'
    form is the same with ε replaced by ε/√(1 − β₂ᵗ). Weight decay is the kernel's own:
    coupled (g + λθ, ``_fused_adam_``) or decoupled (θ(1 − ηλ), ``_fused_adamw_``).
    """
    kernel = torch._fused_adamw_ if decoupled else torch._fused_adam_
    cache: dict[str, tuple[tuple[int, ...], list[list[Tensor]]]] = {}

    def by_trial(name: str, group: Sequence[Tensor]) -> list[list[Tensor]]:
        """``[k][i]``: trial k's slice of ``group[i]``. Kept while the tensors stay the same
        (params and state are updated in place; rows leaving the batch make new tensors):
        slicing every tensor anew took 0.3 ms of each 32-trial MLP step."""
        key = tuple(t.data_ptr() for t in group)
        entry = cache.get(name)
        if entry is None or entry[0] != key:  # a local entry: safe when threads share the rule
            entry = cache[name] = key, _slices(group)
        return entry[1]

    def update_(
        grads: Sequence[Tensor], state: AdamState, params: Sequence[Tensor], hp: HyperParams
    ) -> None:
        state.step.add_(1)
        t = int(state.step)  # the trials of a batch step together: one counter
        steps = [torch.tensor(float(t))] * len(params)  # the kernel reads a float32 step
        k = len(params[0])
        names = ("learning_rate", "beta_1", "beta_2", "epsilon", "weight_decay")
        scalars = zip(*(hp[n].expand(k).tolist() for n in names), strict=True)
        maxes = by_trial("vmax", state.max_exp_avg_sq) if amsgrad else [[]] * k
        for (lr, b1, b2, eps, wd), p, g, m, v, vmax in zip(
            scalars,
            by_trial("params", params),
            _slices(grads),
            by_trial("m", state.exp_avg),
            by_trial("v", state.exp_avg_sq),
            maxes,
            strict=True,
        ):
            if keras:
                eps = eps / math.sqrt(1 - b2**t)
            kernel(
                p, g, m, v, vmax, steps,
                lr=lr, beta1=b1, beta2=b2, weight_decay=wd, eps=eps,
                amsgrad=amsgrad, maximize=False,
            )  # fmt: skip

    return update_


def _sgd(
    grads: Sequence[Tensor], state: SGDState, params: Sequence[Tensor], hp: HyperParams
) -> None:
    """θ ← θ − η g."""
    lr = hp["learning_rate"]
    for g, p in zip(grads, params, strict=True):
        p.addcmul_(g, _per_trial(-lr, p))


def _momentum(nesterov: bool, keras: bool) -> UpdateFn:
    """SGD with heavy-ball or Nesterov momentum (see ``rules.momentum``).

    torch: b ← μ b + c g (c = 1 on the first step or where μ = 0, else 1 − d);
           θ ← θ − η b, or θ ← θ − η (g + μ b) (Nesterov).
    keras: v ← μ v − η (1 − d) g;  θ ← θ + v, or θ ← θ − η g + μ v (Nesterov).
    """

    def update_(
        grads: Sequence[Tensor], state: MomentumState, params: Sequence[Tensor], hp: HyperParams
    ) -> None:
        lr, mu, damp = hp["learning_rate"], hp["momentum"], hp["dampening"]
        if keras:
            c = -lr * (1 - damp)
        else:
            first = (state.step == 0) | (mu == 0)
            c = torch.where(first, torch.ones_like(damp), 1 - damp)
        state.step.add_(1)
        coefs = torch.stack([mu, c, -lr]).to(params[0])
        for g, p, b in zip(grads, params, state.momentum_buffer, strict=True):
            m, c_, neg_lr = _rows(coefs, p)
            b.mul_(m).addcmul_(g, c_)
            if keras and nesterov:
                p.addcmul_(g, neg_lr).addcmul_(b, m)
            elif keras:
                p.add_(b)
            elif nesterov:
                p.addcmul_(g.addcmul_(b, m), neg_lr)
            else:
                p.addcmul_(b, neg_lr)

    return update_


def _adagrad(keras: bool) -> UpdateFn:
    """AdaGrad (see ``rules.adagrad``): s ← s + g² (s₀ added on the first step),
    η̃ = η/(1 + (t − 1)·lr_decay);  torch: θ ← θ − η̃ g / (√s + ε);  keras: θ ← θ − η̃ g / √(s + ε).
    """

    def update_(
        grads: Sequence[Tensor], state: AdagradState, params: Sequence[Tensor], hp: HyperParams
    ) -> None:
        first = state.step == 0
        clr = hp["learning_rate"] / (1 + state.step * hp["lr_decay"])
        # reading the counter on a CPU costs nothing and spares a pass on every later step;
        # on another device it would wait for the device, so s₀·[t = 1] is added every step
        add_s0 = bool(first) if params[0].device.type == "cpu" else True
        state.step.add_(1)
        coefs = torch.stack([hp["initial_accumulator_value"] * first, hp["epsilon"], -clr])
        coefs = coefs.to(params[0])
        scratch = _scratch(params)
        for g, p, s in zip(grads, params, state.sum, strict=True):
            s0, eps, neg_lr = _rows(coefs, p)
            s.addcmul_(g, g)
            if add_s0:
                s.add_(s0)  # s is 0 before the first step: s + g² + s₀ is the pure s₀ + g²
            denom = scratch(p)
            if keras:
                torch.add(s, eps, out=denom).sqrt_()
            else:
                torch.sqrt(s, out=denom).add_(eps)
            p.addcmul_(g.div_(denom), neg_lr)

    return update_


def _rmsprop(centered: bool, keras: bool) -> UpdateFn:
    """RMSprop, optionally centered, with momentum (see ``rules.rmsprop``).

    v ← ρ v + (1 − ρ) g²;  centered: ḡ ← ρ ḡ + (1 − ρ) g, v̄ = v − ḡ² (else v̄ = v)
    torch: b ← μ b + g / (√v̄ + ε);  θ ← θ − η b
    keras: b ← μ b + η g / √(v̄ + ε);  θ ← θ − b
    """

    def update_(
        grads: Sequence[Tensor], state: RMSpropState, params: Sequence[Tensor], hp: HyperParams
    ) -> None:
        lr, rho, eps, mu = hp["learning_rate"], hp["rho"], hp["epsilon"], hp["momentum"]
        state.step.add_(1)
        coefs = torch.stack([1 - rho, eps, mu, lr if keras else -lr]).to(params[0])
        scratch = _scratch(params)
        avgs = state.grad_avg if centered else [None] * len(params)
        for g, p, v, gbar, b in zip(
            grads, params, state.square_avg, avgs, state.momentum_buffer, strict=True
        ):
            w, e, m, eta = _rows(coefs, p)
            denom = scratch(p)
            v.lerp_(torch.mul(g, g, out=denom), w)
            if gbar is not None:
                gbar.lerp_(g, w)
            if keras:
                torch.add(v, e, out=denom)
                if gbar is not None:
                    denom.addcmul_(gbar, gbar, value=-1)
                b.mul_(m).addcdiv_(g.mul_(eta), denom.sqrt_())
                p.sub_(b)
            else:
                if gbar is not None:
                    torch.addcmul(v, gbar, gbar, value=-1, out=denom).sqrt_()
                else:
                    torch.sqrt(v, out=denom)
                b.mul_(m).addcdiv_(g, denom.add_(e))
                p.addcmul_(b, eta)

    return update_


def _adadelta(
    grads: Sequence[Tensor], state: AdadeltaState, params: Sequence[Tensor], hp: HyperParams
) -> None:
    """AdaDelta, both conventions (see ``rules.adadelta``).

    v ← ρ v + (1 − ρ) g²;  Δ = √(u + ε)/√(v + ε) · g;  u ← ρ u + (1 − ρ) Δ²;  θ ← θ − η Δ
    """
    state.step.add_(1)
    coefs = torch.stack([1 - hp["rho"], hp["epsilon"], -hp["learning_rate"]]).to(params[0])
    scratch = _scratch(params)
    for g, p, v, u in zip(grads, params, state.square_avg, state.acc_delta, strict=True):
        w, e, neg_lr = _rows(coefs, p)
        buf = scratch(p)
        v.lerp_(torch.mul(g, g, out=buf), w)
        g.div_(torch.add(v, e, out=buf).sqrt_())
        delta = g.mul_(torch.add(u, e, out=buf).sqrt_())
        u.lerp_(torch.mul(delta, delta, out=buf), w)
        p.addcmul_(delta, neg_lr)


def _adamax(keras: bool) -> UpdateFn:
    """AdaMax (see ``rules.adamax``): m ← β₁ m + (1 − β₁) g, then
    torch: u ← max(β₂ u, |g| + ε), θ ← θ − η/(1 − β₁ᵗ) · m / u;
    keras: u ← max(β₂ u, |g|),     θ ← θ − η/(1 − β₁ᵗ) · m / (u + ε).
    """

    def update_(
        grads: Sequence[Tensor], state: AdamaxState, params: Sequence[Tensor], hp: HyperParams
    ) -> None:
        lr, b1, b2, eps = hp["learning_rate"], hp["beta_1"], hp["beta_2"], hp["epsilon"]
        state.step.add_(1)
        coefs = torch.stack([1 - b1, b2, eps, -lr / (1 - b1**state.step)]).to(params[0])
        for g, p, m, u in zip(grads, params, state.exp_avg, state.exp_inf, strict=True):
            w1, beta_2, e, neg_step = _rows(coefs, p)
            m.lerp_(g, w1)
            g.abs_()  # g is scratch from here
            if not keras:
                g.add_(e)
            torch.maximum(u.mul_(beta_2), g, out=u)
            denom = torch.add(u, e, out=g) if keras else u
            p.addcmul_(torch.div(m, denom, out=g), neg_step)

    return update_


def _nesterov_adam(infinity_norm: bool, schedule: bool, keras: bool) -> UpdateFn:
    """NAdam or NAdaMax (see ``rules.nesterov_adam``): m as Adam, then

    m̂ = μₜ₊₁ m / (1 − Π₁..ₜ₊₁ μ) + (1 − μₜ) g / (1 − Π₁..ₜ μ)
    NAdam:   v as Adam;  θ ← θ − η m̂ / (√(v/(1 − β₂ᵗ)) + ε)
    NAdaMax: torch u ← max(β₂u, |g| + ε), θ ← θ − η m̂ / u;
             keras u ← max(β₂u, |g|),     θ ← θ − η m̂ / (u + ε)
    """

    def update_(
        grads: Sequence[Tensor],
        state: NesterovAdamState,
        params: Sequence[Tensor],
        hp: HyperParams,
    ) -> None:
        lr, b1, b2, eps = hp["learning_rate"], hp["beta_1"], hp["beta_2"], hp["epsilon"]
        psi = hp["momentum_decay"]
        state.step.add_(1)
        t = state.step
        mu = _mu(b1, t, psi, schedule=schedule)
        mu_next = _mu(b1, t + 1, psi, schedule=schedule)
        mu_product = state.mu_product * mu
        # resized: the pure rule's product is () before the first step and (K,) after it
        state.mu_product.resize_(mu_product.shape).copy_(mu_product)
        coef_g = (1 - mu) / (1 - mu_product)
        coef_m = mu_next / (1 - mu_product * mu_next)
        if infinity_norm:
            scale, second = torch.ones_like(b2), b2
        else:
            # √(v/(1 − β₂ᵗ)) + ε = (√v + ε√(1 − β₂ᵗ)) / √(1 − β₂ᵗ): one pass less
            scale, second = torch.sqrt(1 - b2**t), 1 - b2
        coefs = torch.stack(
            [1 - b1, second, eps * scale, -lr * coef_g * scale, -lr * coef_m * scale]
        ).to(params[0])
        scratch = _scratch(params)
        seconds = state.exp_inf if infinity_norm else state.exp_avg_sq
        for g, p, m, s in zip(grads, params, state.exp_avg, seconds, strict=True):
            w1, beta_or_w2, e, a_g, a_m = _rows(coefs, p)
            buf = scratch(p)
            m.lerp_(g, w1)
            if infinity_norm:
                torch.abs(g, out=buf)
                if not keras:
                    buf.add_(e)
                torch.maximum(s.mul_(beta_or_w2), buf, out=s)
                denom = torch.add(s, e, out=buf) if keras else s
            else:
                s.lerp_(torch.mul(g, g, out=buf), beta_or_w2)
                denom = torch.sqrt(s, out=buf).add_(e)
            step = g.mul_(a_g).addcmul_(m, a_m)  # −η m̂ (NAdam: times √(1 − β₂ᵗ))
            p.add_(step.div_(denom))

    return update_


_FAST: dict[str, Callable[[Mapping[str, Any], bool], UpdateFn]] = {
    "sgd": lambda v, keras: _sgd,
    "adam": lambda v, keras: _adam(v["amsgrad"], keras),
    "amsgrad": lambda v, keras: _adam(True, keras),
    "adamw": lambda v, keras: _adam(v["amsgrad"], keras),
    "momentum": lambda v, keras: _momentum(v["nesterov"], keras),
    "nesterov": lambda v, keras: _momentum(True, keras),
    "adagrad": lambda v, keras: _adagrad(keras),
    "rmsprop": lambda v, keras: _rmsprop(v["centered"], keras),
    "adadelta": lambda v, keras: _adadelta,
    "adamax": lambda v, keras: _adamax(keras),
    "nadam": lambda v, keras: _nesterov_adam(False, v["momentum_schedule"], keras),
    "nadamax": lambda v, keras: _nesterov_adam(True, v["momentum_schedule"], keras),
}
_PER_TRIAL = ("adam", "amsgrad", "adamw")  # torch's fused CPU kernel, one call per trial


def _gradient_stages(values: Mapping[str, Any], keras: bool) -> Callable[[list[Tensor]], None]:
    """The pure pipeline's stages before the rule (``build``: loss unscaling, then the one
    clipping stage of ``transforms``, same coefficients), on the K trials' gradients in place."""
    scale, clipnorm = values["loss_scale_factor"], values["clipnorm"]
    global_clipnorm, clipvalue = values["global_clipnorm"], values["clipvalue"]

    def apply(grads: list[Tensor]) -> None:
        if scale is not None:
            for g in grads:
                g.div_(scale)
        if clipnorm is not None:
            coefficients = clip_by_norm_coefficients(grads, clipnorm, keras=keras, trial_axes=1)
            for g, c in zip(grads, coefficients, strict=True):
                g.mul_(_per_trial(c, g))
        elif global_clipnorm is not None:
            c = clip_by_global_norm_coefficient(grads, global_clipnorm, keras=keras, trial_axes=1)
            for g in grads:
                g.mul_(_per_trial(c, g))
        elif clipvalue is not None:
            for g in grads:
                g.clamp_(-clipvalue, clipvalue)

    return apply


def inplace(
    optimizer: str, semantics: str, params: Mapping[str, Any], kernels: Kernels = "auto"
) -> InplaceRule | None:
    """The in-place form of ``build(optimizer, semantics, params)``, or None if it has none."""
    values = resolve(optimizer, semantics, params)  # type: ignore[arg-type]
    if optimizer not in _FAST or (values["gradient_accumulation_steps"] or 1) > 1:
        return None
    keras = semantics == "keras"
    rule = _FAST[optimizer](values, keras)
    gradient_stages = _gradient_stages(values, keras)
    decoupled = decoupled_weight_decay(optimizer, semantics)  # type: ignore[arg-type]
    per_trial = (
        _adam_per_trial(bool(values.get("amsgrad")) or optimizer == "amsgrad", keras, decoupled)
        if optimizer in _PER_TRIAL
        else None
    )
    decays: list[bool] = []  # whether any trial decays, read once from hp

    def update_(
        grads: Sequence[Tensor], state: Any, params: Sequence[Tensor], hp: HyperParams
    ) -> None:
        # scratch must own its memory (autograd may hand back an expanded gradient)
        grads = [g if g.is_contiguous() else g.contiguous() for g in grads]
        gradient_stages(grads)
        on_cpu = params[0].device.type == "cpu"
        if per_trial is not None and kernels != "batched" and (on_cpu or kernels == "per_trial"):
            per_trial(grads, state, params, hp)  # weight decay included
            return
        if not decays:  # one host sync per batch; the values never change
            decays.append(bool(hp["weight_decay"].ne(0).any()))
        if decays[0]:
            _decay_(grads, params, hp, decoupled)
        rule(grads, state, params, hp)

    return InplaceRule(RULES[optimizer](values, keras).init, update_)
