"""The GitHub workflow people copy: it parses, and every command it calls exists."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import yaml
from typer.testing import CliRunner

from optsweep.cli import app

REPO = Path(__file__).resolve().parents[1]
WORKFLOW = REPO / ".github" / "workflows" / "ci.yml"


def run_lines() -> list[str]:
    tree = yaml.safe_load(WORKFLOW.read_text())
    steps = [s for job in tree["jobs"].values() for s in job["steps"]]
    return [line.strip() for s in steps if "run" in s for line in s["run"].splitlines()]


def make_targets() -> set[str]:
    text = (REPO / "Makefile").read_text()
    return set(re.findall(r"^([a-z][a-z-]*):", text, flags=re.MULTILINE))


def test_the_workflow_parses_and_runs_the_readme_commands() -> None:
    tree = yaml.safe_load(WORKFLOW.read_text())
    assert tree["jobs"]["test"]["runs-on"] == "ubuntu-latest"
    lines = run_lines()
    assert "make install" in lines and "make test" in lines
    readme = (REPO / "README.md").read_text()
    assert "make install" in readme and "make test" in readme


def test_every_command_it_calls_exists() -> None:
    calls = [shlex.split(line) for line in run_lines()]
    targets = make_targets()
    checked = 0
    for words in calls:
        if words[:1] == ["make"]:
            assert words[1] in targets, words
            checked += 1
        if words and words[0].endswith("optsweep"):
            command = words[1]
            help_text = CliRunner().invoke(app, [command, "--help"], terminal_width=200).output
            for flag in (w for w in words[2:] if w.startswith("-")):
                assert flag in help_text, (command, flag)
            checked += 1
    assert checked >= 3


def test_the_check_would_catch_a_missing_target() -> None:
    assert "install" in make_targets() and "no-such-target" not in make_targets()
