"""The whole sweep: its top-level keys (`TOP`), `load_sweep` for a file and `validate` for a
mapping already read."""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from optsweep.catalog import DATASETS, TARGET_ACCURACY

from .blocks import check_optimizers, check_schedule
from .expand import check_size, check_unique, trials
from .problems import (
    BAD,
    ConfigError,
    Report,
    check_mapping,
    describe,
)
from .reader import Override, apply_override, parse_override, read
from .schema import Integer, Setting, Written
from .sections import (
    MODELS_TEXT,
    check_data,
    check_dataset,
    check_full_batch,
    check_model,
    check_name,
    check_report,
    check_search,
    check_sizes_fit,
    check_subset,
    check_train,
)
from .specs import (
    DEFAULT_TARGET_ACCURACY,
    DataSpec,
    ReportSpec,
    SearchSpec,
    SubsetSpec,
    SweepSpec,
    Target,
    TrainSpec,
)

MAX_TRIALS = Setting(Integer(1), "refuse grids with more trials than this", default=10000)

TOP: dict[str, Setting | type] = {
    "name": Setting(
        Written("letters, digits, `_ . -`", {"type": "string", "pattern": "^[A-Za-z0-9_.-]+$"}),
        "names the sweep, its study and `results/<name>/`",
        default_text="required",
    ),
    "dataset": Setting(
        Written(
            ", ".join(f"`{name}`" for name in DATASETS)
            + " (`mnist-mini` is bundled), or `{files: PATH.npz}`",
            {
                "anyOf": [
                    {"enum": list(DATASETS)},
                    {
                        "type": "object",
                        "properties": {"files": {"type": "string", "pattern": "[.]npz$"}},
                        "required": ["files"],
                        "additionalProperties": False,
                    },
                ]
            },
        ),
        "what to train on: a dataset by name, or your own arrays "
        "(see [Your own data](#your-own-data))",
        default_text="required",
    ),
    "subset": SubsetSpec,
    "data": DataSpec,
    "model": Setting(
        Written(MODELS_TEXT),
        "a name, a mapping `{name: mlp, hidden: [256, 128]}` with the model's options, or your "
        "own `{module: FILE.py:NAME, args: {…}}` (see [Your own model](#your-own-model))",
        default_text="`mlp`",
    ),
    "train": TrainSpec,
    "schedule": Setting(
        Written("`{type: KIND, unit: epoch | step, ...}`, see below"),
        "learning-rate schedule for every block",
        default_text="constant",
    ),
    "max_trials": MAX_TRIALS,
    "search": SearchSpec,
    "report": ReportSpec,
    "optimizers": Setting(
        Written("non-empty list"), "the optimizer blocks", default_text="required"
    ),
}
"""Every top-level key: a `Setting`, or a section whose fields declare its keys."""


def _check_sweep(report: Report, tree: dict[str, Any], source: Path) -> SweepSpec | None:
    """Validate the whole tree; None when a problem was reported."""
    required = {"name": "<sweep name>", "dataset": f"one of {', '.join(DATASETS)}"}
    required["optimizers"] = "[{name: adam, learning_rate: 0.001}]"
    check_mapping(report, (), tree, tuple(TOP), required)
    name = check_name(report, tree["name"]) if "name" in tree else BAD
    dataset = check_dataset(report, tree, source) if "dataset" in tree else BAD
    subset = check_subset(report, tree.get("subset"))
    subset_train, subset_test = (None, None) if subset is BAD else (subset.train, subset.test)
    data = check_data(report, tree.get("data"))
    model = check_model(report, tree, source)
    train = check_train(report, tree.get("train"))
    check_full_batch(report, data, subset_train, train)
    if dataset in DATASETS:  # a user's .npz is measured when it is read
        check_sizes_fit(report, dataset, subset_train, subset_test, train)
    schedule = check_schedule(report, ("schedule",), tree.get("schedule"))
    max_trials = MAX_TRIALS.kind.check(
        report, ("max_trials",), tree.get("max_trials", MAX_TRIALS.default)
    )
    blocks = check_optimizers(report, tree["optimizers"], schedule) if "optimizers" in tree else BAD
    search = check_search(report, tree.get("search"))
    report_spec = check_report(report, tree.get("report"), dataset)
    if (
        not report.search
        and BAD not in (train, max_trials, blocks)
        and check_size(report, tree, blocks, train, max_trials)
    ):
        check_unique(report, trials(blocks, train.seeds, report))
    if report.problems or BAD in (
        name,
        dataset,
        subset,
        data,
        model,
        train,
        max_trials,
        blocks,
        search,
        report_spec,
    ):
        return None
    return SweepSpec(
        name=name,
        dataset=dataset,
        files=tree["dataset"]["files"] if isinstance(tree["dataset"], dict) else None,
        subset_train=subset_train,
        subset_test=subset_test,
        model=model,
        train=train,
        optimizers=tuple(blocks),
        max_trials=max_trials,
        source=source,
        raw=copy.deepcopy(tree),
        search=search,
        data=data,
        report=report_spec,
    )


def load_sweep(
    path: str | os.PathLike[str],
    overrides: Iterable[str | Override] = (),
    *,
    search: bool = False,
) -> SweepSpec:
    """Read, override and validate a sweep file.

    Args:
        path: the YAML file.
        overrides: ``--set`` arguments (``"train.epochs=2"``) or parsed `Override` s, applied
            in order to the tree before validation.
        search: read it for ``optsweep search``: grid entries may be ranges ``{low, high}``
            and the grid's size is not capped (the budget is ``search.trials``).

    Raises:
        ConfigError: with every problem found, one line each; never another exception for
            bad input.
    """
    report = Report(str(path), search=search)
    parsed = _parse_overrides(report, overrides)
    tree = read(Path(path), report)
    return _finish(report, tree, parsed, Path(path))


def validate(
    mapping: Mapping[str, Any],
    source: str | os.PathLike[str],
    overrides: Iterable[str | Override] = (),
    *,
    search: bool = False,
) -> SweepSpec:
    """Validate a sweep already read (a study's stored config, a folder's ``config.yaml``) as
    `load_sweep` validates a file; problems name ``source`` and have no line.

    ``mapping`` is not changed; the spec's ``raw`` is a copy with the overrides applied.

    Raises:
        ConfigError: with every problem found, one line each.
    """
    report = Report(str(source), search=search, lines=False)
    parsed = _parse_overrides(report, overrides)
    tree: Any = copy.deepcopy(dict(mapping)) if isinstance(mapping, Mapping) else mapping
    if not isinstance(tree, dict):
        report.add_at(str(source), None, f"expected a mapping, got {describe(tree)}")
        tree = BAD
    return _finish(report, tree, parsed, Path(source))


def _parse_overrides(report: Report, overrides: Iterable[str | Override]) -> list[Override]:
    parsed: list[Override] = []
    for item in overrides:
        try:
            parsed.append(item if isinstance(item, Override) else parse_override(item))
        except ConfigError as error:
            report.problems.extend(error.problems)
    return parsed


def _finish(report: Report, tree: Any, overrides: list[Override], source: Path) -> SweepSpec:
    """Apply the overrides to the tree read, check the whole, raise what was found."""
    spec = None
    if tree is not BAD:
        for override in overrides:
            apply_override(tree, override, report)
        spec = _check_sweep(report, tree, source)
    if report.problems or spec is None:
        # the file's problems in line order, then the command line's (--set, --device...)
        problems = sorted(report.problems, key=lambda p: (p.file.startswith("--"), p.line or 0))
        raise ConfigError(problems)
    return spec


def target_of(raw: Mapping[str, Any]) -> Target:
    """The target of a sweep's plain mapping (as a study stores it), defaults filled in, read
    by the same check as the file (`check_report`).

    A study whose stored config has no ``report:`` section (written before there was one)
    gets the dataset's default.
    """
    dataset = raw.get("dataset")
    checked = check_report(Report("<stored config>"), raw.get("report"), str(dataset))
    if isinstance(checked, ReportSpec):
        return checked.target
    return Target("test_accuracy", TARGET_ACCURACY.get(str(dataset), DEFAULT_TARGET_ACCURACY))
