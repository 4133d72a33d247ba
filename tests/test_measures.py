"""Tests for optsweep.measures: hand-computed tuning cost, sensitivity slices, speed to target,
edge warnings and performance profiles, on made-up records (no training, no pixels)."""

from __future__ import annotations

import math

import pytest

from optsweep.config import Target
from optsweep.measures import (
    best_so_far,
    edge_warnings,
    expected_best_of_k,
    lr_sensitivity,
    next_values,
    performance_profile,
    reached_epoch,
    speed_to_target,
    tuning_cost,
)
from optsweep.records import TrialRecord
from optsweep.stats import summarize


def run(trial: int, seed: int, curve: list[float], status: str = "complete", **params):
    """A record whose test accuracy per epoch is ``curve``."""
    epochs = [{"epoch": i + 1, "test_accuracy": a, "test_loss": 1 - a} for i, a in enumerate(curve)]
    return TrialRecord(trial, "adam", "torch", seed, params, status, epochs)


@pytest.mark.parametrize(
    ("scores", "replacement", "expected"),
    [
        ([0.9, 0.1, 0.5], False, [0.5, 2.3 / 3, 0.9]),  # pairs: max 0.5, 0.9, 0.9
        ([0.9, 0.1, 0.5], True, [0.5, 6.1 / 9, (0.1 + 0.5 * 7 + 0.9 * 19) / 27]),
        ([0.7], False, [0.7]),
        ([0.2, 0.2, 0.8, 0.4], False, [0.4, (0.2 * 1 + 0.4 * 2 + 0.8 * 3) / 6, 0.7, 0.8]),
    ],
    ids=["without", "with-replacement", "one", "ties"],
)
def test_expected_best_of_k(scores, replacement, expected):
    got = expected_best_of_k(scores, replacement=replacement)
    assert got == pytest.approx(expected, rel=1e-12)
    assert got == sorted(got)  # more draws never expect worse


def test_tuning_cost_goes_from_the_mean_to_the_best_configuration():
    records = [
        TrialRecord(i, "adam", "torch", seed, {"lr": lr}, status, [{"test_accuracy": acc}])
        for i, (lr, seed, acc, status) in enumerate(
            [
                (0.1, 0, 0.8, "complete"),
                (0.1, 1, 0.9, "complete"),  # lr 0.1: mean 0.85
                (0.01, 0, 0.6, "complete"),  # lr 0.01: 0.6
                (1.0, 0, 0.0, "diverged"),  # lr 1: counts as chance, 0.1
            ]
        )
    ]
    rows = tuning_cost(summarize(records), draws=200)
    curve = [r["expected_best"] for r in rows]
    assert [r["k"] for r in rows] == [1, 2, 3]
    assert curve[0] == pytest.approx((0.85 + 0.6 + 0.1) / 3)
    assert curve[-1] == pytest.approx(0.85)
    assert all(r["low"] <= r["expected_best"] + 1e-12 <= r["high"] + 2e-12 for r in rows)


def test_best_so_far_follows_trial_order_per_optimizer():
    records = [
        run(0, 0, [0.5], lr=0.1),
        run(0, 1, [0.7], lr=0.1),  # trial 0: mean 0.6
        run(1, 0, [0.4], lr=0.2),
        run(2, 0, [0.95], "pruned", lr=0.3),  # found nothing, whatever its last epoch
        run(3, 0, [0.9], lr=0.4),
    ]
    rows = best_so_far(records)
    assert [r["k"] for r in rows] == [1, 2, 3, 4]
    assert [r["score"] for r in rows] == pytest.approx([0.6, 0.4, math.nan, 0.9], nan_ok=True)
    assert [r["best_so_far"] for r in rows] == pytest.approx([0.6, 0.6, 0.6, 0.9])
    failed_first = best_so_far([run(0, 0, [], "failed", lr=0.1), run(1, 0, [0.05], lr=0.2)])
    assert [r["best_so_far"] for r in failed_first] == [0.1, 0.1]  # chance until one beats it


def test_lr_sensitivity_is_the_slice_through_the_best_configuration():
    records = [
        run(0, 0, [0.90], lr=0.01, beta_1=0.9),
        run(1, 1, [0.92], lr=0.01, beta_1=0.9),  # best: mean 0.91
        run(2, 0, [0.80], lr=0.001, beta_1=0.9),
        run(3, 1, [0.84], lr=0.001, beta_1=0.9),
        run(4, 0, [0.99], lr=0.1, beta_1=0.5),  # off the slice (beta_1 differs) ...
        run(5, 1, [0.10], lr=0.1, beta_1=0.5),  # ... and not the best on average
        run(6, 0, [0.30], lr=0.1, beta_1=0.9),
        run(7, 1, [0.50], lr=0.1, beta_1=0.9),
    ]
    rows = lr_sensitivity(summarize(records))
    assert [r["learning_rate"] for r in rows] == [0.001, 0.01, 0.1]
    assert [r["mean"] for r in rows] == pytest.approx([0.82, 0.91, 0.4])
    assert [(r["low"], r["high"]) for r in rows] == [(0.8, 0.84), (0.9, 0.92), (0.3, 0.5)]
    assert [r["best"] for r in rows] == [False, True, False]


def test_no_lr_sensitivity_without_a_varying_learning_rate():
    records = [run(0, 0, [0.9], lr=0.01, beta_1=0.9), run(1, 0, [0.8], lr=0.01, beta_1=0.5)]
    assert lr_sensitivity(summarize(records)) == []


@pytest.mark.parametrize(
    ("target", "curve", "expected"),
    [
        (Target("test_accuracy", 0.9), [0.5, 0.9, 0.95], 2),
        (Target("test_accuracy", 0.9), [0.5, 0.8], None),
        (Target("test_accuracy", 0.5), [0.5], 1),
        (Target("test_loss", 0.2), [0.5, 0.7, 0.85], 3),  # test_loss = 1 - accuracy
        (Target("test_accuracy", 0.9), [], None),
    ],
)
def test_reached_epoch(target, curve, expected):
    assert reached_epoch(run(0, 0, curve), target) == expected


def test_speed_to_target_of_the_best_configuration_over_seeds():
    records = [
        run(0, 0, [0.91, 0.95], lr=0.1),
        run(1, 1, [0.5, 0.93], lr=0.1),
        run(2, 2, [0.5, 0.8], lr=0.1),  # misses
        run(3, 0, [0.95, 0.91], lr=0.2),  # fast, but worse final accuracy on average
        run(4, 1, [0.5, 0.6], lr=0.2),
        run(5, 2, [0.5, 0.6], lr=0.2),
    ]
    (speed,) = speed_to_target(records, summarize(records), Target("test_accuracy", 0.9)).values()
    assert speed.params == {"lr": 0.1}
    assert speed.epochs == {0: 1, 1: 2, 2: None}
    assert speed.reached == 2
    assert speed.median_epoch == 2
    assert speed.text() == "2 of 3 seeds reached, median epoch 2"
    one = [run(0, 0, [0.5], lr=0.1), run(1, 1, [0.95], lr=0.1)]
    (speed,) = speed_to_target(one, summarize(one), Target("test_accuracy", 0.9)).values()
    assert math.isnan(speed.median_epoch)  # half the seeds missed: no median
    assert speed.text() == "1 of 2 seeds reached"


@pytest.mark.parametrize(
    ("optimizer", "name", "values", "upward", "expected"),
    [
        ("adam", "lr", [1e-5, 1e-4, 1e-3, 1e-2], True, (0.1, 1.0)),
        ("adam", "lr", [1e-5, 1e-4, 1e-3, 1e-2], False, (1e-6, 1e-7)),
        ("adam", "beta_2", [0.9, 0.95, 0.99], True, (0.998, 0.9996)),  # never 1.0
        ("momentum", "momentum", [0.0, 0.5, 0.9], False, ()),  # 0 is the range's end
        ("momentum", "momentum", [0.0, 0.5, 0.9], True, (0.98, 0.996)),
        ("adam", "epsilon", [1e-8, 1e-7, 1e-6], False, (1e-9, 1e-10)),
        (None, None, [1.0, 2.0, 3.0], True, (4.0, 5.0)),  # even steps: continued
        (None, None, [1.0, 2.0, 3.0], False, (0.0, -1.0)),
    ],
)
def test_next_values(optimizer, name, values, upward, expected):
    from optsweep.measures import _param_info

    info = _param_info(optimizer, name) if optimizer else None
    assert next_values(values, upward, info) == pytest.approx(expected)


def test_edge_warnings_only_for_three_or_more_values_with_the_best_at_an_end():
    records = [
        run(0, 0, [0.70], lr=1e-4, beta_1=0.9, eps=1e-8),
        run(1, 0, [0.80], lr=1e-3, beta_1=0.9, eps=1e-8),
        run(2, 0, [0.95], lr=1e-2, beta_1=0.9, eps=1e-8),  # best: lr at the top end
        run(3, 0, [0.60], lr=1e-2, beta_1=0.5, eps=1e-8),  # beta_1 has two values only
        run(4, 0, [0.50], lr=1e-2, beta_1=0.9, eps=1e-7),
        run(5, 0, [0.40], lr=1e-2, beta_1=0.9, eps=1e-6),  # eps best at 1e-8: bottom end
    ]
    warnings = edge_warnings(summarize(records))
    assert [(w.name, w.best, w.suggestions) for w in warnings] == [
        ("lr", 1e-2, (0.1, 1.0)),
        ("eps", 1e-8, (1e-9, 1e-10)),
    ]
    assert warnings[0].text() == (
        "adam/torch: the best lr 0.01 is the largest value tried [0.0001, 0.001, 0.01]; try 0.1, 1"
    )
    assert [w.name for w in edge_warnings(summarize(records), {("adam", "lr")})] == ["eps"]
    middle = [run(i, 0, [acc], lr=lr) for i, (lr, acc) in enumerate([(1, 0.5), (2, 0.9), (3, 0.6)])]
    assert edge_warnings(summarize(middle)) == []


def test_performance_profile_on_a_made_up_table():
    inf = math.inf
    costs = {
        "mnist": {"adam": 2, "sgd": 4, "rmsprop": 2},
        "fashion": {"adam": 3, "sgd": 3, "rmsprop": inf},
        "cifar": {"adam": 10, "sgd": 5, "rmsprop": 20},
        "none": {"adam": inf, "sgd": inf, "rmsprop": inf},  # nobody reached: against all
    }
    profile = performance_profile(costs, [1, 2, 4])
    assert profile == {
        "adam": [2 / 4, 3 / 4, 3 / 4],
        "sgd": [2 / 4, 3 / 4, 3 / 4],
        "rmsprop": [1 / 4, 1 / 4, 2 / 4],
    }
