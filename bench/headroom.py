"""Headroom in the engine: one MLP training step, split, against this machine's limits.

On a CPU with up to four cores the engine trains a batch of K trials as one lane per core,
each single-threaded (`optsweep.engine.lanes_for`). This benchmark takes one such lane (the
MNIST MLP 784-128-10, Adam in torch's convention, batch 128, one intra-op thread) and times,
best of ``--repeats`` after a warm-up:

- the **whole step** as the engine runs it (`_Lane.steps`: the images gathered, forward,
  backward, update, the losses recorded);
- **forward + backward** alone (the three GEMMs of each layer), in GFLOP/s against the best
  square fp32 matmul (1024 and 2048) on the same one thread (the practical matmul peak);
- the **update** alone (the engine's Adam kernel: torch's fused kernel once per trial on a
  CPU), in GB/s of the bytes it must move (reads θ, g, m, v and writes θ, m, v: 28 bytes a
  parameter) against the best of a copy and a triad ``a = b + s·c`` on tensors of the same
  total size (the bandwidth the update can hope for there: caches included) and on 256 MB
  ones (main memory);
- **the rest** (the step minus both): the gather of the batch, the loss, the Python between
  kernels.

    python bench/headroom.py            # K = 8, 16, 32 trials in the lane
    python bench/headroom.py --quick    # smoke run, seconds
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from optsweep import engine
from optsweep.config import DataSpec, TrainSpec, expand, load_sweep
from optsweep.data import load_dataset
from optsweep.models import build_model

BYTES_PER_PARAM = 7 * 4  # Adam: θ, g, m, v read; θ, m, v written; fp32


def best_seconds(call: Callable[[], object], repeats: int) -> float:
    """The fastest of ``repeats`` calls after two warm-up calls."""
    call()
    call()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return best


def matmul_gflops(repeats: int) -> float:
    """The best square fp32 matmul's GFLOP/s on the current thread count (1024 and 2048)."""
    best = 0.0
    for size in (1024, 2048):
        a, b = torch.randn(size, size), torch.randn(size, size)
        seconds = best_seconds(lambda a=a, b=b: a @ b, max(3, repeats // 5))
        best = max(best, 2 * size**3 / seconds / 1e9)
    return best


def bandwidth_gbs(numel: int, repeats: int) -> float:
    """The best GB/s of a copy ``a = b`` and a triad ``a = b + s·c`` over ``numel``-element
    fp32 tensors (bytes read and written)."""
    a, b, c = torch.empty(numel), torch.randn(numel), torch.randn(numel)
    copy = 2 * 4 * numel / best_seconds(lambda: a.copy_(b), repeats)
    triad = 3 * 4 * numel / best_seconds(lambda: torch.add(b, c, alpha=0.5, out=a), repeats)
    return max(copy, triad) / 1e9


def adam_trial() -> object:
    """One Adam trial (torch's convention, lr 1e-3), as a sweep file makes it."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "adam.yaml"
        path.write_text(
            "name: headroom\ndataset: mnist-mini\nmodel: mlp\n"
            "optimizers: [{name: adam, semantics: torch, grid: {learning_rate: [0.001]}}]\n"
        )
        return expand(load_sweep(path))[0]


@dataclass(frozen=True)
class Split:
    """One lane's step, split (seconds), and the work it does."""

    trials: int
    step: float
    forward_backward: float
    update: float
    flops: float  # forward + backward of the step
    update_bytes: float


def measure(trials: int, repeats: int, batch: int) -> Split:
    """Time one lane of ``trials`` MLP trials (Adam, torch) on mnist-mini, one thread."""
    data = load_dataset("mnist-mini", None, "cpu")
    model = build_model("mlp", data.input_shape, data.num_classes)
    train = TrainSpec(batch_size=batch, epochs=1)
    template = adam_trial()
    _, lanes = engine._start(
        data, model, [template] * trials, train, torch.device("cpu"), data=DataSpec()
    )
    [lane] = lanes  # one intra-op thread (main): one lane
    order = torch.randperm(data.train_x.shape[0])
    counter = iter(range(10**9))

    def one_step() -> None:
        step = next(counter) % engine.steps_per_epoch(data.train_x.shape[0], batch, False)
        lane.steps(order, step, step + 1, step)

    x, y = data.train_x[:batch], data.train_y[:batch]

    def forward_backward() -> Sequence[torch.Tensor]:
        params = [p.requires_grad_() for p in lane.params]
        logits = model.forward(params, x, buffers=lane.buffers, train=True)
        losses = engine.per_trial_loss(logits, y)
        return torch.autograd.grad(losses.sum(), params)

    grads = forward_backward()

    def update() -> None:
        with torch.no_grad():
            [rule] = lane.groups  # one optimizer: one group of rows
            rule.kernel.update_([g.clone() for g in grads], rule.state, lane.params, rule.hp)

    clone_seconds = best_seconds(lambda: [g.clone() for g in grads], repeats)
    n_params = model.num_params()
    # forward: 2 FLOPs a weight a sample; backward twice that (input and weight gradients)
    return Split(
        trials,
        best_seconds(one_step, repeats),
        best_seconds(forward_backward, repeats),
        max(0.0, best_seconds(update, repeats) - clone_seconds),
        6 * n_params * batch * trials,
        BYTES_PER_PARAM * n_params * trials,
    )


def report(split: Split, peak_gflops: float, near_gbs: float, far_gbs: float) -> str:
    rest = split.step - split.forward_backward - split.update
    gflops = split.flops / split.forward_backward / 1e9
    gbs = split.update_bytes / split.update / 1e9 if split.update else float("inf")
    return (
        f"| {split.trials} | {1e3 * split.step:.2f} | {1e3 * split.forward_backward:.2f}: "
        f"{gflops:.0f} GFLOP/s = {100 * gflops / peak_gflops:.0f}% | {1e3 * split.update:.2f}: "
        f"{gbs:.1f} GB/s = {100 * gbs / near_gbs:.0f}% ({100 * gbs / far_gbs:.0f}% of DRAM) "
        f"| {1e3 * rest:.2f} ({100 * rest / split.step:.0f}%) |"
    )


def main(argv: Sequence[str] | None = None) -> list[Split]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", default="8,16,32", help="K of the lane, comma-separated")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--quick", action="store_true", help="K = 4, 5 repeats: a smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.trials, args.repeats = "4", 5
    torch.set_num_threads(1)  # one lane, one core: as the engine runs each lane on 2-4 cores
    peak = matmul_gflops(args.repeats)
    far = bandwidth_gbs(64 << 20, max(3, args.repeats // 5))
    print(
        f"torch {torch.__version__}, 1 thread: fp32 matmul {peak:.0f} GFLOP/s, "
        f"triad on 256 MB {far:.1f} GB/s"
    )
    print(
        "\n| K | step (ms) | forward + backward (ms): of the matmul peak "
        "| update (ms): of copy or triad at its size | rest (ms) |"
    )
    print("| --- | --- | --- | --- | --- |")
    splits = []
    for trials in (int(k) for k in args.trials.split(",")):
        split = measure(trials, args.repeats, args.batch_size)
        # the update's four tensors (θ, g, m, v) as three of the same total size
        near = bandwidth_gbs(4 * split.update_bytes // BYTES_PER_PARAM // 3, args.repeats)
        print(report(split, peak, near, far), flush=True)
        splits.append(split)
    return splits


if __name__ == "__main__":
    main()
