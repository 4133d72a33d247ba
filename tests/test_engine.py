"""The engine's two Adam kernels agree; K chosen within bounds; loss scale; host reads."""

from __future__ import annotations

import collections
import dataclasses
import functools
import math
from typing import Any

import pytest
import torch

from optsweep import engine, optim
from optsweep.config import DataSpec, expand, load_sweep
from optsweep.data import load_dataset
from optsweep.engine import choose_trials_per_batch, per_trial_loss, train_batch
from optsweep.models import build_model
from optsweep.optim.base import flatten_state

K = 3
SHAPES = ((K, 6, 5), (K, 6), (K, 2, 3, 3))


WD = (0.0, 1e-3, 0.1)
BETAS = ((0.9, 0.999), (0.8, 0.95), (0.5, 0.9))

# optimizer, semantics, K trials' given parameters: the optimizers with a fused per-trial form
FUSED_CASES: list[tuple[str, str, list[dict[str, Any]]]] = [
    *[
        (
            name,
            semantics,
            [{"learning_rate": 0.01, "beta_1": b1, "beta_2": b2, **extra} for b1, b2 in BETAS],
        )
        for name, extra in (("adam", {}), ("adam", {"amsgrad": True}), ("amsgrad", {}))
        for semantics in ("torch", "keras")
    ],
    ("adam", "torch", [{"learning_rate": 0.01, "weight_decay": wd} for wd in WD]),
    (
        "adam",
        "torch",
        [{"learning_rate": 0.01, "weight_decay": wd, "decoupled_weight_decay": True} for wd in WD],
    ),
    ("adamw", "torch", [{"learning_rate": 0.01, "weight_decay": wd} for wd in WD]),
    ("adamw", "keras", [{"learning_rate": 1e-3, "epsilon": eps} for eps in (1e-7, 1e-3, 0.1)]),
    (
        "adam",
        "keras",
        [{"learning_rate": 0.01, "clipnorm": 1.0, "epsilon": e} for e in (1e-7, 1e-3, 0.1)],
    ),
    ("adam", "torch", [{"learning_rate": lr, "loss_scale_factor": 8.0} for lr in (0.1, 0.01, 0.3)]),
]


@pytest.mark.parametrize(
    ("optimizer", "semantics", "given"),
    FUSED_CASES,
    ids=[f"{o}-{s}-{i}" for i, (o, s, _) in enumerate(FUSED_CASES)],
)
def test_fused_per_trial_kernel_follows_the_batched_kernel(optimizer, semantics, given):
    """Two hand-written forms of one update (torch's fused kernel per trial, the family's
    K-batched kernel), trials differing in their hyperparameters; both also meet the oracles
    of ``test_optim_parity``."""
    trials = [optim.resolve(optimizer, semantics, g) for g in given]
    batched = optim.inplace(optimizer, semantics, trials[0], kernels="batched")
    fused = optim.inplace(optimizer, semantics, trials[0], kernels="per_trial")
    hp = optim.stack_hyperparameters(optimizer, trials)
    gen = torch.Generator().manual_seed(0)
    batched_params = [torch.randn(s, generator=gen) for s in SHAPES]
    fused_params = [p.clone() for p in batched_params]
    batched_state, fused_state = batched.init(batched_params), fused.init(fused_params)
    for _ in range(25):
        grads = [torch.randn(s, generator=gen) for s in SHAPES]
        batched.update_([g.clone() for g in grads], batched_state, batched_params, hp)
        fused.update_([g.clone() for g in grads], fused_state, fused_params, hp)
    for want, got in zip(batched_params, fused_params, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    want_leaves = flatten_state(batched_state)
    for name, leaf in flatten_state(fused_state).items():
        torch.testing.assert_close(leaf, want_leaves[name], rtol=1e-5, atol=1e-6)
    assert not torch.allclose(batched_params[0][0], batched_params[0][1])


def test_one_fused_kernel_serves_two_batches_alternately():
    # the per-trial form keeps slices between steps; a second batch must not get the first's
    given = [{"learning_rate": lr} for lr in (0.1, 0.01, 0.3)]
    trials = [optim.resolve("adam", "torch", g) for g in given]
    rule = optim.build("adam", "torch", trials[0])
    fast = optim.inplace("adam", "torch", trials[0], kernels="per_trial")
    hp = optim.stack_hyperparameters("adam", trials)
    gen = torch.Generator().manual_seed(0)
    batches = [[torch.randn(s, generator=gen) for s in SHAPES] for _ in range(2)]
    pure = [([p.clone() for p in b], rule.init(b)) for b in batches]
    fast_states = [fast.init(b) for b in batches]
    for _ in range(5):
        for i, params in enumerate(batches):
            grads = [torch.randn(s, generator=gen) for s in SHAPES]
            pure[i] = rule.update(grads, pure[i][1], pure[i][0], hp)
            fast.update_([g.clone() for g in grads], fast_states[i], params, hp)
    for params, (expected, _) in zip(batches, pure, strict=True):
        for got, want in zip(params, expected, strict=True):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


SWEEP = """\
name: t
dataset: mnist-mini
subset: {{train: 256, test: 128}}
model: mlp
train: {{epochs: 2, batch_size: 64, log_every: 2}}
optimizers:
{optimizers}
"""


def trials_of(write_yaml, optimizers: str):
    spec = load_sweep(write_yaml(SWEEP.format(optimizers=optimizers)))
    return spec, expand(spec)


@pytest.fixture(scope="module")
def mini():
    data = load_dataset("mnist-mini", None, torch.device("cpu"), 256, 128)
    return data, build_model("mlp", data.input_shape, data.num_classes)


def assert_same_training(a, b, rel):
    for x, y in zip(a, b, strict=True):
        assert x.status == y.status
        assert x.step_losses == pytest.approx(y.step_losses, rel=rel)
        for ex, ey in zip(x.epochs, y.epochs, strict=True):
            assert math.isclose(ex.test_loss, ey.test_loss, rel_tol=rel)


def test_engine_trains_alike_with_either_adam_kernel(write_yaml, mini, monkeypatch):
    data, net = mini
    spec, trials = trials_of(
        write_yaml,
        "  - name: adam\n    semantics: keras\n"
        "    grid: {learning_rate: [0.01, 0.001], amsgrad: [false]}\n",
    )
    cpu = torch.device("cpu")
    fused = train_batch(data, net, trials, spec.train, device=cpu)  # per trial on a CPU
    batched = functools.partial(optim.inplace, kernels="batched")
    monkeypatch.setattr(engine.optim, "inplace", batched)
    assert_same_training(fused, train_batch(data, net, trials, spec.train, device=cpu), rel=1e-4)


@pytest.mark.parametrize("pruned", [[0], [0, 1]], ids=["one", "every"])
def test_pruned_trials_stop_and_the_rest_train_on(write_yaml, mini, pruned):
    data, net = mini
    spec, trials = trials_of(write_yaml, "  - name: sgd\n    grid: {learning_rate: [0.1, 0.01]}\n")
    train = dataclasses.replace(spec.train, epochs=3)
    outcomes = train_batch(
        data,
        net,
        trials,
        train,
        device=torch.device("cpu"),
        on_epoch=lambda epoch, metrics: [i for i in pruned if i in metrics] if epoch == 1 else [],
    )
    for index, outcome in enumerate(outcomes):
        stopped = index in pruned
        assert outcome.status == ("pruned" if stopped else "complete")
        assert len(outcome.epochs) == (1 if stopped else 3)


@pytest.mark.parametrize(
    "knob", ["loss_scale_factor: 1024.0", "dynamic_loss_scale: true"], ids=["static", "dynamic"]
)
def test_the_loss_scale_scales_the_loss_the_rule_unscales(write_yaml, mini, knob):
    data, net = mini
    optimizers = "  - name: sgd\n    grid: {{learning_rate: [0.1, 0.01]}}\n{extra}"
    spec, plain = trials_of(write_yaml, optimizers.format(extra=""))
    _, scaled = trials_of(write_yaml, optimizers.format(extra=f"    {knob}\n"))
    cpu = torch.device("cpu")
    a = train_batch(data, net, plain, spec.train, device=cpu)
    b = train_batch(data, net, scaled, spec.train, device=cpu)
    assert_same_training(a, b, rel=1e-4)


def test_trials_per_batch_is_bounded_by_waiting_trials_and_memory(write_yaml, mini, monkeypatch):
    data, net = mini
    spec, trials = trials_of(write_yaml, "  - name: adam\n    grid: {learning_rate: [0.01]}\n")
    cpu = torch.device("cpu")
    k = choose_trials_per_batch(net, data, spec.train, cpu, waiting=5, template=trials[0])
    assert 1 <= k <= 5
    per_trial = engine.bytes_per_trial(net, data, 64)
    assert per_trial > 4 * net.num_params()
    monkeypatch.setattr(engine, "_free_memory", lambda device: int(2.5 * per_trial / 0.5))
    assert choose_trials_per_batch(net, data, spec.train, cpu, 100, trials[0]) <= 2


def test_soaps_factors_count_in_the_memory_that_chooses_k(write_yaml, mini, monkeypatch):
    data, net = mini
    monkeypatch.setattr(engine, "_step_rate", lambda *args: 1.0)  # memory alone decides
    cpu = torch.device("cpu")
    chosen = {}
    for name in ("adam", "soap"):
        spec, trials = trials_of(write_yaml, f"  - name: {name}\n    grid: {{lr: [0.01]}}\n")
        slots = optim.state_slots(trials[0].hyperparameters, name, [p.shape for p in net.params])
        per_trial = engine.bytes_per_trial(net, data, 64, slots)
        monkeypatch.setattr(engine, "_free_memory", lambda device, b=per_trial: int(6 * b / 0.5))
        chosen[name] = (slots, choose_trials_per_batch(net, data, spec.train, cpu, 100, trials[0]))
    assert chosen["soap"][0] > chosen["adam"][0] == 3  # factors and bases of every layer
    assert chosen["adam"][1] == chosen["soap"][1] == 6  # each fits what its own state needs


def test_k_is_chosen_for_the_rule_whose_state_is_largest(write_yaml, mini):
    _, net = mini
    _, trials = trials_of(
        write_yaml,
        "  - name: sgd\n    grid: {lr: [0.1]}\n  - name: soap\n    grid: {lr: [0.003]}\n"
        "  - name: prodigy\n    grid: {lr: [1.0]}\n",
    )
    assert engine.heaviest_trial(net, trials).optimizer == "soap"  # factors and eigenbases
    assert engine.heaviest_trial(net, [trials[0], trials[2]]).optimizer == "prodigy"  # 4 copies


def test_trials_per_batch_is_the_smallest_k_near_the_best_measured_rate(
    write_yaml, mini, monkeypatch
):
    data, net = mini
    spec, trials = trials_of(write_yaml, "  - name: adam\n    grid: {learning_rate: [0.01]}\n")
    measured = {8: 100.0, 16: 150.0, 20: 152.0, 32: 193.0, 64: 197.0, 128: 200.0, 200: 120.0}
    probed: list[int] = []
    monkeypatch.setattr(
        engine, "_step_rate", lambda *args: probed.append(args[4]) or measured[args[4]]
    )
    monkeypatch.setattr(engine, "K_TOLERANCE", 0.04)
    cpu = torch.device("cpu")
    # 64 gains under 4% on 32 (197 < 1.04 x 193): the walk ends there, and 0.96 x 197 = 189:
    # K = 32 is the smallest within 4% of the best measured; K = 8 is never measured
    assert choose_trials_per_batch(net, data, spec.train, cpu, 200, trials[0]) == 32
    assert probed == [16, 32, 64]
    probed.clear()
    assert choose_trials_per_batch(net, data, spec.train, cpu, 20, trials[0]) == 16  # 152 x 0.96
    assert probed == [16, 20]
    measured[32] = 140.0  # slower than 16: the walk ends at once
    probed.clear()
    assert choose_trials_per_batch(net, data, spec.train, cpu, 200, trials[0]) == 16
    assert probed == [16, 32]
    probed.clear()  # 12 waiting: one candidate, all of them, taken without measuring
    assert choose_trials_per_batch(net, data, spec.train, cpu, 12, trials[0]) == 12
    assert probed == []


def host_reads_while_training(monkeypatch, n_train: int, optimizers: str, write_yaml) -> int:
    """How often tensors were read back to the host (item, tolist, bool, int, float) while
    training on ``n_train`` images, with the rules' device-agnostic (K-batched) forms."""
    spec, trials = trials_of(write_yaml, optimizers)
    data = load_dataset("mnist-mini", None, torch.device("cpu"), n_train, 128)
    net = build_model("mlp", data.input_shape, data.num_classes)
    batched = functools.partial(optim.inplace, kernels="batched")
    monkeypatch.setattr(engine.optim, "inplace", batched)
    monkeypatch.setattr(engine, "CHECK_EVERY", 10_000)  # read back at epoch ends only
    reads = collections.Counter()
    with monkeypatch.context() as patch:
        for name in ("item", "tolist", "__bool__", "__int__", "__float__"):
            original = getattr(torch.Tensor, name)

            def counting(self, *args, _original=original, _name=name, **kwargs):
                reads[_name] += 1
                return _original(self, *args, **kwargs)

            patch.setattr(torch.Tensor, name, counting)
        train_batch(data, net, trials, spec.train, device=torch.device("cpu"))
    return sum(reads.values())


@pytest.mark.parametrize(
    "optimizers",
    [
        "  - name: adam\n    grid: {learning_rate: [0.01, 0.001, 0.003]}\n",
        "  - name: rmsprop\n    clipnorm: 1.0\n    grid: {learning_rate: [0.01, 0.001]}\n",
        "  - name: momentum\n    grid: {learning_rate: [0.01, 0.1], weight_decay: [0.0, 0.1]}\n",
        "  - name: sgd\n    schedule: {type: one_cycle, unit: step}\n"
        "    grid: {learning_rate: [0.1, 0.01]}\n",
        "  - name: adam\n    dynamic_loss_scale: true\n    grid: {learning_rate: [0.01, 0.1]}\n",
    ],
    ids=["adam", "rmsprop-clipnorm", "momentum-decay", "per-step-schedule", "dynamic-loss-scale"],
)
def test_training_steps_never_wait_for_the_device(monkeypatch, write_yaml, optimizers):
    # On CUDA a read back to the host stalls the queue of kernels: the engine reads losses
    # back every CHECK_EVERY steps and at the end of each epoch only. Counted here on the
    # CPU: three times the steps between read-backs must not read the host once more.
    few = host_reads_while_training(monkeypatch, 256, optimizers, write_yaml)  # 4 steps/epoch
    many = host_reads_while_training(monkeypatch, 768, optimizers, write_yaml)  # 12
    assert few == many


@pytest.mark.parametrize(
    ("schedule", "lr_zero_after"),
    [
        ("{type: piecewise_constant, boundaries: [0], values: [1.0, 0.0]}", "epoch 1"),
        ("{type: piecewise_constant, unit: step, boundaries: [3], values: [1.0, 0.0]}", "step 4"),
    ],
    ids=["per-epoch", "per-step"],
)
def test_a_schedule_sets_the_rate_per_epoch_or_per_step(write_yaml, mini, schedule, lr_zero_after):
    # 256 images, batch 64: 4 steps an epoch. The rate falls to 0 after the first epoch
    # (per epoch) or after step 4 (per step, counted from 0): the same point, by two routes;
    # from there the parameters, and so the test loss, no longer move.
    data, net = mini
    optimizers = "  - name: sgd\n    grid: {{learning_rate: [0.1]}}\n{extra}"
    spec, scheduled = trials_of(write_yaml, optimizers.format(extra=f"    schedule: {schedule}\n"))
    _, constant = trials_of(write_yaml, optimizers.format(extra=""))
    train = dataclasses.replace(spec.train, epochs=3)
    cpu = torch.device("cpu")
    (out,) = train_batch(data, net, scheduled, train, device=cpu)
    (ref,) = train_batch(data, net, constant, train, device=cpu)
    losses = [e.test_loss for e in out.epochs]
    assert losses[0] == ref.epochs[0].test_loss  # the first epoch at the full rate
    assert losses[1] == losses[2] == losses[0], lr_zero_after
    assert ref.epochs[2].test_loss != losses[2]


@pytest.mark.parametrize(
    ("n_train", "batch_size", "drop_last", "steps"),
    [
        (256, 64, False, 4),
        (256, 64, True, 4),  # whole batches: nothing to drop
        (256, 100, False, 3),  # 100 + 100 + 56
        (256, 100, True, 2),  # the 56 left out
        (60_000, 128, False, 469),
        (60_000, 128, True, 468),  # DeepOBS's (Fashion-)MNIST epoch at batch 128
        (5, 64, False, 1),
    ],
)
def test_steps_per_epoch(n_train: int, batch_size: int, drop_last: bool, steps: int) -> None:
    assert engine.steps_per_epoch(n_train, batch_size, drop_last) == steps


def test_drop_last_with_less_than_one_batch_is_refused() -> None:
    with pytest.raises(ValueError, match="no full batch to train on"):
        engine.steps_per_epoch(5, 64, True)


@pytest.mark.parametrize(("batch_size", "same"), [(64, True), (100, False)])
def test_drop_last_trains_whole_batches_only(write_yaml, mini, batch_size: int, same: bool):
    """256 images: batch 100 drops each epoch's last 56; batch 64 has none to drop."""
    data, net = mini
    spec, trials = trials_of(write_yaml, "  - name: sgd\n    grid: {learning_rate: [0.1]}\n")
    train = dataclasses.replace(spec.train, batch_size=batch_size, log_every=1)
    cpu = torch.device("cpu")
    (kept,) = train_batch(data, net, trials, train, device=cpu)
    (dropped,) = train_batch(data, net, trials, train, device=cpu, data=DataSpec(drop_last=True))
    per_epoch = 256 // batch_size
    assert dropped.steps == list(range(1, train.epochs * per_epoch + 1))
    assert len(kept.steps) == train.epochs * math.ceil(256 / batch_size)
    assert (kept.epochs == dropped.epochs) is same
    assert kept.step_losses[:per_epoch] == dropped.step_losses[:per_epoch]  # the same batches


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.5])
def test_per_trial_loss_is_torch_cross_entropy_per_trial(smoothing: float) -> None:
    gen = torch.Generator().manual_seed(0)
    logits, labels = (
        torch.randn(3, 16, 10, generator=gen),
        torch.randint(0, 10, (16,), generator=gen),
    )
    got = per_trial_loss(logits, labels, smoothing)
    criterion = torch.nn.CrossEntropyLoss(label_smoothing=smoothing)
    want = torch.stack([criterion(trial, labels) for trial in logits])
    torch.testing.assert_close(got, want)


# Five rules on one seed: plain SGD (one rate diverges), Adam's fused per-trial kernel, keras
# RMSprop, Nesterov momentum and Lion (a batched kernel).
SEVERAL_RULES = (
    "  - name: sgd\n    grid: {learning_rate: [0.1, 1.0e+10]}\n"
    "  - name: adam\n    grid: {learning_rate: [0.01, 0.001]}\n"
    "  - name: rmsprop\n    semantics: keras\n    grid: {learning_rate: [0.001]}\n"
    "  - name: nesterov\n    grid: {learning_rate: [0.01]}\n"
    "  - name: lion\n    grid: {learning_rate: [0.0003]}\n"
)


@pytest.mark.parametrize("threads", [1, 2], ids=["one lane", "two lanes"])
def test_several_rules_in_one_batch_train_each_trial_as_alone(write_yaml, mini, threads):
    """Trials of different rules share a batch (one forward and backward, each rule updating
    its rows), in any order, across lanes, with one of them diverging: each trains as it
    does alone."""
    data, net = mini
    spec, trials = trials_of(write_yaml, SEVERAL_RULES)
    mixed = [trials[i] for i in (6, 0, 3, 1, 5, 2, 4)]  # the rules interleaved
    cpu = torch.device("cpu")
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        assert engine.lanes_for(net, cpu, len(mixed)) == threads
        together = train_batch(data, net, mixed, spec.train, device=cpu)
        alone = [train_batch(data, net, [t], spec.train, device=cpu)[0] for t in mixed]
    finally:
        torch.set_num_threads(before)
    assert [o.status for o in together].count("diverged") == 1
    assert_same_training(together, alone, rel=1e-4)


@pytest.mark.parametrize(
    ("block", "beside_others"),
    [
        ("  - name: adam\n    grid: {learning_rate: [0.01]}\n", True),
        ("  - name: lion\n    grid: {learning_rate: [0.0003]}\n", True),
        ("  - name: adam\n    grid: {learning_rate: [0.01]}\n    use_ema: true\n", False),
        ("  - name: sgd\n    grid: {learning_rate: [0.1]}\n    dynamic_loss_scale: true\n", False),
        ("  - name: sgd\n    grid: {learning_rate: [0.1]}\n    loss_scale_factor: 8.0\n", False),
        ("  - name: schedule_free_adamw\n    grid: {learning_rate: [0.0025]}\n", False),
    ],
)
def test_what_trains_beside_other_rules(write_yaml, block, beside_others):
    """A rule evaluated elsewhere (an average, Schedule-Free's x) or with a scaled loss keeps
    its batches to itself; the others batch with every rule of the same seed and schedule."""
    from optsweep import study as studies
    from optsweep.config import trains_beside_others

    _, [trial] = trials_of(write_yaml, block)
    _, [sgd] = trials_of(write_yaml, "  - name: sgd\n    grid: {learning_rate: [0.1]}\n")
    assert trains_beside_others(trial) is beside_others
    assert (studies.batch_key(trial) == studies.batch_key(sgd)) is beside_others
