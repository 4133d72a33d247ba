"""Train one TrialBatch: K trials that share data order and model, in one step.

The K trials' parameters are stacked along a leading trial axis; one forward/backward runs
all of them on the same batch, and each optimizer rule updates its trials' rows in one call
with per-trial hyperparameter tensors (trials of several rules share a batch when each is
evaluated where it steps: `optsweep.config.trains_beside_others`; the quickstart's six trials
of five rules trained in 1.5 s as one batch against 2.4 s as five). Batches are index
slices of an on-device permutation drawn from the seed, so every trial with the same seed
sees the same batches in the same order, whatever K is (a paired comparison).

The update runs in place (``optim.inplace``, the family's kernel with its stages); K
(``train.trials_per_batch``) defaults to ``choose_trials_per_batch``: what memory
holds, then what measured throughput still rewards. Everything lives on ``device`` (CUDA when
present): data, permutations, dropout masks, losses.

On a CPU with a few cores the K trials train as lanes (``lanes_for``): one thread per core,
each stepping its share of the trials single-threaded over the same batches. A trial's
result is the same in any lane, alone or with others (tested).

Nothing in the step loop waits for the device: losses are kept on the device and read every
``CHECK_EVERY`` steps and at the end of each epoch, where non-finite losses are detected. A
trial whose loss turned non-finite is recorded as diverged at the first such step and leaves
the batch; the others go on.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import itertools
import math
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils._pytree import tree_map

from optsweep import interrupts, optim
from optsweep.config import DataSpec, TrainSpec, TrialSpec, structure_key
from optsweep.data import Dataset, augment
from optsweep.models import BatchedModel
from optsweep.optim.schedules import ScheduleSpec, learning_rate_at

# Read the losses back from the device this often (steps): the cost of one sync against
# how many steps a diverged trial may waste.
CHECK_EVERY = 50

T = TypeVar("T")

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class EpochMetrics:
    """End-of-epoch metrics of one trial."""

    epoch: int
    train_loss: float
    test_loss: float
    test_accuracy: float


@dataclass
class TrialOutcome:
    """What training did to one trial: ``complete``, ``diverged`` or ``pruned``."""

    status: str = "complete"
    epochs: list[EpochMetrics] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)
    step_losses: list[float] = field(default_factory=list)
    stopped_step: int | None = None
    seconds: float = 0.0


# Called after every epoch with {trial index: metrics} of the trials still training;
# returns the indices to stop now (pruned).
EpochCallback = Callable[[int, Mapping[int, EpochMetrics]], Collection[int]]
# Called every few steps with (epoch, step within epoch, steps per epoch).
StepCallback = Callable[[int, int, int], None]


class DeviceError(ValueError):
    """A device this machine does not have; the message names the ones it has."""


def available_devices() -> list[str]:
    """The devices this machine can train on: ``cpu``, then ``cuda:0``… (and ``mps``)."""
    found = ["cpu"]
    if torch.cuda.is_available():
        found += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        found.append("mps")
    return found


def resolve_device(name: str) -> torch.device:
    """``auto`` is CUDA when present, else the CPU.

    Raises:
        DeviceError: the machine has no such device (checked here, before anything is
            trained or written, rather than as torch's traceback at the first tensor).
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    there = available_devices()
    wanted = f"cuda:{device.index or 0}" if device.type == "cuda" else device.type
    if wanted not in there:
        raise DeviceError(f"device {name!r} is not on this machine; it has: {', '.join(there)}")
    return device


@functools.cache
def _reuse_freed_memory() -> None:
    """Keep freed memory in the process (glibc) instead of handing it back to the OS.

    Each step frees and allocates tensors of several MB (gradients, activations); glibc returns
    blocks that large to the OS at once, so the next step pays a page fault per 4 KiB to get
    them back. Measured on 2 cores: a 13 MB elementwise result took 1.3 ms into fresh memory
    and 0.45 ms into reused memory; 32 MLP trials with the pure Adam rule trained at 72k
    trial-samples/s without this and 106k with it (the in-place rules allocate little and
    gain nothing). Does nothing outside glibc.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        m_trim_threshold, m_mmap_threshold = -1, -3
        libc.mallopt(m_mmap_threshold, 1 << 30)
        libc.mallopt(m_trim_threshold, 1 << 30)
    except (OSError, AttributeError, TypeError):  # not glibc (macOS, Windows, musl)
        pass


def stack_initial_params(
    model: BatchedModel, seed: int, k: int, device: torch.device
) -> list[Tensor]:
    """K copies of the seed's initial parameters, stacked on a leading trial axis."""
    return _stacked(model.init(seed), k, device)


def stack_initial_buffers(
    model: BatchedModel, seed: int, k: int, device: torch.device
) -> list[Tensor]:
    """K copies of the seed's initial buffers (BatchNorm's statistics), one per trial."""
    return _stacked(model.init_buffers(seed), k, device)


def _stacked(tensors: Sequence[Tensor], k: int, device: torch.device) -> list[Tensor]:
    return [t.to(device).unsqueeze(0).repeat(k, *([1] * t.ndim)) for t in tensors]


# K is chosen between these when train.trials_per_batch is not set. Not from 8: on the
# 160-point MLP grid one probe in ten read K = 8 as fast as 16 and the grid trained in 41 s of
# batches against 28 s at K = 32 (steady state, 2 cores, median steps: K = 8 197-271k
# trial-samples/s, 16 to 64 268-378k, their order lost in the machine's noise); fewer
# waiting trials all train at once.
MIN_TRIALS_PER_BATCH, MAX_TRIALS_PER_BATCH = 16, 256
# K for models that run trial by trial on this device (conv nets on CPU, see models.py):
# their throughput is flat in K but their stacked state is not small (2c2d: 13 MB a trial
# for each of params, gradients and two moments). Measured on 2 cores, Adam, B=64, per
# trial step: 2c2d 36.6 ms at K=8 against 40.8 ms at K=32; cnn the same at both.
CHUNKED_TRIALS_PER_BATCH = 8
# Auto K: the smallest K whose measured rate is within this fraction of the best. Here single
# MLP steps at K = 16, 32, 64 measured 245-268k trial-samples/s with more noise than difference,
# and 32 trials took 7.9 s in one batch against 7.5-7.8 s as two of 16: the tolerance only stops
# K from growing past what pays.
K_TOLERANCE = 0.03
# Training batches run at Schedule-Free's x to recompute BatchNorm's running statistics
# before it is evaluated (with momentum 0.1, 0.9^50 < 1% of the old statistics remains).
STATISTICS_BATCHES = 50
# Fraction of the free memory (CPU: MemAvailable; CUDA: mem_get_info) one batch may use.
MEMORY_FRACTION = 0.5


def _free_memory(device: torch.device) -> int:
    """Bytes free for tensors on ``device`` (a large default when it cannot be read)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as f:
            fields = dict(line.split(":", 1) for line in f)
        return int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return 8 << 30


def bytes_per_trial(
    model: BatchedModel, dataset: Dataset, batch_size: int, state_slots: int = 3
) -> int:
    """Memory one trial needs in a step: parameters, gradients, the optimizer's state slots
    (``optim.state_slots``: the weights' average and a skip-copy included), and the
    activations autograd saves for one batch (counted, not guessed)."""
    device = dataset.train_x.device
    params = [p.to(device).requires_grad_() for p in model.init(0)]
    buffers = [b.to(device).unsqueeze(0) for b in model.init_buffers(0)]
    saved = 0

    def pack(t: Tensor) -> Tensor:
        nonlocal saved
        saved += t.numel() * t.element_size()
        return t

    x = dataset.train_x[:batch_size]
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model.forward([p.unsqueeze(0) for p in params], x, buffers=buffers, train=True)
    copies = 2 + state_slots
    held = sum(b.numel() * b.element_size() for b in buffers)
    return copies * 4 * model.num_params() + held + saved * max(1, batch_size // x.shape[0])


def heaviest_trial(model: BatchedModel, trials: Sequence[TrialSpec]) -> TrialSpec:
    """The trial whose optimizer state takes the most memory (``optim.state_slots``): K is
    chosen once for a run whose batches may hold any of its rules (SOAP's beside SGD's)."""
    shapes = [p.shape for p in model.params]
    return max(trials, key=lambda t: optim.state_slots(t.hyperparameters, t.optimizer, shapes))


def choose_trials_per_batch(
    model: BatchedModel,
    dataset: Dataset,
    train: TrainSpec,
    device: torch.device,
    waiting: int,
    template: TrialSpec,
) -> int:
    """How many trials to train together when ``train.trials_per_batch`` is not set.

    As many as memory holds (``MEMORY_FRACTION`` of what is free), never more than
    ``waiting``; within that, K = 16, 32, 64, … are measured as ``train_batch`` runs them
    (K copies of ``template``: forward, backward and update, in lanes) until doubling K gains
    less than ``K_TOLERANCE``, and the smallest K within ``K_TOLERANCE`` of the best rate
    wins: beyond it a larger K only holds more trials in flight.
    Models that run trial by trial on this device gain nothing from K and are not measured:
    ``CHUNKED_TRIALS_PER_BATCH``.
    """
    fits = (
        _free_memory(device)
        * MEMORY_FRACTION
        // bytes_per_trial(
            model,
            dataset,
            train.batch_size,
            # shapes: SOAP's factors grow with each axis squared
            optim.state_slots(
                template.hyperparameters, template.optimizer, [p.shape for p in model.params]
            ),
        )
    )
    cap = int(max(1, min(waiting, fits, MAX_TRIALS_PER_BATCH)))
    if device.type == "cpu" and model.cpu_trial_chunk is not None:
        return min(cap, CHUNKED_TRIALS_PER_BATCH)
    candidates = sorted({min(cap, MIN_TRIALS_PER_BATCH * 2**i) for i in range(9)})
    if len(candidates) == 1:  # nothing to choose: measuring would only cost time and memory
        return cap
    rates: dict[int, float] = {}
    for k in candidates:
        best = max(rates.values(), default=0.0)
        rates[k] = _step_rate(model, dataset, train, template, k, device)
        # Doubling K that gains less than the tolerance ends the walk: the larger K cost the
        # most to measure (the 160-point MLP grid's probe: 1.3 s measuring up to K = 160).
        if rates[k] < (1 + K_TOLERANCE) * best:
            break
    best = max(rates.values())
    return min(k for k, rate in rates.items() if rate >= (1 - K_TOLERANCE) * best)


def _step_rate(
    model: BatchedModel,
    dataset: Dataset,
    train: TrainSpec,
    template: TrialSpec,
    k: int,
    device: torch.device,
) -> float:
    """Trial-samples/s of K copies of ``template`` training: best of 3 steps after a warm-up.

    Ten probes of the 160-point MLP grid in one process chose K = 16-64 either way; best of 6
    took 0.18-0.47 s (median 0.40), best of 3 0.19-0.67 s (median 0.28).
    """
    # one step's rate: how an epoch ends (data.drop_last) does not change it
    _, lanes = _start(dataset, model, [template] * k, train, device, data=DataSpec())
    order = torch.arange(dataset.train_x.shape[0], device=device)
    best = math.inf
    with _lane_threads(lanes) as pool:
        for step in range(4):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            one_step = functools.partial(_Lane.steps, perm=order, first=0, last=1, step=step)
            _on_every_lane(lanes, pool, one_step)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if step > 0:
                best = min(best, time.perf_counter() - start)
    return k * min(train.batch_size, dataset.train_x.shape[0]) / best


def steps_per_epoch(n_train: int, batch_size: int, drop_last: bool) -> int:
    """Batches in one pass over ``n_train`` images: the last, partial one counts unless
    ``drop_last`` (``data.drop_last``, as a DataLoader's ``drop_last=True``) leaves it out.

    Raises ``ValueError`` when ``drop_last`` leaves no batch at all (fewer images than one).
    """
    if not drop_last:
        return math.ceil(n_train / batch_size)
    if n_train < batch_size:
        raise ValueError(
            f"drop_last with {n_train} training images and batch_size {batch_size}: "
            "no full batch to train on"
        )
    return n_train // batch_size


def per_trial_loss(logits: Tensor, labels: Tensor, label_smoothing: float = 0.0) -> Tensor:
    """Mean cross-entropy of each trial: logits ``(K, B, C)``, labels ``(B,)`` → ``(K,)``,
    with ``label_smoothing`` as `F.cross_entropy` takes it (``train.label_smoothing``).

    Classes on dim 1 (``(K, C, B)``, the MLP's own layout) with the labels broadcast, not
    flattened to ``(K·B, C)`` with the labels repeated: same values, and measured on 2 AVX-512
    cores, K=32, B=64, forward+backward 0.13-0.15 ms against 0.37-0.39 ms (evaluation chunks
    of 1,000: 0.25 ms against 2.5 ms).
    """
    k, b, _ = logits.shape
    losses = F.cross_entropy(
        logits.transpose(1, 2),
        labels.expand(k, b),
        reduction="none",
        label_smoothing=label_smoothing,
    )
    return losses.mean(dim=1)


@torch.no_grad()
def evaluate(
    model: BatchedModel,
    params: Sequence[Tensor],
    x: Tensor,
    y: Tensor,
    batch_size: int,
    buffers: Sequence[Tensor] = (),
) -> tuple[Tensor, Tensor]:
    """Mean test loss and accuracy of each trial, ``(K,)`` each, computed in chunks (the
    model in evaluation mode: BatchNorm normalises with each trial's running statistics)."""
    loss_sum = torch.zeros(params[0].shape[0], device=x.device)
    correct = torch.zeros_like(loss_sum)
    for start in range(0, x.shape[0], batch_size):
        xb, yb = x[start : start + batch_size], y[start : start + batch_size]
        logits = model.forward(params, xb, buffers=buffers, train=False)
        loss_sum += per_trial_loss(logits, yb) * xb.shape[0]
        correct += (logits.argmax(dim=-1) == yb).sum(dim=1)
    return loss_sum / x.shape[0], correct / x.shape[0]


def _select(tree: object, keep: Tensor, k: int) -> object:
    """Rows ``keep`` of every tensor whose leading axis is the trial axis; a copy of the others
    (a step counter), so that two selections never share state."""

    def pick(leaf: object) -> object:
        if isinstance(leaf, Tensor) and leaf.ndim >= 1 and leaf.shape[0] == k:
            return leaf.index_select(0, keep)
        return leaf.clone() if isinstance(leaf, Tensor) else leaf

    return tree_map(pick, tree)


# On a CPU with this many intra-op threads or fewer, a TrialBatch trains as that many lanes of
# one thread each (see `lanes_for`); with more, as one lane using all of them.
MAX_LANES = 4


def lanes_for(model: BatchedModel, device: torch.device, k: int) -> int:
    """How many lanes (threads, one intra-op thread each) train K trials on ``device``.

    On a CPU, one lane per intra-op thread (at most ``MAX_LANES``), each stepping its share of
    the trials single-threaded: the Python between kernels of one lane runs while the others
    compute, and no kernel waits at a barrier for a core the machine gave to someone else.
    Measured on 2 shared cores, 32 MLP trials, batch 64: 7.3-7.7 ms a step as two lanes of 16
    against 7.9-11.4 ms as one lane on two threads (four runs each, alternating). Conv models
    that run trial by trial here, and CUDA, keep one lane.
    """
    threads = torch.get_num_threads()
    if device.type != "cpu" or model.cpu_trial_chunk is not None or threads > MAX_LANES:
        return 1
    return max(1, min(threads, k))


@contextmanager
def _intra_op_threads(n: int) -> Iterator[None]:
    """torch's intra-op threads set to ``n`` for the block (process-wide), then restored."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass(frozen=True)
class _Setup:
    """What every lane of a TrialBatch reads, and the outcomes each fills for its trials."""

    dataset: Dataset
    model: BatchedModel
    train: TrainSpec
    schedule: ScheduleSpec
    loss_scale: float | None
    outcomes: list[TrialOutcome]
    started: float
    steps_per_epoch: int  # the batches of one epoch (`steps_per_epoch`)
    data: DataSpec  # the data protocol: drop_last, crop_padding, flip
    seed: int  # the trials' seed: augmentation is drawn from it and the step
    black: Tensor | None  # a crop's padding: each channel's 0, normalised (its training minimum)

    def batch(self, idx: Tensor, step: int) -> Tensor:
        """The training images of one step, augmented as ``data`` says: drawn from the seed
        and the step alone, so every lane, and every K, sees the same images."""
        x = self.dataset.train_x[idx]
        if not (self.data.crop_padding or self.data.flip):
            return x
        generator = torch.Generator(device=x.device).manual_seed((self.seed << 32) | step)
        fill = self.black if self.black is not None else x.new_zeros(x.shape[1])
        return augment(x, generator, padding=self.data.crop_padding, flip=self.data.flip, fill=fill)

    def autocast(self) -> torch.autocast:
        """A fresh context per use: autocast objects keep their entry state, lanes share none."""
        precision = self.train.precision
        device = self.dataset.train_x.device.type
        return torch.autocast(device, dtype=PRECISIONS[precision], enabled=precision != "fp32")


@dataclass
class _Group:
    """A lane's rows ``rows`` that one rule updates: trials sharing a structure
    (`structure_key`), with their optimizer state and per-trial hyperparameters."""

    rows: slice
    # a fresh kernel per lane: it keeps per-lane views between steps
    make_kernel: Callable[[], optim.Kernel]
    state: object
    hp: dict[str, Tensor]
    base_lr: Tensor
    kernel: optim.Kernel = field(init=False)

    def __post_init__(self) -> None:
        self.kernel = self.make_kernel()

    def of(self, tensors: Sequence[Tensor], k: int) -> Sequence[Tensor]:
        """This group's rows of each tensor (views), or the tensors when it holds all ``k``."""
        if self.rows == slice(0, k):
            return tensors
        return [t[self.rows] for t in tensors]

    def subset(self, rows: Sequence[int], start: int) -> _Group | None:
        """The group's rows among the lane's ``rows`` (sorted), placed from ``start``; None
        when none of them is left."""
        mine = [r - self.rows.start for r in rows if self.rows.start <= r < self.rows.stop]
        if not mine:
            return None
        k = self.rows.stop - self.rows.start
        keep = torch.tensor(mine, dtype=torch.long, device=self.base_lr.device)
        return _Group(
            slice(start, start + len(mine)),
            self.make_kernel,
            _select(self.state, keep, k),
            {n: v.index_select(0, keep) for n, v in self.hp.items()},
            self.base_lr.index_select(0, keep),
        )


class _Lane:
    """Trials stepping together: stacked params, optimizer state, per-trial tensors.

    ``index[row]`` is the caller's trial index of a row; rows leave when their trial diverges
    or is pruned, so the survivors stop paying for them. Losses stay on the device until
    `read_back`. Each lane draws dropout masks from its own generator, seeded alike: masks do
    not depend on which trials a lane holds, so neither do results.
    """

    def __init__(
        self,
        setup: _Setup,
        params: list[Tensor],
        buffers: list[Tensor],
        groups: list[_Group],
        index: list[int],
        dropout: torch.Generator,
    ) -> None:
        k = len(index)
        device = params[0].device
        self.setup = setup
        self.params = params
        self.buffers = buffers  # the model's per-trial buffers (BatchNorm), updated in training
        self.groups = groups  # consecutive rows, one rule each
        self.index = index
        self.dropout = dropout
        # the losses are summed in float64, as the hyperparameters are stacked
        self.loss_sum = torch.zeros(k, dtype=torch.float64, device=device)  # this epoch's
        self.window_sum = torch.zeros_like(self.loss_sum)  # since the last logged step
        self.bad_step = torch.full((k,), -1, dtype=torch.long, device=device)
        self.logged: list[tuple[int, Tensor]] = []  # (step, per-row mean loss) not read back

    def subset(self, rows: list[int], dropout: torch.Generator | None = None) -> _Lane:
        """A lane of rows ``rows``, in order (read back first: nothing may be left in
        ``logged``)."""
        keep = torch.tensor(rows, dtype=torch.long, device=self.params[0].device)
        groups: list[_Group] = []
        for group in self.groups:
            kept = group.subset(rows, start=groups[-1].rows.stop if groups else 0)
            if kept is not None:
                groups.append(kept)
        lane = _Lane(
            self.setup,
            [p.detach().index_select(0, keep) for p in self.params],
            [b.index_select(0, keep) for b in self.buffers],
            groups,
            [self.index[r] for r in rows],
            dropout or self.dropout,
        )
        lane.loss_sum, lane.window_sum, lane.bad_step = (
            t.index_select(0, keep) for t in (self.loss_sum, self.window_sum, self.bad_step)
        )
        return lane

    def set_learning_rates(self, at: int, length: int) -> None:
        """Each group's rates at ``at`` of ``length`` (steps or epochs) of the schedule."""
        for group in self.groups:
            group.hp["learning_rate"] = learning_rate_at(
                self.setup.schedule, group.base_lr, at, length
            )

    def only_rule(self) -> _Group | None:
        """The lane's one group, or None when rules share it (their trials are evaluated
        where they step and scale no loss: `trains_beside_others`)."""
        return self.groups[0] if len(self.groups) == 1 else None

    def split(self, n: int) -> list[_Lane]:
        """``n`` lanes of consecutive rows, sizes differing by at most one."""
        k = len(self.index)
        bounds = [round(i * k / n) for i in range(n + 1)]
        lanes = []
        for lo, hi in itertools.pairwise(bounds):
            dropout = torch.Generator(device=self.dropout.device)
            dropout.set_state(self.dropout.get_state())
            lanes.append(self.subset(list(range(lo, hi)), dropout))
        return lanes

    def steps(self, perm: Tensor, first: int, last: int, step: int) -> None:
        """Steps ``first``..``last - 1`` of the epoch whose order is ``perm``; ``step`` counts
        steps since training began, before ``first``."""
        setup, batch_size = self.setup, self.setup.train.batch_size
        y_all = setup.dataset.train_y
        schedule = setup.schedule
        run_steps = setup.train.epochs * setup.steps_per_epoch
        k = len(self.index)
        for s in range(first, last):
            if schedule.unit == "step":  # on the device, from the host's count: no sync
                self.set_learning_rates(step, run_steps)
            idx = perm[s * batch_size : (s + 1) * batch_size]
            params = [p.requires_grad_() for p in self.params]
            x = setup.batch(idx, step)
            with setup.autocast():
                logits = setup.model.forward(
                    params, x, buffers=self.buffers, train=True, generator=self.dropout
                )
            losses = per_trial_loss(logits.float(), y_all[idx], setup.train.label_smoothing)
            scale = setup.loss_scale  # static, or each trial's dynamic scale
            if scale is None and (alone := self.only_rule()) is not None:
                scale = optim.current_loss_scale(alone.state)
            total = (losses * scale).sum() if scale is not None else losses.sum()
            grads = torch.autograd.grad(total, params)
            with torch.no_grad():  # overwrites params and state, uses grads as scratch
                for group in self.groups:
                    group.kernel.update_(
                        group.of(grads, k), group.state, group.of(params, k), group.hp
                    )
            step += 1
            self._record(step, losses.detach())

    def _record(self, step: int, losses: Tensor) -> None:
        """Accumulate a step's losses and remember the first non-finite step, on the device."""
        self.loss_sum += losses
        self.window_sum += losses
        first_bad = (self.bad_step < 0) & ~torch.isfinite(losses)
        self.bad_step = torch.where(first_bad, step, self.bad_step)
        log_every = self.setup.train.log_every
        if step % log_every == 0:  # the mean over the window, not one noisy batch
            self.logged.append((step, self.window_sum / log_every))
            self.window_sum = torch.zeros_like(self.window_sum)

    def read_back(self) -> _Lane:
        """The one sync: move logged losses to the host; the lane without diverged trials."""
        outcomes = self.setup.outcomes
        bad_step = self.bad_step.tolist()
        if self.logged:
            steps = [s for s, _ in self.logged]
            losses = torch.stack([v for _, v in self.logged]).T.tolist()  # rows × logged steps
            for row, trial in enumerate(self.index):
                kept = [i for i, s in enumerate(steps) if bad_step[row] < 0 or s < bad_step[row]]
                outcomes[trial].steps += [steps[i] for i in kept]
                outcomes[trial].step_losses += [losses[row][i] for i in kept]
            self.logged.clear()
        return self.stop({row: s for row, s in enumerate(bad_step) if s >= 0}, "diverged")

    def stop(self, stopped_at: Mapping[int, int], status: str) -> _Lane:
        """The lane without the rows of ``stopped_at`` (row → the step it stopped at)."""
        if not stopped_at:
            return self
        for row, at in stopped_at.items():
            out = self.setup.outcomes[self.index[row]]
            out.status, out.stopped_step = status, at
            out.seconds = time.perf_counter() - self.setup.started
        return self.subset([r for r in range(len(self.index)) if r not in stopped_at])

    def _statistics_at(self, weights: Sequence[Tensor]) -> None:
        """Recompute the buffers (BatchNorm's running statistics) at the point a rule
        evaluates (Schedule-Free's x), in place: `STATISTICS_BATCHES` training batches forward
        in train mode at ``weights``, as the Schedule-Free authors advise for BatchNorm (the
        loop they show leaves them so for the training that follows, and so does this). The
        same first batches of the training set for every trial, without augmentation."""
        setup = self.setup
        model, images, size = setup.model, setup.dataset.train_x, setup.train.batch_size
        generator = torch.Generator(device=self.dropout.device).manual_seed(setup.seed)
        with torch.no_grad(), setup.autocast():
            for s in range(min(STATISTICS_BATCHES, setup.steps_per_epoch)):
                x = images[s * size : (s + 1) * size]
                model.forward(weights, x, buffers=self.buffers, train=True, generator=generator)

    def evaluate(self) -> dict[int, tuple[float, float, float]]:
        """{trial index: (mean train loss this epoch, test loss, test accuracy)}."""
        data, train = self.setup.dataset, self.setup.train
        alone = self.only_rule()  # rules sharing a lane all evaluate where they step
        weights = (
            self.params if alone is None else optim.evaluation_weights(alone.state, self.params)
        )
        if self.buffers and alone is not None and optim.evaluates_elsewhere(alone.state):
            self._statistics_at(weights)  # use_ema: the average; Schedule-Free: x
        test_loss, test_acc = evaluate(
            self.setup.model, weights, data.test_x, data.test_y, train.eval_batch_size, self.buffers
        )
        return dict(
            zip(
                self.index,
                zip(
                    (self.loss_sum / self.setup.steps_per_epoch).tolist(),
                    test_loss.tolist(),
                    test_acc.tolist(),
                    strict=True,
                ),
                strict=True,
            )
        )


def train_batch(
    dataset: Dataset,
    model: BatchedModel,
    trials: Sequence[TrialSpec],
    train: TrainSpec,
    *,
    device: torch.device,
    on_epoch: EpochCallback | None = None,
    on_step: StepCallback | None = None,
    data: DataSpec | None = None,
) -> list[TrialOutcome]:
    """Train ``trials`` together; they must share the seed and the schedule, and those that
    cannot train beside other rules (`trains_beside_others`) their structure too
    (``study.batch_key``).

    ``data`` (the ``data:`` section; default: its defaults) says whether each epoch's last,
    partial batch is left out and how training images are augmented.
    """
    setup, lanes = _start(dataset, model, trials, train, device, data=data or DataSpec())
    with _lane_threads(lanes) as pool:
        _epochs(lanes, pool, trials[0], on_epoch, on_step)
    return _finish(setup.outcomes, setup.started)


def _start(
    dataset: Dataset,
    model: BatchedModel,
    trials: Sequence[TrialSpec],
    train: TrainSpec,
    device: torch.device,
    *,
    data: DataSpec,
) -> tuple[_Setup, list[_Lane]]:
    """The trials' initial parameters, and each rule's state and hyperparameters for its rows
    (the trials grouped by `structure_key`), in lanes."""
    first = trials[0]
    per_epoch = steps_per_epoch(dataset.train_x.shape[0], train.batch_size, data.drop_last)
    params = stack_initial_params(model, first.seed, len(trials), device)
    setup = _Setup(
        dataset,
        model,
        train,
        first.schedule or ScheduleSpec(),
        # structural, so the same for every trial; the rule divides the gradients by it again
        first.hyperparameters.get("loss_scale_factor"),
        [TrialOutcome() for _ in trials],
        time.perf_counter(),
        per_epoch,
        data,
        first.seed,
        dataset.train_x.amin(dim=(0, 2, 3)) if data.crop_padding else None,
    )
    # rows grouped by rule (stable): each group's rows are consecutive
    index = sorted(range(len(trials)), key=lambda i: structure_key(trials[i]))
    groups = []
    for _, rows in itertools.groupby(index, key=lambda i: structure_key(trials[i])):
        members = [trials[i] for i in rows]
        start = groups[-1].rows.stop if groups else 0
        where = slice(start, start + len(members))
        # The in-place kernel (no fresh tensor per operation): on CPU a pure update of 32 MLP
        # trials cost 1.5-5x the forward/backward it follows.
        make_kernel = functools.partial(
            optim.inplace, members[0].optimizer, members[0].semantics, members[0].hyperparameters
        )
        hp = optim.stack_hyperparameters(
            members[0].optimizer, [t.hyperparameters for t in members], device=device
        )
        group = _Group(where, make_kernel, None, hp, hp["learning_rate"])
        group.state = group.kernel.init(group.of(params, len(trials)))
        groups.append(group)
    whole = _Lane(
        setup,
        params,
        stack_initial_buffers(model, first.seed, len(trials), device),
        groups,
        index,
        torch.Generator(device=device).manual_seed(first.seed + 1_000_003),
    )
    if device.type == "cpu":
        _reuse_freed_memory()
    n_lanes = lanes_for(model, device, len(trials))
    return setup, whole.split(n_lanes) if n_lanes > 1 else [whole]


@contextmanager
def _lane_threads(lanes: Sequence[_Lane]) -> Iterator[ThreadPoolExecutor]:
    """Threads for every lane but the first (which runs in the caller's), and one intra-op
    thread each while there are several lanes."""
    threads = 1 if len(lanes) > 1 else torch.get_num_threads()
    with ThreadPoolExecutor(max(1, len(lanes) - 1)) as pool, _intra_op_threads(threads):
        yield pool


def _on_every_lane(
    lanes: Sequence[_Lane], pool: ThreadPoolExecutor, call: Callable[[_Lane], T]
) -> list[T]:
    """``call`` on every lane at once (the first in this thread), results in lane order."""
    others = [pool.submit(call, lane) for lane in lanes[1:]]
    mine = call(lanes[0])
    return [mine, *(f.result() for f in others)]


def _epochs(
    lanes: list[_Lane],
    pool: ThreadPoolExecutor,
    first: TrialSpec,
    on_epoch: EpochCallback | None,
    on_step: StepCallback | None,
) -> None:
    """The training loop over lanes: each runs ``CHECK_EVERY`` steps (lane 0 in this thread,
    the others in ``pool``), then the losses are read back and the diverged trials leave."""
    setup = lanes[0].setup
    train, device = setup.train, setup.dataset.train_x.device
    n_train = setup.dataset.train_x.shape[0]
    per_epoch = setup.steps_per_epoch
    order = torch.Generator(device=device).manual_seed(first.seed)

    step = 0
    for epoch in range(train.epochs):
        for lane in lanes:
            if setup.schedule.unit == "epoch":
                lane.set_learning_rates(epoch, train.epochs)
            lane.loss_sum.zero_()
        perm = torch.randperm(n_train, generator=order, device=device)
        s = 0
        while s < per_epoch:
            last = min(per_epoch, s + CHECK_EVERY - step % CHECK_EVERY)
            steps = functools.partial(_Lane.steps, perm=perm, first=s, last=last, step=step)
            _on_every_lane(lanes, pool, steps)
            step += last - s
            s = last
            if step % CHECK_EVERY == 0 or s == per_epoch:
                interrupts.check()  # a SIGTERM swallowed on its way (optsweep.interrupts)
                lanes = [lane for lane in (ln.read_back() for ln in lanes) if lane.index]
                if not lanes:
                    return
                if on_step is not None and step % CHECK_EVERY == 0:
                    on_step(epoch, s, per_epoch)
        found = _on_every_lane(lanes, pool, _Lane.evaluate)
        results = {trial: r for lane in found for trial, r in lane.items()}
        metrics = {
            trial: EpochMetrics(epoch + 1, train_loss, test_loss, accuracy)
            for trial, (train_loss, test_loss, accuracy) in sorted(results.items())
        }
        for trial, m in metrics.items():
            setup.outcomes[trial].epochs.append(m)
        pruned = set(on_epoch(epoch + 1, metrics)) if on_epoch is not None else set()
        if pruned:
            lanes = [
                lane.stop({r: step for r, t in enumerate(lane.index) if t in pruned}, "pruned")
                for lane in lanes
            ]
            lanes = [lane for lane in lanes if lane.index]
            if not lanes:  # every trial pruned: nothing left to train
                return


def _finish(outcomes: list[TrialOutcome], started: float) -> list[TrialOutcome]:
    """Trials that ran to the end were in training for the whole batch's time."""
    elapsed = time.perf_counter() - started
    for out in outcomes:
        if out.status == "complete":
            out.seconds = elapsed
    return outcomes
