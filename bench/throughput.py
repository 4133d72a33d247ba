"""Throughput: the training loop users write today against optsweep, side by side, one process.

For each case (model, dataset) the benchmark runs, in this order:

1. **conventional**: torchvision ``datasets.MNIST`` (or ``FashionMNIST``) with ``ToTensor`` +
   ``Normalize`` per sample behind a ``DataLoader`` (shuffle, batch 64), an ``nn.Module``,
   ``torch.optim.Adam``: one trial, a fixed number of steps after a short warm-up;
2. **optsweep**: the same model and batch size as a K-trial Adam grid (K = 32 by default),
   one epoch, run through ``run_sweep`` into a temporary results folder and timed end to end:
   start-up (study, data decoding), training, evaluation and the results folder.

It prints trial-samples/s for each (a trial-sample is one sample seen by one trial), their
ratio (also counting only the time spent in the engine, without the study and results folder),
and the achieved GFLOP/s (forward + backward taken as 3x ``flops_per_sample()``)
against an fp32 (and, with ``--precision bf16``, bf16) matmul peak measured on the spot.
The machine is often shared: the ratios are what to compare, and both sides run close in time.

    python bench/throughput.py --data-dir ../shared/datasets            # make bench
    python bench/throughput.py --quick                                  # smoke run, < 1 min
    python bench/throughput.py --models cnn --precision bf16 --train-subset 6400

torchvision's MNIST readers want the uncompressed files under ``<root>/MNIST/raw/``; the
benchmark decompresses the published ``.gz`` files of the data folder into a temporary folder.
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import yaml
from torch import nn

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from a checkout without installing
    sys.path.insert(0, str(REPO))

from optsweep import runner  # noqa: E402
from optsweep.config import load_sweep  # noqa: E402
from optsweep.data import MNIST_MINI_DIR, load_dataset  # noqa: E402
from optsweep.models import build_model  # noqa: E402
from optsweep.progress import QuietProgress  # noqa: E402

BATCH_SIZE = 64
# (our dataset name, folder under the data dir, torchvision class name, mean, std)
DATASETS = {
    "mnist": ("mnist", "MNIST", (0.1307,), (0.3081,)),
    "fashion-mnist": ("fashion-mnist", "FashionMNIST", (0.2860,), (0.3530,)),
    "mnist-mini": (None, "MNIST", (0.1307,), (0.3081,)),
}
CASES = {"mlp": "mnist", "cnn": "mnist", "2c2d": "fashion-mnist"}


# ------------------------------------------------------------------------------ reference modules


class MLP(nn.Module):
    """784-128-10, ReLU: optsweep's ``mlp``."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(784, 128), nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


class CNN(nn.Module):
    """pytorch/examples mnist/main.py ``Net``: optsweep's ``cnn``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 32, 3, 1), nn.Conv2d(32, 64, 3, 1)
        self.dropout1, self.dropout2 = nn.Dropout(0.25), nn.Dropout(0.5)
        self.fc1, self.fc2 = nn.Linear(9216, 128), nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv2(F.relu(self.conv1(x)))), 2)
        x = F.relu(self.fc1(torch.flatten(self.dropout1(x), 1)))
        return self.fc2(self.dropout2(x))


class C2D2(nn.Module):
    """DeepOBS Fashion-MNIST 2c2d (28x28 input: 'same' padding is symmetric here)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 32, 5, padding=2), nn.Conv2d(32, 64, 5, padding=2)
        self.fc1, self.fc2 = nn.Linear(3136, 1024), nn.Linear(1024, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


MODULES: dict[str, Callable[[], nn.Module]] = {"mlp": MLP, "cnn": CNN, "2c2d": C2D2}


# ------------------------------------------------------------------------------------ measuring


def matmul_peak(
    dtype: torch.dtype = torch.float32, size: int = 2048, seconds: float = 1.0
) -> float:
    """Best GFLOP/s of a square matmul over about ``seconds`` (the machine's practical peak)."""
    a = torch.randn(size, size).to(dtype)
    b = torch.randn(size, size).to(dtype)
    a @ b  # warm-up
    best, spent = 0.0, 0.0
    while spent < seconds:
        start = time.perf_counter()
        a @ b
        took = time.perf_counter() - start
        spent += took
        best = max(best, 2 * size**3 / took / 1e9)
    return best


def torchvision_root(dataset: str, data_dir: Path, into: Path) -> Path:
    """A torchvision root holding ``<Class>/raw/*-ubyte`` decompressed from the ``.gz`` files."""
    folder, cls, _, _ = DATASETS[dataset]
    source = MNIST_MINI_DIR if folder is None else data_dir / folder
    raw = into / cls / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for gz in sorted(source.glob("*-ubyte.gz")):
        with gzip.open(gz, "rb") as src, (raw / gz.name[: -len(".gz")]).open("wb") as dst:
            shutil.copyfileobj(src, dst)
    return into


def conventional(
    model_name: str, dataset: str, data_dir: Path, steps: int, warmup: int = 10
) -> float:
    """Samples/s of the usual loop (torchvision dataset + DataLoader + nn.Module + Adam)."""
    from torchvision import datasets, transforms

    _, cls, mean, std = DATASETS[dataset]
    with tempfile.TemporaryDirectory() as tmp:
        root = torchvision_root(dataset, data_dir, Path(tmp))
        transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize(mean, std)])
        train = getattr(datasets, cls)(root, train=True, download=False, transform=transform)
        loader = torch.utils.data.DataLoader(train, batch_size=BATCH_SIZE, shuffle=True)
        torch.manual_seed(0)
        model = MODULES[model_name]()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        model.train()
        done, start = 0, 0.0
        while done < warmup + steps:
            for x, y in loader:
                if done == warmup:
                    start = time.perf_counter()
                optimizer.zero_grad()
                loss = F.cross_entropy(model(x), y)
                loss.backward()
                optimizer.step()
                done += 1
                if done == warmup + steps:
                    break
        return steps * BATCH_SIZE / (time.perf_counter() - start)


def sweep_yaml(
    model: str,
    dataset: str,
    trials: int,
    precision: str,
    train_subset: int | None,
    trials_per_batch: int | None = None,
) -> dict:
    """A K-point Adam grid (learning rates log-spaced from 1e-2 down) for one epoch.

    With a train subset the test set shrinks in proportion (MNIST's 6:1), so evaluation
    weighs what it weighs in a full epoch.
    """
    test_subset = None if train_subset is None else max(train_subset // 6, 100)
    rates = [round(1e-2 * 10 ** (-2.5 * i / max(trials - 1, 1)), 8) for i in range(trials)]
    return {
        "name": f"bench-{model}",
        "dataset": dataset,
        "subset": {"train": train_subset, "test": test_subset},
        "model": model,
        "train": {
            "epochs": 1,
            "batch_size": BATCH_SIZE,
            "seeds": [0],
            "precision": precision,
            "trials_per_batch": trials_per_batch,
        },
        "optimizers": [{"name": "adam", "grid": {"learning_rate": rates}}],
    }


@dataclass(frozen=True)
class SweepRun:
    trial_samples_per_s: float  # end to end
    seconds: float
    trials_per_batch: int  # the largest TrialBatch trained
    best_accuracy: float
    engine_seconds: float  # summed over the TrialBatches: training and evaluation


@contextmanager
def engine_calls() -> Iterator[list[tuple[int, float]]]:
    """(K, seconds) of every ``train_batch`` the runner makes meanwhile."""
    calls: list[tuple[int, float]] = []
    original = runner.train_batch

    def timed(dataset: Any, model: Any, trials: Any, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return original(dataset, model, trials, *args, **kwargs)
        finally:
            calls.append((len(trials), time.perf_counter() - start))

    runner.train_batch = timed
    try:
        yield calls
    finally:
        runner.train_batch = original


def optsweep_run(
    model: str,
    dataset: str,
    data_dir: Path,
    trials: int,
    precision: str,
    train_subset: int | None,
    trials_per_batch: int | None,
) -> SweepRun:
    """Trial-samples/s of a K-trial sweep, end to end, into a temporary results folder."""
    grid = sweep_yaml(model, dataset, trials, precision, train_subset, trials_per_batch)
    with tempfile.TemporaryDirectory() as tmp, engine_calls() as calls:
        config = Path(tmp) / "sweep.yaml"
        config.write_text(yaml.safe_dump(grid))
        start = time.perf_counter()
        spec = load_sweep(config, [f"data.dir={data_dir}"])
        out = Path(tmp) / "results"
        result = runner.run_sweep(spec, QuietProgress(), out=out)
        seconds = time.perf_counter() - start
    n_train = train_subset or len(load_dataset(dataset, data_dir, "cpu").train_y)
    accuracies = [r.final_test_accuracy for r in result.records if r.status == "complete"]
    best = max(accuracies, default=0.0)
    k = max((n for n, _ in calls), default=0)
    engine_seconds = sum(s for _, s in calls)
    return SweepRun(trials * n_train / seconds, seconds, k, best, engine_seconds)


# ------------------------------------------------------------------------------------------ main


@dataclass(frozen=True)
class Row:
    case: str
    conventional: float
    sweep: SweepRun
    gflops: float
    peak: float


def run_case(model: str, args: argparse.Namespace, peak: float) -> Row:
    dataset = "mnist-mini" if args.mini else CASES[model]
    subset = args.train_subset
    if subset is None and model != "mlp" and not args.full:
        subset = 3200  # a full epoch of a conv net x 32 trials takes ~20 min on 2 cores
    if args.quick:
        subset = min(subset or 10**9, 320 if model != "mlp" else 6400)
    if args.mini:
        subset = min(subset or 5000, 5000)  # mnist-mini holds 5,000 training images
    steps = args.steps or (10 if args.quick else 100 if model != "mlp" else 600)
    conv = conventional(model, dataset, args.data_dir, steps)
    sweep = optsweep_run(
        model, dataset, args.data_dir, args.trials, args.precision, subset, args.trials_per_batch
    )
    flops = 3 * build_model(model, (1, 28, 28), 10).flops_per_sample()
    case = f"{model} {dataset} B={BATCH_SIZE} {args.precision}"
    return Row(case, conv, sweep, flops * sweep.trial_samples_per_s / 1e9, peak)


def table(rows: Sequence[Row], peak_name: str) -> str:
    head = (
        f"| case | conventional samples/s | optsweep trial-samples/s (K, s) | ratio "
        f"| optsweep GFLOP/s | % of {peak_name} peak | in engine (s): trial-samples/s, ratio "
        f"| best acc |"
    )
    lines = [head, "|" + "---|" * 8]
    for r in rows:
        s = r.sweep
        engine = s.trial_samples_per_s * s.seconds / s.engine_seconds
        lines.append(
            f"| {r.case} | {r.conventional:,.0f} | {s.trial_samples_per_s:,.0f} "
            f"({s.trials_per_batch}, {s.seconds:.1f}) "
            f"| {s.trial_samples_per_s / r.conventional:.1f}x "
            f"| {r.gflops:.1f} | {100 * r.gflops / r.peak:.0f}% "
            f"| ({s.engine_seconds:.1f}) {engine:,.0f}, {engine / r.conventional:.1f}x "
            f"| {s.best_accuracy:.3f} |"
        )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "datasets")
    parser.add_argument("--models", default="mlp,cnn,2c2d", help="comma-separated: mlp,cnn,2c2d")
    parser.add_argument("--trials", type=int, default=32, help="K, trials in the Adam grid")
    parser.add_argument(
        "--trials-per-batch",
        type=int,
        default=None,
        help="train.trials_per_batch of the optsweep run (default: optsweep chooses)",
    )
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"))
    parser.add_argument("--steps", type=int, default=None, help="conventional loop steps")
    parser.add_argument(
        "--train-subset",
        type=int,
        default=None,
        help="optsweep trains on the first N images (default: all for mlp, 3200 for conv nets)",
    )
    parser.add_argument("--full", action="store_true", help="conv nets on the full epoch too")
    parser.add_argument("--quick", action="store_true", help="smoke run: few steps, small subset")
    parser.add_argument("--mini", action="store_true", help="use the bundled mnist-mini data")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> list[Row]:
    args = parse_args(argv)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"CPU capability {torch.backends.cpu.get_cpu_capability()}",
        flush=True,
    )
    peak = matmul_peak(torch.float32, seconds=0.3 if args.quick else 1.0)
    peak_name = "fp32"
    print(f"fp32 matmul peak: {peak:.0f} GFLOP/s", flush=True)
    if args.precision != "fp32":
        dtype = torch.bfloat16 if args.precision == "bf16" else torch.float16
        peak = matmul_peak(dtype, seconds=0.3 if args.quick else 1.0)
        peak_name = args.precision
        print(f"{args.precision} matmul peak: {peak:.0f} GFLOP/s", flush=True)
    rows = []
    for model in args.models.split(","):
        rows.append(run_case(model.strip(), args, peak))
        print(f"done: {rows[-1].case}", flush=True)
    print(table(rows, peak_name))
    return rows


if __name__ == "__main__":
    main()
