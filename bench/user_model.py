"""Your own model, K trials at once: optsweep's generic path (``model: {module: …}``) against
the ``torch.func`` ensemble PyTorch's tutorial writes for the same module, and against
optsweep's hand-batched built-in MLP, side by side in one process.

Each trains K Adam trials for one epoch on the bundled mnist-mini (5,000 images, batch 128)
and prints trial-samples/s (K × images ÷ seconds), the best of ``--repeats`` runs each.

    python bench/user_model.py [--trials 32] [--repeats 3]      # make bench
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from optsweep.config import expand, load_sweep
from optsweep.data import load_dataset
from optsweep.engine import train_batch
from optsweep.models import build_model

MODULE = """\
from torch import nn


def mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
"""
BATCH = 128


def sweep(folder: Path, trials: int, model: str) -> Path:
    rates = [round(1e-3 * (1 + i / trials), 6) for i in range(trials)]
    path = folder / f"{model}.yaml"
    written = "{module: net.py:mlp}" if model == "module" else "{name: mlp, hidden: [128]}"
    path.write_text(
        f"name: bench\ndataset: mnist-mini\nmodel: {written}\n"
        f"train: {{epochs: 1, batch_size: {BATCH}, trials_per_batch: {trials}}}\n"
        f"optimizers: [{{name: adam, grid: {{lr: {rates}}}}}]\n"
    )
    return path


def optsweep_engine(folder: Path, trials: int, model: str, data) -> float:
    """Seconds of optsweep's engine training the sweep's K trials (one batch)."""
    spec = load_sweep(sweep(folder, trials, model))
    net = build_model(spec.model.name, data.input_shape, data.num_classes, **spec.model.options)
    start = time.perf_counter()
    train_batch(data, net, expand(spec), spec.train, device=torch.device("cpu"))
    return time.perf_counter() - start


def func_ensemble(trials: int, data) -> float:
    """Seconds of the tutorial's ensemble: stack_module_state + functional_call + vmap, one
    foreach Adam over the stacked parameters, the same batches for every trial."""
    models = [
        nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
        for _ in range(trials)
    ]
    params, buffers = torch.func.stack_module_state(models)
    base = models[0].to("meta")

    def one(p, b, x):
        return torch.func.functional_call(base, (p, b), (x,))

    leaves = [p.requires_grad_() for p in params.values()]
    opt = torch.optim.Adam(leaves, lr=1e-3, foreach=True)
    order = torch.Generator().manual_seed(0)
    n = len(data.train_y)
    start = time.perf_counter()
    perm = torch.randperm(n, generator=order)
    for s in range(0, n, BATCH):
        idx = perm[s : s + BATCH]
        x, y = data.train_x[idx], data.train_y[idx]
        logits = torch.vmap(one, in_dims=(0, 0, None))(params, buffers, x)  # (K, B, C)
        loss = F.cross_entropy(logits.transpose(1, 2), y.expand(trials, -1), reduction="none")
        opt.zero_grad(set_to_none=True)
        loss.mean(dim=1).sum().backward()
        opt.step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=32, help="K")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each; the best counts")
    args = parser.parse_args()
    data = load_dataset("mnist-mini", None, "cpu")
    samples = args.trials * len(data.train_y)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "net.py").write_text(MODULE)
        runs = {
            "torch.func ensemble (tutorial), foreach Adam": lambda: func_ensemble(
                args.trials, data
            ),
            "optsweep, your own module (generic path)": lambda: optsweep_engine(
                folder, args.trials, "module", data
            ),
            "optsweep, built-in mlp (hand-batched)": lambda: optsweep_engine(
                folder, args.trials, "builtin", data
            ),
        }
        best = {name: min(run() for _ in range(args.repeats)) for name, run in runs.items()}
    reference = best["torch.func ensemble (tutorial), foreach Adam"]
    print(
        f"MLP 784-128-10, Adam, K={args.trials}, batch {BATCH}, one epoch of mnist-mini "
        f"({len(data.train_y)} images), CPU, {torch.get_num_threads()} threads; best of "
        f"{args.repeats}"
    )
    print("| what | trial-samples/s | vs the ensemble |\n|---|---|---|")
    for name, seconds in best.items():
        print(f"| {name} | {samples / seconds:,.0f} | {reference / seconds:.2f}x |")


if __name__ == "__main__":
    main()
