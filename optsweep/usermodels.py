"""A model from the user's code, trained K trials at once through ``torch.func``.

``model: {module: FILE.py:NAME | package.module:NAME, args: {…}}`` names an ``nn.Module``
class, or a function returning one, called with ``args``; it takes images ``(B, C, H, W)`` and
returns logits ``(B, classes)``. Loading it runs its code: a sweep file without ``module:``
never runs code, and ``validate`` / ``--dry-run`` only check that the file exists (the module
is imported when a run builds the model).

The K trials' parameters are stacked on a leading axis and the module runs on all of them in
one ``vmap`` over ``functional_call`` (PyTorch's model-ensembling recipe), the batch shared.
Each trial starts from the module's own initialisation drawn under ``torch.manual_seed(seed)``,
so trials with one seed start equal and equal a plain ``torch.manual_seed(seed); Module()``.

Dropout draws one mask per sample, shared by the K trials (``vmap(randomness="same")``), from a
seed the lane's generator gives each training step: as the built-in models' masks, they do not
depend on K. Evaluation runs the module in eval mode.

Not yet: buffers (BatchNorm's running statistics) — a module with them is refused in one line,
so that no trial's result depends on K or on its neighbours.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import importlib
import importlib.util
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["UserModelError", "build_user_model", "load_factory"]


class UserModelError(ValueError):
    """A user's model that cannot be loaded or run as a sweep's model; one line."""


def load_factory(reference: str) -> Any:
    """The class or function ``FILE.py:NAME`` (an absolute path) or ``package.module:NAME``
    names, imported (its code runs)."""
    where, _, name = reference.rpartition(":")
    if not where or not name:
        raise UserModelError(f"model.module {reference!r}: expected FILE.py:NAME or pkg.mod:NAME")
    try:
        if where.endswith(".py"):
            path = Path(where)
            module_name = f"optsweep_user_{abs(hash(str(path)))}"
            spec = importlib.util.spec_from_file_location(module_name, path)
            if spec is None or spec.loader is None:
                raise UserModelError(f"model.module {reference!r}: cannot import {path}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module  # dataclasses and pickling look it up
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(where)
    except UserModelError:
        raise
    except Exception as error:  # the user's code: whatever it raises, one line
        raise UserModelError(
            f"model.module {reference!r}: importing it failed ({type(error).__name__}: "
            f"{str(error).strip().splitlines()[0] if str(error).strip() else ''})"
        ) from error
    factory = getattr(module, name, None)
    if factory is None:
        raise UserModelError(f"model.module {reference!r}: {where} has no {name!r}")
    return factory


def _instance(factory: Any, args: dict[str, Any], seed: int, reference: str) -> nn.Module:
    """``factory(**args)`` under ``torch.manual_seed(seed)``, the global generator restored."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            made = factory(**args)
        except Exception as error:
            raise UserModelError(
                f"model.module {reference!r} with args {args}: {type(error).__name__}: {error}"
            ) from error
    if not isinstance(made, nn.Module):
        raise UserModelError(
            f"model.module {reference!r} gave a {type(made).__name__}, not a torch.nn.Module"
        )
    return made


def _refuse_what_depends_on_k(module: nn.Module, reference: str) -> None:
    buffers = [name for name, _ in module.named_buffers()]
    if buffers:
        raise UserModelError(
            f"model.module {reference!r} has buffers ({', '.join(buffers[:3])}…: BatchNorm's "
            "running statistics?); the generic path does not train those yet"
        )


# Dropout under vmap draws from the process's global generator: lanes training in threads
# seed it and draw in turn (the backward pass reuses the masks and needs no lock).
_GLOBAL_RNG = threading.Lock()


def _step_seed(x: Tensor, generator: torch.Generator | None) -> list[int]:
    """A training step's dropout seed, from the lane's generator (the same in every lane):
    a hash of its state, which lives on the host even for a CUDA generator, then the
    generator advanced by one draw left on the device — no read-back in the training loop."""
    if generator is None:
        generator = torch.Generator(device=x.device).manual_seed(0)
    digest = hashlib.blake2b(generator.get_state().numpy().tobytes(), digest_size=8).digest()
    torch.empty(1, device=generator.device).random_(generator=generator)
    return [int.from_bytes(digest, "little") >> 2]


def build_user_model(
    reference: str, args: dict[str, Any], input_shape: Sequence[int], num_classes: int
) -> Any:
    """A `BatchedModel` running the user's module for K trials through ``torch.func``."""
    from optsweep.models import BatchedModel, ParamSpec  # models imports this module lazily

    factory = load_factory(reference)
    base = _instance(factory, args, 0, reference)
    _refuse_what_depends_on_k(base, reference)
    names = [name for name, _ in base.named_parameters()]
    shapes = [tuple(p.shape) for _, p in base.named_parameters()]

    @functools.lru_cache(maxsize=8)
    def initial(seed: int) -> dict[str, Tensor]:
        made = _instance(factory, args, seed, reference)
        return {n: p.detach().float().clone() for n, p in made.named_parameters()}

    def init_from(name: str):
        def init(t: Tensor, generator: torch.Generator) -> None:
            t.copy_(initial(generator.initial_seed())[name])  # the trial's seed

        return init

    shape = tuple(int(s) for s in input_shape)
    probe = torch.zeros(2, *shape)
    with torch.no_grad():
        try:
            out = base(probe)
        except Exception as error:
            raise UserModelError(
                f"model.module {reference!r} fails on images {probe.shape}: "
                f"{type(error).__name__}: {error}"
            ) from error
    if tuple(out.shape) != (2, num_classes):
        raise UserModelError(
            f"model.module {reference!r} returns {tuple(out.shape)} for images "
            f"{tuple(probe.shape)}; expected logits (B, {num_classes})"
        )
    macs = _macs_per_sample(base, shape)
    random = any(isinstance(m, nn.modules.dropout._DropoutNd) for m in base.modules())
    template = base.to("meta")  # functional_call takes every tensor from the stacked params
    # functional_call swaps tensors into the module it is given: lanes training in threads
    # (engine.lanes_for) each need their own copy
    local = threading.local()

    def run_one(*params: Tensor, x: Tensor) -> Tensor:  # local.module: made by forward
        return torch.func.functional_call(local.module, dict(zip(names, params, strict=True)), (x,))

    def forward(params: Sequence[Tensor], x: Tensor, masks: Any) -> Tensor:
        if not hasattr(local, "module"):
            local.module = copy.deepcopy(template)
        local.module.train(masks is not None)  # dropout and the like: eval mode to evaluate
        if masks is None or not random:
            return torch.vmap(functools.partial(run_one, x=x))(*params)
        devices = [x.device] if x.device.type == "cuda" else []
        with _GLOBAL_RNG, torch.random.fork_rng(devices=devices):
            torch.manual_seed(int(masks[0]))
            return torch.vmap(functools.partial(run_one, x=x), randomness="same")(*params)

    return BatchedModel(
        name="module",
        input_shape=shape,  # type: ignore[arg-type]
        num_classes=num_classes,
        params=tuple(ParamSpec(n, s, init_from(n)) for n, s in zip(names, shapes, strict=True)),
        macs_per_sample=macs,
        options={"module": reference, "args": dict(args)},
        _forward=forward,
        _masks=_step_seed if random else None,
    )


def _macs_per_sample(module: nn.Module, shape: tuple[int, ...]) -> int:
    """Forward multiply-adds of one sample, counted by torch's flop counter (FLOPs / 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        module(torch.zeros(1, *shape))
    return max(1, counter.get_total_flops() // 2)
