"""Your own model, K trials at once: optsweep's generic path (``model: {module: …}``) against
the ``torch.func`` ensemble PyTorch's tutorial writes for the same module, and against
optsweep's hand-batched built-in MLP, side by side in one process.

Each trains K Adam trials for one epoch on the bundled mnist-mini (5,000 images, batch 128)
and prints trial-samples/s (K × images ÷ seconds), the best of ``--repeats`` runs each.

Then ResNet-20 (``model: resnet20``, the generic path over `optsweep.resnet.CifarResNet`) with
the CIFAR protocol's augmentation (crop after padding 4, flip) and SGD with momentum, on the
shipped CIFAR-10 subset: optsweep against the same ensemble and against a plain loop training
one ``nn.Module`` after another (K of them), a few steps each.

    python bench/user_model.py [--trials 32] [--repeats 3] [--resnet-trials 4]   # make bench
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
from optsweep.data import SMOKE_DATA_DIR, augment, load_dataset
from optsweep.engine import train_batch
from optsweep.models import build_model
from optsweep.resnet import CifarResNet

MODULE = """\
from torch import nn


def mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
"""
BATCH = 128
RESNET_BATCH, RESNET_STEPS = 64, 4


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


def resnet_sweep(folder: Path, trials: int) -> Path:
    rates = [round(0.1 * (1 + i / trials), 6) for i in range(trials)]
    path = folder / "resnet.yaml"
    path.write_text(
        "name: bench-resnet\ndataset: cifar10\ndata: {crop_padding: 4, flip: true}\n"
        f"model: resnet20\ntrain: {{epochs: 1, batch_size: {RESNET_BATCH}, "
        f"trials_per_batch: {trials}}}\n"
        "optimizers: [{name: momentum, momentum: 0.9, weight_decay: 0.0001, "
        f"grid: {{lr: {rates}}}}}]\n"
    )
    return path


def resnet_batches(data, generator: torch.Generator):
    """The training batches of one epoch, augmented as optsweep augments them."""
    fill = data.train_x.amin(dim=(0, 2, 3))
    perm = torch.randperm(len(data.train_y), generator=generator)
    for s in range(0, len(perm), RESNET_BATCH):
        idx = perm[s : s + RESNET_BATCH]
        x = augment(data.train_x[idx], generator, padding=4, flip=True, fill=fill)
        yield x, data.train_y[idx]


def resnet_optsweep(folder: Path, trials: int, data) -> float:
    spec = load_sweep(resnet_sweep(folder, trials))
    net = build_model("resnet20", data.input_shape, data.num_classes)
    start = time.perf_counter()
    train_batch(data, net, expand(spec), spec.train, device=torch.device("cpu"), data=spec.data)
    return time.perf_counter() - start


def resnet_ensemble(trials: int, data) -> float:
    """The tutorial's ensemble of K ResNet-20s (BatchNorm buffers stacked), foreach SGD."""
    models = [CifarResNet(20, data.num_classes, 3) for _ in range(trials)]
    params, buffers = torch.func.stack_module_state(models)
    base = models[0].to("meta")

    def one(p, b, x):
        return torch.func.functional_call(base, (p, b), (x,))

    leaves = [p.requires_grad_() for p in params.values()]
    opt = torch.optim.SGD(leaves, lr=0.1, momentum=0.9, weight_decay=1e-4, foreach=True)
    start = time.perf_counter()
    for x, y in resnet_batches(data, torch.Generator().manual_seed(0)):
        logits = torch.vmap(one, in_dims=(0, 0, None))(params, buffers, x)
        loss = F.cross_entropy(logits.transpose(1, 2), y.expand(trials, -1), reduction="none")
        opt.zero_grad(set_to_none=True)
        loss.mean(dim=1).sum().backward()
        opt.step()
    return time.perf_counter() - start


def resnet_plain(trials: int, data) -> float:
    """K ResNet-20s trained one after another: the loop a user writes for one run."""
    start = time.perf_counter()
    for _ in range(trials):
        net = CifarResNet(20, data.num_classes, 3)
        opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
        for x, y in resnet_batches(data, torch.Generator().manual_seed(0)):
            loss = F.cross_entropy(net(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return time.perf_counter() - start


def table(rows: dict[str, float], samples: int, reference: str) -> None:
    print("| what | trial-samples/s | vs the ensemble |\n|---|---|---|")
    for name, seconds in rows.items():
        print(f"| {name} | {samples / seconds:,.0f} | {rows[reference] / seconds:.2f}x |")


def resnet_bench(trials: int, repeats: int) -> None:
    images = RESNET_BATCH * RESNET_STEPS
    data = load_dataset("cifar10", SMOKE_DATA_DIR, "cpu", images, 32)
    with tempfile.TemporaryDirectory() as tmp:
        runs = {
            "torch.func ensemble (tutorial), foreach SGD": lambda: resnet_ensemble(trials, data),
            "optsweep, resnet20 (generic path)": lambda: resnet_optsweep(Path(tmp), trials, data),
            "plain loop, one nn.Module after another": lambda: resnet_plain(trials, data),
        }
        best = {name: min(run() for _ in range(repeats)) for name, run in runs.items()}
    print(
        f"\nResNet-20, SGD momentum 0.9, crop 4 + flip, K={trials}, batch {RESNET_BATCH}, "
        f"{RESNET_STEPS} steps of the shipped CIFAR-10 subset, CPU, "
        f"{torch.get_num_threads()} threads; best of {repeats} (optsweep's time includes one "
        "evaluation of 32 test images)"
    )
    table(best, trials * images, "torch.func ensemble (tutorial), foreach SGD")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=32, help="K")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each; the best counts")
    parser.add_argument("--resnet-trials", type=int, default=4, help="K for ResNet-20")
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
    print(
        f"MLP 784-128-10, Adam, K={args.trials}, batch {BATCH}, one epoch of mnist-mini "
        f"({len(data.train_y)} images), CPU, {torch.get_num_threads()} threads; best of "
        f"{args.repeats}"
    )
    table(best, samples, "torch.func ensemble (tutorial), foreach Adam")
    resnet_bench(args.resnet_trials, min(args.repeats, 2))


if __name__ == "__main__":
    main()
