"""The `optsweep` command: thin Typer wrappers over runner, config, report and optim."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from optsweep.config import ConfigError, expand, load_sweep

app = typer.Typer(
    help="Sweep and search gradient-descent optimizers on small vision models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
# Off a terminal (pipes, CI logs) Rich would wrap at 80 columns; tables need more.
out_console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)

ConfigArg = Annotated[Path, typer.Argument(help="Sweep YAML file.", show_default=False)]
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set", help="Override a key, typed like YAML: --set train.epochs=2 (repeatable)."
    ),
]


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print one error line on stderr and leave with ``code``."""
    err_console.print(f"error: {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def load_or_exit(config: Path, overrides: list[str] | None):
    """The SweepSpec, or one line per problem and exit code 2."""
    try:
        return load_sweep(config, overrides or ())
    except ConfigError as error:
        for problem in error.problems:
            err_console.print(str(problem), highlight=False, soft_wrap=True, markup=False)
        raise typer.Exit(2) from None


@app.command()
def validate(files: Annotated[list[Path], typer.Argument(help="Sweep YAML files.")]) -> None:
    """Check sweep files: one line per problem (file:line: key: what would be valid)."""
    bad = 0
    for file in files:
        try:
            spec = load_sweep(file)
        except ConfigError as error:
            bad += 1
            for problem in error.problems:
                err_console.print(str(problem), highlight=False, soft_wrap=True, markup=False)
            continue
        out_console.print(f"{file}: ok, {len(expand(spec))} trials", highlight=False)
    if bad:
        raise typer.Exit(2)


@app.command()
def run(
    config: ConfigArg,
    out: Annotated[
        Path | None, typer.Option(help="Results folder [default: results/<name>].")
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            envvar="OPTSWEEP_DATA", help="Folder with the dataset files [default: ./data]."
        ),
    ] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda or cuda:N.")] = None,
    storage: Annotated[
        str | None, typer.Option(help="Optuna storage URL [default: sqlite in the results folder].")
    ] = None,
    set_: SetOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the trials and exit.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")] = False,
) -> None:
    """Train every configuration of a YAML grid; re-running resumes where it stopped."""
    from optsweep.data import DataNotFoundError
    from optsweep.progress import make_progress
    from optsweep.report import rich_table
    from optsweep.runner import Interrupted, label_of, run_sweep

    spec = load_or_exit(config, set_)
    if dry_run:
        trials = expand(spec)
        for index, trial in enumerate(trials, start=1):
            out_console.print(f"{index:4d}  {label_of(trial)}", highlight=False)
        out_console.print(f"{len(trials)} trials", highlight=False)
        return
    progress = make_progress(out_console, quiet)
    try:
        result = run_sweep(
            spec, progress, out=out, storage=storage, data_dir=data_dir, device=device
        )
    except DataNotFoundError as error:
        raise fail(str(error)) from None
    except Interrupted as stop:
        command = shlex.join(["optsweep", *sys.argv[1:]])
        err_console.print(
            f"interrupted: {stop.done} of {stop.total} trials done; "
            f"run the same command to resume: {command}",
            highlight=False,
            soft_wrap=True,
            markup=False,
        )
        raise typer.Exit(130) from None
    except PermissionError as error:
        raise fail(f"cannot write the results: {error}") from None
    if not quiet:
        out_console.print(rich_table(result.records, limit=20, title=f"{spec.name}: best first"))
        out_console.print(f"results: {result.folder}", highlight=False)


@app.command()
def report(
    folder: Annotated[Path, typer.Argument(help="A results folder (results/<name>).")],
    storage: Annotated[
        str | None, typer.Option(help="Optuna storage URL [default: FOLDER/study.db].")
    ] = None,
    study_name: Annotated[str | None, typer.Option("--study", help="Study name.")] = None,
) -> None:
    """Rebuild tables and pictures of a results folder from its study."""
    import optuna

    from optsweep.report import rich_table, write_results
    from optsweep.study import sqlite_url

    if storage is None and not (folder / "study.db").exists():
        raise fail(f"{folder}: no study.db here; give --storage URL for a remote study")
    url = storage or sqlite_url(folder)
    names = optuna.get_all_study_names(url)
    name = study_name or (names[0] if len(names) == 1 else None)
    if name not in names:
        raise fail(f"{url}: choose a study with --study: {', '.join(names) or 'none found'}")
    study = optuna.load_study(study_name=name, storage=url)
    records = write_results(study, folder, name)
    out_console.print(rich_table(records, limit=20, title=f"{name}: best first"))


@app.command()
def optimizers(
    name: Annotated[str | None, typer.Argument(help="Show one optimizer in detail.")] = None,
) -> None:
    """List the optimizers, their parameters and defaults under torch and keras semantics."""
    from optsweep.optim.describe import optimizer_details, registry_table
    from optsweep.optim.registry import OPTIMIZERS

    if name is None:
        out_console.print(registry_table())
    elif name not in OPTIMIZERS:
        raise fail(f"unknown optimizer {name!r}; choose one of: {', '.join(OPTIMIZERS)}")
    else:
        out_console.print(optimizer_details(name))


def main() -> None:
    """Console-script entry point."""
    app()
