"""Across problems: several results folders (one problem each) compared in one place.

The AlgoPerf / Crowded Valley view of a benchmark: per problem each optimizer's best
configuration over seeds, the rank of each optimizer on each problem and its mean rank, a
performance profile over epochs to target (Dolan and Moré, 2002), and the tuning cost of each
optimizer on each problem side by side.

Data first (`load_problems`, `best_rows`, `rank_rows`, `costs_of`, `profile_rows`,
`tuning_curves`: plain records and rows, tested without pixels), drawn second
(`plot_profile`, `plot_tuning_curves`), written last (`write_comparison`: compare.html,
compare.md, best.csv, profile.csv, curves/*.png).
"""

from __future__ import annotations

import csv
import dataclasses
import html
import json
import math
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.table import Table

from optsweep.config import Target, TrainSpec, dataset_label, target_of
from optsweep.files import folder_lock, replacing
from optsweep.measures import (
    Speed,
    best_per_optimizer,
    best_so_far,
    performance_profile,
    speed_to_target,
    tuning_cost,
)
from optsweep.plots import pyplot, rows_by_optimizer, save_figure
from optsweep.records import TrialRecord, collect
from optsweep.report import (
    STYLE,
    configuration_text,
    figure_html,
    html_table,
    markdown_table,
    unfinished,
)
from optsweep.stats import ConfigSummary, mean_std_text, summarize
from optsweep.study import load_study, sqlite_url

METHOD = (
    "best configuration of an optimizer (optimizer, semantics) on a problem: the highest mean "
    "final test accuracy over seeds; rank 1 = the best optimizer on that problem, ties share "
    "the mean of their places, an optimizer with no completed trial ranks last; mean rank: "
    "over the problems the optimizer ran on. Performance profile (Dolan and Moré, 2002): the "
    "cost of an optimizer on a problem is the median over its best configuration's seeds of "
    "the first epoch reaching the problem's target (a seed that misses counts as later than "
    "every seed that reached; half or more missing: not reached, cost ∞); ρ(τ) is the share "
    "of problems on which its cost is at most τ times the best optimizer's there"
)


class CompareError(ValueError):
    """Folders that cannot be compared; the message is one line naming them."""


# ── the problems ────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class Problem:
    """One results folder, read back from its study.

    Attributes:
        folder: the results folder as given.
        label: how tables name it: ``dataset model``, or the folder when two share those.
        dataset, model, epochs, target: from the study's stored config.
        search: whether the study is a search (else a grid).
        records, summaries: its trials (`records.collect`) and configurations over seeds.
    """

    folder: Path
    label: str
    dataset: str
    model: str
    epochs: int
    target: Target
    search: bool
    records: list[TrialRecord]
    summaries: list[ConfigSummary]


def problem_of(
    folder: Path, config: Mapping[str, Any], mode: str | None, records: list[TrialRecord]
) -> Problem:
    """A `Problem` from a study's stored config, mode and records (labelled ``dataset model``)."""
    dataset, model = dataset_label(config.get("dataset")), str(config.get("model", "?"))
    return Problem(
        folder=folder,
        label=f"{dataset} {model}",
        dataset=dataset,
        model=model,
        epochs=int((config.get("train") or {}).get("epochs", TrainSpec.epochs)),
        target=target_of(config),
        search=mode == "search",
        records=records,
        summaries=summarize(records),
    )


def read_problem(folder: Path) -> Problem:
    """The problem of a results folder holding a ``study.db`` with optsweep's config.

    Raises:
        StorageError: the database holds no study, or several.
        CompareError: the study holds no optsweep config.
    """
    study = load_study(sqlite_url(folder), None)
    config = study.user_attrs.get("config")
    if not isinstance(config, dict):
        raise CompareError(f"{folder}: its study holds no optsweep config")
    return problem_of(folder, config, study.user_attrs.get("mode"), collect(study))


def labelled(problems: Sequence[Problem]) -> list[Problem]:
    """Problems sharing dataset and model are named by their folder instead (its name, or the
    whole path as given when two names are the same too)."""
    keys = [p.label for p in problems]
    names = [p.folder.name for p in problems]
    out = []
    for p in problems:
        if keys.count(p.label) == 1:
            out.append(p)
        else:
            name = p.folder.name if names.count(p.folder.name) == 1 else str(p.folder)
            out.append(dataclasses.replace(p, label=name))
    return out


def check_folders(folders: Sequence[Path]) -> None:
    """Refuse, in one line, fewer than two folders, a folder given twice, or folders
    without a study.db (before any study is opened).

    Raises:
        CompareError: what is wrong, naming the folders.
    """
    if len(folders) < 2:
        given = ", ".join(map(str, folders)) or "none"
        raise CompareError(
            f"compare needs two or more results folders, got {len(folders)}: {given}"
        )
    seen: dict[Path, Path] = {}
    for folder in folders:
        same = seen.setdefault(folder.resolve(), folder)
        if same is not folder:
            raise CompareError(f"{same} and {folder} are the same folder: give each once")
    missing = [str(f) for f in folders if not (f / "study.db").is_file()]
    if missing:
        raise CompareError(
            f"no study.db in {', '.join(missing)}: compare reads the study of each results "
            "folder (optsweep run or search writes it)"
        )


def check_comparable(problems: Sequence[Problem]) -> None:
    """Refuse, in one line, problems read to different target metrics or trained for different
    numbers of epochs (different datasets and models are what a comparison is for).

    Raises:
        CompareError: the setting, then each folder with its value.
    """
    for what, value in (
        ("target metrics (report.target)", lambda p: p.target.metric),
        ("numbers of epochs (train.epochs)", lambda p: p.epochs),
    ):
        if len({value(p) for p in problems}) > 1:
            each = ", ".join(f"{p.folder} {value(p)}" for p in problems)
            raise CompareError(f"cannot compare different {what}: {each}")


def load_problems(folders: Sequence[Path], target: Target | None = None) -> list[Problem]:
    """The problems of several results folders, checked comparable and labelled; ``target``
    (``compare --target``) replaces every problem's own.

    Raises:
        CompareError: see `check_folders`, `check_comparable`, `read_problem`.
        StorageError: a study.db holding no study, or several.
    """
    check_folders(folders)
    problems = [read_problem(f) for f in folders]
    if target is not None:
        problems = [dataclasses.replace(p, target=target) for p in problems]
    check_comparable(problems)
    return labelled(problems)


# ── best configurations and ranks ───────────────────────────────────────────────────────


@dataclass(frozen=True)
class Best:
    """An optimizer's best configuration on one problem.

    Attributes:
        problem: the problem's label.
        optimizer, semantics: the optimizer.
        params: its best configuration.
        mean, std: final test accuracy over the seeds that completed (NaN: none; std NaN with
            one seed).
        seeds: how many seeds completed.
        rank: among the optimizers on this problem (1 = best; ties share the mean place; one
            without a completed trial shares the last place).
        speed: its epochs to the problem's target.
        unfinished: what became of its trials when none completed (`report.unfinished`):
            it has no configuration to show, and its place is the last for that reason.
    """

    problem: str
    optimizer: str
    semantics: str
    params: dict[str, Any]
    mean: float
    std: float
    seeds: int
    rank: float
    speed: Speed
    unfinished: str | None = None

    @property
    def solver(self) -> str:
        """``adam/torch``."""
        return f"{self.optimizer}/{self.semantics}"


def ranks(scores: Sequence[float]) -> list[float]:
    """Places of ``scores``, 1 = the highest; ties share the mean of their places; NaN (no
    completed trial) after every number, tied among themselves."""
    keys = [math.inf if math.isnan(s) else -s for s in scores]
    ordered = sorted(keys)
    return [ordered.index(k) + (ordered.count(k) + 1) / 2 for k in keys]


def best_of(problem: Problem) -> list[Best]:
    """Per optimizer on one problem, its best configuration (`measures.best_per_optimizer`),
    ranked against the others."""
    firsts = best_per_optimizer(problem.summaries)
    speeds = speed_to_target(problem.records, problem.summaries, problem.target)
    fates = unfinished(problem.records)
    places = ranks([s.mean for s in firsts.values()])
    return [
        Best(
            problem=problem.label,
            optimizer=s.optimizer,
            semantics=s.semantics,
            params={} if key in fates else dict(s.params),
            mean=s.mean,
            std=s.std,
            seeds=len(s.accuracy_by_seed),
            rank=place,
            speed=speeds[key],
            unfinished=fates.get(key),
        )
        for (key, s), place in zip(firsts.items(), places, strict=True)
    ]


def best_rows(problems: Sequence[Problem]) -> list[Best]:
    """Every problem's `best_of`, problem by problem, each best first."""
    return [b for p in problems for b in sorted(best_of(p), key=lambda b: b.rank)]


def solvers_of(best: Sequence[Best]) -> list[str]:
    """The optimizers (``adam/torch``), in first-seen order."""
    return list(dict.fromkeys(b.solver for b in best))


def by_mean_rank(best: Sequence[Best]) -> list[str]:
    """The optimizers, the lowest mean rank first (legends list them so)."""
    return [r["optimizer"] for r in rank_rows(best)]


def rank_rows(best: Sequence[Best]) -> list[dict[str, Any]]:
    """Per optimizer: its rank on each problem (absent: not run there) and its mean rank over
    the problems it ran on; the lowest mean rank first."""
    rows = []
    for solver in solvers_of(best):
        mine = {b.problem: b.rank for b in best if b.solver == solver}
        rows.append(
            {"optimizer": solver, "ranks": mine, "mean_rank": sum(mine.values()) / len(mine)}
        )
    return sorted(rows, key=lambda r: r["mean_rank"])


# ── performance profile over epochs to target ───────────────────────────────────────────


def costs_of(best: Sequence[Best]) -> dict[str, dict[str, float]]:
    """``costs[problem][optimizer]``: the median epoch to target of its best configuration,
    inf when not reached."""
    costs: dict[str, dict[str, float]] = {}
    for b in best:
        epoch = b.speed.median_epoch
        costs.setdefault(b.problem, {})[b.solver] = math.inf if math.isnan(epoch) else epoch
    return costs


def profile_taus(costs: Mapping[str, Mapping[str, float]]) -> list[float]:
    """Where ρ(τ) may step: 1, every finite ratio to a problem's best cost, and twice the
    largest (the picture's right end)."""
    ratios = {1.0}
    for row in costs.values():
        finite = [c for c in row.values() if math.isfinite(c)]
        ratios.update(c / min(finite) for c in finite)
    return sorted(ratios | {2 * max(ratios)})


def profile_rows(costs: Mapping[str, Mapping[str, float]]) -> list[dict[str, Any]]:
    """profile.csv: per optimizer and τ of `profile_taus`, ρ(τ)."""
    taus = profile_taus(costs)
    return [
        {"optimizer": solver, "tau": tau, "rho": rho}
        for solver, values in performance_profile(costs, taus).items()
        for tau, rho in zip(taus, values, strict=True)
    ]


# ── tuning cost per problem ─────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class TuningCurve:
    """An optimizer's tuning cost on one problem: best accuracy against configurations tried.

    Attributes:
        optimizer: ``adam/torch``.
        k: configurations tried, 1..N.
        best: a grid's expected best of k (`measures.tuning_cost`), or a search's best of its
            first k trials (`measures.best_so_far`).
        low, high: a grid's 90% bootstrap band (empty for a search).
    """

    optimizer: str
    k: list[int]
    best: list[float]
    low: list[float]
    high: list[float]


def tuning_curves(problem: Problem) -> list[TuningCurve]:
    """Per optimizer, its `TuningCurve` on the problem (grid or search)."""
    rows = best_so_far(problem.records) if problem.search else tuning_cost(problem.summaries)
    by = rows_by_optimizer(rows)
    value = "best_so_far" if problem.search else "expected_best"
    return [
        TuningCurve(
            optimizer=solver,
            k=[r["k"] for r in group],
            best=[r[value] for r in group],
            low=[] if problem.search else [r["low"] for r in group],
            high=[] if problem.search else [r["high"] for r in group],
        )
        for solver, group in by.items()
    ]


# ── drawing ─────────────────────────────────────────────────────────────────────────────


def colours(solvers: Sequence[str]) -> dict[str, Any]:
    """One colour per optimizer, the same in every picture (tab10, tab20 past ten)."""
    cmap = pyplot().get_cmap("tab10" if len(solvers) <= 10 else "tab20")
    return {s: cmap(i % cmap.N) for i, s in enumerate(solvers)}


def plot_profile(
    costs: Mapping[str, Mapping[str, float]],
    solvers: Sequence[str],
    targets: Mapping[str, Target],
    path: Path,
    note: str | None = None,
) -> Path:
    """ρ(τ) step curves, τ on a log2 axis from 1 to twice the largest finite ratio; the
    title says each problem's target."""
    from matplotlib.ticker import FuncFormatter

    taus = profile_taus(costs)
    profile = performance_profile(costs, taus)
    plt, colour = pyplot(), colours(solvers)
    fig, ax = plt.subplots(figsize=(8, 5))
    # optimizers often share a curve: each one shifted a little (at most ±0.03) so all show
    shift = min(0.012, 0.06 / max(1, len(solvers) - 1))
    for i, solver in enumerate(solvers):
        offset = (i - (len(solvers) - 1) / 2) * shift
        rho = [r + offset for r in profile[solver]]
        ax.step(taus, rho, where="post", lw=1.6, color=colour[solver], label=solver)
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    ax.set_xlim(1, taus[-1])
    ax.set_ylim(-0.05, 1.05)
    ax.set(
        xlabel="τ (epochs to target / the best optimizer's on that problem)",
        ylabel="ρ(τ): share of problems within τ",
    )
    fig.suptitle(f"Performance profile over epochs to target, {len(costs)} problems", fontsize=11)
    # lines break between targets, never inside one (textwrap breaks at ASCII spaces only)
    each = [f"{label} {t.text()}".replace(" ", "\u00a0") for label, t in targets.items()]
    ax.set_title(textwrap.fill("targets: " + "; ".join(each), 100), fontsize=8)
    ax.grid(alpha=0.3)
    if note:  # a flat profile is an answer only with its reason on it
        ax.text(0.5, 0.5, textwrap.fill(note, 60), transform=ax.transAxes, ha="center", fontsize=9)
    ax.legend(fontsize=7, loc="lower right", title="(shifted apart to show ties)", title_fontsize=6)
    return save_figure(fig, path, layout="tight")


def plot_tuning_curves(problems: Sequence[Problem], solvers: Sequence[str], path: Path) -> Path:
    """One panel per problem: each optimizer's tuning cost (a band for grids); one legend."""
    from matplotlib.ticker import MaxNLocator

    plt, colour = pyplot(), colours(solvers)
    fig, axes = plt.subplots(
        1,
        len(problems),
        figsize=(4.2 * len(problems) + 1.6, 4.2),
        squeeze=False,
        layout="constrained",
    )
    handles: dict[str, Any] = {}
    for ax, problem in zip(axes[0], problems, strict=True):
        curves = tuning_curves(problem)
        for curve in curves:
            c = colour[curve.optimizer]
            if problem.search:  # as plots.plot_tuning_cost draws one folder's
                (line,) = ax.step(curve.k, curve.best, where="post", color=c)
            else:
                (line,) = ax.plot(curve.k, curve.best, marker="o", ms=3, color=c)
                ax.fill_between(curve.k, curve.low, curve.high, color=c, alpha=0.12)
            handles.setdefault(curve.optimizer, line)
        if max((k for c in curves for k in c.k), default=0) > 20:
            ax.set_xscale("log")
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        kind = "best so far (search)" if problem.search else "expected best of k (grid, 5–95% band)"
        ax.set(xlabel="configurations tried (k)", title=f"{problem.label}: {kind}")
        ax.title.set_fontsize(9)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("final test accuracy")
    shown = [s for s in solvers if s in handles]
    fig.legend([handles[s] for s in shown], shown, fontsize=7, loc="outside right upper")
    fig.suptitle("Tuning cost: the best final test accuracy after k configurations", fontsize=10)
    return save_figure(fig, path, layout="as is")


# ── tables and files ────────────────────────────────────────────────────────────────────


def fmt_rank(rank: float) -> str:
    """``2`` or ``2.5``."""
    return f"{rank:g}"


def rank_table(
    best: Sequence[Best], problems: Sequence[Problem]
) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the rank table: optimizers × problems, then the mean rank."""
    header = ["optimizer", *(p.label for p in problems), "mean rank"]
    rows = [
        [
            r["optimizer"],
            *(fmt_rank(r["ranks"][p.label]) if p.label in r["ranks"] else "–" for p in problems),
            f"{r['mean_rank']:.2f}",
        ]
        for r in rank_rows(best)
    ]
    return header, rows


def problem_table(problems: Sequence[Problem]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the problems: label, folder, data, epochs, target, kind, trials."""
    header = ["problem", "folder", "dataset", "model", "epochs", "target", "kind", "trials"]
    rows = [
        [
            p.label,
            str(p.folder),
            p.dataset,
            p.model,
            str(p.epochs),
            p.target.text(),
            "search" if p.search else "grid",
            str(len({r.trial for r in p.records})),
        ]
        for p in problems
    ]
    return header, rows


def best_table(best: Sequence[Best]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of one problem's best configurations, best first."""
    header = [
        "rank",
        "optimizer",
        "best configuration",
        "test acc (mean ± std)",
        "seeds",
        "to target",
    ]
    rows = [
        [
            fmt_rank(b.rank),
            b.solver,
            configuration_text(b.optimizer, b.semantics, b.params)
            if b.unfinished is None
            else f"no completed trial ({b.unfinished})",
            mean_std_text(b.mean, b.std),
            str(b.seeds),
            b.speed.text(),
        ]
        for b in best
    ]
    return header, rows


def unreached_note(best: Sequence[Best]) -> str | None:
    """What the profile cannot show: problems on which no optimizer reached the target (its
    curves then stay at ρ = 0 there), with what to do; None when every problem has one."""
    costs = costs_of(best)
    missed = [problem for problem, by in costs.items() if all(math.isinf(c) for c in by.values())]
    if not missed:
        return None
    where = "any problem" if len(missed) == len(costs) else ", ".join(missed)
    return (
        f"No optimizer reached its target on {where}, so the profile stays at ρ = 0 there; "
        "give a lower one with --target (e.g. --target 0.9) to compare speed."
    )


def headline(best: Sequence[Best], problems: Sequence[Problem]) -> str:
    """The answer in one sentence: the lowest mean rank."""
    top = rank_rows(best)[0]
    return (
        f"Lowest mean rank over {len(problems)} problems: {top['optimizer']} "
        f"({top['mean_rank']:.2f})."
    )


def write_best_csv(best: Sequence[Best], path: Path) -> None:
    """best.csv: per problem and optimizer its best configuration (params as JSON)."""
    columns = ["problem", "optimizer", "semantics", "params", "mean", "std", "seeds", "rank"]
    columns.append("median_epoch_to_target")
    with replacing(path) as temporary, temporary.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for b in best:
            writer.writerow(
                {
                    "problem": b.problem,
                    "optimizer": b.optimizer,
                    "semantics": b.semantics,
                    "params": json.dumps(b.params),
                    "mean": b.mean,
                    "std": b.std,
                    "seeds": b.seeds,
                    "rank": b.rank,
                    "median_epoch_to_target": b.speed.median_epoch,
                }
            )


def write_profile_csv(costs: Mapping[str, Mapping[str, float]], path: Path) -> None:
    """profile.csv: optimizer, tau, rho."""
    with replacing(path) as temporary, temporary.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["optimizer", "tau", "rho"])
        writer.writeheader()
        writer.writerows(profile_rows(costs))


def write_markdown(
    best: Sequence[Best], problems: Sequence[Problem], pictures: Sequence[Path], path: Path
) -> None:
    """compare.md: the answer, the rank table, the problems, each problem's best, pictures."""
    lines = ["# Comparison across problems", "", headline(best, problems), ""]
    note = unreached_note(best)
    lines += [f"Note: {note}", ""] if note else []
    lines += ["## Ranks", ""]
    lines += [*markdown_table(*rank_table(best, problems)), "", "## Problems", ""]
    lines += markdown_table(*problem_table(problems))
    for p in problems:
        lines += ["", f"## {p.label}: best configuration per optimizer", ""]
        lines += markdown_table(*best_table([b for b in best if b.problem == p.label]))
    lines.append("")
    lines += [f"![{pic.stem}]({pic.relative_to(path.parent)})" for pic in pictures]
    lines += ["", f"Method: {METHOD}."]
    with replacing(path) as temporary:
        temporary.write_text("\n".join(lines) + "\n")


def write_html(
    best: Sequence[Best], problems: Sequence[Problem], pictures: Sequence[Path], path: Path
) -> None:
    """compare.html: one self-contained page, the answer first (rank table, profile)."""

    profile, *others = pictures
    parts = [
        "<h1>Comparison across problems</h1>",
        f"<p>{html.escape(headline(best, problems))}</p>",
        "<h2>Ranks</h2>",
        html_table(*rank_table(best, problems), "ranks"),
        *([f"<p class=warnings>{html.escape(note)}</p>"] if (note := unreached_note(best)) else []),
        figure_html(profile),
        "<h2>Problems</h2>",
        html_table(*problem_table(problems), "problems"),
    ]
    for p in problems:
        parts.append(f"<h2>{html.escape(p.label)}: best configuration per optimizer</h2>")
        parts.append(html_table(*best_table([b for b in best if b.problem == p.label]), "best"))
    parts += ["<h2>Tuning cost</h2>", *map(figure_html, others)]
    parts.append(f"<p class=note>Method: {html.escape(METHOD)}.</p>")
    with replacing(path) as temporary:
        temporary.write_text(
            "<!doctype html><html><head><meta charset=utf-8><title>Comparison across problems"
            f"</title><style>{STYLE}</style></head><body>" + "\n".join(parts) + "</body></html>\n"
        )


def write_comparison(problems: Sequence[Problem], out: Path) -> list[Best]:
    """Every file of the comparison folder ``out``, under its lock; returns the best rows."""
    best = best_rows(problems)
    costs, solvers = costs_of(best), by_mean_rank(best)
    targets = {p.label: p.target for p in problems}
    with folder_lock(out):
        curves = out / "curves"
        curves.mkdir(exist_ok=True)
        pictures = [
            plot_profile(
                costs, solvers, targets, curves / "performance_profile.png", unreached_note(best)
            ),
            plot_tuning_curves(problems, solvers, curves / "tuning_cost.png"),
        ]
        write_best_csv(best, out / "best.csv")
        write_profile_csv(costs, out / "profile.csv")
        write_markdown(best, problems, pictures, out / "compare.md")
        write_html(best, problems, pictures, out / "compare.html")
    return best


def rich_rank_table(best: Sequence[Best], problems: Sequence[Problem]) -> Table:
    """The rank table for the terminal."""
    header, rows = rank_table(best, problems)
    table = Table(title=headline(best, problems))
    for i, name in enumerate(header):
        table.add_column(name, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    return table
