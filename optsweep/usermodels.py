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

Buffers (BatchNorm's running statistics and its ``num_batches_tracked``) are stacked per trial
like the parameters and passed to ``functional_call`` beside them: a training forward updates
each trial's own slice in place, batch statistics are each trial's own (``vmap`` normalises
every trial over the shared batch separately), and evaluation normalises with each trial's
running statistics. No trial's result depends on K or on its neighbours.

Where ``vmap`` cannot run the module (data-dependent control flow, an in-place operation it
refuses), the trials run one after another through the same ``functional_call``: the same
results, one trial's speed (`BatchedModel.note` says so).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import importlib
import importlib.util
import logging
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["UserModelError", "build_user_model", "load_factory"]

log = logging.getLogger(__name__)


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


def _instance(
    factory: Any, args: dict[str, Any], seed: int, reference: str, shape: tuple[int, ...]
) -> nn.Module:
    """``factory(**args)`` under ``torch.manual_seed(seed)``, the global generator restored;
    lazy layers (``nn.LazyLinear``…) materialised by one image, under the same seed, as the
    first forward of a plain loop would."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            made = factory(**args)
            if isinstance(made, nn.Module) and _has_lazy(made):
                with torch.no_grad():
                    made.eval()(torch.zeros(1, *shape))  # eval: no running statistic moves
                made.train()
        except Exception as error:
            raise UserModelError(
                f"model.module {reference!r} with args {args}: {type(error).__name__}: {error}"
            ) from error
    if not isinstance(made, nn.Module):
        raise UserModelError(
            f"model.module {reference!r} gave a {type(made).__name__}, not a torch.nn.Module"
        )
    return made


def _has_lazy(module: nn.Module) -> bool:
    return any(isinstance(p, nn.parameter.UninitializedParameter) for p in module.parameters())


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
    return module_model(
        load_factory(reference),
        args,
        input_shape,
        num_classes,
        reference=reference,
        name="module",
        options={"module": reference, "args": dict(args)},
    )


def module_model(
    factory: Any,
    args: dict[str, Any],
    input_shape: Sequence[int],
    num_classes: int,
    *,
    reference: str,
    name: str,
    options: dict[str, Any],
) -> Any:
    """A `BatchedModel` named ``name`` running ``factory(**args)``'s module for K trials;
    ``reference`` names it in messages (the user's ``model.module``, or a built-in's name).

    A module with convolutions trains trial by trial on a CPU, as the built-in conv nets do
    (`catalog.ModelEntry.cpu_trial_chunk`), in the layout it is given: measured on 2 cores,
    examples/residual_cnn.py (width 16, 2 blocks), CIFAR-10 shapes, K = 4, B = 128, forward +
    backward per trial: 260-261 ms with the K trials under one vmap, 138-145 ms one after
    another (107-132 ms channels-last, as the built-in conv nets run, not taken: a module may
    assume NCHW, and a channels-last module moved a parity test's loss by 4e-5).
    """
    from optsweep.models import BatchedModel, ParamSpec  # models imports this module lazily

    shape = tuple(int(s) for s in input_shape)
    base = _instance(factory, args, 0, reference, shape)
    params = dict(base.named_parameters())
    buffers = dict(base.named_buffers())
    names = [*params, *buffers]

    @functools.lru_cache(maxsize=8)
    def initial(seed: int) -> dict[str, Tensor]:
        made = _instance(factory, args, seed, reference, shape)
        return {n: t.detach().clone() for n, t in (*made.named_parameters(), *made.named_buffers())}

    def init_from(name: str):
        def init(t: Tensor, generator: torch.Generator) -> None:
            t.copy_(initial(generator.initial_seed())[name])  # the trial's seed

        return init

    _check_output(base, shape, num_classes, reference)
    macs = _macs_per_sample(base, shape)
    random = any(isinstance(m, nn.modules.dropout._DropoutNd) for m in base.modules())
    convolves = any(isinstance(m, nn.modules.conv._ConvNd) for m in base.modules())
    template = base.to("meta")  # functional_call takes every tensor from the stacked ones
    # functional_call swaps tensors into the module it is given: lanes training in threads
    # (engine.lanes_for) each need their own copy
    local = threading.local()

    def run_one(*tensors: Tensor, x: Tensor) -> Tensor:  # local.module: made by forward
        return torch.func.functional_call(
            local.module, dict(zip(names, tensors, strict=True)), (x,)
        )

    def run(tensors: Sequence[Tensor], x: Tensor, seed: int | None) -> Tensor:
        """The trials' logits; ``seed`` seeds a training step's dropout masks, drawn once per
        sample and shared by the trials (``randomness="same"``), as each trial alone draws
        them."""
        one = functools.partial(run_one, x=x)
        trials = tensors[0].shape[0]
        if vmapped and trials > 1:
            if seed is not None:
                torch.manual_seed(seed)
            return torch.vmap(one, randomness="error" if seed is None else "same")(*tensors)
        # One trial (a CPU chunk of 1: vmap only costs there) or a module vmap refuses: plain
        # calls on each trial's slices (BatchNorm updates its running statistics in place).
        logits = []
        for i in range(trials):
            if seed is not None:
                torch.manual_seed(seed)
            logits.append(one(*(t[i] for t in tensors)))
        return torch.stack(logits)

    def forward(tensors: Sequence[Tensor], x: Tensor, masks: Any) -> Tensor:
        if not hasattr(local, "module"):
            local.module = copy.deepcopy(template)
        # masks: a training step's (a seed, or [] for a module drawing nothing)
        local.module.train(masks is not None)  # dropout, BatchNorm: eval mode to evaluate
        if not masks:
            return run(tensors, x, None)
        devices = [x.device] if x.device.type == "cuda" else []
        with _GLOBAL_RNG, torch.random.fork_rng(devices=devices):
            return run(tensors, x, int(masks[0]))

    def training(x: Tensor, generator: torch.Generator | None) -> list[int]:
        return _step_seed(x, generator) if random else []

    vmapped = True
    model = BatchedModel(
        name=name,
        input_shape=shape,  # type: ignore[arg-type]
        num_classes=num_classes,
        params=tuple(ParamSpec(n, tuple(p.shape), init_from(n)) for n, p in params.items()),
        macs_per_sample=macs,
        options=options,
        _forward=forward,
        _masks=training,
        buffers=tuple(
            ParamSpec(n, tuple(b.shape), init_from(n), b.dtype) for n, b in buffers.items()
        ),
    )
    vmapped = _runs_under_vmap(model, reference)  # all K at once: what a GPU runs
    if not convolves:
        return model
    return dataclasses.replace(model, cpu_trial_chunk=1)


def _check_output(module: nn.Module, shape: tuple[int, ...], classes: int, reference: str) -> None:
    """Refuse, in one line, a module that fails on two images or returns other than logits."""
    probe = torch.zeros(2, *shape)
    with torch.no_grad():
        try:
            out = module.eval()(probe)
        except Exception as error:
            raise UserModelError(
                f"model.module {reference!r} fails on images {probe.shape}: "
                f"{type(error).__name__}: {error}"
            ) from error
    if tuple(out.shape) != (2, classes):
        raise UserModelError(
            f"model.module {reference!r} returns {tuple(out.shape)} for images "
            f"{tuple(probe.shape)}; expected logits (B, {classes})"
        )


def _runs_under_vmap(model: Any, reference: str) -> bool:
    """Whether ``vmap`` runs two trials of ``model`` forward and backward, training; if not,
    say in one line that its trials train one after another."""
    params = [torch.stack([t, t]).requires_grad_() for t in model.init(0)]
    buffers = [torch.stack([b, b]) for b in model.init_buffers(0)]
    x = torch.zeros(2, *model.input_shape)
    try:
        model.forward(params, x, buffers=buffers, train=True).sum().backward()
    except Exception as error:  # vmap's refusals are RuntimeErrors and ValueErrors alike
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        log.warning(
            "model.module %r: torch.vmap cannot run it (%s: %s); its trials train one "
            "after another (the same results, one trial's speed)",
            reference,
            type(error).__name__,
            first[:160],
        )
        return False
    return True


def _macs_per_sample(module: nn.Module, shape: tuple[int, ...]) -> int:
    """Forward multiply-adds of one sample, counted by torch's flop counter (FLOPs / 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        module.eval()(torch.zeros(1, *shape))  # eval: BatchNorm takes a single image
    return max(1, counter.get_total_flops() // 2)
