"""Optimizer step throughput: optsweep's K-batched update against each library's own class
stepped once per trial, for every optimizer added beyond the 2016 documents.

For each optimizer, K trials (K = 32 by default, learning rates spread over [η, 2η) around
the optimizer's default η) hold the parameters of the MLP 784-128-10 — shapes (128, 784),
(128,), (10, 128), (10,) — in float32, and a fixed random gradient. Timed are only the updates:

1. **optsweep batched**: ``optsweep.optim.inplace`` (the engine's kernel, its stages included)
   over the stacked ``(K, …)`` parameters with ``(K,)`` hyperparameters, one call per step;
   the gradients are copied into the scratch the kernel overwrites outside the timer;
2. **library class per trial**: K instances of the library's (or the reference's) optimizer,
   one per trial, each stepped once per step — the loop a user writes without optsweep.

The library objects are built as the parity table builds its oracles
(``tests/test_optim_parity.py``: ``_torch_optimizer`` for torch semantics, ``_keras_optimizer``
for keras semantics), so the constructor mapping is the one held to parity: torch.optim's
RAdam, Adafactor, Muon (torch's recipe for a whole model: Muon on the matrices, AdamW on the
biases), ASGD and Rprop; Keras 3's Lion, Lamb and Ftrl (torch backend, ``apply_gradients``);
the references for the rest — ``prodigyopt.Prodigy``, ``schedulefree``'s AdamW and SGD, and the
transcriptions of nikhilvyas/SOAP and apple/ml-ademamix the tests carry (no package ships them).

Warm-up steps are excluded; each side runs ``--repeats`` blocks of ``--steps`` steps,
interleaved (the machine is often shared), and the best block counts. It prints a Markdown
table of trial-steps/s (K × steps ÷ seconds) and optsweep's ratio to the library.

    python bench/optimizers.py                                    # make bench
    python bench/optimizers.py --quick --optimizers radam,lion    # smoke run, seconds
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

REPO = Path(__file__).resolve().parents[1]
# the parity table's oracles live with the tests; the machine's load is throughput.py's measure
for path in (REPO, REPO / "tests", REPO / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import test_optim_parity as parity  # noqa: E402  (sets KERAS_BACKEND=torch before keras)
from throughput import cpu_seconds, others_share  # noqa: E402

from optsweep.optim import inplace, resolve, stack_hyperparameters  # noqa: E402

SHAPES = ((128, 784), (128,), (10, 128), (10,))  # optsweep's mlp: 784-128-10

# optimizer: (semantics, the class stepped per trial, the package it needs)
CASES: dict[str, tuple[str, str, str]] = {
    "radam": ("torch", "torch.optim.RAdam", "torch"),
    "adafactor": ("torch", "torch.optim.Adafactor", "torch"),
    "muon": ("torch", "torch.optim.Muon, AdamW on biases", "torch"),
    "asgd": ("torch", "torch.optim.ASGD", "torch"),
    "rprop": ("torch", "torch.optim.Rprop", "torch"),
    "lion": ("keras", "keras.optimizers.Lion", "keras"),
    "lamb": ("keras", "keras.optimizers.Lamb", "keras"),
    "ftrl": ("keras", "keras.optimizers.Ftrl", "keras"),
    "soap": ("torch", "ReferenceSOAP (nikhilvyas/SOAP, transcribed)", "torch"),
    "prodigy": ("torch", "prodigyopt.Prodigy", "prodigyopt"),
    "ademamix": ("torch", "ReferenceAdEMAMix (apple/ml-ademamix, transcribed)", "torch"),
    "schedule_free_adamw": ("torch", "schedulefree.AdamWScheduleFree", "schedulefree"),
    "schedule_free_sgd": ("torch", "schedulefree.SGDScheduleFree", "schedulefree"),
}


@dataclass(frozen=True)
class Row:
    optimizer: str
    semantics: str
    library: str
    ours: float | None  # trial-steps/s
    theirs: float | None
    note: str = ""
    others: float = 0.0  # the share of the CPUs other processes used meanwhile


def trial_values(name: str, semantics: str, trials: int) -> list[dict[str, Any]]:
    """Resolved hyperparameters of K trials: the default learning rate times 1 … 2."""
    lr = resolve(name, semantics, {})["learning_rate"]
    return [
        resolve(name, semantics, {"learning_rate": lr * (1 + i / trials)}) for i in range(trials)
    ]


def problem(trials: int, seed: int = 0) -> tuple[list[Tensor], list[Tensor]]:
    """Stacked float32 parameters and gradients, ``(K, *shape)`` each, random but fixed."""
    gen = torch.Generator().manual_seed(seed)
    params = [0.05 * torch.randn((trials, *s), generator=gen) for s in SHAPES]
    grads = [0.01 * torch.randn((trials, *s), generator=gen) for s in SHAPES]
    return params, grads


Step = Callable[[], float]  # one step of every trial; returns the seconds it took


def optsweep_step(name: str, semantics: str, values: list[dict], params, grads) -> Step:
    kernel = inplace(name, semantics, values[0])
    hp = stack_hyperparameters(name, values)
    stacked = [p.clone() for p in params]
    state = kernel.init(stacked)
    scratch = [torch.empty_like(g) for g in grads]

    def step() -> float:
        for s, g in zip(scratch, grads, strict=True):
            s.copy_(g)
        start = time.perf_counter()
        kernel.update_(scratch, state, stacked, hp)
        return time.perf_counter() - start

    return step


def torch_step(name: str, values: list[dict], params, grads) -> Step:
    trials = []
    for i, v in enumerate(values):
        leaves = [p[i].clone().requires_grad_(True) for p in params]
        for leaf, g in zip(leaves, grads, strict=True):
            leaf.grad = g[i].clone()
        trials.append(parity._torch_optimizer(name, leaves, v))

    def step() -> float:
        start = time.perf_counter()
        for opt in trials:
            opt.step()
        return time.perf_counter() - start

    return step


def keras_step(name: str, values: list[dict], params, grads) -> Step:
    keras = parity.keras
    trials = []
    for i, v in enumerate(values):
        variables = [keras.Variable(p[i].numpy(), dtype="float32") for p in params]
        trials.append((parity._keras_optimizer(name, v), variables, [g[i].clone() for g in grads]))

    def step() -> float:
        start = time.perf_counter()
        for opt, variables, g in trials:
            opt.apply_gradients(zip(g, variables, strict=True))
        return time.perf_counter() - start

    return step


def missing_package(package: str) -> str | None:
    modules = {"keras": parity.keras, "prodigyopt": parity.prodigyopt}
    modules["schedulefree"] = parity.schedulefree
    if package in modules and modules[package] is None:
        return f"{package} is not installed"
    return None


def block_rate(step: Step, trials: int, steps: int) -> float:
    """Trial-steps/s of one block of ``steps`` steps."""
    return trials * steps / sum(step() for _ in range(steps))


def measure(name: str, args: argparse.Namespace) -> Row:
    semantics, library, package = CASES[name]
    missing = missing_package(package)
    if missing is not None:
        return Row(name, semantics, library, None, None, missing)
    since, start = cpu_seconds(), time.perf_counter()
    values = trial_values(name, semantics, args.trials)
    params, grads = problem(args.trials)
    ours = optsweep_step(name, semantics, values, params, grads)
    if semantics == "keras":
        theirs = keras_step(name, values, params, grads)
    else:
        theirs = torch_step(name, values, params, grads)
    for _ in range(args.warmup):
        ours(), theirs()
    best = {"ours": 0.0, "theirs": 0.0}
    for _ in range(args.repeats):  # interleaved: a busy spell hits both sides
        best["ours"] = max(best["ours"], block_rate(ours, args.trials, args.steps))
        best["theirs"] = max(best["theirs"], block_rate(theirs, args.trials, args.steps))
    others = others_share(since, start)
    return Row(name, semantics, library, best["ours"], best["theirs"], others=others)


def table(rows: Sequence[Row]) -> str:
    lines = [
        "| optimizer | optsweep batched (trial-steps/s) | library class per trial "
        "(trial-steps/s) | ratio |",
        "|---|---|---|---|",
    ]
    for r in rows:
        name = f"{r.optimizer} · {r.semantics}: {r.library}"
        if r.ours is None or r.theirs is None:
            lines.append(f"| {name} | — | — | {r.note} |")
            continue
        lines.append(f"| {name} | {r.ours:,.0f} | {r.theirs:,.0f} | {r.ours / r.theirs:.1f}x |")
    busy = [r for r in rows if r.others > 0.05]
    worst = max((r.others for r in rows), default=0.0)
    lines.append(
        f"\nOther processes used at most {100 * worst:.0f}% of the {os.cpu_count()} CPUs while a "
        "row was measured"
        + (f" (over 5%: {', '.join(r.optimizer for r in busy)})." if busy else ".")
    )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--optimizers", default=",".join(CASES), help="comma-separated")
    parser.add_argument("--trials", type=int, default=32, help="K")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per block")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--repeats", type=int, default=3, help="blocks; the best counts")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 steps, 1 block")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.warmup, args.repeats = 2, 1, 1
    unknown = [n for n in args.optimizers.split(",") if n not in CASES]
    if unknown:
        parser.error(f"unknown optimizer(s) {', '.join(unknown)}; valid: {', '.join(CASES)}")
    return args


def main(argv: Sequence[str] | None = None) -> list[Row]:
    args = parse_args(argv)
    print(
        f"MLP 784-128-10 parameters, float32, K={args.trials}, {args.steps} steps x "
        f"{args.repeats} blocks after {args.warmup} warm-up; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, CPU capability "
        f"{torch.backends.cpu.get_cpu_capability()}",
        flush=True,
    )
    rows = []
    for name in args.optimizers.split(","):
        rows.append(measure(name, args))
        print(f"done: {name}", flush=True)
    print(table(rows))
    return rows


if __name__ == "__main__":
    main()
