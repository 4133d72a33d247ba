"""What the optimizer-benchmarking papers measure, computed from a sweep's records.

- **Tuning cost** (Dodge et al., 2019, "Show your work"; Sivaprasad et al., 2020): the expected
  best result after k random configurations of an optimizer's grid, k = 1..N
  (`tuning_cost`); for a search, whose configurations are not drawn uniformly from a list,
  the best so far over its trials (`best_so_far`).
- **Learning-rate sensitivity** (DeepOBS): the final metric against the learning rate with
  the other parameters at the optimizer's best configuration, a band over seeds
  (`lr_sensitivity`).
- **Speed to target** (DeepOBS, AlgoPerf): the first epoch at which a trial reaches a target
  (`reached_epoch`, `speed_to_target`).
- **Edge warnings**: a best value at the end of its grid list, with the next values to try
  (`edge_warnings`).

Numbers only (records in, rows out), so every one is tested without training or pixels.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from optsweep.config import Target
from optsweep.optim import registry
from optsweep.records import TrialRecord
from optsweep.stats import ConfigSummary, config_key
from optsweep.values import fmt

CHANCE_ACCURACY = 0.1  # every dataset here has 10 classes: what a diverged configuration scores
LEARNING_RATE = "learning_rate"


def canonical(optimizer: str, name: str) -> str | None:
    """The registry name of a parameter as a table shows it (``lr`` → ``learning_rate``);
    None for a name that is not one parameter of the optimizer (``schedule.T_max``, ``betas``)."""
    try:
        names = registry.resolve_name(optimizer, name)
    except ValueError:
        return None
    return names[0] if len(names) == 1 else None


def _groups(summaries: Sequence[ConfigSummary]) -> dict[tuple[str, str], list[ConfigSummary]]:
    """Summaries per (optimizer, semantics), in rank order."""
    groups: dict[tuple[str, str], list[ConfigSummary]] = {}
    for s in summaries:
        groups.setdefault((s.optimizer, s.semantics), []).append(s)
    return groups


def _score(summary: ConfigSummary) -> float:
    """A configuration's mean final accuracy; chance for one that never completed."""
    return summary.mean if not math.isnan(summary.mean) else CHANCE_ACCURACY


# ── tuning cost ──────────────────────────────────────────────────────────────────────────


def best_of_k_weights(n: int, *, replacement: bool = False) -> np.ndarray:
    """``W[k-1, i-1]``: the chance that the i-th smallest of n scores is the best of k draws.

    With replacement (Dodge et al., 2019, "Show your work"): (i/n)^k − ((i−1)/n)^k; without
    (the default): C(i−1, k−1)/C(n, k), so that k = 1 gives the mean and k = n the best.
    """
    i = np.arange(1, n + 1)
    if replacement:
        k = np.arange(1, n + 1)[:, None]
        return (i / n) ** k - ((i - 1) / n) ** k
    return np.array(
        [[math.comb(j - 1, k - 1) / math.comb(n, k) for j in i] for k in range(1, n + 1)]
    )


def expected_best_of_k(scores: Sequence[float], *, replacement: bool = False) -> list[float]:
    """E[best of k configurations drawn at random from ``scores``], for k = 1..N: the sorted
    scores weighted by ``best_of_k_weights``."""
    weights = best_of_k_weights(len(scores), replacement=replacement)
    return (weights @ np.sort(np.asarray(scores, dtype=float))).tolist()


def tuning_cost(
    summaries: Sequence[ConfigSummary], *, draws: int = 1000, seed: int = 0
) -> list[dict[str, Any]]:
    """Per optimizer and semantics, E[best of k] over its configurations (each its mean over
    seeds; one that never completed counts as chance accuracy) for k = 1..N, with a 90%
    bootstrap band (configurations resampled ``draws`` times, seeded)."""
    rng = np.random.default_rng(seed)
    rows = []
    for (optimizer, semantics), group in _groups(summaries).items():
        scores = [_score(s) for s in group]
        weights = best_of_k_weights(len(scores))
        curve = weights @ np.sort(scores)
        resampled = np.sort(rng.choice(scores, size=(draws, len(scores)), replace=True), axis=1)
        low, high = np.percentile(resampled @ weights.T, [5, 95], axis=0)  # every draw at once
        for k, value in enumerate(curve, start=1):
            rows.append(
                {
                    "optimizer": optimizer,
                    "semantics": semantics,
                    "k": k,
                    "expected_best": float(value),
                    "low": float(low[k - 1]),
                    "high": float(high[k - 1]),
                }
            )
    return rows


def best_so_far(records: Sequence[TrialRecord]) -> list[dict[str, Any]]:
    """A search's tuning cost: per optimizer and semantics, the best configuration found after
    its first k trials (k = 1..N, in trial order), each trial scored by its mean final
    accuracy over the seeds it completed (NaN when none did: pruned or failed, it found
    nothing, as Optuna's optimization history); chance accuracy until one completes.
    ``trial`` is the k-th trial's number."""
    scores: dict[int, list[float]] = {}
    first: dict[int, TrialRecord] = {}
    for r in records:
        first.setdefault(r.trial, r)
        if r.status == "complete" and not math.isnan(r.final_test_accuracy):
            scores.setdefault(r.trial, []).append(r.final_test_accuracy)
    best: dict[tuple[str, str], float] = {}
    counts: dict[tuple[str, str], int] = {}
    rows = []
    for number in sorted(first):
        r = first[number]
        group = (r.optimizer, r.semantics)
        score = statistics.fmean(scores[number]) if number in scores else math.nan
        best.setdefault(group, CHANCE_ACCURACY)
        if number in scores:
            best[group] = max(best[group], score)
        counts[group] = counts.get(group, 0) + 1
        rows.append(
            {
                "optimizer": r.optimizer,
                "semantics": r.semantics,
                "k": counts[group],
                "trial": number,
                "score": score,
                "best_so_far": best[group],
            }
        )
    return rows


# ── learning-rate sensitivity ────────────────────────────────────────────────────────────


def lr_sensitivity(summaries: Sequence[ConfigSummary]) -> list[dict[str, Any]]:
    """Per optimizer whose grid varies the learning rate: the slice through its best
    configuration (every other parameter at its value there), one row per learning rate with
    the mean, std, min and max of the final accuracy over seeds.

    `plots.plot_sensitivity` shows every configuration at each value (the other parameters
    anywhere); this slice is DeepOBS's learning-rate sensitivity, the others held at the best.
    """
    rows = []
    for (optimizer, semantics), group in _groups(summaries).items():
        done = [s for s in group if s.accuracy_by_seed]
        rate = _rate_name(optimizer, done)
        if rate is None:
            continue
        best = done[0]
        others = {k: v for k, v in best.params.items() if k != rate}
        line = [
            s
            for s in done
            if rate in s.params and {k: v for k, v in s.params.items() if k != rate} == others
        ]
        for s in sorted(line, key=lambda s: s.params[rate]):
            values = list(s.accuracy_by_seed.values())
            rows.append(
                {
                    "optimizer": optimizer,
                    "semantics": semantics,
                    "learning_rate": s.params[rate],
                    "mean": s.mean,
                    "std": s.std,
                    "low": min(values),
                    "high": max(values),
                    "seeds": len(values),
                    "best": s is best,
                }
            )
    return rows


def _rate_name(optimizer: str, summaries: Sequence[ConfigSummary]) -> str | None:
    """The name under which these configurations' learning rate varies (``lr`` or
    ``learning_rate``), when it takes at least two numeric values."""
    for name in dict.fromkeys(k for s in summaries for k in s.params):
        if canonical(optimizer, name) != LEARNING_RATE:
            continue
        values = {s.params[name] for s in summaries if _is_number(s.params.get(name))}
        if len(values) >= 2:
            return name
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# ── speed to target ──────────────────────────────────────────────────────────────────────


def reached_epoch(record: TrialRecord, target: Target) -> int | None:
    """The first epoch at which the trial's metrics reach ``target``; None when none does."""
    return next((int(e["epoch"]) for e in record.epochs if target.reached(e)), None)


@dataclass(frozen=True)
class Speed:
    """How fast an optimizer's best configuration reaches the target, over its seeds.

    Attributes:
        optimizer, semantics: the optimizer.
        params: its best configuration (by mean final accuracy).
        seeds: the seeds that configuration ran.
        epochs: per seed, the epoch it first reached the target (None: not reached).
    """

    optimizer: str
    semantics: str
    params: dict[str, Any]
    seeds: tuple[int, ...]
    epochs: dict[int, int | None]

    @property
    def reached(self) -> int:
        return sum(e is not None for e in self.epochs.values())

    @property
    def median_epoch(self) -> float:
        """The median over seeds, a miss counting as not reached (after every reached seed):
        NaN when half or more of the seeds missed."""
        ordered = sorted(e if e is not None else math.inf for e in self.epochs.values())
        if not ordered:
            return math.nan
        median = statistics.median(ordered)
        return median if math.isfinite(median) else math.nan

    def text(self) -> str:
        """``3 of 3 seeds reached, median epoch 2``."""
        n = len(self.epochs)
        head = f"{self.reached} of {n} seed{'s' if n != 1 else ''} reached"
        if math.isnan(self.median_epoch):
            return head
        return f"{head}, median epoch {fmt(self.median_epoch)}"


def best_per_optimizer(
    summaries: Sequence[ConfigSummary],
) -> dict[tuple[str, str], ConfigSummary]:
    """Per (optimizer, semantics), its best configuration: the first of its summaries, which
    `stats.summarize` ranks by mean (one that never completed comes last)."""
    return {group: ranked[0] for group, ranked in _groups(summaries).items()}


def speed_to_target(
    records: Sequence[TrialRecord], summaries: Sequence[ConfigSummary], target: Target
) -> dict[tuple[str, str], Speed]:
    """Per (optimizer, semantics), its best configuration's epoch to ``target`` per seed."""
    by_config: dict[tuple[str, str, str], list[TrialRecord]] = {}
    for r in records:
        by_config.setdefault(config_key(r), []).append(r)
    return {
        (optimizer, semantics): Speed(
            optimizer=optimizer,
            semantics=semantics,
            params=dict(best.params),
            seeds=best.seed_list,
            epochs={r.seed: reached_epoch(r, target) for r in by_config.get(config_key(best), [])},
        )
        for (optimizer, semantics), best in best_per_optimizer(summaries).items()
    }


# ── edge warnings ────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class EdgeWarning:
    """An optimizer's best value of a numeric grid parameter sits at the end of its list.

    Attributes:
        optimizer, semantics: the optimizer.
        name: the parameter as the tables show it.
        best: its value in the best configuration.
        values: the values the grid tried, sorted.
        suggestions: the next values past that end, inside the parameter's valid range
            (empty: the end is the range's own bound).
    """

    optimizer: str
    semantics: str
    name: str
    best: float
    values: tuple[float, ...]
    suggestions: tuple[float, ...]

    def text(self) -> str:
        """One line for the terminal and the report."""
        end = "largest" if self.best == self.values[-1] else "smallest"
        tried = ", ".join(fmt(v) for v in self.values)
        head = (
            f"{self.optimizer}/{self.semantics}: the best {self.name} {fmt(self.best)} is the "
            f"{end} value tried [{tried}]"
        )
        if not self.suggestions:
            return f"{head}; it is the end of the valid range"
        return f"{head}; try {', '.join(fmt(v) for v in self.suggestions)}"


def edge_warnings(
    summaries: Sequence[ConfigSummary], ranged: Collection[tuple[str, str]] = ()
) -> list[EdgeWarning]:
    """Per optimizer, each numeric parameter tried at three or more values whose best value
    (in the best configuration) is the smallest or largest one; two values always have the
    best at an end, so they are not warned about. ``ranged``: (optimizer, name) pairs a
    search samples from a range, whose sampled values are not a list to extend."""
    warnings = []
    for (optimizer, semantics), group in _groups(summaries).items():
        done = [s for s in group if s.accuracy_by_seed]
        if not done:
            continue
        best = done[0]
        for name, value in best.params.items():
            if (optimizer, name) in ranged:
                continue
            values = sorted({s.params[name] for s in group if _is_number(s.params.get(name))})
            if not _is_number(value) or len(values) < 3 or value not in (values[0], values[-1]):
                continue
            info = _param_info(optimizer, name)
            upward = value == values[-1]
            warnings.append(
                EdgeWarning(
                    optimizer=optimizer,
                    semantics=semantics,
                    name=name,
                    best=value,
                    values=tuple(values),
                    suggestions=next_values(values, upward, info),
                )
            )
    return warnings


def _param_info(optimizer: str, name: str) -> Any:
    """The registry's `ParamInfo` of a table's parameter name, or None (schedule values)."""
    found = canonical(optimizer, name)
    return None if found is None else registry.optimizer_info(optimizer).params[found]


def next_values(
    values: Sequence[float], upward: bool, info: Any = None, count: int = 2
) -> tuple[float, ...]:
    """The next ``count`` values past the end of a sorted list, keeping its spacing.

    Toward a bound of the parameter's valid range (``info``: a registry `ParamInfo`), the
    distance to that bound shrinks by the ratio of the last two distances (beta_2 0.95, 0.99
    → 0.998, 0.9996, never 1.0; a learning rate 1e-4, 1e-5 → 1e-6, 1e-7, toward 0). Away
    from any bound: the ratio of the two end values when every value is positive and the list
    is closer to geometric than to even steps, else their difference. Values the range
    refuses are dropped; an integer parameter's are rounded.
    """
    bound = None
    if info is not None:
        bound = info.high if upward else info.low
    if bound is not None:
        distances = [abs(bound - v) for v in values]
        near, far = (distances[-1], distances[-2]) if upward else (distances[0], distances[1])
        if near == 0 or far == 0:
            return ()  # the best is the bound itself
        step = near * (near / far)
        candidates = []
        for _ in range(count):
            step = _round(step)
            candidates.append(bound - step if upward else bound + step)
            step *= near / far
    else:
        candidates = _extend(values, upward, count)
    out: list[float] = []
    for raw in candidates:
        candidate = float(f"{raw:.12g}")  # 1e-6, not 1.0000000000000002e-06
        if info is not None and info.kind == "int":
            candidate = round(candidate)
        if info is not None and info.check(candidate) is not None:
            break
        if candidate in values or candidate in out:
            break  # rounding made no progress
        out.append(candidate)
    return tuple(out)


def _extend(values: Sequence[float], upward: bool, count: int) -> list[float]:
    """``count`` values past the end, by the end ratio (geometric lists) or the end step."""
    a, b = (values[-2], values[-1]) if upward else (values[1], values[0])
    positive = all(v > 0 for v in values)
    geometric = False
    if positive:
        log_ratios = np.diff(np.log(values))
        steps = np.diff(values)
        geometric = bool(np.std(log_ratios) / np.mean(log_ratios) <= np.std(steps) / np.mean(steps))
    out, current = [], float(b)
    for _ in range(count):
        current = current * (b / a) if geometric else current + (b - a)
        out.append(_round(current) if geometric else current)
    return out


def _round(x: float) -> float:
    """Two significant digits: a value to type into a grid (0.33, not 0.333333)."""
    return float(f"{x:.2g}")


# ── across problems ──────────────────────────────────────────────────────────────────────


def performance_profile(
    costs: Mapping[str, Mapping[str, float]], taus: Sequence[float]
) -> dict[str, list[float]]:
    """Dolan and Moré's performance profile: ``costs[problem][solver]`` (epochs to target;
    inf or NaN = not reached); per solver, ρ(τ) = the share of problems on which its cost is
    within a factor τ of the best solver's on that problem. A problem no solver solved counts
    against every solver."""
    solvers = list(dict.fromkeys(s for row in costs.values() for s in row))
    profile = {s: [] for s in solvers}
    for tau in taus:
        for solver in solvers:
            within = 0
            for row in costs.values():
                finite = [c for c in row.values() if math.isfinite(c)]
                cost = row.get(solver, math.inf)
                if finite and math.isfinite(cost) and cost <= tau * min(finite):
                    within += 1
            profile[solver].append(within / len(costs) if costs else math.nan)
    return profile
