"""Throughput: optsweep against the loops people write, side by side, one process.

For each case (model, dataset) the benchmark times, in this order, on the same model, batch
size and data:

1. **conventional**: torchvision ``datasets.MNIST`` (or ``FashionMNIST``) with ``ToTensor`` +
   ``Normalize`` per sample behind a ``DataLoader`` (shuffle), an ``nn.Module``,
   ``torch.optim.Adam``: one trial, what the PyTorch MNIST example writes;
2. **plain loop**: the images decoded once as tensors in memory, a ``randperm`` per epoch,
   index slices, the same ``nn.Module`` and ``torch.optim.Adam(fused=True)``: one trial, what
   a user who cares about speed writes;
3. **torch.func ensemble**: K copies of the module trained at once as PyTorch's
   model-ensembling tutorial does (``stack_module_state`` + ``functional_call`` + ``vmap``,
   dropout drawn per model), one ``torch.optim.Adam`` over the stacked parameters (fused,
   faster here than the tutorial's foreach);
4. **Keras**: Keras 3 ``model.fit`` on the in-memory arrays (torch backend, channels first as
   the tensors are) of the same network, one trial; ``not measured`` when ``keras`` does not
   import;
5. **optsweep**: a K-trial Adam grid (K = 32 by default) on the same model and batch size,
   one epoch, run as ``python -m optsweep run`` in a subprocess into a temporary results
   folder and timed end to end (imports, data decoding, study, training, evaluation, results
   folder); the batches alone are the sum of the ``seconds`` column of its ``trials.csv``
   (each TrialBatch's training and evaluation, once per batch).

Peers 1-4 are timed in steady state: a few warm-up steps, then ``--windows`` windows of
``--steps`` steps (or ``--seconds``, whichever comes first); the best window counts, which
favours the peers. Each case prints a Markdown table: every peer in trial-samples/s (a
trial-sample is one sample seen by one trial) with optsweep's ratio to it, end to end and for
its batches alone, and the share of the CPUs other processes took during each measurement
(from ``/proc/stat``: on a shared 2-core machine a concurrent job slows the peers' 2-thread
kernels by up to 60x, so a row is only this machine's when that share is near 0); below it,
the time outside the batches (wall minus the batches' seconds) and the achieved GFLOP/s
(forward + backward taken as 3x ``flops_per_sample()``) against an fp32 (and, with
``--precision bf16``, bf16) matmul peak measured on the spot. The peers train in fp32.
``--sweep FILE`` also runs a sweep file for one epoch beside the peers of its model (``make
bench``: ``configs/adam.yaml``, the 160-point grid).

    python bench/throughput.py --data-dir ../shared/datasets --sweep configs/adam.yaml  # make bench
    python bench/throughput.py --quick                                  # smoke run, < 1 min
    python bench/throughput.py --models cnn --precision bf16 --train-subset 6400

torchvision's MNIST readers want the uncompressed files under ``<root>/MNIST/raw/``; the
benchmark decompresses the published ``.gz`` files of the data folder into a temporary folder.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
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

from optsweep.data import MNIST_MINI_DIR, Dataset, load_dataset  # noqa: E402
from optsweep.models import build_model  # noqa: E402

BATCH_SIZE = 128  # what the shipped configs train with
WARMUP = 10  # untimed steps of a one-trial peer (the ensemble: 2)
MIN_TIMED = 3  # steps a window times even past --seconds
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


# -------------------------------------------------------------------------------------- measuring


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


def cpu_seconds() -> tuple[float, float]:
    """(CPU seconds the whole machine has been busy, those of this process and the children
    it waited for); NaN for the first where ``/proc/stat`` is absent (not Linux)."""
    own = os.times()
    mine = own.user + own.system + own.children_user + own.children_system
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return math.nan, mine
    busy = sum(int(v) for i, v in enumerate(fields[:8]) if i not in (3, 4))  # not idle, iowait
    return busy / os.sysconf("SC_CLK_TCK"), mine


def others_share(since: tuple[float, float], start: float) -> float:
    """The share of the machine's CPUs other processes used since ``since`` (``start`` its
    ``perf_counter``): a shared machine's noise, what the ratios cannot control."""
    now = cpu_seconds()
    others = (now[0] - since[0]) - (now[1] - since[1])
    return max(others, 0.0) / ((time.perf_counter() - start) * (os.cpu_count() or 1))


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


# -------------------------------------------------------------------------------------- the peers


@dataclass(frozen=True)
class Budget:
    """How long each peer is timed: ``windows`` windows after its warm-up, each ``steps``
    steps or fewer once ``seconds`` have passed (at least ``MIN_TIMED``); the best counts."""

    steps: int
    seconds: float
    windows: int


def timed_steps(step: Callable[[], Any], budget: Budget, warmup: int) -> float:
    """Steps/s of ``step`` after ``warmup`` untimed calls: its best window, as a window that
    another process slowed down (a shared machine) says nothing of the loop."""
    for _ in range(warmup):
        step()
    best = 0.0
    for _ in range(budget.windows):
        done, start = 0, time.perf_counter()
        while done < budget.steps and (
            done < MIN_TIMED or time.perf_counter() - start < budget.seconds
        ):
            step()
            done += 1
        best = max(best, done / (time.perf_counter() - start))
    return best


def shuffled(data: Dataset, batch: int, seed: int = 0) -> Iterator[tuple[torch.Tensor, ...]]:
    """Training batches of the in-memory tensors, epoch after epoch: a ``randperm`` per
    epoch and index slices, as a user who keeps the data in memory writes it."""
    generator = torch.Generator().manual_seed(seed)
    n = len(data.train_y)
    while True:
        perm = torch.randperm(n, generator=generator)
        for s in range(0, n, batch):
            idx = perm[s : s + batch]
            yield data.train_x[idx], data.train_y[idx]


def conventional(
    model_name: str, dataset: str, data_dir: Path, batch: int, budget: Budget
) -> float:
    """Samples/s of the usual loop (torchvision dataset + DataLoader + nn.Module + Adam)."""
    from torchvision import datasets, transforms

    _, cls, mean, std = DATASETS[dataset]
    with tempfile.TemporaryDirectory() as tmp:
        root = torchvision_root(dataset, data_dir, Path(tmp))
        transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize(mean, std)])
        train = getattr(datasets, cls)(root, train=True, download=False, transform=transform)
        loader = torch.utils.data.DataLoader(train, batch_size=batch, shuffle=True)

        def forever() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
            while True:
                yield from loader

        return batch * one_trial(model_name, forever(), budget)


def one_trial(
    model_name: str,
    batches: Iterator[tuple[torch.Tensor, ...]],
    budget: Budget,
    fused: bool | None = None,
) -> float:
    """Steps/s of one ``nn.Module`` trained by ``torch.optim.Adam`` on ``batches``."""
    torch.manual_seed(0)
    model = MODULES[model_name]()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=fused)
    model.train()

    def step() -> None:
        x, y = next(batches)
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()

    return timed_steps(step, budget, WARMUP)


def plain_loop(model_name: str, data: Dataset, batch: int, budget: Budget) -> float:
    """Samples/s of one trial on the in-memory tensors (randperm, index slices), its Adam
    fused (one kernel over all parameters: 1.25x the default on the MLP, 2 cores)."""
    return batch * one_trial(model_name, shuffled(data, batch), budget, fused=True)


def func_ensemble(model_name: str, data: Dataset, batch: int, trials: int, budget: Budget) -> float:
    """Trial-samples/s of PyTorch's model-ensembling tutorial: K modules stacked
    (``stack_module_state``), ``functional_call`` under ``vmap`` on the same batch (dropout
    drawn per model), one Adam over the stacked parameters (``bench/user_model.py``'s
    ``func_ensemble`` for the MLP), fused: 1.2x the tutorial's foreach on the MLP, 2 cores."""
    torch.manual_seed(0)
    models = [MODULES[model_name]() for _ in range(trials)]
    params, buffers = torch.func.stack_module_state(models)
    base = models[0].to("meta")

    def one(p: dict, b: dict, x: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(base, (p, b), (x,))

    ensemble = torch.vmap(one, in_dims=(0, 0, None), randomness="different")
    optimizer = torch.optim.Adam(list(params.values()), lr=1e-3, fused=True)
    batches = shuffled(data, batch)

    def step() -> None:
        x, y = next(batches)
        logits = ensemble(params, buffers, x)  # (K, B, C)
        loss = F.cross_entropy(logits.transpose(1, 2), y.expand(trials, -1), reduction="none")
        optimizer.zero_grad(set_to_none=True)
        loss.mean(dim=1).sum().backward()
        optimizer.step()

    return trials * batch * timed_steps(step, budget, min(2, WARMUP))


def keras_network(model_name: str, keras: Any) -> Any:
    """The Keras 3 ``Sequential`` of each reference module, channels first: the layout of
    the tensors, and on the torch backend ~1.1x Keras's default channels last (cnn, 2 cores)."""
    layers, first = keras.layers, {"data_format": "channels_first"}
    body = {
        "mlp": [layers.Flatten(**first), layers.Dense(128, activation="relu"), layers.Dense(10)],
        "cnn": [
            layers.Conv2D(32, 3, activation="relu", **first),
            layers.Conv2D(64, 3, activation="relu", **first),
            layers.MaxPooling2D(2, **first),
            layers.Dropout(0.25),
            layers.Flatten(**first),
            layers.Dense(128, activation="relu"),
            layers.Dropout(0.5),
            layers.Dense(10),
        ],
        "2c2d": [
            layers.Conv2D(32, 5, padding="same", activation="relu", **first),
            layers.MaxPooling2D(2, **first),
            layers.Conv2D(64, 5, padding="same", activation="relu", **first),
            layers.MaxPooling2D(2, **first),
            layers.Flatten(**first),
            layers.Dense(1024, activation="relu"),
            layers.Dense(10),
        ],
    }[model_name]
    return keras.Sequential([keras.Input((1, 28, 28)), *body])


def keras_fit(model_name: str, data: Dataset, batch: int, budget: Budget) -> float | str:
    """Samples/s of Keras 3 ``model.fit`` (torch backend) on the in-memory arrays, one trial,
    timed by a callback between batches; why not, when ``keras`` does not import."""
    os.environ["KERAS_BACKEND"] = "torch"  # read when keras is first imported
    try:
        import keras
    except Exception as error:  # not installed, or its default backend missing
        return f"not measured (keras: {type(error).__name__})"
    if keras.backend.backend() != "torch":
        return f"not measured (keras imported earlier on {keras.backend.backend()})"

    class Clock(keras.callbacks.Callback):
        """Times the budget's windows after WARMUP steps (as `timed_steps`), then stops fit."""

        def __init__(self) -> None:
            super().__init__()
            self.done, self.start, self.rates = -WARMUP, 0.0, []  # done: in this window

        def on_train_batch_end(self, batch_index: int, logs: Any = None) -> None:
            self.done += 1
            if self.done == 0:
                self.start = time.perf_counter()
            elif self.done > 0:
                took = time.perf_counter() - self.start
                if self.done >= budget.steps or (self.done >= MIN_TIMED and took >= budget.seconds):
                    self.rates.append(self.done / took)
                    self.done, self.start = 0, time.perf_counter()
                    self.model.stop_training = len(self.rates) == budget.windows

    keras.utils.set_random_seed(0)
    net = keras_network(model_name, keras)
    net.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    x, y = data.train_x.numpy(), data.train_y.numpy()
    clock = Clock()
    epochs = math.ceil((WARMUP + budget.windows * budget.steps + 1) * batch / len(y))
    net.fit(x, y, batch_size=batch, epochs=epochs, shuffle=True, verbose=0, callbacks=[clock])
    keras.backend.clear_session()
    return batch * max(clock.rates)


# --------------------------------------------------------------------------------------- optsweep


def sweep_yaml(
    model: str,
    dataset: str,
    trials: int,
    batch: int,
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
            "batch_size": batch,
            "seeds": [0],
            "precision": precision,
            "trials_per_batch": trials_per_batch,
        },
        "optimizers": [{"name": "adam", "grid": {"learning_rate": rates}}],
    }


@dataclass(frozen=True)
class SweepRun:
    trials: int
    images: int  # in its one epoch
    trial_samples_per_s: float  # end to end
    seconds: float  # the process's wall time
    trials_per_batch: int  # the largest TrialBatch trained
    best_accuracy: float
    engine_seconds: float  # summed over the TrialBatches: training and evaluation
    stopped: int  # trials that did not complete (diverged): engine_seconds counts them short
    others: float  # the share of the CPUs other processes used meanwhile

    @property
    def engine_rate(self) -> float:
        return self.trial_samples_per_s * self.seconds / self.engine_seconds

    @property
    def outside_seconds(self) -> float:
        """The time the process spent outside its batches."""
        return self.seconds - self.engine_seconds


def optsweep_run(
    config: Path, data_dir: Path, n_train: int, overrides: Sequence[str] = ()
) -> SweepRun:
    """Trial-samples/s of ``optsweep run config`` (one epoch of ``n_train`` images), a process
    timed end to end into a temporary results folder; its batches' seconds read back from
    ``trials.csv``."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "results"
        command = [sys.executable, "-m", "optsweep", "run", str(config), "--out", str(out)]
        command += ["--data-dir", str(data_dir), "--quiet"]
        command += [f"--set={override}" for override in overrides]
        since, start = cpu_seconds(), time.perf_counter()
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        others = others_share(since, start)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}")
        with (out / "trials.csv").open(newline="") as f:
            records = list(csv.DictReader(f))
    complete = [r for r in records if r["status"] == "complete"]
    # a complete trial's seconds are its whole batch's: K of them make one batch's time
    engine_seconds = sum(float(r["seconds"]) / int(r["trials_in_batch"]) for r in complete)
    best = max((float(r["final_test_accuracy"]) for r in complete), default=0.0)
    k = max((int(r["trials_in_batch"]) for r in records), default=0)
    stopped, trials = len(records) - len(complete), len(records)
    rate = trials * n_train / seconds
    return SweepRun(trials, n_train, rate, seconds, k, best, engine_seconds, stopped, others)


# ------------------------------------------------------------------------------------------- main

PEERS = {
    "conventional": "conventional: torchvision `DataLoader`, per-sample `ToTensor` + "
    "`Normalize`, `torch.optim.Adam` — one trial",
    "plain": "plain loop: tensors in memory, a `randperm` per epoch, index slices, "
    "`nn.Module`, `torch.optim.Adam(fused=True)` — one trial",
    "ensemble": "`torch.func` ensemble of {k} (`stack_module_state` + `functional_call` + "
    "`vmap`), one fused `torch.optim.Adam`",
    "keras": "Keras 3 `model.fit` on in-memory arrays (torch backend) — one trial",
}


@dataclass(frozen=True)
class Peer:
    rate: float | str  # trial-samples/s, or why it was not measured
    others: float  # the share of the CPUs other processes used meanwhile


def peer(measure: Callable[..., float | str], *args: Any) -> Peer:
    """``measure(*args)``, and how much of the machine other processes took meanwhile."""
    since, start = cpu_seconds(), time.perf_counter()
    rate = measure(*args)
    return Peer(rate, others_share(since, start))


@dataclass(frozen=True)
class Row:
    case: str
    optsweep: str  # what optsweep runs
    peers: dict[str, Peer]
    sweep: SweepRun
    gflops: float  # optsweep end to end
    peak: float


def run_case(model: str, args: argparse.Namespace, peak: float) -> list[Row]:
    """The peers and optsweep's K-point grid on one model; and ``--sweep``'s file when it
    declares this model, dataset and batch size."""
    dataset = "mnist-mini" if args.mini else CASES[model]
    subset = args.train_subset
    if subset is None and model != "mlp" and not args.full:
        subset = 3200  # a full epoch of a conv net x 32 trials takes ~20 min on 2 cores
    if args.quick:
        subset = min(subset or 10**9, 320 if model != "mlp" else 6400)
    if args.mini:
        subset = min(subset or 5000, 5000)  # mnist-mini holds 5,000 training images
    budget = Budget(
        args.steps or (10 if args.quick else 50 if model != "mlp" else 500),
        args.seconds or (0.5 if args.quick else 3.0),
        args.windows or (1 if args.quick else 3),
    )
    batch = args.batch_size
    data = load_dataset(dataset, args.data_dir, "cpu")
    n_all = len(data.train_y)
    peers = {
        "conventional": peer(conventional, model, dataset, args.data_dir, batch, budget),
        "plain": peer(plain_loop, model, data, batch, budget),
        "ensemble": peer(func_ensemble, model, data, batch, args.trials, budget),
        "keras": peer(keras_fit, model, data, batch, budget),
    }
    del data
    grid = sweep_yaml(
        model, dataset, args.trials, batch, args.precision, subset, args.trials_per_batch
    )
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "sweep.yaml"
        config.write_text(yaml.safe_dump(grid))
        run = optsweep_run(config, args.data_dir, subset or n_all)
    runs = [(f"a {args.trials}-point Adam grid", run)]
    declared = yaml.safe_load(args.sweep.read_text()) if args.sweep else {}
    train = declared.get("train") or {}
    declares = (declared.get("model"), declared.get("dataset"), train.get("batch_size"))
    if declares == (model, dataset, batch):
        n_train = (declared.get("subset") or {}).get("train") or n_all
        overrides = ["train.epochs=1", f"train.precision={args.precision}"]
        run = optsweep_run(args.sweep.resolve(), args.data_dir, n_train, overrides)
        runs.append((f"`{args.sweep}` with `--set train.epochs=1`", run))
    flops = 3 * build_model(model, (1, 28, 28), 10).flops_per_sample()
    case = f"{model} {dataset} B={batch} {args.precision}"
    return [
        Row(case, what, peers, run, flops * run.trial_samples_per_s / 1e9, peak)
        for what, run in runs
    ]


def table(row: Row, trials: int, peak_name: str) -> str:
    """One case: every peer with optsweep's ratios to it, then optsweep's own rows."""
    s = row.sweep
    lines = [
        f"### {row.case}: optsweep runs {row.optsweep} ({s.trials} trials), one epoch of "
        f"{s.images:,} images; the peers in fp32, steady state (best window)",
        "",
        "| what | trial-samples/s | optsweep end to end ÷ it | optsweep's batches ÷ it "
        "| others' CPU |",
        "|---|---|---|---|---|",
    ]
    for name, p in row.peers.items():
        what, others = PEERS[name].format(k=trials), f"{100 * p.others:.0f}%"
        if isinstance(p.rate, str):
            lines.append(f"| {what} | {p.rate} | | | {others} |")
        else:
            lines.append(
                f"| {what} | {p.rate:,.0f} | {s.trial_samples_per_s / p.rate:.2f}x "
                f"| {s.engine_rate / p.rate:.2f}x | {others} |"
            )
    lines += [
        f"| **optsweep run**, end to end as a process ({s.seconds:.1f} s, K {s.trials_per_batch})"
        f" | {s.trial_samples_per_s:,.0f} | | | {100 * s.others:.0f}% |",
        f"| … of which its batches (the `seconds` column, {s.engine_seconds:.1f} s) "
        f"| {s.engine_rate:,.0f} | | | |",
        "",
        f"Outside the batches: {s.outside_seconds:.1f} s (wall {s.seconds:.1f} s − batches "
        f"{s.engine_seconds:.1f} s)"
        + (f", {s.stopped} trials stopped early (counted short)" if s.stopped else "")
        + f". Best test accuracy {s.best_accuracy:.3f}. optsweep {row.gflops:.1f} GFLOP/s end "
        f"to end, {row.gflops * s.seconds / s.engine_seconds:.1f} in its batches "
        f"({100 * row.gflops * s.seconds / s.engine_seconds / row.peak:.0f}% of the "
        f"{peak_name} matmul peak, {row.peak:.0f} GFLOP/s).",
    ]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "datasets")
    parser.add_argument("--models", default="mlp,cnn,2c2d", help="comma-separated: mlp,cnn,2c2d")
    parser.add_argument(
        "--trials", type=int, default=32, help="K, trials in the Adam grid and the ensemble"
    )
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    parser.add_argument(
        "--trials-per-batch",
        type=int,
        default=None,
        help="train.trials_per_batch of the optsweep run (default: optsweep chooses)",
    )
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"))
    parser.add_argument(
        "--steps", type=int, default=None, help="steps of a peer's window (500 mlp, 50 conv)"
    )
    parser.add_argument(
        "--seconds", type=float, default=None, help="a window ends after this long (3)"
    )
    parser.add_argument(
        "--windows", type=int, default=None, help="timed windows of each peer; the best counts (3)"
    )
    parser.add_argument(
        "--train-subset",
        type=int,
        default=None,
        help="optsweep trains on the first N images (default: all for mlp, 3200 for conv nets)",
    )
    parser.add_argument(
        "--sweep",
        type=Path,
        default=None,
        help="also run this sweep file for one epoch against the case of its model, dataset "
        "and batch size (make bench: configs/adam.yaml, the 160-point grid)",
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
    print(
        f"others' CPU: the share of the {os.cpu_count()} CPUs other processes used during a "
        "measurement; above a few % its figure is not this machine's alone",
        flush=True,
    )
    rows, models = [], args.models.split(",")
    for model in models:
        for row in run_case(model.strip(), args, peak):
            rows.append(row)
            print(f"\n{table(row, args.trials, peak_name)}\n", flush=True)
    if args.sweep and len(rows) == len(models):
        print(f"--sweep {args.sweep}: no case has its model, dataset and batch size")
    return rows


if __name__ == "__main__":
    main()
