"""The update rules, each written once for both conventions.

Every rule is a :class:`~optsweep.optim.base.Stage` whose ``update`` maps
``(grads, state, params, hp)`` to new parameters. Flags that change the computation
(``keras``, ``nesterov``, ``centered``, ``amsgrad``, ``schedule``) are Python values
read when the rule is built; continuous hyperparameters are tensors in ``hp`` of shape
``()`` or ``(K,)``. Scalar coefficients (bias corrections, schedules) are computed in
``hp``'s dtype and cast to each parameter's dtype only when they meet it.

Where torch and keras write the same mathematics in a different order, each branch
follows its library's order of operations, so parity holds to rounding.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from .base import HyperParams, Params, Stage, expand, step_counter, zeros_like_all

__all__ = [
    "adadelta",
    "adagrad",
    "adam",
    "adamax",
    "momentum",
    "nesterov_adam",
    "rmsprop",
    "sgd",
]

StageOut = tuple[Params, Params, NamedTuple]


# ---------------------------------------------------------------------------------------------
# SGD and momentum
# ---------------------------------------------------------------------------------------------


class SGDState(NamedTuple):
    """Plain SGD keeps no state."""


def sgd() -> Stage:
    """Stochastic gradient descent.

    θ ← θ − η g

    References: Robbins & Monro, 1951.
    """

    def init(params: Sequence[Tensor]) -> SGDState:
        return SGDState()

    def update(
        grads: Sequence[Tensor], state: SGDState, params: Sequence[Tensor], hp: HyperParams
    ) -> StageOut:
        lr = hp["learning_rate"]
        new = [p - expand(lr, p) * g for g, p in zip(grads, params, strict=True)]
        return list(grads), new, state

    return Stage(init, update)


class MomentumState(NamedTuple):
    """``step``: updates so far; ``momentum_buffer``: torch's b, or keras's velocity v."""

    step: Tensor
    momentum_buffer: list[Tensor]


def momentum(*, nesterov: bool, keras: bool) -> Stage:
    """SGD with heavy-ball or Nesterov momentum.

    torch: b ← μ b + (1 − d) g (b₁ = g);  θ ← θ − η b, or θ ← θ − η (g + μ b) (Nesterov).
    keras: v ← μ v − η (1 − d) g;  θ ← θ + v, or θ ← θ + μ v − η g (Nesterov).

    References: Polyak, 1964; Nesterov, 1983; Sutskever et al., 2013.

    Args:
        nesterov: the Nesterov ("modified NAG") form.
        keras: keras's convention (η inside the velocity).
    """

    def init(params: Sequence[Tensor]) -> MomentumState:
        return MomentumState(step_counter(params), zeros_like_all(params))

    def update(
        grads: Sequence[Tensor], state: MomentumState, params: Sequence[Tensor], hp: HyperParams
    ) -> StageOut:
        lr, mu, damp = hp["learning_rate"], hp["momentum"], hp["dampening"]
        if keras:
            coef = 1 - damp
        else:
            # torch copies g into the buffer on the first step and skips momentum when μ = 0.
            first = (state.step == 0) | (mu == 0)
            coef = torch.where(first, torch.ones_like(damp), 1 - damp)
        bufs, new = [], []
        for g, p, b in zip(grads, params, state.momentum_buffer, strict=True):
            m = expand(mu, p)
            if keras:
                b = b * m - g * expand(lr * coef, p)
                q = (p - g * expand(lr, p)) + m * b if nesterov else p + b
            else:
                b = b * m + expand(coef, p) * g
                direction = g + m * b if nesterov else b
                q = p - expand(lr, p) * direction
            bufs.append(b)
            new.append(q)
        return list(grads), new, MomentumState(state.step + 1, bufs)

    return Stage(init, update)


# ---------------------------------------------------------------------------------------------
# AdaGrad, RMSprop, AdaDelta
# ---------------------------------------------------------------------------------------------


class AdagradState(NamedTuple):
    """``sum``: s, the running sum of squared gradients (s₀ is added on the first step)."""

    step: Tensor
    sum: list[Tensor]


def adagrad(*, keras: bool) -> Stage:
    """AdaGrad.

    s ← s + g² (s₀ = ``initial_accumulator_value``)
    torch: θ ← θ − η/(1 + (t − 1)·lr_decay) · g / (√s + ε)
    keras: θ ← θ − η g / √(s + ε)   (torch's lr_decay applies too when set; default 0)

    References: Duchi et al., 2011.
    """

    def init(params: Sequence[Tensor]) -> AdagradState:
        return AdagradState(step_counter(params), zeros_like_all(params))

    def update(
        grads: Sequence[Tensor], state: AdagradState, params: Sequence[Tensor], hp: HyperParams
    ) -> StageOut:
        eps, s0 = hp["epsilon"], hp["initial_accumulator_value"]
        first = state.step == 0
        clr = hp["learning_rate"] / (1 + state.step * hp["lr_decay"])
        sums, new = [], []
        for g, p, s in zip(grads, params, state.sum, strict=True):
            s = torch.where(first, expand(s0, p), s) + g * g
            if keras:
                q = p - (g * expand(clr, p)) / torch.sqrt(s + expand(eps, p))
            else:
                q = p - expand(clr, p) * (g / (torch.sqrt(s) + expand(eps, p)))
            sums.append(s)
            new.append(q)
        return list(grads), new, AdagradState(state.step + 1, sums)

    return Stage(init, update)


class RMSpropState(NamedTuple):
    """``square_avg``: v; ``grad_avg``: ḡ (centered only); ``momentum_buffer``: b."""

    step: Tensor
    square_avg: list[Tensor]
    grad_avg: list[Tensor]
    momentum_buffer: list[Tensor]


def rmsprop(*, centered: bool, keras: bool) -> Stage:
    """RMSprop, optionally centered, with momentum (μ = 0 gives the plain rule exactly).

    v ← ρ v + (1 − ρ) g²;  centered: ḡ ← ρ ḡ + (1 − ρ) g, v̄ = v − ḡ² (else v̄ = v)
    torch: b ← μ b + g / (√v̄ + ε);  θ ← θ − η b
    keras: b ← μ b + η g / √(v̄ + ε);  θ ← θ − b

    References: Tieleman & Hinton, 2012; Graves, 2013 (centered).
    """

    def init(params: Sequence[Tensor]) -> RMSpropState:
        return RMSpropState(
            step_counter(params),
            zeros_like_all(params),
            zeros_like_all(params) if centered else [],
            zeros_like_all(params),
        )

    def update(
        grads: Sequence[Tensor], state: RMSpropState, params: Sequence[Tensor], hp: HyperParams
    ) -> StageOut:
        lr, rho, eps, mu = hp["learning_rate"], hp["rho"], hp["epsilon"], hp["momentum"]
        avgs = state.grad_avg if centered else [None] * len(params)
        vs, gbars, bufs, new = [], [], [], []
        for g, p, v, gbar, b in zip(
            grads, params, state.square_avg, avgs, state.momentum_buffer, strict=True
        ):
            r = expand(rho, p)
            v = v * r + expand(1 - rho, p) * g * g
            if centered:
                gbar = _ema(gbar, g, rho, keras=keras)
                gbars.append(gbar)
            if keras:
                denom = v + expand(eps, p)
                if centered:
                    denom = denom - gbar * gbar
                b = b * expand(mu, p) + (g * expand(lr, p)) / torch.sqrt(denom)
                q = p - b
            else:
                root = torch.sqrt(v - gbar * gbar) if centered else torch.sqrt(v)
                b = b * expand(mu, p) + g / (root + expand(eps, p))
                q = p - expand(lr, p) * b
            vs.append(v)
            bufs.append(b)
            new.append(q)
        return list(grads), new, RMSpropState(state.step + 1, vs, gbars, bufs)

    return Stage(init, update)


class AdadeltaState(NamedTuple):
    """``square_avg``: v, running mean of g²; ``acc_delta``: u, running mean of Δ²."""

    step: Tensor
    square_avg: list[Tensor]
    acc_delta: list[Tensor]


def adadelta() -> Stage:
    """AdaDelta (the same rule in torch and keras; only the defaults differ).

    v ← ρ v + (1 − ρ) g²;  Δ = √(u + ε)/√(v + ε) · g;  u ← ρ u + (1 − ρ) Δ²;  θ ← θ − η Δ

    References: Zeiler, 2012.
    """

    def init(params: Sequence[Tensor]) -> AdadeltaState:
        return AdadeltaState(step_counter(params), zeros_like_all(params), zeros_like_all(params))

    def update(
        grads: Sequence[Tensor], state: AdadeltaState, params: Sequence[Tensor], hp: HyperParams
    ) -> StageOut:
        lr, rho, eps = hp["learning_rate"], hp["rho"], hp["epsilon"]
        vs, us, new = [], [], []
        for g, p, v, u in zip(grads, params, state.square_avg, state.acc_delta, strict=True):
            r, one_minus_r, e = expand(rho, p), expand(1 - rho, p), expand(eps, p)
            v = v * r + one_minus_r * g * g
            delta = torch.sqrt(u + e) / torch.sqrt(v + e) * g
            u = u * r + one_minus_r * delta * delta
            vs.append(v)
            us.append(u)
            new.append(p - expand(lr, p) * delta)
        return list(grads), new, AdadeltaState(state.step + 1, vs, us)

    return Stage(init, update)


# ---------------------------------------------------------------------------------------------
# Adam family
# ---------------------------------------------------------------------------------------------


def _ema(avg: Tensor, x: Tensor, beta: Tensor, *, keras: bool) -> Tensor:
    """β·avg + (1 − β)·x, written as each library writes it (torch: ``lerp``)."""
    if keras:
        return avg * expand(beta, avg) + x * expand(1 - beta, avg)
    return torch.lerp(avg, x, expand(1 - beta, avg))


def _ema_sq(avg: Tensor, g: Tensor, beta: Tensor) -> Tensor:
    """β·avg + (1 − β)·g²."""
    return avg * expand(beta, avg) + expand(1 - beta, avg) * g * g


class AdamState(NamedTuple):
    """``exp_avg``: m; ``exp_avg_sq``: v; ``max_exp_avg_sq``: max of v (AMSGrad only)."""

    step: Tensor
    exp_avg: list[Tensor]
    exp_avg_sq: list[Tensor]
    max_exp_avg_sq: list[Tensor]


def adam(*, amsgrad: bool, keras: bool) -> Stage:
    """Adam, optionally AMSGrad.

    m ← β₁ m + (1 − β₁) g;  v ← β₂ v + (1 − β₂) g²;  AMSGrad: v ← v̂max ← max(v̂max, v)
    torch: θ ← θ − η/(1 − β₁ᵗ) · m / (√v/√(1 − β₂ᵗ) + ε)
    keras: θ ← θ − η √(1 − β₂ᵗ)/(1 − β₁ᵗ) · m / (√v + ε)   ("epsilon hat")

    References: Kingma & Ba, 2015; Reddi et al., 2018 (AMSGrad).
    """

    def init(params: Sequence[Tensor]) -> AdamState:
        return AdamState(
            step_counter(params),
            zeros_like_all(params),
            zeros_like_all(params),
            zeros_like_all(params) if amsgrad else [],
        )

    def update(
        grads: Sequence[Tensor], state: AdamState, params: Sequence[Tensor], hp: HyperParams
    ) -> StageOut:
        lr, b1, b2, eps = hp["learning_rate"], hp["beta_1"], hp["beta_2"], hp["epsilon"]
        t = state.step + 1
        bc1, bc2 = 1 - b1**t, 1 - b2**t
        if keras:
            alpha = lr * torch.sqrt(bc2) / bc1
        else:
            step_size, bc2_sqrt = lr / bc1, torch.sqrt(bc2)
        maxes = state.max_exp_avg_sq if amsgrad else [None] * len(params)
        ms, vs, vmaxes, new = [], [], [], []
        for g, p, m, v, vmax in zip(
            grads, params, state.exp_avg, state.exp_avg_sq, maxes, strict=True
        ):
            m = _ema(m, g, b1, keras=keras)
            v = _ema_sq(v, g, b2)
            ms.append(m)
            vs.append(v)
            if amsgrad:
                vmax = torch.maximum(vmax, v)
                vmaxes.append(vmax)
                v = vmax
            if keras:
                q = p - (m * expand(alpha, p)) / (torch.sqrt(v) + expand(eps, p))
            else:
                denom = torch.sqrt(v) / expand(bc2_sqrt, p) + expand(eps, p)
                q = p - expand(step_size, p) * (m / denom)
            new.append(q)
        return list(grads), new, AdamState(t, ms, vs, vmaxes)

    return Stage(init, update)


class AdamaxState(NamedTuple):
    """``exp_avg``: m; ``exp_inf``: u, the exponentially weighted infinity norm."""

    step: Tensor
    exp_avg: list[Tensor]
    exp_inf: list[Tensor]


def _inf_norm(u: Tensor, g: Tensor, beta_2: Tensor, eps: Tensor, *, keras: bool) -> Tensor:
    """u ← max(β₂ u, |g|) (keras) or max(β₂ u, |g| + ε) (torch)."""
    scaled = u * expand(beta_2, u)
    return torch.maximum(scaled, g.abs() if keras else g.abs() + expand(eps, u))


def adamax(*, keras: bool) -> Stage:
    """AdaMax, Adam with the infinity norm.

    m ← β₁ m + (1 − β₁) g
    torch: u ← max(β₂ u, |g| + ε);  θ ← θ − η/(1 − β₁ᵗ) · m / u
    keras: u ← max(β₂ u, |g|);      θ ← θ − η/(1 − β₁ᵗ) · m / (u + ε)

    References: Kingma & Ba, 2015 (section 7.1).
    """

    def init(params: Sequence[Tensor]) -> AdamaxState:
        return AdamaxState(step_counter(params), zeros_like_all(params), zeros_like_all(params))

    def update(
        grads: Sequence[Tensor], state: AdamaxState, params: Sequence[Tensor], hp: HyperParams
    ) -> StageOut:
        lr, b1, b2, eps = hp["learning_rate"], hp["beta_1"], hp["beta_2"], hp["epsilon"]
        t = state.step + 1
        bc1 = 1 - b1**t
        ms, us, new = [], [], []
        for g, p, m, u in zip(grads, params, state.exp_avg, state.exp_inf, strict=True):
            m = _ema(m, g, b1, keras=keras)
            u = _inf_norm(u, g, b2, eps, keras=keras)
            if keras:
                q = p - (m * expand(lr, p)) / ((u + expand(eps, p)) * expand(bc1, p))
            else:
                q = p - expand(lr / bc1, p) * (m / u)
            ms.append(m)
            us.append(u)
            new.append(q)
        return list(grads), new, AdamaxState(t, ms, us)

    return Stage(init, update)


class NesterovAdamState(NamedTuple):
    """``mu_product``: Π₁..ₜ μ (shape and dtype follow ``hp`` after the first update);
    ``exp_avg``: m; ``exp_avg_sq``: v (NAdam) or ``exp_inf``: u (NAdaMax)."""

    step: Tensor
    mu_product: Tensor
    exp_avg: list[Tensor]
    exp_avg_sq: list[Tensor]
    exp_inf: list[Tensor]


def _mu(beta_1: Tensor, t: Tensor, psi: Tensor, *, schedule: bool) -> Tensor:
    """Dozat's momentum schedule μₜ = β₁(1 − ½·0.96^(t·ψ)), or μₜ = β₁ without it."""
    if not schedule:
        return beta_1
    return beta_1 * (1.0 - 0.5 * (0.96 ** (t * psi)))


def nesterov_adam(*, infinity_norm: bool, schedule: bool, keras: bool) -> Stage:
    """NAdam (second moment v) or NAdaMax (infinity norm u): Nesterov momentum on Adam.

    μₜ = β₁(1 − ½·0.96^(t·ψ)) (torch ψ = 4e-3; keras's schedule is ψ = 1; no schedule: β₁)
    m̂ = μₜ₊₁ m / (1 − Π₁..ₜ₊₁ μ) + (1 − μₜ) g / (1 − Π₁..ₜ μ)
    NAdam:   θ ← θ − η m̂ / (√(v/(1 − β₂ᵗ)) + ε)
    NAdaMax: torch u ← max(β₂u, |g| + ε), θ ← θ − η m̂ / u;
             keras u ← max(β₂u, |g|),     θ ← θ − η m̂ / (u + ε)

    References: Dozat, 2016.

    Args:
        infinity_norm: NAdaMax instead of NAdam.
        schedule: Dozat's momentum schedule; False gives seed 000's plain form μₜ = β₁.
        keras: keras's order of operations and ε placement.
    """

    def init(params: Sequence[Tensor]) -> NesterovAdamState:
        device = params[0].device if params else None
        scalar_dtype = torch.float32 if device is not None and device.type == "mps" else None
        return NesterovAdamState(
            step_counter(params),
            torch.ones((), dtype=scalar_dtype or torch.float64, device=device),
            zeros_like_all(params),
            [] if infinity_norm else zeros_like_all(params),
            zeros_like_all(params) if infinity_norm else [],
        )

    def update(
        grads: Sequence[Tensor],
        state: NesterovAdamState,
        params: Sequence[Tensor],
        hp: HyperParams,
    ) -> StageOut:
        lr, b1, b2, eps = hp["learning_rate"], hp["beta_1"], hp["beta_2"], hp["epsilon"]
        psi = hp["momentum_decay"]
        t = state.step + 1
        mu = _mu(b1, t, psi, schedule=schedule)
        mu_next = _mu(b1, t + 1, psi, schedule=schedule)
        mu_product = state.mu_product * mu
        mu_product_next = mu_product * mu_next
        bc2 = 1 - b2**t
        coef_g = (1 - mu) / (1 - mu_product)
        coef_m = mu_next / (1 - mu_product_next)
        seconds = state.exp_inf if infinity_norm else state.exp_avg_sq
        ms, ss, new = [], [], []
        for g, p, m, s in zip(grads, params, state.exp_avg, seconds, strict=True):
            m = _ema(m, g, b1, keras=keras)
            if infinity_norm:
                s = _inf_norm(s, g, b2, eps, keras=keras)
                denom = s + expand(eps, p) if keras else s
            else:
                s = _ema_sq(s, g, b2)
                denom = torch.sqrt(s / expand(bc2, p)) + expand(eps, p)
            if keras:
                m_hat = (m * expand(coef_m, p)) + (g * expand(coef_g, p))
                q = p - (m_hat * expand(lr, p)) / denom
            else:
                q = p - expand(lr * coef_g, p) * (g / denom)
                q = q - expand(lr * coef_m, p) * (m / denom)
            ms.append(m)
            ss.append(s)
            new.append(q)
        exp_avg_sq, exp_inf = ([], ss) if infinity_norm else (ss, [])
        return list(grads), new, NesterovAdamState(t, mu_product, ms, exp_avg_sq, exp_inf)

    return Stage(init, update)
