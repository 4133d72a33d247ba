"""Malformed sweep files by the hundred: every one is a valid sweep or one line per problem
naming the file, never another exception (RecursionError, OverflowError, TypeError...)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from optsweep.config import ConfigError, expand, load_sweep

REPO = Path(__file__).resolve().parents[1]
SEEDS = sorted((REPO / "configs").glob("*.yaml"))
# what a mutation puts in place of a value
JUNK = [
    "null",
    "~",
    "yes",
    "-1",
    "0",
    "1e400",
    "-.inf",
    ".nan",
    "10" * 40,
    "0x10",
    "010",
    "'1e-3'",
    "[]",
    "{}",
    "[[[[1]]]]",
    "{a: {b: {c: 1}}}",
    "*undefined",
    "&a [*a]",
    "!!python/object:os.system",
    "!!binary aGVsbG8=",
    "2026-12-02",
    "ßü☃",
    "[" * 200 + "]" * 200,
    "{" + ", ".join(f"k{i}: {i}" for i in range(50)) + "}",
    "1:2:3",
    '"\\x00"',
]


def mutations(text: str, rng: random.Random, n: int) -> list[str]:
    """``n`` files: values replaced by junk, lines dropped, duplicated, indented, cut short."""
    lines = text.splitlines()
    out = []
    for _ in range(n):
        new = list(lines)
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(new))
            kind = rng.randrange(6)
            line = new[i]
            if kind == 0 and ":" in line:
                key = line.split(":", 1)[0]
                new[i] = f"{key}: {rng.choice(JUNK)}"
            elif kind == 1:
                del new[i]
                if not new:
                    new = ["x: 1"]
            elif kind == 2:
                new.insert(i, line)
            elif kind == 3:
                new[i] = "\t" + line if rng.random() < 0.5 else "   " + line
            elif kind == 4:
                new = new[: i + 1]
                new[-1] = line[: rng.randrange(len(line) + 1)]
            else:
                new[i] = line.replace(rng.choice(line or "x"), rng.choice(JUNK)[:3], 1)
        out.append("\n".join(new) + "\n")
    return out


CASES = [
    pytest.param(seed_file, i, id=f"{seed_file.stem}-{i}") for seed_file in SEEDS for i in range(3)
]


@pytest.mark.parametrize(("seed_file", "round_"), CASES)
def test_malformed_files_end_in_one_line_each(seed_file: Path, round_: int, tmp_path: Path) -> None:
    rng = random.Random(f"{seed_file.name}-{round_}")
    for k, text in enumerate(mutations(seed_file.read_text(), rng, 12)):
        path = tmp_path / f"m{k}.yaml"
        path.write_text(text)
        try:
            spec = load_sweep(path)
        except ConfigError as error:
            assert error.problems, text
            for problem in error.problems:
                line = str(problem)
                assert "\n" not in line and line.startswith(str(path)), (text, line)
        else:
            assert len(expand(spec)) >= 1


def test_the_mutations_make_bad_files(tmp_path: Path) -> None:
    """Not vacuous: most mutated files are refused."""
    rng = random.Random(0)
    texts = mutations((REPO / "configs" / "adam.yaml").read_text(), rng, 40)
    refused = 0
    for i, text in enumerate(texts):
        path = tmp_path / f"m{i}.yaml"
        path.write_text(text)
        try:
            load_sweep(path)
        except ConfigError:
            refused += 1
    assert refused >= 20
