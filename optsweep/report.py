"""Results from the study alone: trials.csv, history.csv, table.md, curves/*.png, report.html."""

from __future__ import annotations

import base64
import csv
import html
from collections.abc import Sequence
from pathlib import Path

import optuna
import yaml
from rich.table import Table

from optsweep.config import fmt
from optsweep.files import folder_lock, replacing
from optsweep.measures import tuning_cost
from optsweep.plots import (
    plot_curves,
    plot_heatmaps,
    plot_mean_curves,
    plot_search,
    plot_sensitivity,
)
from optsweep.records import (
    LEADING_COLUMNS,
    METRIC_COLUMNS,
    TrialRecord,
    collect,
    outside_grid,
    ranked,
    varying_params,
)
from optsweep.stats import METHOD, ConfigSummary, summarize


def write_trials_csv(records: Sequence[TrialRecord], path: Path) -> None:
    """One row per trial: identity, parameters under their YAML names, metrics."""
    columns = [*LEADING_COLUMNS, *varying_params(records), *METRIC_COLUMNS]
    if any(r.duplicate_of is not None for r in records):  # a search that repeated a point
        columns.append("duplicate_of")
    with replacing(path) as temporary, temporary.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, restval="")
        writer.writeheader()
        for r in records:
            writer.writerow(r.row())


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


def write_tuning_cost_csv(summaries: Sequence[ConfigSummary], path: Path) -> None:
    """``stats.tuning_cost``: per optimizer, E[best of k configurations] with its band."""
    columns = ["optimizer", "semantics", "k", "expected_best", "low", "high"]
    with replacing(path) as temporary, temporary.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(tuning_cost(summaries))


def table_rows(records: Sequence[TrialRecord]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the ranked table (strings), shared by Markdown and Rich."""
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
        "status",
        "s",
    ]
    rows = []
    for rank, r in enumerate(ranked(records), start=1):
        rows.append(
            [
                str(rank) if r.status == "complete" else "–",
                r.optimizer,
                r.semantics,
                *(fmt(r.params[p]) if p in r.params else "" for p in params),
                str(r.seed),
                f"{r.final_test_accuracy:.4f}",
                f"{r.best_test_accuracy:.4f}",
                f"{r.final_test_loss:.4f}",
                f"{r.final_train_loss:.4f}",
                status_text(r),
                f"{r.seconds:.1f}",
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
    """Header and rows of the over-seeds table: mean ± std, p vs best, ≈ when not told apart."""
    params = list(dict.fromkeys(k for s in summaries for k in s.params))
    header = [
        "rank",
        "optimizer",
        "semantics",
        *params,
        "test acc (mean ± std)",
        "seeds",
        "p vs best",
        "≈ best",
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
                *(fmt(s.params[p]) if p in s.params else "" for p in params),
                f"{s.mean:.4f} ± {s.std:.4f}" if done > 1 else f"{s.mean:.4f}",
                seeds,
                "" if rank == 1 else f"{s.p_vs_best:.3g}",
                "best" if rank == 1 else ("≈" if s.indistinguishable else ""),
            ]
        )
    return header, rows


def _markdown(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def also_holds(others: int) -> str:
    """The line saying how many trials of the study the tables leave out ('' for none)."""
    if not others:
        return ""
    what = "1 trial of a grid point" if others == 1 else f"{others} trials of grid points"
    return f"The study also holds {what} no longer in the file."


def write_table_md(
    records: Sequence[TrialRecord],
    path: Path,
    title: str,
    summaries: Sequence[ConfigSummary] = (),
    others: int = 0,
) -> None:
    """The ranked table as Markdown, best first; with repeats, the over-seeds table first.

    ``others``: trials of grid points the file no longer has, said in one line.
    """
    lines = [f"# {title}", ""]
    if repeated(summaries):
        lines += [
            "## Configurations over seeds",
            "",
            *_markdown(*summary_rows(summaries)),
            "",
            f"Method: {METHOD}.",
            "",
            "## Trials",
            "",
        ]
    lines += _markdown(*table_rows(records))
    counts = {s: sum(r.status == s for r in records) for s in {r.status for r in records}}
    lines += [
        "",
        "Trials: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) + ".",
        "Ranked by final test accuracy; diverged, pruned and failed trials are listed last, "
        "unranked.",
    ]
    if others:
        lines.append(also_holds(others))
    with replacing(path) as temporary:
        temporary.write_text("\n".join(lines) + "\n")


def rich_table(records: Sequence[TrialRecord], limit: int | None = None, title: str = "") -> Table:
    """The ranked table for the terminal (top ``limit`` rows)."""
    header, rows = table_rows(records)
    table = Table(title=title or None)
    for name in header:
        table.add_column(name, justify="right" if name in ("rank", "seed", "s") else "left")
    for row in rows[:limit]:
        table.add_row(*row)
    return table


def draw_pictures(
    study: optuna.Study,
    records: Sequence[TrialRecord],
    summaries: Sequence[ConfigSummary],
    folder: Path,
) -> list[Path]:
    """Every picture of the results folder, in the order the HTML report shows them."""
    for old in folder.glob("*.png"):  # a picture that no longer applies must not linger
        old.unlink(missing_ok=True)
    pictures = plot_curves(records, folder)
    if repeated(summaries):
        pictures.append(plot_mean_curves(summaries, folder / "mean_test_accuracy.png"))
    pictures += plot_heatmaps(summaries, folder)
    pictures.append(plot_sensitivity(summaries, folder / "sensitivity.png"))
    if study.user_attrs.get("mode") == "search":
        pictures += plot_search(study, folder)
    return [p for p in pictures if p is not None]


def write_html(
    path: Path,
    title: str,
    records: Sequence[TrialRecord],
    summaries: Sequence[ConfigSummary],
    pictures: Sequence[Path],
    config: object,
    others: int = 0,
) -> None:
    """``report.html``: one self-contained page (images embedded, no network)."""

    def table(header: list[str], rows: list[list[str]], css: str) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
        )
        return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'

    parts = [f"<h1>{html.escape(title)}</h1>"]
    counts = {s: sum(r.status == s for r in records) for s in {r.status for r in records}}
    parts.append(
        "<p>" + html.escape(", ".join(f"{n} {s}" for s, n in sorted(counts.items()))) + "</p>"
    )
    if others:
        parts.append(f"<p class=note>{html.escape(also_holds(others))}</p>")
    if repeated(summaries):
        parts += [
            "<h2>Configurations over seeds</h2>",
            table(*summary_rows(summaries), "summary"),
            f"<p class=note>Method: {html.escape(METHOD)}.</p>",
        ]
    parts += ["<h2>Trials, best first</h2>", table(*table_rows(records), "trials")]
    parts.append("<h2>Pictures</h2>")
    for picture in pictures:
        data = base64.b64encode(picture.read_bytes()).decode("ascii")
        parts.append(
            f'<figure><img alt="{picture.stem}" src="data:image/png;base64,{data}">'
            f"<figcaption>{picture.stem}</figcaption></figure>"
        )
    text = yaml.safe_dump(config, sort_keys=False) if config else "(not stored)"
    parts += ["<h2>Resolved config</h2>", f"<pre>{html.escape(text)}</pre>"]
    style = (
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;"
        "font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}"
        "img{max-width:100%}.note{font-size:12px;color:#555}"
    )
    with replacing(path) as temporary:
        temporary.write_text(
            f"<!doctype html><html><head><meta charset=utf-8><title>"
            f"{html.escape(title)}</title><style>{style}</style></head><body>"
            + "\n".join(parts)
            + "</body></html>\n"
        )


def write_results(study: optuna.Study, folder: Path, title: str) -> list[TrialRecord]:
    """Every derived file of the results folder, rebuilt from the study alone.

    Under the folder's lock (`folder_lock`), from reading the study to the last file: several
    workers finishing one sweep write the folder one after the other, and the last one's
    reading of the study is the folder's, whole.
    """
    with folder_lock(folder):
        records = collect(study)
        others = outside_grid(study)
        summaries = summarize(records)
        write_trials_csv(records, folder / "trials.csv")
        write_history_csv(records, folder / "history.csv")
        write_tuning_cost_csv(summaries, folder / "tuning_cost.csv")
        write_table_md(records, folder / "table.md", title, summaries, others)
        pictures = draw_pictures(study, records, summaries, folder / "curves")
        config = study.user_attrs.get("config")
        write_html(folder / "report.html", title, records, summaries, pictures, config, others)
    return records
