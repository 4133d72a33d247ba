"""The sections of a sweep file other than its optimizer blocks: each checked against the keys
its dataclass declares (`schema.check_section`), plus the rules that span sections.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from optsweep.catalog import (
    DATASET_SIZES,
    DATASETS,
    INITS,
    MODEL_TABLE,
    MODELS,
    TARGET_ACCURACY,
    USER_MODEL,
)
from optsweep.values import fmt

from .problems import (
    BAD,
    Bad,
    KeyPath,
    Report,
    check_choice,
    check_float,
    check_mapping,
    check_named,
    describe,
    is_int,
    is_number,
    quote_hint,
)
from .schema import Flag, Kind, OneOf, Setting, check_section
from .specs import (
    DEFAULT_TARGET_ACCURACY,
    TARGET_METRICS,
    DataSpec,
    ModelSpec,
    ReportSpec,
    SearchSpec,
    SubsetSpec,
    Target,
    TrainSpec,
)

_NAME_RE = re.compile(r"[A-Za-z0-9_.-]+")


class _Widths(Kind):
    """An MLP's hidden widths: a list of ints >= 1 (one int is a list of one)."""

    def check(self, report: Report, path: KeyPath, value: Any) -> Any:
        widths = [value] if is_int(value) else value
        if isinstance(widths, list) and widths and all(is_int(w) and w >= 1 for w in widths):
            return value
        return report.add(
            path, f"expected a list of widths >= 1 ([256, 128]), got {describe(value)}"
        )

    def valid(self) -> str:
        return "list of ints ≥ 1"

    def json(self) -> dict[str, Any]:
        width = {"type": "integer", "minimum": 1}
        return {"anyOf": [width, {"type": "array", "items": width, "minItems": 1}]}


MODEL_OPTION_KEYS: Mapping[str, Setting] = {
    "hidden": Setting(_Widths(), "`mlp`: the hidden layers' widths", default_text="`[128]`"),
    "dropout": Setting(Flag(), "`cnn`: its two dropout layers", default_text="true"),
    "init": Setting(
        OneOf(INITS, "init"),
        "how every model's weights start",
        default_text=(
            "`torch`: as the reference PyTorch module (`torch.nn` defaults; DeepOBS's "
            "initialisation for `2c2d` and `3c3d`)"
        ),
        note="`keras` is glorot_uniform kernels and zero biases, as Keras's `Dense` and "
        "`Conv2D` start",
    ),
}
"""How each model option is written; which model has which, and its default: the catalog's
`MODEL_TABLE`."""
MODELS_TEXT = ", ".join(f"`{name}` ({entry.summary})" for name, entry in MODEL_TABLE.items())


def check_name(report: Report, value: Any) -> str | Bad:
    path: KeyPath = ("name",)
    if value is BAD:
        return BAD
    if not isinstance(value, str) or not _NAME_RE.fullmatch(value) or set(value) == {"."}:
        hint = " (quote it)" if is_number(value) or isinstance(value, bool) else ""
        return report.add(
            path,
            f"expected a name of letters, digits, _ . - (it names results/<name>/), got "
            f"{describe(value)}{hint}",
        )
    return value


def check_dataset(report: Report, tree: dict[str, Any], source: Path) -> str | Bad:
    """A dataset's name, or ``{files: PATH.npz}``: a user's arrays, the path resolved against
    the config's folder and written back resolved (so a stored config reads the same file
    wherever it is validated again); the file must exist. Returns the name, or the path as
    written for a file."""
    value = tree["dataset"]
    path: KeyPath = ("dataset",)
    if not isinstance(value, dict):
        return check_choice(report, path, value, DATASETS, "dataset")
    mapping = check_mapping(report, path, value, ("files",), {"files": "PATH.npz"})
    files = mapping.get("files") if mapping is not BAD else BAD
    if files is BAD or "files" not in mapping:
        return BAD
    if not isinstance(files, str) or not files.endswith(".npz"):
        return report.add(
            (*path, "files"),
            f"expected the path of a .npz file (x_train, y_train, x_test, y_test, as Keras's "
            f"datasets), got {describe(files)}",
        )
    resolved = Path(files).expanduser()
    if not resolved.is_absolute():
        resolved = source.parent / resolved
    if not resolved.is_file():
        return report.add((*path, "files"), f"no such file: {resolved}")
    value["files"] = str(resolved.resolve())
    return files


def check_subset(report: Report, value: Any) -> SubsetSpec | Bad:
    what = "{train: N, test: N}"
    return check_section(report, ("subset",), value, SubsetSpec, what=what)


def check_data(report: Report, value: Any) -> DataSpec | Bad:
    """The ``data:`` section: normalize and drop_last."""
    what = "a mapping {normalize: standard | unit, drop_last: true | false}"
    return check_section(report, ("data",), value, DataSpec, what=what)


def check_train(report: Report, value: Any) -> TrainSpec | Bad:
    return check_section(report, ("train",), value, TrainSpec)


def check_search(report: Report, value: Any) -> SearchSpec | Bad:
    return check_section(report, ("search",), value, SearchSpec)


_MODULE_RE = re.compile(r"(?:[A-Za-z_][A-Za-z0-9_]*\.)*[A-Za-z_][A-Za-z0-9_]*")


def check_user_model(report: Report, value: dict[str, Any], source: Path) -> ModelSpec | Bad:
    """``{module: FILE.py:NAME | package.module:NAME, args: {…}}``: a user's module. A FILE
    is resolved against the config's folder, must exist, and is written back resolved; it is
    not imported here (validating runs no code; a run imports it)."""
    path: KeyPath = ("model",)
    before = len(report.problems)
    check_mapping(report, path, value, ("module", "args"))
    reference, args = value["module"], value.get("args") or {}
    where, _, name = reference.rpartition(":") if isinstance(reference, str) else ("", "", "")
    if not where or not _MODULE_RE.fullmatch(name):
        return report.add(
            (*path, "module"),
            f"expected FILE.py:NAME or package.module:NAME (an nn.Module class or a function "
            f"returning one), got {describe(reference)}",
        )
    if where.endswith(".py"):
        file = Path(where).expanduser()
        file = file if file.is_absolute() else source.parent / file
        if not file.is_file():
            return report.add((*path, "module"), f"no such file: {file}")
        value["module"] = f"{file.resolve()}:{name}"
    elif not _MODULE_RE.fullmatch(where):
        return report.add(
            (*path, "module"), f"{where!r} is neither a FILE.py nor a dotted module name"
        )
    if not isinstance(args, dict):
        report.add(
            (*path, "args"), f"expected a mapping of keyword arguments, got {describe(args)}"
        )
    if len(report.problems) > before:
        return BAD
    return ModelSpec(USER_MODEL, {"module": value["module"], "args": dict(args)})


def check_model(report: Report, tree: dict[str, Any], source: Path) -> ModelSpec | Bad:
    """A model name, or ``{name: NAME, <its options>}``: the options each model has
    (`catalog.MODEL_TABLE`), each written as its kind says, so a typo is refused before a run;
    or a user's ``{module: …, args: …}`` (`check_user_model`)."""
    value = tree.get("model", "mlp")
    if isinstance(value, dict) and "module" in value:
        return check_user_model(report, value, source)
    named = check_named(
        report, ("model",), value, "name", MODELS, "model", "{name: mlp, ...options}"
    )
    if named is BAD:
        return BAD
    name, mapping = named
    before = len(report.problems)
    check_mapping(report, ("model",), mapping, ("name", *MODEL_TABLE[name].options))
    for option in MODEL_TABLE[name].options:
        if option in mapping:
            MODEL_OPTION_KEYS[option].kind.check(report, ("model", option), mapping[option])
    if len(report.problems) > before:
        return BAD
    return ModelSpec(name, {k: v for k, v in mapping.items() if k != "name"})


def check_sizes_fit(
    report: Report,
    dataset: str,
    subset_train: int | None,
    subset_test: int | None,
    train: TrainSpec | Bad,
) -> None:
    """Subsets within the dataset's published splits; a batch within its training images."""
    size = DATASET_SIZES[dataset]
    for split, subset, available in (
        ("train", subset_train, size.train),
        ("test", subset_test, size.test),
    ):
        if subset is not None and subset > available:
            report.add(
                ("subset", split),
                f"{dataset} has {available:,} {split} images; subset.{split} = {subset:,} "
                f"asks for more",
            )
    # against the dataset, not a subset: a quick run on a few images takes them as one batch
    if train is not BAD and train.batch_size > size.train:
        report.add(
            ("train", "batch_size"),
            f"batch_size = {train.batch_size:,} is more than the {size.train:,} training images "
            f"of {dataset}; at most {size.train:,}",
        )


def check_full_batch(
    report: Report, data: DataSpec | Bad, subset_train: int | None, train: TrainSpec | Bad
) -> None:
    """With drop_last, a training subset smaller than one batch would train on nothing."""
    if data is BAD or train is BAD or not data.drop_last or subset_train is None:
        return
    if subset_train < train.batch_size:
        report.add(
            ("data", "drop_last"),
            f"subset.train = {subset_train:,} is less than one batch of {train.batch_size:,}: "
            f"every batch would be dropped; set drop_last: false or a batch_size of at most "
            f"{subset_train:,}",
        )


def check_report(report: Report, value: Any, dataset: str | Bad) -> ReportSpec | Bad:
    """The ``report:`` section: ``target: 0.97`` or ``target: {metric: M, value: V}``."""
    path: KeyPath = ("report",)
    section = check_mapping(report, path, value, ("target",))
    if section is BAD:
        return BAD
    written = section.get("target")
    metric: Any = "test_accuracy"
    where = (*path, "target")
    if isinstance(written, dict):
        check_mapping(report, where, written, ("metric", "value"), {"value": "0.97"})
        metric = check_choice(
            report,
            (*where, "metric"),
            written.get("metric", metric),
            tuple(TARGET_METRICS),
            "metric",
        )
        where, written = (*where, "value"), written.get("value", BAD)
    elif written is None:
        written = (
            TARGET_ACCURACY.get(dataset, DEFAULT_TARGET_ACCURACY)
            if isinstance(dataset, str)
            else BAD
        )
    elif not is_number(written):
        written = report.add(
            where,
            "expected a test accuracy (0.97) or {metric: test_loss, value: 0.1}, "
            f"got {describe(written)}{quote_hint(written)}",
        )
    value = check_float(report, where, written, 0.0)
    if metric == "test_accuracy" and isinstance(value, float) and value > 1:
        value = report.add(where, f"expected an accuracy from 0 to 1, got {fmt(value)}")
    if BAD in (metric, value):
        return BAD
    return ReportSpec(Target(metric, value))
