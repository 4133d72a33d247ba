"""Repeats over seeds: mean ± std per configuration and which ones the data cannot tell apart.

All trials of a sweep that share a seed start from the same weights and see the same batches
(a paired design), so two configurations are compared seed by seed: a paired t-test
(``scipy.stats.ttest_rel``) of their final test accuracies over the seeds both completed.
Beside p, the mean paired difference to the best and its t-interval say how much the seeds
can tell (`difference_interval`): with two seeds, very little.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from optsweep.records import TrialRecord

ALPHA = 0.05
METHOD = (
    "mean ± sample standard deviation over seeds; p: two-sided paired t-test against the best "
    "configuration over the seeds both completed (scipy.stats.ttest_rel; 0 when every seed "
    "shows the same difference); vs best: the mean paired difference in test accuracy and its "
    f"{1 - ALPHA:.0%} t-interval, clipped to ±1 — an interval that spans 0 means the seeds "
    "cannot tell the two apart, and its width says how large a difference they could miss "
    "(with 2 seeds the t quantile is 12.7: only the largest differences show)"
)


@dataclass(frozen=True)
class ConfigSummary:
    """One configuration (optimizer, semantics, parameters) over its seeds."""

    optimizer: str
    semantics: str
    params: dict[str, Any]
    accuracy_by_seed: dict[int, float]
    statuses: dict[str, int]
    seed_list: tuple[int, ...] = ()
    curves: dict[int, list[float]] = field(default_factory=dict)  # seed → test acc per epoch
    p_vs_best: float = math.nan
    vs_best: tuple[float, float, float] | None = None  # `difference_interval` to the best

    @property
    def mean(self) -> float:
        values = list(self.accuracy_by_seed.values())
        return statistics.fmean(values) if values else math.nan

    @property
    def std(self) -> float:
        values = list(self.accuracy_by_seed.values())
        return statistics.stdev(values) if len(values) > 1 else math.nan

    @property
    def seeds(self) -> int:
        """Distinct seeds tried (a search may repeat a point with the same seed)."""
        return len(self.seed_list)


def config_key(record: TrialRecord | ConfigSummary) -> tuple[str, str, str]:
    """What makes records repeats of one configuration: everything but the seed (a summary's
    key is its records')."""
    return (record.optimizer, record.semantics, repr(sorted(record.params.items())))


def summarize(records: Sequence[TrialRecord]) -> list[ConfigSummary]:
    """Configurations ranked by mean final test accuracy, with the paired test vs the best."""
    groups: dict[tuple[str, str, str], list[TrialRecord]] = {}
    for r in records:
        groups.setdefault(config_key(r), []).append(r)
    summaries = []
    for group in groups.values():
        first = group[0]
        done = [r for r in group if r.status == "complete" and r.epochs]
        statuses: dict[str, int] = {}
        for r in group:
            statuses[r.status] = statuses.get(r.status, 0) + 1
        summaries.append(
            ConfigSummary(
                optimizer=first.optimizer,
                semantics=first.semantics,
                params=dict(first.params),
                accuracy_by_seed={r.seed: r.final_test_accuracy for r in done},
                statuses=statuses,
                seed_list=tuple(sorted({r.seed for r in group})),
                curves={r.seed: [e["test_accuracy"] for e in r.epochs] for r in done},
            )
        )
    ranked = sorted(summaries, key=lambda s: -s.mean if not math.isnan(s.mean) else math.inf)
    if not ranked or math.isnan(ranked[0].mean):
        return ranked
    best = ranked[0]
    return [_with_p(s, best) for s in ranked]


def mean_std_text(mean: float, std: float) -> str:
    """``0.9712 ± 0.0021``; ``0.9712`` without a spread (one seed); ``–`` without a mean."""
    if math.isnan(mean):
        return "–"
    return f"{mean:.4f}" if math.isnan(std) else f"{mean:.4f} ± {std:.4f}"


def paired_p_value(a: dict[int, float], b: dict[int, float]) -> float:
    """Two-sided paired t-test over the seeds in both; NaN with fewer than 2 shared seeds."""
    shared = sorted(a.keys() & b.keys())
    if len(shared) < 2:
        return math.nan
    differences = [a[s] - b[s] for s in shared]
    if all(math.isclose(d, differences[0], abs_tol=1e-12) for d in differences):
        # no spread: the t statistic is 0/0 (identical) or ±inf (the same shift every seed)
        return 1.0 if math.isclose(differences[0], 0.0, abs_tol=1e-12) else 0.0
    from scipy import stats as scipy_stats  # ~1 s to import: only when a test is computed

    return float(scipy_stats.ttest_rel([a[s] for s in shared], [b[s] for s in shared]).pvalue)


def difference_interval(
    a: dict[int, float], b: dict[int, float]
) -> tuple[float, float, float] | None:
    """Mean paired difference ``a − b`` over the seeds in both and its two-sided
    ``1 − ALPHA`` t-interval (clipped to ±1, accuracies' range); None below 2 shared seeds."""
    shared = sorted(a.keys() & b.keys())
    if len(shared) < 2:
        return None
    from scipy import stats as scipy_stats

    differences = [a[s] - b[s] for s in shared]
    mean = statistics.fmean(differences)
    half = (
        float(scipy_stats.t.ppf(1 - ALPHA / 2, len(shared) - 1))
        * statistics.stdev(differences)
        / math.sqrt(len(shared))
    )
    return mean, max(-1.0, mean - half), min(1.0, mean + half)


def interval_text(interval: tuple[float, float, float] | None) -> str:
    """``−0.2297 [−1, +0.5686]``; empty without an interval."""
    if interval is None:
        return ""
    mean, low, high = interval
    return f"{mean:+.4f} [{low:+.4f}, {high:+.4f}]".replace("-", "−")


def _with_p(summary: ConfigSummary, best: ConfigSummary) -> ConfigSummary:
    p = paired_p_value(summary.accuracy_by_seed, best.accuracy_by_seed)
    interval = difference_interval(summary.accuracy_by_seed, best.accuracy_by_seed)
    return ConfigSummary(**{**summary.__dict__, "p_vs_best": p, "vs_best": interval})
