"""What a sweep prints while it runs, rendered to fixed-width consoles."""

from __future__ import annotations

import io

import pytest
from rich.console import Console
from typer.testing import CliRunner

from optsweep import cli
from optsweep.progress import (
    Finished,
    LineProgress,
    QuietProgress,
    RichProgress,
    make_progress,
)
from optsweep.runner import Interrupted


def console(terminal: bool) -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, width=120, force_terminal=terminal, color_system=None), buffer


def drive(progress) -> None:
    progress.start(total=3, done=1)
    progress.batch(["adam/torch learning_rate=0.01 seed=0", "adam/torch lr=0.1 seed=0"], 2)
    progress.step(0, 5, 10)
    progress.finished(
        [
            Finished("adam/torch learning_rate=0.01 seed=0", "complete", 0.91),
            Finished("adam/torch lr=0.1 seed=0", "diverged", float("nan")),
        ]
    )
    progress.stop()


@pytest.mark.parametrize(
    ("quiet", "terminal", "kind"),
    [(True, True, QuietProgress), (False, True, RichProgress), (False, False, LineProgress)],
)
def test_make_progress_picks_by_terminal_and_quiet(quiet, terminal, kind):
    assert isinstance(make_progress(console(terminal)[0], quiet), kind)


def test_line_progress_prints_one_line_per_finished_trial():
    out, buffer = console(False)
    drive(LineProgress(out))
    lines = buffer.getvalue().splitlines()
    assert lines[0] == "3 trials, 1 already done, 2 to train"
    assert lines[1] == "training 2 trials together for 2 epochs"
    assert lines[2].startswith("[2/3] complete  acc=0.9100 adam/torch learning_rate=0.01")
    assert lines[3].startswith("[3/3] diverged")
    assert lines[-1].startswith("done in")


@pytest.mark.parametrize(("interrupted", "word"), [(False, "done in"), (True, "stopped after")])
def test_line_progress_ends_with_what_happened(interrupted, word):
    out, buffer = console(False)
    progress = LineProgress(out)
    progress.start(total=3, done=0)
    progress.stop(interrupted=interrupted)
    assert buffer.getvalue().splitlines()[-1].startswith(word)


@pytest.mark.parametrize(
    ("trials", "epochs", "line"),
    [(1, 1, "training 1 trial for 1 epoch"), (4, 3, "training 4 trials together for 3 epochs")],
)
def test_line_progress_names_the_batch_in_words(trials, epochs, line):
    out, buffer = console(False)
    LineProgress(out).batch(["adam/torch lr=0.1 seed=0"] * trials, epochs)
    assert buffer.getvalue().splitlines() == [line]


def test_rich_progress_shows_bar_batch_and_top_five():
    out, buffer = console(True)
    progress = RichProgress(out)
    progress.start(total=3, done=1)
    progress.batch(["adam/torch learning_rate=0.01 seed=0", "adam/torch lr=0.1 seed=0"], 2)
    progress.step(0, 5, 10)
    running, frame = console(True)
    running.print(progress.live.renderable)  # the frame while the batch trains
    assert "(+1 more)" in frame.getvalue() and "epoch 1/2 step 5/10" in frame.getvalue()
    progress.stop()
    out, buffer = console(True)
    drive(RichProgress(out))
    text = buffer.getvalue()
    assert "3/3" in text  # the overall bar reached the end
    assert "elapsed" in text and "left" in text  # which time is which
    assert "top 5 so far" in text
    assert "0.9100" in text


def test_rich_progress_leaves_no_batch_bar_when_it_stops():
    out, _ = console(True)
    progress = RichProgress(out)
    drive(progress)
    final, frame = console(True)
    final.print(progress.live.renderable)
    assert "top 5 so far" in frame.getvalue() and "3/3" in frame.getvalue()
    assert "epoch 1/2" not in frame.getvalue() and "(+1 more)" not in frame.getvalue()


def test_ctrl_c_says_how_to_resume(monkeypatch, write_yaml):
    def interrupted(*args, **kwargs):
        raise Interrupted(done=5, total=9)

    monkeypatch.setattr("optsweep.runner.run_sweep", interrupted)
    config = write_yaml("name: x\ndataset: mnist-mini\noptimizers: [adam]\n")
    result = CliRunner().invoke(cli.app, ["run", str(config)])
    assert result.exit_code == 130
    assert "interrupted: 5 of 9 trials done; run the same command to resume" in result.stderr
