"""The `optsweep` command: thin Typer wrappers over runner, config, report and optim."""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shlex
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from optsweep.painters import painting

app = typer.Typer(
    help="Sweep and search gradient-descent optimizers on small vision models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: Rich markup ate "[default: …]"
    add_completion=False,
)


def console_width(stream) -> int | None:
    """A terminal's own width (None: Rich reads it), else ``COLUMNS``, else 120: CI logs are
    read in wide windows, and tables fit themselves to whatever this gives."""
    if stream.isatty() or os.environ.get("COLUMNS", "").isdigit():
        return None
    return 120


out_console = Console(width=console_width(sys.stdout))
err_console = Console(stderr=True, width=console_width(sys.stderr))

ConfigArg = Annotated[
    Path, typer.Argument(help="Sweep YAML file.", show_default=False, metavar="CONFIG")
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        metavar="KEY=VALUE",
        help="Override a key, typed like YAML: --set train.epochs=2 (repeatable).",
    ),
]


OutOpt = Annotated[
    Path | None, typer.Option(metavar="DIR", help="Results folder [default: results/<name>].")
]
DataDirOpt = Annotated[
    Path | None,
    typer.Option(
        metavar="DIR",
        help="Folder with the dataset files: --set data.dir=DIR "
        "[default: data.dir, else $OPTSWEEP_DATA, else ./data].",
    ),
]
DeviceOpt = Annotated[
    str | None,
    typer.Option(metavar="DEVICE", help="auto, cpu, cuda or cuda:N: --set train.device=DEVICE."),
]
StorageOpt = Annotated[
    str | None,
    typer.Option(metavar="URL", help="Optuna storage URL [default: sqlite in the results folder]."),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")]
SmokeOpt = Annotated[
    bool,
    typer.Option(
        "--smoke",
        help="CI smoke run: every trial a few steps on a tiny subset (the data shipped in "
        "optsweep unless --data-dir), into results/<name>-smoke.",
    ),
]
SmokeStepsOpt = Annotated[
    int, typer.Option(min=1, metavar="N", help="Optimizer steps of a smoke trial.")
]
JunitOpt = Annotated[
    Path | None,
    typer.Option(metavar="FILE", help="Write JUnit XML here: one testcase per trial."),
]
FailDivergedOpt = Annotated[
    bool,
    typer.Option("--fail-on-diverged", help="A diverged trial fails (exit 1, JUnit failure)."),
]


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print one error line on stderr and leave with ``code``."""
    err_console.print(f"error: {message}", highlight=False, soft_wrap=True, markup=False)
    return typer.Exit(code)


# ── many workers, one study (optsweep.worker) ──
WorkersOpt = Annotated[
    int,
    typer.Option(
        min=1, metavar="N", help="Worker processes on this machine (more than 1 needs PostgreSQL)."
    ),
]
HeartbeatOpt = Annotated[
    int,
    typer.Option(
        min=1, metavar="SECONDS", help="Seconds between heartbeats of a trial being trained."
    ),
]
GraceOpt = Annotated[
    int,
    typer.Option(
        min=1,
        metavar="SECONDS",
        help="Seconds without heartbeat after which a trial is retrained elsewhere.",
    ),
]


def liveness_or_exit(heartbeat: int, grace: int):
    """The workers' `Liveness`, or one line and exit 2 when the grace is not the longer."""
    from optsweep.study import Liveness

    if grace <= heartbeat:
        raise fail(
            f"--grace {grace} must be longer than --heartbeat {heartbeat} (several heartbeats, "
            "or live trials get retrained)"
        )
    return Liveness(heartbeat=heartbeat, grace=grace)


def os_failure(error: OSError) -> typer.Exit:
    """One line for a file that could not be written (full disk, read-only folder…)."""
    import errno

    where = f" {error.filename}" if error.filename else ""
    if error.errno == errno.ENOSPC:
        return fail(
            f"disk full while writing{where or ' the results'}; finished trials are kept in "
            "the study: free some space and run the same command again"
        )
    return fail(f"cannot write{where or ' the results'}: {error.strerror or error}")


def overrides_of(
    set_: list[str] | None, *, data_dir: Path | None = None, device: str | None = None
) -> list:
    """The ``--set`` values, then the flags that are short for a key: ``--data-dir D`` is
    ``data.dir=D``, ``--device X`` is ``train.device=X`` (a problem names the flag)."""
    from optsweep.config import Override

    overrides: list = list(set_ or [])
    if data_dir is not None:
        overrides.append(Override.of_flag("--data-dir", "data.dir", data_dir))
    if device is not None:
        overrides.append(Override.of_flag("--device", "train.device", device))
    return overrides


def load_or_exit(config: Path, overrides: list | None, *, search: bool = False):
    """The SweepSpec, or one line per problem and exit code 2."""
    from optsweep.config import ConfigError, load_sweep

    try:
        return load_sweep(config, overrides or (), search=search)
    except ConfigError as error:
        for problem in error.problems:
            err_console.print(str(problem), highlight=False, soft_wrap=True, markup=False)
        raise typer.Exit(2) from None


def smoke_or_exit(config: Path, overrides: list, spec, steps: int, *, search: bool = False):
    """The smoke run of ``spec``, said in one line: the shipped subsets unless ``--data-dir``
    (already among ``overrides``) names a folder."""
    from optsweep.catalog import SMOKE_SIZES
    from optsweep.ci import smoke_overrides
    from optsweep.config import Override
    from optsweep.data import SMOKE_DATA_DIR

    flagged = any(getattr(o, "origin", "") == "--data-dir" for o in overrides)
    if spec.files is not None:  # the user's own file is the smoke run's data
        flagged = True
    elif not flagged and spec.dataset not in SMOKE_SIZES:
        raise fail(
            f"--smoke: optsweep ships no {spec.dataset} subset; give --data-dir DIR with its "
            f"files (the smoke run reads the first images), or smoke-test another dataset"
        )
    shipped = [] if flagged else [Override.of_flag("--smoke", "data.dir", SMOKE_DATA_DIR)]
    smoke = load_or_exit(
        config, [*overrides, *smoke_overrides(spec, steps), *shipped], search=search
    )
    if smoke.files is not None:
        where = smoke.files
    elif flagged:
        where = f"--data-dir {smoke.data.dir}"
    else:
        where = f"the data shipped in optsweep ({SMOKE_DATA_DIR})"
    epochs, images = smoke.train.epochs, smoke.subset_train
    err_console.print(
        f"smoke run: {steps} steps a trial over {epochs} epochs on {images} {smoke.dataset} "
        f"images from {where}",
        highlight=False,
        soft_wrap=True,
        markup=False,
    )
    return smoke


def finish(
    result, spec, quiet: bool, junit: Path | None, fail_on_diverged: bool, smoke: bool = False
) -> None:
    """The table and answer (a smoke run: one line of counts, since a few steps answer
    nothing), the JUnit file; exit 1 when a trial failed (or diverged, when asked)."""
    name = spec.name
    if not quiet and smoke:
        counts = Counter(r.status for r in result.records)
        said = ", ".join(f"{n} {status}" for status, n in counts.most_common())
        out_console.print(
            f"smoke run: {len(result.records)} trials ({said}); results: {result.folder}",
            highlight=False,
            soft_wrap=True,
        )
    elif not quiet:
        show_result(result.records, name, spec.report.target, spec.raw)
        out_console.print(f"results: {result.folder}", highlight=False)
    if junit is not None:
        from optsweep.ci import junit_xml

        try:
            junit.write_text(junit_xml(result.records, name, fail_on_diverged=fail_on_diverged))
        except OSError as error:
            raise os_failure(error) from None
    failing = {"failed", "diverged"} if fail_on_diverged else {"failed"}
    bad = [r for r in result.records if r.status in failing]
    if bad:
        raise fail(f"{len(bad)} of {len(result.records)} trials {'/'.join(sorted(failing))}", 1)


def device_or_exit(name: str) -> None:
    """Leave with one line, before anything is written, when the machine lacks the device."""
    from optsweep.engine import DeviceError, resolve_device

    try:
        resolve_device(name)
    except DeviceError as error:
        raise fail(str(error)) from None


def imports_note(spec) -> str:
    """What a run of ``spec`` would import and so run (a user's model file), said where a
    command checks the file without running it."""
    from optsweep.catalog import USER_MODEL

    if spec.model.name != USER_MODEL:
        return ""
    return f"; a run imports {spec.model.options['module']} (its code runs then, not now)"


@contextmanager
def nothing_left_if_refused(folder: Path) -> Iterator[None]:
    """A refused command (exit 2) leaves no folder it created, unless a trial finished there:
    what was not there before is removed, ``results/`` included."""
    created = next((p for p in [*reversed(folder.parents), folder] if not p.exists()), None)
    try:
        yield
    except typer.Exit as stop:
        if stop.exit_code == 2 and created is not None and not _finished_trials_in(folder):
            import shutil

            shutil.rmtree(created, ignore_errors=True)
        raise


def _finished_trials_in(folder: Path) -> bool:
    """Whether the folder's ``study.db`` holds a trial that finished (kept at any cost: one
    that cannot be read counts as holding one)."""
    import sqlite3

    path = folder / "study.db"
    if not path.exists():
        return False
    try:
        uri = path.resolve().as_uri() + "?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
            (n,) = db.execute(
                "SELECT count(*) FROM trials WHERE state IN ('COMPLETE', 'PRUNED', 'FAIL')"
            ).fetchone()
    except sqlite3.OperationalError as error:
        return "no such table" not in str(error)  # tables not made yet: nothing finished
    except sqlite3.Error:
        return True
    return n > 0


@contextmanager
def one_line_errors(after_interrupt: str) -> Iterator[None]:
    """Expected failures become one line on stderr and a non-zero exit, never a traceback.

    ``after_interrupt`` ends the line printed on Ctrl-C (what to do to go on).
    """
    import optuna
    import sqlalchemy

    from optsweep.config import ConfigError
    from optsweep.data import DataFormatError, DataNotFoundError
    from optsweep.engine import DeviceError
    from optsweep.runner import ConfigChangedError, Interrupted
    from optsweep.search import SearchError
    from optsweep.study import StorageError
    from optsweep.usermodels import UserModelError

    try:
        yield
    except (
        DataNotFoundError,
        DataFormatError,
        StorageError,
        SearchError,
        ConfigChangedError,
        DeviceError,
        UserModelError,
    ) as error:
        raise fail(str(error)) from None
    except ConfigError as error:  # a config read back from a study
        raise fail(f"the study's config: {error.problems[0]}") from None
    except (optuna.exceptions.StorageInternalError, sqlalchemy.exc.SQLAlchemyError) as error:
        raise fail(storage_failure(error)) from None
    except Interrupted as stop:
        err_console.print(
            f"interrupted: {stop.done} of {stop.total} trials done; {after_interrupt}",
            highlight=False,
            soft_wrap=True,
            markup=False,
        )
        raise typer.Exit(130) from None
    except OSError as error:
        raise os_failure(error) from None


def same_command() -> str:
    """The command line that was run, to print as the way to resume."""
    return shlex.join(["optsweep", *sys.argv[1:]])


@app.command()
def validate(
    files: Annotated[list[Path], typer.Argument(metavar="FILE", help="Sweep YAML files.")],
    search: Annotated[
        bool, typer.Option("--search", help="Check them for optsweep search (ranges allowed).")
    ] = False,
) -> None:
    """Check sweep files: one line per problem (file:line: key: what would be valid)."""
    from optsweep.config import ConfigError, expand, load_sweep

    bad = 0
    for file in files:
        try:
            spec = load_sweep(file, search=search)
        except ConfigError as error:
            bad += 1
            for problem in error.problems:
                err_console.print(str(problem), highlight=False, soft_wrap=True, markup=False)
            continue
        size = f"search of {spec.search.trials} trials" if search else f"{len(expand(spec))} trials"
        out_console.print(
            f"{file}: ok, {size}{imports_note(spec)}", highlight=False, soft_wrap=True
        )
    if bad:
        raise typer.Exit(2)


@app.command()
def run(
    config: ConfigArg,
    out: OutOpt = None,
    data_dir: DataDirOpt = None,
    device: DeviceOpt = None,
    storage: StorageOpt = None,
    set_: SetOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the trials and exit.")] = False,
    new: Annotated[
        bool,
        typer.Option(
            "--new", help="Delete the grid's study (every trial it holds) and start over."
        ),
    ] = False,
    quiet: QuietOpt = False,
    workers: WorkersOpt = 1,
    heartbeat: HeartbeatOpt = 10,
    grace: GraceOpt = 60,
    smoke: SmokeOpt = False,
    smoke_steps: SmokeStepsOpt = 6,
    junit: JunitOpt = None,
    fail_on_diverged: FailDivergedOpt = False,
) -> None:
    """Train every configuration of a YAML grid; re-running resumes where it stopped.

    A study trained with other data, model or training settings is refused unless --new.
    """
    overrides = overrides_of(set_, data_dir=data_dir, device=device)
    spec = load_or_exit(config, overrides)
    if smoke:
        spec = smoke_or_exit(config, overrides, spec, smoke_steps)
    if dry_run:  # before training, storage and drawing are imported: it answers at once
        from optsweep.config import expand, label_of

        trials = expand(spec)
        for index, trial in enumerate(trials, start=1):
            out_console.print(f"{index:4d}  {label_of(trial)}", highlight=False)
        out_console.print(
            f"{len(trials)} trials{imports_note(spec)}", highlight=False, soft_wrap=True
        )
        return
    with painting():  # forked before torch is imported: the painters warm up meanwhile
        from optsweep.runner import results_folder
        from optsweep.study import StorageError, storage_url
        from optsweep.worker import check_workers

        device_or_exit(spec.train.device)
        liveness = liveness_or_exit(heartbeat, grace)
        folder = results_folder(spec, out)
        with nothing_left_if_refused(folder):
            try:
                if storage is not None:
                    storage_url(storage)  # a malformed URL fails here, before anything is written
                check_workers(storage, workers)
                folder.mkdir(parents=True, exist_ok=True)
            except StorageError as error:
                raise fail(str(error)) from None
            except OSError as error:
                raise fail(f"cannot create the results folder {folder}: {error.strerror}") from None
            result = _run(spec, folder, storage, new, workers, quiet, out, liveness, smoke)
    finish(result, spec, quiet, junit, fail_on_diverged, smoke)


def _run(
    spec, folder: Path, storage, new: bool, workers: int, quiet: bool, out, liveness, brief=False
):
    """`run`'s training, its expected failures in one line each (``brief``: a log line for
    a trial only when it did not complete)."""
    from optsweep.progress import make_progress
    from optsweep.runner import run_sweep, start_over
    from optsweep.study import sqlite_url
    from optsweep.worker import run_with_workers

    progress = make_progress(out_console, quiet, brief=brief)
    options = {"out": out, "liveness": liveness}
    with one_line_errors(f"run the same command to resume: {same_command()}"):
        if new:  # before any worker starts: they must all find the new study
            start_over(spec.name, storage or sqlite_url(folder), liveness)
        if workers > 1:
            result = run_with_workers(spec, progress, workers, storage=storage, **options)
        else:
            result = run_sweep(spec, progress, storage=storage, **options)
    return result


def show_result(records, name: str, target, config) -> None:
    """The ranked table (top 20), then the answer: best per optimizer with its speed to
    ``target``, and the edge warnings (none for a search's ranges in ``config``)."""
    from optsweep.report import answer_lines, answer_of, rich_table
    from optsweep.stats import summarize

    title = f"{name}: best first"
    table = rich_table(records, limit=20, title=title, target=target, width=out_console.width)
    out_console.print(table)
    for line in answer_lines(answer_of(records, summarize(records), target, config)):
        style = "yellow" if line.startswith("warning:") else None
        out_console.print(line, style=style, highlight=False, soft_wrap=True)


def storage_failure(error: BaseException) -> str:
    """What the database said, in one line, and what to do when waiting will not cure it."""
    from optsweep.study import _reason, lasting_cause

    remedy = lasting_cause(error)
    return f"the storage failed: {_reason(error)}" + (f"; {remedy}" if remedy else "")


@app.command()
def init(
    config: ConfigArg,
    storage: Annotated[
        str, typer.Option(metavar="URL", help="Optuna storage URL: postgresql://USER@HOST/DB.")
    ],
    set_: SetOpt = None,
) -> None:
    """Put a sweep into a shared study (config + grid, once), for workers to train."""
    from optsweep.runner import ConfigChangedError
    from optsweep.study import StorageError, is_shared, redact
    from optsweep.worker import init_sweep

    spec = load_or_exit(config, set_)
    try:
        synced = init_sweep(spec, storage)
        then = f"optsweep worker --storage {redact(storage)} --study {spec.name}"
        if not is_shared(storage):
            then = f"optsweep run {config} --storage {storage} (one process on SQLite)"
    except (StorageError, ConfigChangedError) as error:
        raise fail(str(error)) from None
    out_console.print(
        f"study {spec.name}: {synced.total} trials, {synced.done} done, {synced.enqueued} "
        f"enqueued; train them with: {then}",
        highlight=False,
        soft_wrap=True,
    )


@app.command()
def worker(
    storage: Annotated[
        str, typer.Option(metavar="URL", help="Optuna storage URL: postgresql://USER@HOST/DB.")
    ],
    study_name: Annotated[
        str | None,
        typer.Option("--study", metavar="NAME", help="Study name [default: the only one there]."),
    ] = None,
    data_dir: DataDirOpt = None,
    device: DeviceOpt = None,
    out: Annotated[
        Path | None,
        typer.Option(metavar="DIR", help="Also write the results folder here when done."),
    ] = None,
    heartbeat: HeartbeatOpt = 10,
    grace: GraceOpt = 60,
    quiet: QuietOpt = False,
) -> None:
    """Join a sweep: train its trials from the shared study until none is left."""
    import logging

    from optsweep.progress import make_progress
    from optsweep.worker import work

    # forked before torch is imported, the painters warm up meanwhile (a worker draws with --out)
    with painting(out is not None):
        liveness = liveness_or_exit(heartbeat, grace)
        logging.basicConfig(format="optsweep worker: %(message)s", level=logging.WARNING)
        progress = make_progress(out_console, quiet)
        with one_line_errors("other workers go on"):
            result = work(
                storage,
                study_name,
                progress,
                overrides=overrides_of(None, data_dir=data_dir, device=device),
                liveness=liveness,
                out=out,
            )
    if not quiet:
        out_console.print(f"worker done: trained {result.trained} trials", highlight=False)


@app.command()
def search(
    config: ConfigArg,
    trials: Annotated[
        int | None,
        typer.Option(
            min=1,
            metavar="N",
            help="Trials in total; re-running continues up to it [default: search.trials, 30].",
        ),
    ] = None,
    new: Annotated[
        bool, typer.Option("--new", help="Delete the existing search study and start over.")
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option(metavar="DIR", help="Results folder [default: results/<name>-search]."),
    ] = None,
    data_dir: DataDirOpt = None,
    device: DeviceOpt = None,
    storage: StorageOpt = None,
    set_: SetOpt = None,
    quiet: QuietOpt = False,
    workers: WorkersOpt = 1,
    heartbeat: HeartbeatOpt = 10,
    grace: GraceOpt = 60,
    smoke: Annotated[
        bool,
        typer.Option(
            "--smoke", help="CI smoke run: a few trials (4 unless --trials), each a few steps."
        ),
    ] = False,
    smoke_steps: SmokeStepsOpt = 6,
    junit: JunitOpt = None,
    fail_on_diverged: FailDivergedOpt = False,
) -> None:
    """Search the file's space with Optuna (grid lists → choices, {low, high} → ranges).

    With --storage postgresql://… the same command on several machines (or --workers N, or
    optsweep worker) shares one study and one budget of --trials.
    """
    overrides = overrides_of(set_, data_dir=data_dir, device=device)
    spec = load_or_exit(config, overrides, search=True)
    if smoke:
        spec = smoke_or_exit(config, overrides, spec, smoke_steps, search=True)
        trials = trials or 4
    with painting():  # forked before torch is imported: the painters warm up meanwhile
        from optsweep.progress import make_progress
        from optsweep.search import run_search, study_name
        from optsweep.study import storage_url
        from optsweep.worker import check_workers, search_with_workers

        device_or_exit(spec.train.device)
        liveness = liveness_or_exit(heartbeat, grace)
        progress = make_progress(out_console, quiet, brief=smoke)
        options = {"trials": trials, "out": out}
        options |= {"new": new, "liveness": liveness}
        folder = out if out is not None else Path("results") / study_name(spec)
        with (
            nothing_left_if_refused(folder),
            one_line_errors(f"run the same command to continue: {same_command()}"),
        ):
            if storage is not None:
                storage_url(storage)
            check_workers(storage, workers)
            if workers > 1:
                result = search_with_workers(spec, progress, workers, storage=storage, **options)
            else:
                result = run_search(spec, progress, storage=storage, **options)
    finish(result, spec, quiet, junit, fail_on_diverged, smoke)


@app.command()
def report(
    folder: Annotated[
        Path, typer.Argument(metavar="DIR", help="A results folder (results/<name>).")
    ],
    storage: Annotated[
        str | None,
        typer.Option(metavar="URL", help="Optuna storage URL [default: FOLDER/study.db]."),
    ] = None,
    study_name: Annotated[
        str | None, typer.Option("--study", metavar="NAME", help="Study name.")
    ] = None,
    target: Annotated[
        str | None,
        typer.Option(
            metavar="TARGET",
            help="Speed to target's target: 0.98 (test accuracy) or METRIC=VALUE "
            "(test_loss=0.1) [default: the config's report.target].",
        ),
    ] = None,
) -> None:
    """Rebuild tables and pictures of a results folder from its study."""
    from optsweep.config import parse_target, target_of
    from optsweep.report import write_results
    from optsweep.study import StorageError, load_study, refuse_foreign, sqlite_url

    try:
        chosen = None if target is None else parse_target(target)
    except ValueError as error:
        raise fail(f"--target {target}: {error}") from None
    if storage is None and not folder.is_dir():
        raise fail(f"{folder}: no such folder (a results folder is results/<name>)")
    if storage is None and not (folder / "study.db").exists():
        raise fail(f"{folder}: no study.db here; give --storage URL for a remote study")
    url = storage or sqlite_url(folder)
    try:
        study = load_study(url, study_name)
        refuse_foreign(study, url, empty_too=True)
    except StorageError as error:
        raise fail(str(error)) from None
    name = study.study_name
    with painting(), one_line_errors("run it again"):
        records = write_results(study, folder, name, chosen)
    config = study.user_attrs.get("config")
    if chosen is None and isinstance(config, dict):
        chosen = target_of(config)
    show_result(records, name, chosen, config)


@app.command()
def compare(
    folders: Annotated[
        list[Path],
        typer.Argument(metavar="DIR", help="Results folders, one problem each (two or more)."),
    ],
    out: Annotated[Path, typer.Option(metavar="DIR", help="Folder for the comparison.")] = Path(
        "results/compare"
    ),
    target: Annotated[
        str | None,
        typer.Option(
            metavar="TARGET",
            help="The target every problem is timed to: 0.9 (test accuracy) or METRIC=VALUE "
            "[default: each folder's report.target].",
        ),
    ] = None,
    quiet: QuietOpt = False,
) -> None:
    """Compare optimizers across problems: ranks, performance profile, tuning cost.

    The folders must share report.target's metric and train.epochs; datasets and models may
    differ (that is the point).
    """
    from optsweep.compare import (
        CompareError,
        load_problems,
        rich_rank_table,
        unreached_note,
        write_comparison,
    )
    from optsweep.config import parse_target
    from optsweep.study import StorageError

    try:
        chosen = None if target is None else parse_target(target)
    except ValueError as error:
        raise fail(f"--target {target}: {error}") from None
    try:
        problems = load_problems(folders, chosen)
    except (CompareError, StorageError) as error:
        raise fail(str(error)) from None
    with one_line_errors("run it again"):
        best = write_comparison(problems, out)
    if not quiet:
        out_console.print(rich_rank_table(best, problems))
        if note := unreached_note(best):
            out_console.print(f"note: {note}", style="yellow", highlight=False, soft_wrap=True)
        out_console.print(f"comparison: {out / 'compare.html'}", highlight=False)


@app.command()
def optimizers(
    name: Annotated[
        str | None, typer.Argument(metavar="NAME", help="Show one optimizer in detail.")
    ] = None,
) -> None:
    """List the optimizers, their parameters and defaults under torch and keras semantics."""
    from optsweep.optim.describe import optimizer_details, registry_table
    from optsweep.optim.registry import OPTIMIZERS

    if name is None:
        out_console.print(registry_table())
    elif name not in OPTIMIZERS:
        import difflib

        close = difflib.get_close_matches(name, OPTIMIZERS, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise fail(f"unknown optimizer {name!r}; {hint}choose one of: {', '.join(OPTIMIZERS)}")
    else:
        out_console.print(optimizer_details(name))


@app.command()
def schema(
    markdown: Annotated[
        bool, typer.Option("--markdown", help="The README's table of every key instead.")
    ] = False,
) -> None:
    """Print the sweep file's JSON Schema, for editors that check and complete YAML keys.

    Save it and point yaml-language-server (VS Code's YAML extension...) at it with a first
    line ``# yaml-language-server: $schema=sweep.schema.json`` in a sweep file.
    """
    from optsweep.config.document import json_schema, markdown_table

    text = markdown_table() if markdown else json.dumps(json_schema(), indent=1)
    sys.stdout.write(text + "\n")


@app.command()
def trajectories(
    config: Annotated[
        Path | None,
        typer.Argument(metavar="CONFIG", help="Sweep YAML file (or give --optimizers)."),
    ] = None,
    optimizers_: Annotated[
        str | None,
        typer.Option(
            "--optimizers",
            metavar="NAMES",
            help="Comma list, each at its defaults: NAME or NAME/keras, or all "
            "(default: sgd … nadam).",
        ),
    ] = None,
    semantics: Annotated[
        str, typer.Option(metavar="SEMANTICS", help="With --optimizers: torch, keras or both.")
    ] = ("torch"),
    functions: Annotated[
        str | None,
        typer.Option(metavar="NAMES", help="Comma list or all (default: all but rastrigin)."),
    ] = None,
    start: Annotated[
        str | None, typer.Option(metavar="X,Y", help="Start point x,y (default: per function).")
    ] = None,
    steps: Annotated[
        int | None, typer.Option(min=1, metavar="N", help="Steps (default: per function).")
    ] = None,
    lr: Annotated[
        str | None,
        typer.Option(
            metavar="LR",
            help="auto (the function's suggested rate), a number, or config "
            "(default: the config's; auto with --optimizers).",
        ),
    ] = None,
    lr_scale: Annotated[
        float, typer.Option(metavar="FACTOR", help="Multiply every rate (> 0).")
    ] = 1.0,
    set_: SetOpt = None,
    out: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR",
            help="Folder (default: results/<name>/trajectories or results/trajectories).",
        ),
    ] = None,
    grid: Annotated[
        bool | None,
        typer.Option("--grid/--no-grid", help="Small multiples (default: per block with a grid)."),
    ] = None,
    gif: Annotated[bool, typer.Option("--gif/--no-gif", help="Write the animated GIFs.")] = True,
    frames: Annotated[int, typer.Option(min=2, metavar="N", help="Frames per GIF.")] = 30,
    quiet: QuietOpt = False,
) -> None:
    """Draw the optimizers' paths on 2-D test functions: PNG, GIF and a table per function."""
    from optsweep import trajectories as tj
    from optsweep.functions import DEFAULT_FUNCTIONS, FUNCTIONS

    if config is not None and optimizers_ is not None:
        raise fail("give a CONFIG or --optimizers, not both")
    if not lr_scale > 0:
        raise fail(f"--lr-scale {lr_scale:g}: expected a positive number")
    if semantics not in ("torch", "keras", "both"):
        raise fail(f"--semantics {semantics!r}: use torch, keras or both")
    try:
        if config is not None:
            spec = load_or_exit(config, set_)
            specs, rate = tj.specs_from_sweep(spec), tj.parse_learning_rate(lr)
            folder = out or Path("results") / spec.name / "trajectories"
        else:
            names = tj.parse_list(optimizers_, tj.DEFAULT_OPTIMIZERS, ["all"])
            chosen = ("torch", "keras") if semantics == "both" else (semantics,)
            specs, rate = tj.specs_from_names(names, chosen), tj.parse_learning_rate(lr or "auto")
            folder = out or Path("results") / "trajectories"
        run = tj.trace(
            specs,
            tj.parse_list(functions, DEFAULT_FUNCTIONS, FUNCTIONS),
            steps=steps,
            start=None if start is None else tj.parse_point(start),
            learning_rate=rate,
            lr_scale=lr_scale,
            source=None if config is None else str(config),
        )
        written = tj.write_trajectories(run, folder, grid=grid, gif=gif, frames=frames)
    except ValueError as error:
        raise fail(str(error)) from None
    if not quiet:
        for name, paths in run.results.items():
            table = tj.rich_table(FUNCTIONS[name], paths, run.steps[name], run.start[name])
            out_console.print(table)
        out_console.print(f"{len(written)} files in {folder}", highlight=False)


def main() -> None:
    """Console-script entry point. SIGTERM is handled as Ctrl-C: a worker stopped by a batch
    scheduler hands back its trials instead of leaving them RUNNING."""
    from optsweep.interrupts import handle_stops

    handle_stops()
    try:
        app()
    except SystemExit as stop:
        leave(stop.code)


def leave(code: object) -> None:
    """Exit with ``code`` as `sys.exit` would, once the exit handlers have run, without the
    interpreter's finalization: with torch loaded it tears down every module and library,
    measured on `python -c "import torch"` at 0.3-0.6 s and 130 MB of peak memory (648 MB
    against 519 MB). Every file is written and closed by then, the study's storage holds
    what it was told (each write is a committed transaction), the painters are stopped, and
    the exit handlers (logging's, multiprocessing's, temporary folders') run here. A thread
    still at work ends with the process rather than being waited for: the data decoding of a
    sweep that found nothing left to train."""
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:  # sys.exit("message")
        print(code, file=sys.stderr)
        status = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe or stream
            stream.flush()
    os._exit(status)
