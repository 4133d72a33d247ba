"""Repeats over seeds: mean ± std, the paired test, and the over-seeds table."""

from __future__ import annotations

import math

import pytest

from optsweep.plots import heatmap_data, sensitivity_data
from optsweep.records import TrialRecord
from optsweep.report import summary_rows
from optsweep.stats import paired_p_value, summarize


def record(trial: int, seed: int, acc: float, status: str = "complete", **params) -> TrialRecord:
    epochs = [{"epoch": 1, "train_loss": 1.0, "test_loss": 1.0, "test_accuracy": acc}]
    return TrialRecord(
        trial=trial,
        optimizer="adam",
        semantics="torch",
        seed=seed,
        params=params,
        status=status,
        epochs=epochs if status == "complete" else [],
    )


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ({0: 0.9, 1: 0.8, 2: 0.7}, {0: 0.9, 1: 0.8, 2: 0.7}, 1.0),  # identical
        # differences 0.01, 0.02, 0.03: t = 0.02 / (0.01 / √3) = 3.464 with 2 degrees of
        # freedom, two-sided p = 0.0742 (by hand from the t distribution)
        ({0: 0.91, 1: 0.92, 2: 0.93}, {0: 0.90, 1: 0.90, 2: 0.90}, 0.07417990022744862),
        ({0: 0.9, 1: 0.8}, {0: 0.8, 1: 0.7}, 0.0),  # the same shift on every seed
        ({0: 0.9}, {0: 0.8}, math.nan),  # one shared seed: no test
        ({0: 0.9, 1: 0.8}, {2: 0.9, 3: 0.8}, math.nan),  # no shared seeds
    ],
    ids=["identical", "paired-shift", "constant-shift", "one-seed", "disjoint"],
)
def test_paired_p_value(a, b, expected):
    p = paired_p_value(a, b)
    assert (math.isnan(p) and math.isnan(expected)) or p == pytest.approx(expected)


RECORDS = [
    # best: lr 0.01, clearly above lr 0.1 on every seed; lr 0.001 close to best and noisy
    *(
        record(i, s, acc, learning_rate=0.01, beta_1=0.9)
        for i, (s, acc) in enumerate([(0, 0.95), (1, 0.96), (2, 0.97)])
    ),
    *(
        record(3 + i, s, acc, learning_rate=0.1, beta_1=0.9)
        for i, (s, acc) in enumerate([(0, 0.80), (1, 0.81), (2, 0.82)])
    ),
    *(
        record(6 + i, s, acc, learning_rate=0.001, beta_1=0.5)
        for i, (s, acc) in enumerate([(0, 0.97), (1, 0.93), (2, 0.96)])
    ),
    record(9, 0, 0.0, "diverged", learning_rate=1.0, beta_1=0.5),
]


def test_summaries_rank_by_mean_with_the_difference_to_the_best():
    summaries = summarize(RECORDS)
    assert [s.params["learning_rate"] for s in summaries] == [0.01, 0.001, 0.1, 1.0]
    best, close, worse, diverged = summaries
    assert best.mean == pytest.approx(0.96) and best.std == pytest.approx(0.01)
    assert close.p_vs_best >= 0.05 and worse.p_vs_best < 0.05
    mean, low, high = close.vs_best  # spans 0: the seeds cannot tell it from the best
    assert mean == pytest.approx(-0.02 / 3) and low < 0 < high
    mean, low, high = worse.vs_best  # below 0 on every seed: told apart
    assert mean == pytest.approx(-0.15) and low == pytest.approx(high) == pytest.approx(-0.15)
    assert best.vs_best == (0.0, 0.0, 0.0) and diverged.vs_best is None
    assert diverged.statuses == {"diverged": 1} and math.isnan(diverged.mean)


def test_over_seeds_table_shows_plus_minus_and_marks():
    header, rows = summary_rows(summarize(RECORDS))
    assert header[-4:] == ["test acc (mean ± std)", "seeds", "p vs best", "vs best (95% CI)"]
    assert rows[0][-4:] == ["0.9600 ± 0.0100", "3/3", "", "best"]
    # differences 0.02, −0.03, −0.01: mean −0.0067, sd 0.0252, t(0.975, 2) = 4.303
    assert rows[1][-1] == "−0.0067 [−0.0692, +0.0558]" and rows[2][-1].startswith("−0.1500 [")
    assert rows[3][0] == "–" and rows[3][-3] == "0/1, 1 diverged"


def test_heatmap_and_sensitivity_data():
    grid = [
        record(i, 0, 0.5 + 0.1 * i + 0.01 * j, learning_rate=lr, beta_1=b1, beta_2=b2)
        for i, (lr, b1) in enumerate([(0.1, 0.9), (0.1, 0.5), (0.01, 0.9), (0.01, 0.5)])
        for j, b2 in enumerate([0.99, 0.999])
    ]
    ((title, x, y, facet, panels, xs, ys),) = heatmap_data(summarize(grid))
    assert len(xs) == len(ys) == 2
    assert (title, facet) == ("adam/torch", "learning_rate")
    assert {x, y} == {"beta_1", "beta_2"} and set(panels) == {0.01, 0.1}
    assert not any(math.isnan(v) for grid_ in panels.values() for v in grid_.flat)
    data = sensitivity_data(summarize(grid))
    assert set(data) == {"learning_rate", "beta_1", "beta_2"}
    assert [len(v) for v in data["learning_rate"].values()] == [4, 4]
