"""Train one TrialBatch: K trials that share data order, model and structure, in one step.

The K trials' parameters are stacked along a leading trial axis; one forward/backward runs
all of them on the same batch, and the optimizer rule updates all of them in one call with
per-trial hyperparameter tensors. Batches are index slices of an on-device permutation drawn
from the seed, so every trial with the same seed sees the same batches in the same order,
whatever K is (a paired comparison).

Nothing in the step loop waits for the device: losses are kept on the device and read every
``CHECK_EVERY`` steps and at the end of each epoch, where non-finite losses are detected. A
trial whose loss turned non-finite is recorded as diverged at the first such step and leaves
the batch; the others go on.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils._pytree import tree_map

from optsweep import optim
from optsweep.config import TrainSpec, TrialSpec
from optsweep.data import Dataset
from optsweep.models import BatchedModel
from optsweep.optim.schedules import ScheduleSpec, learning_rate_at

# Read the losses back from the device this often (steps): the cost of one sync against
# how many steps a diverged trial may waste.
CHECK_EVERY = 50

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


def resolve_device(name: str) -> torch.device:
    """``auto`` is CUDA when present, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def stack_initial_params(
    model: BatchedModel, seed: int, k: int, device: torch.device
) -> list[Tensor]:
    """K copies of the seed's initial parameters, stacked on a leading trial axis."""
    return [p.to(device).unsqueeze(0).repeat(k, *([1] * p.ndim)) for p in model.init(seed)]


def per_trial_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean cross-entropy of each trial: logits ``(K, B, C)``, labels ``(B,)`` → ``(K,)``."""
    k, b, c = logits.shape
    losses = F.cross_entropy(logits.reshape(k * b, c), labels.repeat(k), reduction="none")
    return losses.view(k, b).mean(dim=1)


@torch.no_grad()
def evaluate(
    model: BatchedModel, params: Sequence[Tensor], x: Tensor, y: Tensor, batch_size: int
) -> tuple[Tensor, Tensor]:
    """Mean test loss and accuracy of each trial, ``(K,)`` each, computed in chunks."""
    loss_sum = torch.zeros(params[0].shape[0], device=x.device)
    correct = torch.zeros_like(loss_sum)
    for start in range(0, x.shape[0], batch_size):
        xb, yb = x[start : start + batch_size], y[start : start + batch_size]
        logits = model.forward(params, xb, train=False)
        loss_sum += per_trial_loss(logits, yb) * xb.shape[0]
        correct += (logits.argmax(dim=-1) == yb).sum(dim=1)
    return loss_sum / x.shape[0], correct / x.shape[0]


def _select(tree: object, keep: Tensor, k: int) -> object:
    """Keep rows ``keep`` of every tensor whose leading axis is the trial axis."""

    def pick(leaf: object) -> object:
        if isinstance(leaf, Tensor) and leaf.ndim >= 1 and leaf.shape[0] == k:
            return leaf.index_select(0, keep)
        return leaf

    return tree_map(pick, tree)


class _Batch:
    """The live rows of a TrialBatch: stacked params, optimizer state, per-trial tensors.

    ``index[row]`` is the caller's trial index of a row; rows leave when their trial diverges
    or is pruned, so the survivors stop paying for them.
    """

    def __init__(
        self, params: list[Tensor], state: object, hp: dict[str, Tensor], base_lr: Tensor
    ) -> None:
        k = base_lr.shape[0]
        self.params = params
        self.state = state
        self.hp = hp
        self.base_lr = base_lr
        self.loss_sum = torch.zeros_like(base_lr)  # this epoch's summed train loss
        self.window_sum = torch.zeros_like(base_lr)  # summed since the last logged step
        self.bad_step = torch.full((k,), -1, dtype=torch.long, device=base_lr.device)
        self.index = list(range(k))

    def keep(self, rows: list[int]) -> None:
        """Drop every row not in ``rows``."""
        k = len(self.index)
        keep = torch.tensor(rows, dtype=torch.long, device=self.base_lr.device)
        self.params = [p.detach().index_select(0, keep) for p in self.params]
        self.state = _select(self.state, keep, k)
        self.hp = {n: v.index_select(0, keep) for n, v in self.hp.items()}
        self.base_lr, self.loss_sum, self.window_sum, self.bad_step = (
            t.index_select(0, keep)
            for t in (self.base_lr, self.loss_sum, self.window_sum, self.bad_step)
        )
        self.index = [self.index[r] for r in rows]

    def record(self, step: int, losses: Tensor) -> None:
        """Accumulate a step's losses and remember the first non-finite step, on the device."""
        self.loss_sum += losses
        self.window_sum += losses
        first_bad = (self.bad_step < 0) & ~torch.isfinite(losses)
        self.bad_step = torch.where(first_bad, step, self.bad_step)


def train_batch(
    dataset: Dataset,
    model: BatchedModel,
    trials: Sequence[TrialSpec],
    train: TrainSpec,
    *,
    device: torch.device,
    on_epoch: EpochCallback | None = None,
    on_step: StepCallback | None = None,
) -> list[TrialOutcome]:
    """Train ``trials`` together; they must share optimizer structure, schedule and seed."""
    first = trials[0]
    started = time.perf_counter()
    rule = optim.build(first.optimizer, first.semantics, first.hyperparameters)
    params = stack_initial_params(model, first.seed, len(trials), device)
    hp = optim.stack_hyperparameters(
        first.optimizer, [t.hyperparameters for t in trials], device=device
    )
    base_lr = hp["learning_rate"]
    batch = _Batch(params, rule.init(params), hp, base_lr)
    outcomes = [TrialOutcome() for _ in trials]
    loss_scale = hp.get("loss_scale_factor")

    # bf16/fp16: the forward pass runs under autocast; parameters, gradients, optimizer state
    # and the loss stay fp32. fp16 wants a loss_scale_factor against gradient underflow.
    autocast = torch.autocast(
        device.type, dtype=PRECISIONS[train.precision], enabled=train.precision != "fp32"
    )
    n_train = dataset.train_x.shape[0]
    steps_per_epoch = math.ceil(n_train / train.batch_size)
    order = torch.Generator(device=device).manual_seed(first.seed)
    dropout = torch.Generator(device=device).manual_seed(first.seed + 1_000_003)
    logged: list[tuple[int, Tensor]] = []  # (step, per-row mean loss) not yet read back

    def stop(stopped_at: Mapping[int, int], status: str) -> None:
        """Take rows out of the batch: ``stopped_at`` maps row → step it stopped at."""
        for row, at in stopped_at.items():
            out = outcomes[batch.index[row]]
            out.status, out.stopped_step = status, at
            out.seconds = time.perf_counter() - started
        batch.keep([r for r in range(len(batch.index)) if r not in stopped_at])

    def read_back() -> None:
        """The one sync: move logged losses to the host, stop trials that diverged."""
        bad_step = batch.bad_step.tolist()
        if logged:
            steps = [s for s, _ in logged]
            losses = torch.stack([v for _, v in logged]).T.tolist()  # rows × logged steps
            for row, trial in enumerate(batch.index):
                kept = [i for i, s in enumerate(steps) if bad_step[row] < 0 or s < bad_step[row]]
                outcomes[trial].steps += [steps[i] for i in kept]
                outcomes[trial].step_losses += [losses[row][i] for i in kept]
            logged.clear()
        diverged = {row: s for row, s in enumerate(bad_step) if s >= 0}
        if diverged:
            stop(diverged, "diverged")

    step = 0
    for epoch in range(train.epochs):
        batch.hp["learning_rate"] = learning_rate_at(
            first.schedule or ScheduleSpec(), batch.base_lr, epoch, train.epochs
        )
        batch.loss_sum.zero_()
        perm = torch.randperm(n_train, generator=order, device=device)
        for s in range(steps_per_epoch):
            idx = perm[s * train.batch_size : (s + 1) * train.batch_size]
            params = [p.requires_grad_() for p in batch.params]
            with autocast:
                logits = model.forward(params, dataset.train_x[idx], train=True, generator=dropout)
            losses = per_trial_loss(logits.float(), dataset.train_y[idx])
            total = (losses * loss_scale).sum() if loss_scale is not None else losses.sum()
            grads = torch.autograd.grad(total, params)
            with torch.no_grad():
                batch.params, batch.state = rule.update(grads, batch.state, params, batch.hp)
            step += 1
            batch.record(step, losses.detach())
            if step % train.log_every == 0:  # the mean over the window, not one noisy batch
                logged.append((step, batch.window_sum / train.log_every))
                batch.window_sum = torch.zeros_like(batch.window_sum)
            if step % CHECK_EVERY == 0:
                read_back()
                if on_step is not None:
                    on_step(epoch, s + 1, steps_per_epoch)
                if not batch.index:
                    return _finish(outcomes, started)
        read_back()
        if not batch.index:
            break
        test_loss, test_acc = evaluate(
            model, batch.params, dataset.test_x, dataset.test_y, train.eval_batch_size
        )
        metrics = {
            trial: EpochMetrics(epoch + 1, train_loss, t_loss, acc)
            for trial, train_loss, t_loss, acc in zip(
                batch.index,
                (batch.loss_sum / steps_per_epoch).tolist(),
                test_loss.tolist(),
                test_acc.tolist(),
                strict=True,
            )
        }
        for trial, m in metrics.items():
            outcomes[trial].epochs.append(m)
        pruned = set(on_epoch(epoch + 1, metrics)) if on_epoch is not None else set()
        if pruned:
            stop({r: step for r, t in enumerate(batch.index) if t in pruned}, "pruned")
    return _finish(outcomes, started)


def _finish(outcomes: list[TrialOutcome], started: float) -> list[TrialOutcome]:
    """Trials that ran to the end were in training for the whole batch's time."""
    elapsed = time.perf_counter() - started
    for out in outcomes:
        if out.status == "complete":
            out.seconds = elapsed
    return outcomes
