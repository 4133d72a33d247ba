"""A ``torch.optim.Optimizer`` that runs any registry optimizer in a plain PyTorch loop.

    opt = optsweep.optim.create(model.parameters(), "rmsprop", semantics="keras", rho=0.9)
    loss.backward(); opt.step(); opt.zero_grad()

Parameter groups hold canonical (keras-style) names, except the learning rate, which is
stored under torch's ``"lr"`` so that ``torch.optim.lr_scheduler`` works unchanged.
State is kept per parameter under the rule's names (``exp_avg``, ``exp_avg_sq``,
``step``...), so ``state_dict()`` / ``load_state_dict()`` round-trip as with
``torch.optim``. Step counters are shared by a group (keras-like): a parameter that had
no gradient for some steps is stepped with the group's count.

Beyond the rule's own parameters it takes what torch.optim's constructors take:
``maximize``; a keras ``LearningRateSchedule`` (called with the group's count of steps, as
keras calls it with ``iterations``) or a callable (called every step) as the learning rate; a
tensor for any continuous hyperparameter (``lr=torch.tensor(1e-3)``, tensor
betas), read at every step as torch reads it; ``foreach`` and ``fused`` (implementation
choices: accepted, ignored, same values); ``capturable`` and ``differentiable`` only as False
(True asks for CUDA-graph capture or autograd through the step, which this step does not do).
The step runs the same in-place kernel as the engine (``build.inplace``), on a copy of each
gradient, so ``p.grad`` is left as it was.

``eval()`` and ``train()``, as Schedule-Free's reference has them: ``eval()`` puts into the
parameters the weights the rule evaluates at (Schedule-Free's x; the other rules have none and
only change mode), ``train()`` the point it takes gradients at back (y); ``step()`` in eval
mode is refused where the two differ. A group starts in train mode (where the reference asks
for a first ``train()``: before any step the two points are the same). The mode is kept per
group (``"train_mode"``), in ``state_dict()`` too. ``use_ema``'s average is not swapped in
(keras swaps it with a callback, ``SwapEMAWeights``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import Tensor

from .base import Kernel, flatten_state, unflatten_state
from .build import inplace
from .registry import Semantics, canonicalize, check_semantics, optimizer_info, resolve
from .transforms import rule_state

__all__ = ["SweepOptimizer", "create"]

_LR_KEY = "lr"
# torch.optim's implementation flags: (accepted values, why True is refused)
_IMPLEMENTATION_FLAGS: dict[str, str | None] = {
    "foreach": None,
    "fused": None,
    "capturable": "CUDA-graph capture of the step is not supported",
    "differentiable": "autograd through the step is not supported",
}


def _implementation_flags(name: str, given: dict[str, Any]) -> None:
    """Pop torch.optim's implementation flags from ``given``; refuse those that change what
    the step must support."""
    for flag, refusal in _IMPLEMENTATION_FLAGS.items():
        value = given.pop(flag, None)
        if value and refusal is not None:
            raise ValueError(f"{name}: {flag}=True: {refusal}; pass {flag}=False or leave it out")


def _as_number(name: str, value: Any) -> Any:
    """A value as the number it stands for when checked: a one-element tensor's number; a
    learning-rate schedule or callable (checked when it runs) 1.0; other values unchanged."""
    if isinstance(value, Tensor):
        if value.numel() != 1:
            raise ValueError(f"{name} = a tensor of shape {tuple(value.shape)}; give one value")
        return value.item()
    if callable(value):
        if name != "learning_rate":
            raise ValueError(f"{name} = {value!r}: only the learning rate may be a schedule")
        return 1.0
    if isinstance(value, tuple):
        return tuple(_as_number(name, v) for v in value)
    return value


def _kept(given: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with the tensors and schedules ``given`` (canonical names) put back."""
    return {
        k: given[k] if isinstance(given.get(k), Tensor) or callable(given.get(k)) else v
        for k, v in values.items()
    }


def _is_keras_schedule(value: Any) -> bool:
    """A ``keras.optimizers.schedules.LearningRateSchedule`` (called with the step count),
    told without importing keras."""
    return any(c.__name__ == "LearningRateSchedule" for c in type(value).__mro__)


def _rate_now(value: Any, calls: int) -> Any:
    """The learning rate for this call: a keras schedule at the count of calls before it (as
    keras's ``_iterations``), a callable called, a number or tensor as it is."""
    if _is_keras_schedule(value):
        return float(value(calls))
    if callable(value):
        return float(value())
    return value


def _to_group(values: Mapping[str, Any]) -> dict[str, Any]:
    return {(_LR_KEY if k == "learning_rate" else k): v for k, v in values.items()}


class SweepOptimizer(torch.optim.Optimizer):
    """Any optimizer of the registry as a ``torch.optim.Optimizer``.

    Args:
        params: parameters or parameter groups (dicts with ``"params"`` and overrides,
            keras or torch names).
        name: registry name (``"adam"``, ``"rmsprop"``...).
        semantics: ``"torch"`` (torch.optim's rule and defaults) or ``"keras"``.
        **hyperparameters: keras or torch names (``learning_rate`` or ``lr``, ``betas``...).

    Raises:
        ValueError: unknown optimizer, unknown parameter (with "did you mean"), or an
            invalid value, naming the optimizer, the parameter and its valid range.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        name: str,
        *,
        semantics: Semantics = "torch",
        **hyperparameters: Any,
    ) -> None:
        check_semantics(semantics)
        self.optimizer_name = name
        self.semantics: Semantics = semantics
        self._info = optimizer_info(name)
        self._kernels: dict[tuple[Any, ...], tuple[Kernel, Any]] = {}
        given = dict(hyperparameters)
        _implementation_flags(name, given)
        maximize = given.pop("maximize", False)
        if not isinstance(maximize, bool):
            raise ValueError(f"{name}: maximize = {maximize!r} is not a boolean")
        defaults = {**_to_group(self._resolved(given, {})), "maximize": maximize}
        super().__init__(params, defaults)

    def _resolved(self, given: Mapping[str, Any], base: Mapping[str, Any]) -> dict[str, Any]:
        """``base`` overridden by ``given`` (keras or torch names), checked; tensors kept."""
        canonical = canonicalize(self.optimizer_name, given)
        merged = {**base, **canonical}
        checked = {k: _as_number(k, v) for k, v in merged.items()}
        return _kept(merged, resolve(self.optimizer_name, self.semantics, checked))

    # -- groups ---------------------------------------------------------------------------------

    def _canonical(self, group: Mapping[str, Any]) -> dict[str, Any]:
        """A group's hyperparameters under canonical names (ignoring keys such as
        ``initial_lr`` that torch's schedulers add)."""
        out = {}
        for key, value in group.items():
            name = "learning_rate" if key == _LR_KEY else key
            if name in self._info.params:
                out[name] = value
        return out

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group; its overrides may use keras or torch names and are validated."""
        group = dict(param_group)
        params = group.pop("params")
        _implementation_flags(self.optimizer_name, group)
        maximize = group.pop("maximize", self.defaults["maximize"])
        calls = group.pop("iterations", 0)
        train_mode = group.pop("train_mode", True)
        values = self._resolved(group, self._canonical(self.defaults))
        group = {
            "params": params,
            **_to_group(values),
            "maximize": maximize,
            "iterations": calls,
            "train_mode": train_mode,
        }
        super().add_param_group(group)

    def _kernel(self, values: Mapping[str, Any], maximize: bool) -> tuple[Kernel, Any]:
        """The kernel for a group's structural values, and its state skeleton."""
        structural = [(n, values[n]) for n, p in self._info.params.items() if p.structural]
        key = (*structural, maximize)
        if key not in self._kernels:
            numbers = {k: _as_number(k, v) for k, v in values.items()}
            kernel = inplace(
                self.optimizer_name, self.semantics, numbers, "batched", maximize=maximize
            )
            self._kernels[key] = (kernel, kernel.init([torch.zeros(1)]))
        return self._kernels[key]

    # -- state ----------------------------------------------------------------------------------

    def _gather(self, kernel: Kernel, skeleton: Any, params: list[Tensor]) -> Any:
        fresh = [p for p in params if not self.state[p]]
        if fresh:
            leaves = flatten_state(kernel.init(fresh))
            for i, p in enumerate(fresh):
                self.state[p].update(
                    {k: v[i] if isinstance(v, list) else v for k, v in leaves.items()}
                )
        gathered: dict[str, Tensor | list[Tensor]] = {}
        for key, leaf in flatten_state(skeleton).items():
            if isinstance(leaf, list):
                gathered[key] = [self.state[p][key] for p in params]
            else:
                gathered[key] = self.state[params[0]][key]
        return unflatten_state(skeleton, gathered)

    def _scatter(self, state: Any, params: list[Tensor]) -> None:
        for key, leaf in flatten_state(state).items():
            for i, p in enumerate(params):
                self.state[p][key] = leaf[i] if isinstance(leaf, list) else leaf

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """As ``torch.optim``, but state tensors keep their saved dtype (integer
        counters and float64 products are not cast to the parameter dtype)."""
        super().load_state_dict(state_dict)
        saved_ids = [i for g in state_dict["param_groups"] for i in g["params"]]
        params = [p for g in self.param_groups for p in g["params"]]
        for saved_id, p in zip(saved_ids, params, strict=True):
            for key, value in state_dict["state"].get(saved_id, {}).items():
                if isinstance(value, Tensor) and value.dtype != self.state[p][key].dtype:
                    self.state[p][key] = value.detach().clone().to(p.device)

    # -- where the rule evaluates ---------------------------------------------------------------

    @torch.no_grad()
    def eval(self) -> None:
        """The parameters to the weights the rule evaluates at (Schedule-Free's x), as the
        reference's ``optimizer.eval()``; call ``train()`` before the next ``step()``."""
        self._swap(training=False)

    @torch.no_grad()
    def train(self) -> None:
        """The parameters back to the point the rule takes gradients at (Schedule-Free's y)."""
        self._swap(training=True)

    def _swap(self, *, training: bool) -> None:
        for group in self.param_groups:
            if group.get("train_mode", True) == training:
                continue
            params = [p for p in group["params"] if self.state[p]]  # stepped at least once
            if params:
                kernel, skeleton = self._kernel(self._canonical(group), group["maximize"])
                rule = rule_state(self._gather(kernel, skeleton, params))
                move = getattr(rule, "training_weights" if training else "evaluation_weights", None)
                if move is not None:
                    for p, weights in zip(params, move(params), strict=True):
                        p.copy_(weights)
            group["train_mode"] = training

    # -- loss scaling ---------------------------------------------------------------------------

    def scale_loss(self, loss: Tensor) -> Tensor:
        """``loss`` times the loss scale (keras ``LossScaleOptimizer.scale_loss``): the current
        dynamic scale with ``dynamic_loss_scale``, else ``loss_scale_factor``, else 1.

            opt.scale_loss(loss).backward(); opt.step()
        """
        group = self.param_groups[0]
        for p in group["params"]:
            if "loss_scale" in self.state[p]:
                return loss * self.state[p]["loss_scale"].to(loss.dtype)
        if group["dynamic_loss_scale"]:
            return loss * group["initial_scale"]
        factor = group["loss_scale_factor"]
        return loss if factor is None else loss * factor

    # -- step -----------------------------------------------------------------------------------

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:  # type: ignore[override]
        """One update of every parameter that has a gradient."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            if any(p.grad.is_sparse for p in params):
                raise RuntimeError(f"{self.optimizer_name}: sparse gradients are not supported")
            values = self._canonical(group)
            kernel, skeleton = self._kernel(values, group.get("maximize", False))
            if not group.get("train_mode", True) and hasattr(
                rule_state(skeleton), "evaluation_weights"
            ):
                raise RuntimeError(
                    f"{self.optimizer_name}: step() in eval mode (the parameters hold the "
                    "weights it evaluates at); call train() first"
                )
            state = self._gather(kernel, skeleton, params)
            device = params[0].device
            dtype = torch.float32 if device.type == "mps" else torch.float64
            hp = {}
            for name, info in self._info.params.items():
                if info.structural:
                    continue
                value = values[name]
                if value is None:
                    value = info.neutral
                if name == "learning_rate":
                    value = _rate_now(value, group["iterations"])
                # any one-element tensor (torch takes betas=(tensor([[[0.9]]]), ...)) is one value
                hp[name] = torch.as_tensor(value, dtype=dtype, device=device).detach().reshape(())
            kernel.update_([p.grad.clone() for p in params], state, params, hp)
            group["iterations"] += 1
            self._scatter(state, params)  # shared leaves (step counters) to every parameter
        return loss


def create(
    params: Iterable[Tensor] | Iterable[dict[str, Any]],
    name: str,
    *,
    semantics: Semantics = "torch",
    **hyperparameters: Any,
) -> SweepOptimizer:
    """A ``torch.optim.Optimizer`` running registry optimizer ``name``.

    ``create(model.parameters(), "adam", semantics="keras", learning_rate=1e-3)`` and
    ``create(model.parameters(), "adam", lr=1e-3, betas=(0.9, 0.99))`` both work; keras
    and torch names denote the same parameter (giving both is an error).
    """
    return SweepOptimizer(params, name, semantics=semantics, **hyperparameters)
