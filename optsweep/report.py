"""Results from the study alone: trials.csv, history.csv, table.md, curves/*.png, report.html."""

from __future__ import annotations

import base64
import csv
import html
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import optuna
import yaml
from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from optsweep.config import DataSpec, Target, TrainSpec, dataset_label, target_of
from optsweep.config.schema import meaning_keys
from optsweep.files import folder_lock, replacing
from optsweep.measures import (
    LEARNING_RATE,
    EdgeWarning,
    Speed,
    best_per_optimizer,
    best_so_far,
    canonical,
    edge_warnings,
    lr_sensitivity,
    reached_epoch,
    speed_to_target,
    tuning_cost,
)
from optsweep.painters import Drawing, draw
from optsweep.plots import (
    CURVES,
    plot_curves,
    plot_heatmaps,
    plot_lr_sensitivity,
    plot_mean_curves,
    plot_search,
    plot_sensitivity,
    plot_tuning_cost,
    solver_colours,
)
from optsweep.records import (
    LEADING_COLUMNS,
    METRIC_COLUMNS,
    TrialRecord,
    collect,
    outside_grid,
    ranked,
    resolved_params,
    varying_params,
)
from optsweep.stats import ALPHA, METHOD, ConfigSummary, interval_text, mean_std_text, summarize
from optsweep.values import fmt


def write_trials_csv(
    records: Sequence[TrialRecord], path: Path, target: Target | None = None
) -> None:
    """One row per trial: identity, parameters under their YAML names (a parameter the trial
    left at its optimizer's default holds that default), metrics, and with a ``target`` the
    first epoch that reached it (``reached_at_epoch``, empty when none did)."""
    params = varying_params(records)
    columns = [*LEADING_COLUMNS, *params, *METRIC_COLUMNS]
    if target is not None:
        columns.append("reached_at_epoch")
    if any(r.duplicate_of is not None for r in records):  # a search that repeated a point
        columns.append("duplicate_of")
    with replacing(path) as temporary, temporary.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, restval="")
        writer.writeheader()
        for r in records:
            row = r.row()
            resolved = resolved_params(r.optimizer, r.semantics, r.params, params)
            row.update({name: value for name, (value, _) in resolved.items()})
            if target is not None:
                row["reached_at_epoch"] = reached_epoch(r, target) or ""
            writer.writerow(row)


def write_history_csv(records: Sequence[TrialRecord], path: Path) -> None:
    """Per trial: a row per epoch (kind=epoch) and per kept step (kind=step)."""
    columns = ["trial", "kind", "epoch", "step", "train_loss", "test_loss", "test_accuracy"]
    with replacing(path) as temporary, temporary.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, restval="")
        writer.writeheader()
        for r in records:
            for e in r.epochs:
                writer.writerow({"trial": r.trial, "kind": "epoch", **e})
            for step, loss in zip(r.steps, r.step_losses, strict=True):
                writer.writerow(
                    {"trial": r.trial, "kind": "step", "step": step, "train_loss": loss}
                )


def write_rows_csv(rows: Sequence[dict[str, Any]], columns: Sequence[str], path: Path) -> None:
    """Rows of `optsweep.measures` as a csv file (replaced whole)."""
    with replacing(path) as temporary, temporary.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


TUNING_COST_COLUMNS = ("optimizer", "semantics", "k", "expected_best", "low", "high")
BEST_SO_FAR_COLUMNS = ("optimizer", "semantics", "k", "trial", "score", "best_so_far")
LR_SENSITIVITY_COLUMNS = (
    "optimizer",
    "semantics",
    "learning_rate",
    "mean",
    "std",
    "low",
    "high",
    "seeds",
    "best",
)


class DefaultValue(str):
    """A table cell holding an optimizer's default (not set in the file): Markdown writes it
    in italics, HTML with class ``default``, Rich dimmed."""


def parameter_cells(
    optimizer: str, semantics: str, params: dict[str, Any], names: Sequence[str]
) -> list[str]:
    """The parameter columns of one row: the value given, or the default as `DefaultValue`;
    empty where the optimizer has no such parameter."""
    values = resolved_params(optimizer, semantics, params, names)
    cells: list[str] = []
    for name in names:
        if name not in values:
            cells.append("")
            continue
        value, default = values[name]
        text = "off" if value is None else fmt(value)
        cells.append(DefaultValue(text) if default else text)
    return cells


SECONDS_NOTE = (
    "s/trial: the trial's share of its batch's wall time (the K trials trained together split "
    "it evenly); trials.csv has the batch's seconds and K"
)
DEFAULT_NOTE = "A value in italics (Markdown: _x_) is the optimizer's default, not set in the file"


def table_rows(
    records: Sequence[TrialRecord], target: Target | None = None
) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the ranked table (strings), shared by Markdown, HTML and Rich.

    Every parameter column shows each trial's value, its optimizer's default included (as a
    `DefaultValue`); ``reached`` is the first epoch at ``target`` (– when none).
    """
    params = varying_params(records)
    header = [
        "rank",
        "optimizer",
        "semantics",
        *params,
        "seed",
        "test acc",
        "best acc",
        "test loss",
        "train loss",
        *(["reached"] if target is not None else []),
        "status",
        "s/trial",
    ]
    rows = []
    for rank, r in enumerate(ranked(records), start=1):
        cells = parameter_cells(r.optimizer, r.semantics, r.params, params)
        reached = [] if target is None else [str(reached_epoch(r, target) or "–")]
        rows.append(
            [
                str(rank) if r.status == "complete" else "–",
                r.optimizer,
                r.semantics,
                *cells,
                str(r.seed),
                f"{r.final_test_accuracy:.4f}",
                f"{r.best_test_accuracy:.4f}",
                f"{r.final_test_loss:.4f}",
                f"{r.final_train_loss:.4f}",
                *reached,
                status_text(r),
                f"{r.seconds_per_trial:.2f}",
            ]
        )
    return header, rows


def status_text(record: TrialRecord) -> str:
    """``complete``, ``diverged``, or ``pruned (epoch 1)`` with the epochs it reached; a
    search's repeated point adds ``copy of #N``."""
    text = f"pruned (epoch {len(record.epochs)})" if record.status == "pruned" else record.status
    return text if record.duplicate_of is None else f"{text}, copy of #{record.duplicate_of}"


def repeated(summaries: Sequence[ConfigSummary]) -> bool:
    """Whether some configuration ran with more than one seed (the ± table is worth it)."""
    return any(s.seeds > 1 for s in summaries)


def summary_rows(summaries: Sequence[ConfigSummary]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the over-seeds table: mean ± std, p vs best, and the difference to
    the best with its interval (`stats.difference_interval`): what the seeds can tell."""
    params = list(dict.fromkeys(k for s in summaries for k in s.params))
    header = [
        "rank",
        "optimizer",
        "semantics",
        *params,
        "test acc (mean ± std)",
        "seeds",
        "p vs best",
        f"vs best ({1 - ALPHA:.0%} CI)",
    ]
    rows = []
    for rank, s in enumerate(summaries, start=1):
        done = len(s.accuracy_by_seed)
        others = {k: n for k, n in s.statuses.items() if k != "complete"}
        seeds = f"{done}/{s.seeds}" + "".join(f", {n} {k}" for k, n in others.items())
        rows.append(
            [
                str(rank) if done else "–",
                s.optimizer,
                s.semantics,
                *parameter_cells(s.optimizer, s.semantics, s.params, params),
                mean_std_text(s.mean, s.std),
                seeds,
                "" if rank == 1 else f"{s.p_vs_best:.3g}",
                "best" if rank == 1 else interval_text(s.vs_best),
            ]
        )
    return header, rows


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table's lines; a `DefaultValue` cell in italics."""

    def cell(text: str) -> str:
        return f"_{text}_" if isinstance(text, DefaultValue) else text

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]


def also_holds(others: int) -> str:
    """The line saying how many trials of the study the tables leave out ('' for none)."""
    if not others:
        return ""
    what = "1 trial of a grid point" if others == 1 else f"{others} trials of grid points"
    return f"The study also holds {what} no longer in the file."


# ── the answer: per optimizer, its best configuration, speed and warnings ────────────────


@dataclass(frozen=True)
class Answer:
    """What a results folder says first: each optimizer's best configuration, how fast it
    reaches the target, and the grid's edges worth extending."""

    summaries: list[ConfigSummary]  # each optimizer's best configuration, best first
    speeds: dict[tuple[str, str], Speed]
    warnings: list[EdgeWarning]
    target: Target | None
    unfinished: dict[tuple[str, str], str]  # optimizers without a completed trial: `unfinished`

    def unfinished_lines(self) -> list[str]:
        """``momentum/torch: no completed trial (2 trials, both pruned at epoch 1)``."""
        return [
            f"{optimizer}/{semantics}: no completed trial ({fate})"
            for (optimizer, semantics), fate in self.unfinished.items()
        ]


def _fate(record: TrialRecord) -> str:
    """What became of a trial that did not complete: ``pruned at epoch 1``, ``diverged``…"""
    return f"pruned at epoch {len(record.epochs)}" if record.status == "pruned" else record.status


def unfinished(records: Sequence[TrialRecord]) -> dict[tuple[str, str], str]:
    """Per (optimizer, semantics) without a completed trial, what became of its trials: ``2
    trials, both pruned at epoch 1``, ``3 trials: 2 diverged, 1 pruned at epoch 2``. Such an
    optimizer is never ranked by a trial that did not finish; it is named, not left out."""
    groups: dict[tuple[str, str], list[TrialRecord]] = {}
    for r in records:
        groups.setdefault((r.optimizer, r.semantics), []).append(r)
    found = {}
    for key, group in groups.items():
        if any(r.status == "complete" for r in group):
            continue
        trials: dict[int, TrialRecord] = {}
        for r in group:  # a trial's first record (its first seed) tells its fate
            trials.setdefault(r.trial, r)
        fates = Counter(_fate(r) for r in trials.values())
        n = len(trials)
        if len(fates) == 1:
            (fate,) = fates
            found[key] = (
                f"1 trial, {fate}"
                if n == 1
                else f"{n} trials, " + (f"both {fate}" if n == 2 else f"all {fate}")
            )
        else:
            found[key] = f"{n} trials: " + ", ".join(f"{c} {f}" for f, c in fates.most_common())
    return found


def ranged_names(config: object) -> set[tuple[str, str]]:
    """(optimizer, name) of every grid entry a search samples from a range ``{low, high}``."""
    blocks = config.get("optimizers") if isinstance(config, dict) else None
    return {
        (str(block.get("name")), str(name))
        for block in blocks or []
        if isinstance(block, dict) and isinstance(block.get("grid"), dict)
        for name, entry in block["grid"].items()
        if isinstance(entry, dict)
    }


def answer_of(
    records: Sequence[TrialRecord],
    summaries: Sequence[ConfigSummary],
    target: Target | None,
    config: object = None,
) -> Answer:
    """The `Answer` of a sweep's records (summaries: `stats.summarize` of them; config: the
    stored config, whose search ranges get no edge warning)."""
    best = [s for s in best_per_optimizer(summaries).values() if s.accuracy_by_seed]
    return Answer(
        summaries=best,
        speeds={} if target is None else speed_to_target(records, summaries, target),
        warnings=edge_warnings(summaries, ranged_names(config)),
        target=target,
        unfinished=unfinished(records),
    )


def answer_rows(answer: Answer) -> tuple[list[str], list[list[str]]]:
    """The answer table: per optimizer its best configuration (every parameter it was given,
    defaults where another optimizer's column needs one), mean ± std, the paired test against
    the overall best, and speed to target."""
    params = list(dict.fromkeys(k for s in answer.summaries for k in s.params))
    speed = [f"reached {answer.target.text()}"] if answer.target is not None else []
    header = ["optimizer", "semantics", *params, "test acc (mean ± std)", "seeds", "p vs best"]
    header += speed
    rows = []
    for i, s in enumerate(answer.summaries):
        done = len(s.accuracy_by_seed)
        found = answer.speeds.get((s.optimizer, s.semantics))
        rows.append(
            [
                s.optimizer,
                s.semantics,
                *parameter_cells(s.optimizer, s.semantics, s.params, params),
                mean_std_text(s.mean, s.std),
                f"{done}/{s.seeds}",
                "best" if i == 0 else ("" if math.isnan(s.p_vs_best) else f"{s.p_vs_best:.3g}"),
                *([found.text() if found else "–"] if speed else []),
            ]
        )
    return header, rows


def answer_lines(answer: Answer) -> list[str]:
    """The answer as plain lines for the terminal: one per optimizer, then each warning."""
    lines = []
    for s in answer.summaries:
        values = configuration_text(s.optimizer, s.semantics, s.params)
        line = f"best {s.optimizer}/{s.semantics}: {values} → {mean_std_text(s.mean, s.std)}"
        found = answer.speeds.get((s.optimizer, s.semantics))
        if found is not None and answer.target is not None:
            line += f"; {answer.target.text()}: {found.text()}"
        lines.append(line)
    return lines + answer.unfinished_lines() + [f"warning: {w.text()}" for w in answer.warnings]


def configuration_text(optimizer: str, semantics: str, params: Mapping[str, Any]) -> str:
    """``lr=0.003 beta_1=0.9``: the parameters given, and the learning rate also when it is
    the optimizer's default (``learning_rate=0.001 (default)``), so every line names a rate."""
    names = list(params)
    if not any(canonical(optimizer, n) == LEARNING_RATE for n in names):
        names.append(LEARNING_RATE)
    values = resolved_params(optimizer, semantics, params, names)
    return " ".join(
        f"{name}={fmt(value, none='off')}" + (" (default)" if default else "")
        for name, (value, default) in values.items()
    )


def write_table_md(
    records: Sequence[TrialRecord],
    path: Path,
    title: str,
    summaries: Sequence[ConfigSummary] = (),
    others: int = 0,
    target: Target | None = None,
    config: object = None,
) -> None:
    """The answer first (best per optimizer, warnings), then with repeats the over-seeds
    table, then every trial ranked, best first.

    ``others``: trials of grid points the file no longer has, said in one line.
    """
    lines = [f"# {title}", ""]
    answer = answer_of(records, summaries, target, config)
    if answer.summaries or answer.unfinished:
        lines += ["## Best per optimizer", ""]
        lines += [*markdown_table(*answer_rows(answer)), ""] if answer.summaries else []
        notes = answer.unfinished_lines() + [f"warning: {w.text()}" for w in answer.warnings]
        lines += [f"- {note}" for note in notes] + ([""] if notes else [])
    if repeated(summaries):
        lines += [
            "## Configurations over seeds",
            "",
            *markdown_table(*summary_rows(summaries)),
            "",
            f"Method: {METHOD}.",
            "",
        ]
    lines += ["## Trials", "", *markdown_table(*table_rows(records, target))]
    counts = {s: sum(r.status == s for r in records) for s in {r.status for r in records}}
    lines += [
        "",
        f"{SECONDS_NOTE}. {DEFAULT_NOTE}.",
        "Trials: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) + ".",
        "Ranked by final test accuracy; diverged, pruned and failed trials are listed last, "
        "unranked.",
    ]
    if others:
        lines.append(also_holds(others))
    with replacing(path) as temporary:
        temporary.write_text("\n".join(lines) + "\n")


# The terminal table's columns that carry the answer: never dropped, never cut.
ANSWER_COLUMNS = ("rank", "optimizer", "semantics", "seed", "test acc", "status")
# Dropped, in this order, from a terminal table wider than the terminal (table.md keeps them).
SPARE_COLUMNS = ("s/trial", "train loss", "best acc", "test loss", "reached")
# Never folded into the line above the table, even when every shown row holds the same.
UNFOLDED = ("rank", "test acc")


@dataclass(frozen=True)
class FittedTable:
    """A table cut to a terminal's width: ``folded`` holds ``name value`` of the columns every
    row shares (printed above the table), ``dropped`` the spare columns left out."""

    header: list[str]
    rows: list[list[str]]
    folded: list[str]
    dropped: list[str]


def shown_header(name: str) -> str:
    """A column's header as the terminal shows it: a parameter's name broken after its
    underscores (``learning_`` / ``rate``), so a narrow column folds it there, not mid-word."""
    if name in ANSWER_COLUMNS or name in SPARE_COLUMNS:
        return name
    return name.replace("_", "_\n")


def table_width(header: Sequence[str], rows: Sequence[Sequence[str]]) -> int:
    """Rich's width of the terminal table (`rich_table`): columns two spaces apart, no
    vertical rules or edges."""
    widths = [
        max(
            max(len(line) for line in shown_header(name).split("\n")),
            *(len(str(row[i])) for row in rows),
        )
        for i, name in enumerate(header)
    ]
    return sum(widths) + 2 * (len(widths) - 1)


def fit_table(header: list[str], rows: list[list[str]], width: int) -> FittedTable:
    """Fold the columns every row shares into a line, drop the empty ones, then drop spare
    columns (`SPARE_COLUMNS`, in order) until the table fits ``width``."""
    keep, folded = [], []
    for i, name in enumerate(header):
        values = {str(row[i]) for row in rows}
        if name in UNFOLDED or len(rows) < 2 or len(values) > 1:
            keep.append(i)
        elif values != {""}:
            first = rows[0][i]
            default = " (default)" if isinstance(first, DefaultValue) else ""
            folded.append(f"{name} {first}{default}")
    dropped: list[str] = []
    for spare in SPARE_COLUMNS:
        kept_header = [header[i] for i in keep]
        if table_width(kept_header, [[row[i] for i in keep] for row in rows]) <= width:
            break
        if spare in kept_header:
            keep.remove(header.index(spare))
            dropped.append(spare)
    return FittedTable(
        header=[header[i] for i in keep],
        rows=[[row[i] for i in keep] for row in rows],
        folded=folded,
        dropped=dropped,
    )


def rich_table(
    records: Sequence[TrialRecord],
    limit: int | None = None,
    title: str = "",
    target: Target | None = None,
    width: int = 80,
) -> Group:
    """The ranked table for the terminal (top ``limit`` rows) fitted to ``width``
    (`fit_table`): the columns that carry the answer whole, parameters wrapped where they
    must; what every row shares on a line above it; defaults dimmed."""
    header, rows = table_rows(records, target)
    fitted = fit_table(header, rows[:limit], width)
    notes = []
    if limit is not None and len(rows) > limit:
        notes.append(f"the top {limit} of {len(rows)}; table.md has them all")
    if "s/trial" in fitted.header:
        notes.append(SECONDS_NOTE.split(" (")[0])
    if fitted.dropped:
        notes.append(f"left out to fit: {', '.join(fitted.dropped)} (in table.md)")
    notes.append("dim: default")
    table = Table(
        title=title or None,
        caption="; ".join(notes),
        box=box.SIMPLE_HEAD,  # a rule under the header, none between columns: 3 characters
        show_edge=False,  # fewer a column than boxed, so more columns fit 80 whole
        pad_edge=False,
        collapse_padding=True,
    )
    for name in fitted.header:
        right = name in ("rank", "seed", "s/trial", "reached")
        answer = name in ANSWER_COLUMNS or name in SPARE_COLUMNS
        table.add_column(
            shown_header(name),
            justify="right" if right else "left",
            no_wrap=answer,
            overflow="ellipsis" if answer else "fold",
        )
    for row in fitted.rows:
        table.add_row(*(f"[dim]{c}[/dim]" if isinstance(c, DefaultValue) else c for c in row))
    shared = [Text("every row: " + ", ".join(fitted.folded))] if fitted.folded else []
    return Group(*shared, table)


# The pictures the answer shows, when drawn: the first of each group; the others follow
# the tables.
KEY_PICTURES = (("best_per_optimizer", "test_accuracy"), ("tuning_cost",), ("lr_sensitivity",))


def key_pictures(pictures: Sequence[Path]) -> list[Path]:
    """The pictures the answer shows (`KEY_PICTURES`), in order."""
    by_name = {p.stem: p for p in pictures}
    chosen = [next((by_name[n] for n in group if n in by_name), None) for group in KEY_PICTURES]
    return [p for p in chosen if p is not None]


def setting_line(config: object, target: Target | None) -> str:
    """``mnist · mlp · 4 epochs · batch 128 · seeds 0, 1 · target test_accuracy ≥ 0.95``, with
    the data protocol and model options the file sets (``normalize=unit``, ``mlp (init=keras)``)."""
    if not isinstance(config, dict):
        return ""
    model = config.get("model", "mlp")
    train = config.get("train") or {}
    if isinstance(model, dict):  # {name: mlp, init: keras} → mlp (init=keras)
        options = ", ".join(f"{k}={fmt(v)}" for k, v in model.items() if k != "name")
        model = f"{model.get('name')} ({options})" if options else model.get("name")
    data = config.get("data") or {}
    parts = [
        dataset_label(config.get("dataset")),
        *(f"{k}={fmt(v)}" for k, v in data.items() if k in meaning_keys(DataSpec)),
        str(model),
        f"{train.get('epochs', TrainSpec.epochs)} epochs",
        f"batch {train.get('batch_size', TrainSpec.batch_size)}",
        "seeds " + ", ".join(str(s) for s in train.get("seeds", TrainSpec.seeds)),
    ]
    if target is not None:
        parts.append(f"target {target.text()}")
    return " · ".join(parts)


def draw_pictures(
    study: optuna.Study,
    records: Sequence[TrialRecord],
    summaries: Sequence[ConfigSummary],
    folder: Path,
    measures: Mapping[str, list[dict[str, Any]]],
) -> list[Path]:
    """Every picture of the results folder, in the order the HTML report shows them."""
    for old in folder.glob("*.png"):  # a picture that no longer applies must not linger
        old.unlink(missing_ok=True)
    colours = solver_colours(records)  # an optimizer keeps its colour in every picture
    search = study.user_attrs.get("mode") == "search"
    cost = measures["best_so_far"] if search else measures["tuning_cost"]
    sensitivity = measures["lr_sensitivity"]
    shown: list[Drawing] = [  # in the report's order
        *(partial(plot_curves, records, folder, colours, [name]) for name in CURVES),
        partial(one, plot_tuning_cost, cost, folder / "tuning_cost.png", search, colours),
        partial(one, plot_lr_sensitivity, sensitivity, folder / "lr_sensitivity.png", colours),
    ]
    if repeated(summaries):
        mean_curves = folder / "mean_test_accuracy.png"
        shown.append(partial(one, plot_mean_curves, summaries, mean_curves))
    shown += [
        partial(plot_heatmaps, summaries, folder),
        partial(one, plot_sensitivity, summaries, folder / "sensitivity.png"),
    ]
    if search:
        shown.append(partial(plot_search, study.trials, study.direction, folder))
    # the heatmaps (one drawing for every optimizer's) and the search's importances (computed)
    # handed out first: on the 160-point grid, drawings of 0.10-0.30 s, its heatmap 0.26 s
    order = sorted(
        range(len(shown)), key=lambda i: shown[i].func not in (plot_heatmaps, plot_search)
    )
    drawn = dict(zip(order, draw([shown[i] for i in order]), strict=True))
    pictures = [p for i in range(len(shown)) for p in drawn[i]]
    return [p for p in pictures if p is not None]


def one(plot: Callable[..., Path | None], *args: Any) -> list[Path | None]:
    """A plot that draws one picture as a drawing (`painters.Drawing`)."""
    return [plot(*args)]


def html_table(header: list[str], rows: list[list[str]], css: str) -> str:
    """A ``<table class=css>``, cells escaped; a `DefaultValue` cell gets class ``default``."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)

    def cell(text: str) -> str:
        css = " class=default" if isinstance(text, DefaultValue) else ""
        return f"<td{css}>{html.escape(text)}</td>"

    body = "".join("<tr>" + "".join(cell(c) for c in row) + "</tr>" for row in rows)
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def figure_html(picture: Path) -> str:
    """A PNG embedded in the page (base64), captioned with its name."""
    data = base64.b64encode(picture.read_bytes()).decode("ascii")
    return (
        f'<figure class="{picture.stem}"><img alt="{picture.stem}" '
        f'src="data:image/png;base64,{data}">'
        f"<figcaption>{picture.stem}</figcaption></figure>"
    )


# The pages' style (report.html, compare.html): compact tables, sortable headers, defaults in
# italics, the key pictures side by side.
STYLE = (
    "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;"
    "font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}"
    "th{cursor:pointer;background:#f4f4f4}td.default{font-style:italic;color:#777}"
    "img{max-width:100%}.note{font-size:12px;color:#555}.warnings{color:#a40}"
    "summary h2{display:inline}details{margin:1em 0}input.filter{margin:4px 0;width:20em}"
    ".key{display:flex;flex-wrap:wrap;gap:8px}.key figure{margin:0;flex:1 1 30%;"
    "min-width:320px}.key figure.best_per_optimizer{flex-basis:100%;max-width:1100px}"
)

FOLD_ROWS = 30  # a longer table starts folded: the answer and pictures come first

# Sorting (click a header; again: reverse) and filtering (rows containing every word typed)
# of the report's tables, a few lines with no library and no network.
TABLE_SCRIPT = """
document.querySelectorAll("table.sortable").forEach(table => {
  const body = table.tBodies[0];
  const filter = table.parentElement.querySelector("input.filter");
  if (filter) filter.addEventListener("input", () => {
    const words = filter.value.toLowerCase().split(/\\s+/).filter(Boolean);
    for (const row of body.rows)
      row.hidden = !words.every(w => row.textContent.toLowerCase().includes(w));
  });
  table.tHead.querySelectorAll("th").forEach((th, column) => {
    th.addEventListener("click", () => {
      const up = th.dataset.order !== "up";
      table.tHead.querySelectorAll("th").forEach(h => delete h.dataset.order);
      th.dataset.order = up ? "up" : "down";
      const key = row => {
        const text = row.cells[column].textContent.trim();
        const number = parseFloat(text);
        return isNaN(number) ? text : number;
      };
      const rows = [...body.rows].sort((a, b) => {
        const x = key(a), y = key(b);
        const order = typeof x === typeof y ? (x < y ? -1 : x > y ? 1 : 0)
          : (typeof x === "number" ? -1 : 1);
        return up ? order : -order;
      });
      body.append(...rows);
    });
  });
});
"""


def _folded(title: str, table: str, rows: int) -> str:
    """A table with a filter box, in a ``<details>`` folded when longer than `FOLD_ROWS`."""
    state = "" if rows > FOLD_ROWS else " open"
    return (
        f"<details{state}><summary><h2>{html.escape(title)} ({rows} rows)</h2></summary>"
        '<input class=filter placeholder="filter rows: words they contain">'
        f"{table}</details>"
    )


def write_html(
    path: Path,
    title: str,
    records: Sequence[TrialRecord],
    summaries: Sequence[ConfigSummary],
    pictures: Sequence[Path],
    config: object,
    others: int = 0,
    target: Target | None = None,
) -> None:
    """``report.html``: one self-contained page (images embedded, no network) that answers
    first — best per optimizer, warnings, the key pictures — then the full tables."""
    parts = [f"<h1>{html.escape(title)}</h1>"]
    counts = {s: sum(r.status == s for r in records) for s in {r.status for r in records}}
    parts.append(
        "<p>" + html.escape(", ".join(f"{n} {s}" for s, n in sorted(counts.items()))) + "</p>"
    )
    if setting_line(config, target):
        parts.append(f"<p>{html.escape(setting_line(config, target))}</p>")
    if others:
        parts.append(f"<p class=note>{html.escape(also_holds(others))}</p>")
    answer = answer_of(records, summaries, target, config)
    if answer.summaries:
        parts += ["<h2>Best per optimizer</h2>", html_table(*answer_rows(answer), "answer")]
        parts.append(
            "<p class=note>p vs best: two-sided paired t-test over shared seeds against the "
            f"best configuration. {html.escape(DEFAULT_NOTE)}.</p>"
        )
    if answer.unfinished and not answer.summaries:
        parts.append("<h2>Best per optimizer</h2>")
    if answer.unfinished:
        items = "".join(f"<li>{html.escape(line)}</li>" for line in answer.unfinished_lines())
        parts.append(f"<ul class=unfinished>{items}</ul>")
    if answer.warnings:
        items = "".join(f"<li>{html.escape(w.text())}</li>" for w in answer.warnings)
        parts.append(f"<ul class=warnings>{items}</ul>")
    key = key_pictures(pictures)
    if key:
        parts.append("<div class=key>" + "".join(figure_html(p) for p in key) + "</div>")
    if repeated(summaries):
        header, rows = summary_rows(summaries)
        parts.append(
            _folded(
                "Configurations over seeds",
                html_table(header, rows, "summary sortable"),
                len(rows),
            )
        )
        parts.append(f"<p class=note>Method: {html.escape(METHOD)}.</p>")
    header, rows = table_rows(records, target)
    parts.append(
        _folded("Trials, best first", html_table(header, rows, "trials sortable"), len(rows))
    )
    parts.append(f"<p class=note>{html.escape(SECONDS_NOTE)}. Click a header to sort.</p>")
    rest = [p for p in pictures if p not in key]
    if rest:
        parts += ["<h2>More pictures</h2>", *(figure_html(p) for p in rest)]
    text = yaml.safe_dump(config, sort_keys=False) if config else "(not stored)"
    parts += ["<h2>Resolved config</h2>", f"<pre>{html.escape(text)}</pre>"]
    with replacing(path) as temporary:
        temporary.write_text(
            f"<!doctype html><html><head><meta charset=utf-8><title>"
            f"{html.escape(title)}</title><style>{STYLE}</style></head><body>"
            + "\n".join(parts)
            + f"<script>{TABLE_SCRIPT}</script></body></html>\n"
        )


def write_results(
    study: optuna.Study, folder: Path, title: str, target: Target | None = None
) -> list[TrialRecord]:
    """Every derived file of the results folder, rebuilt from the study alone.

    ``target``: speed to target's target; default: the stored config's ``report.target``
    (read afresh each time: it never changes a trial).

    Under the folder's lock (`folder_lock`), from reading the study to the last file: several
    workers finishing one sweep write the folder one after the other, and the last one's
    reading of the study is the folder's, whole.
    """
    with folder_lock(folder):
        records = collect(study)
        others = outside_grid(study)
        summaries = summarize(records)
        config = study.user_attrs.get("config")
        if target is None and isinstance(config, dict):
            target = target_of(config)
        search = study.user_attrs.get("mode") == "search"
        measures = {
            "tuning_cost": [] if search else tuning_cost(summaries),
            "best_so_far": best_so_far(records) if search else [],
            "lr_sensitivity": lr_sensitivity(summaries),
        }
        write_trials_csv(records, folder / "trials.csv", target)
        write_history_csv(records, folder / "history.csv")
        (folder / ("tuning_cost.csv" if search else "best_so_far.csv")).unlink(missing_ok=True)
        if search:
            write_rows_csv(measures["best_so_far"], BEST_SO_FAR_COLUMNS, folder / "best_so_far.csv")
        else:
            write_rows_csv(measures["tuning_cost"], TUNING_COST_COLUMNS, folder / "tuning_cost.csv")
        write_rows_csv(
            measures["lr_sensitivity"], LR_SENSITIVITY_COLUMNS, folder / "lr_sensitivity.csv"
        )
        write_table_md(records, folder / "table.md", title, summaries, others, target, config)
        pictures = draw_pictures(study, records, summaries, folder / "curves", measures)
        write_html(
            folder / "report.html", title, records, summaries, pictures, config, others, target
        )
    return records
