"""The sweep file declared once: the JSON Schema and README table come from the declarations,
agree with the checks, and the runner and search read meanings from them; `validate` of a
mapping; flags that are short for keys."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest

from optsweep.config import ConfigError, Override, TrainSpec, load_sweep, validate
from optsweep.config.document import json_schema, markdown_table
from optsweep.config.reader import read_text
from optsweep.config.schema import NOTHING, RESULT, TRIALS, meaning_keys, settings
from optsweep.config.specs import DataSpec, SearchSpec, SubsetSpec
from optsweep.runner import meaning_before, trial_meaning
from optsweep.search import build_space, fingerprint

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted([*(ROOT / "configs").glob("*.yaml"), *(ROOT / "examples").glob("*.yaml")])
HEAD = "name: t\ndataset: mnist\n"
BLOCK = "optimizers: [{name: adam, lr: 0.001}]\n"


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    schema = json_schema()
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def test_the_committed_schema_is_the_generated_one() -> None:
    committed = json.loads((ROOT / "docs" / "sweep.schema.json").read_text())
    assert committed == json_schema(), "regenerate: optsweep schema > docs/sweep.schema.json"


def test_the_readme_key_table_is_the_generated_one() -> None:
    readme = (ROOT / "README.md").read_text()
    assert markdown_table() in readme, "regenerate: optsweep schema --markdown"


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_every_shipped_config_names_and_passes_the_schema(
    path: Path, validator: jsonschema.Draft7Validator
) -> None:
    text = path.read_text()
    assert text.startswith("# yaml-language-server: $schema=../docs/sweep.schema.json\n")
    errors = [e.message for e in validator.iter_errors(read_text(text))]
    assert errors == []


# What the schema refuses as an editor types it; each is refused by optsweep too.
REFUSED = [
    ("top-typo", "name: t\ndatset: mnist\n" + BLOCK),
    ("train-typo", HEAD + "train: {epoch: 3}\n" + BLOCK),
    ("train-type", HEAD + "train: {epochs: '3'}\n" + BLOCK),
    ("train-bound", HEAD + "train: {batch_size: 0}\n" + BLOCK),
    ("seeds-repeat", HEAD + "train: {seeds: [1, 1]}\n" + BLOCK),
    ("device", HEAD + "train: {device: gpu}\n" + BLOCK),
    ("smoothing", HEAD + "train: {label_smoothing: 1.0}\n" + BLOCK),
    ("data-choice", HEAD + "data: {normalize: minmax}\n" + BLOCK),
    ("search-choice", HEAD + "search: {sampler: bayes}\n" + BLOCK),
    ("model-name", HEAD + "model: resnet\n" + BLOCK),
    ("model-option", HEAD + "model: {name: mlp, hiden: [64]}\n" + BLOCK),
    ("model-option-of-another", HEAD + "model: {name: logreg, dropout: true}\n" + BLOCK),
    ("optimizer-name", HEAD + "optimizers: [{name: adamm}]\n"),
    ("optimizer-parameter", HEAD + "optimizers: [{name: adam, rho: 0.9}]\n"),
    ("parameter-range", HEAD + "optimizers: [{name: adam, beta_1: 1.5}]\n"),
    ("grid-not-list", HEAD + "optimizers: [{name: adam, grid: {lr: 0.1}}]\n"),
    ("schedule-type", HEAD + "schedule: {type: cosin}\n" + BLOCK),
    ("schedule-key", HEAD + "schedule: {type: step, T_max: 3}\n" + BLOCK),
    ("target", HEAD + "report: {target: {metric: accuracy, value: 0.9}}\n" + BLOCK),
    ("no-optimizers", HEAD),
]


@pytest.mark.parametrize(("text"), [t for _, t in REFUSED], ids=[i for i, _ in REFUSED])
def test_the_schema_refuses_what_optsweep_refuses(
    text: str, validator: jsonschema.Draft7Validator, tmp_path: Path
) -> None:
    assert list(validator.iter_errors(read_text(text)))
    path = tmp_path / "sweep.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError):
        load_sweep(path)


ACCEPTED = [
    ("short", HEAD + BLOCK),
    ("sections", HEAD + "subset: {train: 100, test: null}\ndata: {dir: ../data}\n" + BLOCK),
    ("model-options", HEAD + "model: {name: mlp, hidden: [64, 32], init: keras}\n" + BLOCK),
    ("grid-and-range", HEAD + "optimizers: [{name: adam, grid: {lr: {low: 0.001, high: 0.1}}}]\n"),
    ("betas", HEAD + "optimizers: [{name: adam, betas: [0.9, 0.99], grid: {eps: [1.0e-8]}}]\n"),
    ("schedule-grid", HEAD + "schedule: {type: cosine, T_max: [2, 3]}\n" + BLOCK),
    ("bare-names", HEAD + "schedule: cosine\noptimizers: [sgd, adam]\n"),
]


@pytest.mark.parametrize(("text"), [t for _, t in ACCEPTED], ids=[i for i, _ in ACCEPTED])
def test_the_schema_accepts_what_optsweep_accepts(
    text: str, validator: jsonschema.Draft7Validator, tmp_path: Path
) -> None:
    assert [e.message for e in validator.iter_errors(read_text(text))] == []
    path = tmp_path / "sweep.yaml"
    path.write_text(text)
    load_sweep(path, search=True)


@pytest.mark.parametrize("section", [SubsetSpec, DataSpec, TrainSpec, SearchSpec])
def test_every_section_field_is_declared(section: type) -> None:
    import dataclasses

    assert [f.name for f in dataclasses.fields(section)] == list(settings(section))


def test_meanings_are_read_off_the_declarations() -> None:
    assert meaning_keys(TrainSpec) == ("epochs", "batch_size", "label_smoothing", "precision")
    assert meaning_keys(TrainSpec, (TRIALS,)) == ("seeds",)
    assert set(meaning_keys(TrainSpec, (NOTHING,))) == {
        "device",
        "eval_batch_size",
        "log_every",
        "trials_per_batch",
    }
    assert meaning_keys(DataSpec, (RESULT,)) == ("normalize", "drop_last", "crop_padding", "flip")


def _spec(tmp_path: Path, text: str, overrides: tuple[str, ...] = (), search: bool = False):
    path = tmp_path / "sweep.yaml"
    path.write_text(HEAD + text + BLOCK)
    return load_sweep(path, overrides, search=search)


# (override, changes a grid study's trials, changes a search's fingerprint)
MEANINGS = [
    ("train.epochs=5", True, True),
    ("train.label_smoothing=0.1", True, True),
    ("data.normalize=unit", True, True),
    ("data.crop_padding=4", True, True),
    ("data.flip=true", True, True),
    ("train.seeds=[0, 1]", False, True),  # each trial's key holds its seed
    ("train.device=cpu", False, False),
    ("train.log_every=1", False, False),
    ("data.dir=elsewhere", False, False),
    ("report.target=0.5", False, False),
]


@pytest.mark.parametrize(("override", "trials", "search"), MEANINGS)
def test_what_a_key_changes(tmp_path: Path, override: str, trials: bool, search: bool) -> None:
    base, changed = _spec(tmp_path, ""), _spec(tmp_path, "", (override,))
    assert (trial_meaning(base) != trial_meaning(changed)) is trials
    base, changed = _spec(tmp_path, "", search=True), _spec(tmp_path, "", (override,), True)
    before = fingerprint(base, build_space(base))
    assert (before != fingerprint(changed, build_space(changed))) is search


def test_a_new_key_at_its_default_leaves_older_studies_alone(tmp_path: Path) -> None:
    spec = _spec(tmp_path, "")
    assert meaning_before(spec)["train.label_smoothing"] == 0.0
    assert "label_smoothing" not in fingerprint(spec, build_space(spec))


# --------------------------------------------------------------------------- validate(mapping)


def test_validate_a_mapping_as_the_file(tmp_path: Path) -> None:
    path = ROOT / "configs" / "quickstart.yaml"
    from_file = load_sweep(path)
    mapping = copy.deepcopy(from_file.raw)
    spec = validate(mapping, "stored", ["train.epochs=1"])
    assert mapping == from_file.raw  # not changed
    assert spec.train.epochs == 1 and spec.optimizers == from_file.optimizers


@pytest.mark.parametrize(
    ("mapping", "expected"),
    [
        (
            {"name": "t", "dataset": "mnist", "train": {"epoch": 2}, "optimizers": ["adam"]},
            "study t: train.epoch: unknown key 'epoch'; did you mean 'epochs'? valid keys: "
            "epochs, batch_size, seeds, device, eval_batch_size, log_every, trials_per_batch, "
            "label_smoothing, precision",
        ),
        ([1, 2], "study t: expected a mapping, got a list [1, 2]"),
        (
            {"name": "t", "dataset": "mnist"},
            "study t: optimizers: required key missing; add optimizers: "
            "[{name: adam, learning_rate: 0.001}]",
        ),
    ],
    ids=["key", "not-a-mapping", "missing"],
)
def test_validate_says_what_is_wrong_without_lines(mapping: object, expected: str) -> None:
    with pytest.raises(ConfigError) as error:
        validate(mapping, "study t")  # type: ignore[arg-type]
    assert str(error.value) == expected


# --------------------------------------------------------------------------- flags as keys


@pytest.mark.parametrize(
    ("flag", "key", "value", "expected"),
    [
        ("--device", "train.device", "cpu", None),
        ("--data-dir", "data.dir", "my data: [x]", None),
        (
            "--device",
            "train.device",
            "gpu",
            "--device: train.device: expected auto, cpu, cuda or cuda:N, got the string 'gpu'",
        ),
    ],
)
def test_a_flag_is_short_for_a_key(
    tmp_path: Path, flag: str, key: str, value: str, expected: str | None
) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_text(HEAD + BLOCK)
    override = Override.of_flag(flag, key, value)
    if expected is None:
        spec = load_sweep(path, [override])
        section, name = key.split(".")
        assert getattr(getattr(spec, section), name) == value
    else:
        with pytest.raises(ConfigError) as error:
            load_sweep(path, [override])
        assert str(error.value) == expected
