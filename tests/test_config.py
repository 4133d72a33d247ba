"""Tests for optsweep.config: bad files x exact messages, good files x expansions, overrides."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from optsweep.config import (
    ConfigError,
    DataSpec,
    ModelSpec,
    Override,
    Problem,
    SweepSpec,
    TrialSpec,
    expand,
    load_sweep,
    parse_override,
)
from optsweep.config.reader import read_text

HEAD = "name: t\ndataset: mnist\n"
"""Two valid lines most cases start with (lines 1-2)."""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(text)
    return path


def problems(path: Path, overrides: tuple[str, ...] = ()) -> list[str]:
    """The problem lines of loading ``path``, its name written as F."""
    with pytest.raises(ConfigError) as info:
        load_sweep(path, overrides)
    lines = str(info.value).splitlines()
    assert len(lines) == len(info.value.problems)
    return [line.replace(str(path), "F") for line in lines]


def check(got: list[str], expected: tuple[str | re.Pattern[str], ...]) -> None:
    """Each line equals its expected string, or matches its expected pattern."""
    assert len(got) == len(expected), "\n".join(got)
    for line, want in zip(got, expected, strict=True):
        if isinstance(want, re.Pattern):
            assert want.fullmatch(line), f"{line!r} !~ {want.pattern!r}"
        else:
            assert line == want


R = re.compile  # a pattern where the registry writes the message

# ───────────────────────────── bad files ─────────────────────────────

BLOCK = "optimizers:\n  - name: adam\n"  # lines 3-4 after HEAD

BAD_FILES: list[tuple[str, str, tuple[str | re.Pattern[str], ...]]] = [
    # --- the file as a whole
    ("empty", "", ("F:1: the file is empty; expected a mapping with name, dataset, optimizers",)),
    (
        "comments-only",
        "# nothing\n",
        ("F:1: the file is empty; expected a mapping with name, dataset, optimizers",),
    ),
    (
        "top-level-list",
        "- name: adam\n",
        (
            "F:1: expected a mapping (name: ..., dataset: ..., optimizers: [...]) at the top "
            'level, got a list [{"name": "adam"}]',
        ),
    ),
    (
        "top-level-scalar",
        "adam\n",
        (
            "F:1: expected a mapping (name: ..., dataset: ..., optimizers: [...]) at the top "
            "level, got the string 'adam'",
        ),
    ),
    (
        "syntax-error",
        HEAD + "train:\n  epochs: 3\n batch_size: 4\n",
        (R(r"F:5: YAML syntax error: .*"),),
    ),
    (
        "unclosed-flow",
        HEAD + "optimizers: [adam\n",
        (R(r"F:4: YAML syntax error: .*expected ',' or '\]'.* \(the construct began at line 3\)"),),
    ),
    (
        "tab-indent",
        HEAD + "train:\n\tepochs: 3\n",
        (
            "F:4: YAML syntax error: while scanning for the next token; found character '\\t'"
            " that cannot start any token; indent with spaces, not tabs",
        ),
    ),
    (
        "missing-required",
        "model: mlp\n",
        (
            "F:1: name: required key missing; add name: <sweep name>",
            "F:1: dataset: required key missing; add dataset: one of mnist, fashion-mnist, "
            "cifar10, mnist-mini, kmnist, emnist-balanced, cifar100, svhn",
            "F:1: optimizers: required key missing; add optimizers: [{name: adam, "
            "learning_rate: 0.001}]",
        ),
    ),
    # --- report
    (
        "report-target-text",
        HEAD + "report: {target: high}\n" + BLOCK,
        (
            "F:3: report.target: expected a test accuracy (0.97) or {metric: test_loss, "
            "value: 0.1}, got the string 'high'",
        ),
    ),
    (
        "report-accuracy-above-1",
        HEAD + "report:\n  target: 97\n" + BLOCK,
        ("F:4: report.target: expected an accuracy from 0 to 1, got 97",),
    ),
    (
        "report-unknown-metric",
        HEAD + "report: {target: {metric: test_acc, value: 0.9}}\n" + BLOCK,
        (
            "F:3: report.target.metric: unknown metric 'test_acc'; did you mean "
            "'test_accuracy'? valid: test_accuracy, test_loss, train_loss",
        ),
    ),
    (
        "report-target-without-value",
        HEAD + "report: {target: {metric: test_loss}}\n" + BLOCK,
        ("F:3: report.target.value: required key missing; add value: 0.97",),
    ),
    (
        "report-unknown-key",
        HEAD + "report: {targt: 0.9}\n" + BLOCK,
        ("F:3: report.targt: unknown key 'targt'; did you mean 'target'? valid keys: target",),
    ),
    # --- top level
    (
        "unknown-top-key",
        HEAD + "trian: {epochs: 3}\n" + BLOCK,
        (
            "F:3: trian: unknown key 'trian'; did you mean 'train'? valid keys: name, dataset, "
            "subset, data, model, train, schedule, max_trials, search, report, optimizers",
        ),
    ),
    (
        "name-path",
        "name: ../up\ndataset: mnist\n" + BLOCK,
        (
            "F:1: name: expected a name of letters, digits, _ . - (it names results/<name>/), "
            "got the string '../up'",
        ),
    ),
    (
        "name-number",
        "name: 2024\ndataset: mnist\n" + BLOCK,
        (
            "F:1: name: expected a name of letters, digits, _ . - (it names results/<name>/), "
            "got 2024 (quote it)",
        ),
    ),
    (
        "dataset-typo",
        "name: t\ndataset: mnsit\n" + BLOCK,
        (
            "F:2: dataset: unknown dataset 'mnsit'; did you mean 'mnist'? valid: mnist, "
            "fashion-mnist, cifar10, mnist-mini, kmnist, emnist-balanced, cifar100, svhn",
        ),
    ),
    (
        "model-typo",
        HEAD + "model: {name: nlp, hidden: [8]}\n" + BLOCK,
        (
            "F:3: model.name: unknown model 'nlp'; did you mean 'mlp'? valid: logreg, mlp, cnn, "
            "2c2d, 3c3d, resnet20, resnet32, resnet56",
        ),
    ),
    (
        "model-digits",  # resnet18 is no typo of resnet20: no did-you-mean
        HEAD + "model: resnet18\n" + BLOCK,
        (
            "F:3: model: unknown model 'resnet18'; valid: logreg, mlp, cnn, 2c2d, 3c3d, "
            "resnet20, resnet32, resnet56",
        ),
    ),
    (
        "precision-digits",  # nor fp64 of fp16
        HEAD + "train: {precision: fp64}\n" + BLOCK,
        ("F:3: train.precision: unknown precision 'fp64'; valid: fp32, bf16, fp16",),
    ),
    (
        "model-list",
        HEAD + "model: [mlp]\n" + BLOCK,
        (
            "F:3: model: expected a model name (logreg, mlp, cnn, 2c2d, 3c3d, resnet20, resnet32, "
            "resnet56) or a mapping "
            '{name: mlp, ...options}, got a list ["mlp"]',
        ),
    ),
    (
        "subset",
        HEAD + "subset: {train: 0, tset: 5}\n" + BLOCK,
        (
            "F:3: subset.tset: unknown key 'tset'; did you mean 'test'? valid keys: train, test",
            "F:3: subset.train: expected an integer >= 1 or null, got 0",
        ),
    ),
    # --- data: the protocol's keys, choices and types
    (
        "data-key-typo",
        HEAD + "data: {normalise: unit}\n" + BLOCK,
        (
            "F:3: data.normalise: unknown key 'normalise'; did you mean 'normalize'? valid keys: "
            "normalize, drop_last, crop_padding, flip, dir",
        ),
    ),
    (
        "data-normalize-typo",
        HEAD + "data: {normalize: unti}\n" + BLOCK,
        (
            "F:3: data.normalize: unknown normalize 'unti'; did you mean 'unit'? valid: "
            "standard, unit",
        ),
    ),
    (
        "data-normalize-number",
        HEAD + "data:\n  normalize: 255\n" + BLOCK,
        ("F:4: data.normalize: expected normalize (standard, unit), got 255",),
    ),
    (
        "data-drop-last-yes",
        HEAD + "data: {drop_last: yes}\n" + BLOCK,
        ("F:3: data.drop_last: expected true or false, got the string 'yes'",),
    ),
    (
        "data-list",
        HEAD + "data: [unit]\n" + BLOCK,
        (
            "F:3: data: expected a mapping {normalize: standard | unit, drop_last: true | false}, "
            'got a list ["unit"]',
        ),
    ),
    (
        "data-drop-last-no-full-batch",
        HEAD + "subset: {train: 100}\ndata:\n  drop_last: true\n" + BLOCK,
        (
            "F:5: data.drop_last: subset.train = 100 is less than one batch of 128: every batch "
            "would be dropped; set drop_last: false or a batch_size of at most 100",
        ),
    ),
    (
        "max-trials-zero",
        HEAD + "max_trials: 0\n" + BLOCK,
        ("F:3: max_trials: expected an integer >= 1, got 0",),
    ),
    # --- train: types, bool-is-int, ranges, choices
    (
        "epochs-string",
        HEAD + "train:\n  epochs: '3'\n" + BLOCK,
        ("F:4: train.epochs: expected an integer >= 1, got the string '3' (remove the quotes)",),
    ),
    (
        "epochs-float",
        HEAD + "train: {epochs: 2.5}\n" + BLOCK,
        ("F:3: train.epochs: expected an integer >= 1, got 2.5",),
    ),
    (
        "epochs-bool",
        HEAD + "train: {epochs: true}\n" + BLOCK,
        ("F:3: train.epochs: expected an integer >= 1, got true",),
    ),
    (
        "epochs-zero",
        HEAD + "train: {epochs: 0}\n" + BLOCK,
        ("F:3: train.epochs: expected an integer >= 1, got 0",),
    ),
    (
        "batch-size-null",
        HEAD + "train: {batch_size: null}\n" + BLOCK,
        ("F:3: train.batch_size: expected an integer >= 1, got null",),
    ),
    (
        "trials-per-batch-zero",
        HEAD + "train: {trials_per_batch: 0}\n" + BLOCK,
        ("F:3: train.trials_per_batch: expected an integer >= 1 or null, got 0",),
    ),
    (
        "seeds-bare-int",
        HEAD + "train: {seeds: 0}\n" + BLOCK,
        ("F:3: train.seeds: expected a list of distinct integers >= 0, got 0; write seeds: [0]",),
    ),
    (
        "seeds-empty",
        HEAD + "train: {seeds: []}\n" + BLOCK,
        ("F:3: train.seeds: empty list; give at least one seed, e.g. seeds: [0]",),
    ),
    (
        "seeds-duplicate",
        HEAD + "train:\n  seeds:\n    - 1\n    - 1\n" + BLOCK,
        ("F:6: train.seeds[1]: seed 1 is listed twice; seeds must be distinct",),
    ),
    (
        "seeds-negative-and-bool",
        HEAD + "train: {seeds: [-1, true]}\n" + BLOCK,
        (
            "F:3: train.seeds[0]: expected an integer >= 0, got -1",
            "F:3: train.seeds[1]: expected an integer >= 0, got true",
        ),
    ),
    (
        "device",
        HEAD + "train: {device: gpu}\n" + BLOCK,
        ("F:3: train.device: expected auto, cpu, cuda or cuda:N, got the string 'gpu'",),
    ),
    (
        "precision",
        HEAD + "train: {precision: bf61}\n" + BLOCK,
        (
            "F:3: train.precision: unknown precision 'bf61'; did you mean 'bf16'? valid: fp32, "
            "bf16, fp16",
        ),
    ),
    (
        "unknown-train-key",
        HEAD + "train: {epoch: 3}\n" + BLOCK,
        (
            "F:3: train.epoch: unknown key 'epoch'; did you mean 'epochs'? valid keys: epochs, "
            "batch_size, seeds, device, eval_batch_size, log_every, trials_per_batch, "
            "label_smoothing, precision",
        ),
    ),
    # --- YAML traps
    (
        "duplicate-key",
        HEAD + "train:\n  epochs: 3\n  epochs: 5\n" + BLOCK,
        (
            "F:5: train.epochs: duplicate key 'epochs' (first at line 4, again at line 5); YAML "
            "would silently keep the last: keep one",
        ),
    ),
    (
        "duplicate-top-key",
        HEAD + BLOCK + "optimizers: []\n",
        (
            "F:5: optimizers: duplicate key 'optimizers' (first at line 3, again at line 5); "
            "YAML would silently keep the last: keep one",
        ),
    ),
    (
        "leading-zero",
        HEAD + "train: {epochs: 010}\n" + BLOCK,
        (
            "F:3: train.epochs: 010 has a leading zero, which YAML 1.1 reads as octal; write 10 "
            "(decimal) or 0o10 (octal)",
        ),
    ),
    (
        "leading-zero-negative-in-list",
        HEAD + "optimizers:\n  - name: adam\n    grid: {lr: [0.1, -007]}\n",
        (
            "F:5: optimizers[0].grid.lr[1]: -007 has a leading zero, which YAML 1.1 reads as "
            "octal; write -7 (decimal) or -0o7 (octal)",
        ),
    ),
    (
        "complex-key",
        HEAD + "? [a, b]\n: 1\n" + BLOCK,
        ("F:3: a key must be a plain name, not a list or mapping",),
    ),
    (
        "merge-scalar",
        HEAD + "train: {<<: 3, epochs: 2}\n" + BLOCK,
        ("F:3: train: << must merge a mapping or a list of mappings",),
    ),
    (
        "yes-is-not-bool",
        HEAD + "optimizers:\n  - name: adam\n    amsgrad: yes\n",
        (
            "F:5: optimizers[0].amsgrad: expected true or false, got the string 'yes'; write "
            "true or false (YAML 1.1 words yes/no/on/off are not booleans here)",
        ),
    ),
    (
        "off-in-grid",
        HEAD + "optimizers:\n  - name: rmsprop\n    grid: {centered: [on, off]}\n",
        (
            "F:5: optimizers[0].grid.centered[0]: expected true or false, got the string 'on'; "
            "write true or false (YAML 1.1 words yes/no/on/off are not booleans here)",
            "F:5: optimizers[0].grid.centered[1]: expected true or false, got the string 'off'; "
            "write true or false (YAML 1.1 words yes/no/on/off are not booleans here)",
        ),
    ),
    (
        "quoted-number",
        HEAD + "optimizers:\n  - name: adam\n    lr: '1e-3'\n",
        (
            R(
                r"F:5: optimizers\[0\]\.lr: expected a number \(valid: [^)]*learning_rate[^)]*\), "
                r"got the string '1e-3' \(remove the quotes\)"
            ),
        ),
    ),
    (
        "inf",
        HEAD + "optimizers:\n  - name: adam\n    learning_rate: .inf\n",
        (
            R(
                r"F:5: optimizers\[0\]\.learning_rate: expected a finite number "
                r"\(valid: [^)]*learning_rate[^)]*\), got \.inf"
            ),
        ),
    ),
    (
        "nan-in-grid",
        HEAD + "optimizers:\n  - name: adam\n    grid:\n      beta_1: [0.9, .nan]\n",
        (
            R(
                r"F:6: optimizers\[0\]\.grid\.beta_1\[1\]: expected a finite number "
                r"\(valid: [^)]*beta_1[^)]*\), got \.nan"
            ),
        ),
    ),
    (
        "python-tag",
        HEAD + "optimizers:\n  - name: adam\n    lr: !!python/float 1\n",
        ("F:5: optimizers[0].lr: unsupported YAML tag !!python/float on '1'",),
    ),
    (
        "self-alias",
        HEAD + "optimizers: &a [*a]\n",
        (R(r"F:3: optimizers\[0\]: .*"),),
    ),
    # --- optimizer blocks
    (
        "optimizers-empty",
        HEAD + "optimizers: []\n",
        (
            "F:3: optimizers: expected a non-empty list of optimizer blocks (- name: adam ...), "
            "got a list []",
        ),
    ),
    (
        "block-not-mapping",
        HEAD + "optimizers:\n  - [adam]\n",
        (
            R(
                r"F:4: optimizers\[0\]: expected an optimizer name \(sgd, .*, nadamax\) or a "
                r"mapping \{name: adam, learning_rate: 0\.001, grid: \{\.\.\.\}\}, "
                r"got a list \[\"adam\"\]"
            ),
        ),
    ),
    (
        "block-no-name",
        HEAD + "optimizers:\n  - lr: 0.1\n",
        (R(r"F:4: optimizers\[0\]\.name: required key missing; add name: one of sgd, .*nadamax"),),
    ),
    (
        "optimizer-typo",
        HEAD + "optimizers:\n  - name: rmsprob\n",
        (
            R(
                r"F:4: optimizers\[0\]\.name: unknown optimizer 'rmsprob'; did you mean "
                r"'rmsprop'\? valid: sgd, .*, nadamax"
            ),
        ),
    ),
    (
        "semantics",
        HEAD + "optimizers:\n  - name: adam\n    semantics: tf\n",
        ("F:5: optimizers[0].semantics: unknown semantics 'tf'; valid: torch, keras",),
    ),
    (
        "block-key-typo",
        HEAD + "optimizers:\n  - name: adam\n    semantic: keras\n",
        (
            "F:5: optimizers[0].semantic: unknown key 'semantic'; did you mean 'semantics'? "
            "(block keys: name, semantics, schedule, grid; any other key is a parameter of adam)",
        ),
    ),
    (
        "unknown-parameter",
        HEAD + "optimizers:\n  - name: adam\n    grid:\n      beta1s: [0.9]\n",
        (
            R(
                r"F:6: optimizers\[0\]\.grid\.beta1s: adam: unknown parameter 'beta1s';"
                r" did you mean .*"
            ),
        ),
    ),
    (
        "foreign-parameter",
        HEAD + "optimizers:\n  - name: adam\n    momentum: 0.9\n",
        (R(r"F:5: optimizers\[0\]\.momentum: adam: unknown parameter 'momentum'.*"),),
    ),
    (
        "wrapper-only",
        HEAD + "optimizers:\n  - name: adam\n    maximize: true\n",
        (
            R(
                r"F:5: optimizers\[0\]\.maximize: adam: unknown parameter 'maximize'; "
                r"'maximize' is a keyword of the torch.optim wrapper .*"
            ),
        ),
    ),
    (
        "out-of-range",
        HEAD + "optimizers:\n  - name: adam\n    grid:\n      beta_1: [0.9, 1.5]\n",
        (R(r"F:6: optimizers\[0\]\.grid\.beta_1\[1\]: .*1\.5.*valid: .*beta_1.*"),),
    ),
    (
        "int-parameter-float",
        HEAD + "optimizers:\n  - name: adam\n    gradient_accumulation_steps: 2.5\n",
        (
            R(
                r"F:5: optimizers\[0\]\.gradient_accumulation_steps: expected an integer"
                r" \(valid: .*\), got 2\.5"
            ),
        ),
    ),
    (
        "null-not-optional",
        HEAD + "optimizers:\n  - name: adam\n    lr: null\n",
        (R(r"F:5: optimizers\[0\]\.lr: learning_rate must be set; valid: .*learning_rate.*"),),
    ),
    (
        "grid-not-mapping",
        HEAD + "optimizers:\n  - name: adam\n    grid: [lr, 0.1]\n",
        (
            "F:5: optimizers[0].grid: expected a mapping of parameter: [values], got a list "
            '["lr", 0.1]',
        ),
    ),
    (
        "grid-value-not-list",
        HEAD + "optimizers:\n  - name: adam\n    grid:\n      beta_1: 0.9\n",
        (
            "F:6: optimizers[0].grid.beta_1: a grid entry must be a list of values, got 0.9; "
            "write beta_1: [0.9], or move it out of grid to fix it",
        ),
    ),
    (
        "grid-empty-list",
        HEAD + "optimizers:\n  - name: adam\n    grid:\n      beta_1: []\n",
        ("F:6: optimizers[0].grid.beta_1: empty list; give at least one value",),
    ),
    (
        "grid-duplicate-value",
        HEAD + "optimizers:\n  - name: adam\n    grid: {lr: [0.1, 0.01, 1.0e-1]}\n",
        ("F:5: optimizers[0].grid.lr[2]: value 0.1 is listed twice; each grid value once",),
    ),
    (
        "fixed-and-grid",
        HEAD + "optimizers:\n  - name: adam\n    beta_1: 0.9\n    grid:\n      beta_1: [0.8]\n",
        (
            "F:7: optimizers[0].grid.beta_1: beta_1 is both fixed (line 5) and in the grid "
            "(line 7); keep one",
        ),
    ),
    (
        "two-names",
        HEAD + "optimizers:\n  - name: adam\n    lr: 0.1\n    learning_rate: 0.01\n",
        (
            "F:6: optimizers[0].learning_rate: learning_rate is given twice, as 'lr' (line 5) "
            "and 'learning_rate' (line 6); keep one",
        ),
    ),
    (
        "betas-and-beta_1",
        HEAD + "optimizers:\n  - name: adam\n    betas: [0.9, 0.99]\n    grid: {beta_1: [0.8]}\n",
        (
            "F:6: optimizers[0].grid.beta_1: beta_1 is both fixed (line 5) and in the grid "
            "(line 6); keep one",
        ),
    ),
    (
        "betas-not-pair",
        HEAD + "optimizers:\n  - name: adam\n    betas: [0.9]\n",
        (
            "F:5: optimizers[0].betas: betas takes a list of 2 values [beta_1, beta_2], got a "
            "list [0.9]",
        ),
    ),
    (
        "betas-grid-not-pairs",
        HEAD + "optimizers:\n  - name: adam\n    grid: {betas: [0.9, 0.99]}\n",
        (
            "F:5: optimizers[0].grid.betas[0]: betas takes a list of 2 values [beta_1, beta_2], "
            "got 0.9; in a grid write a list of such lists",
            "F:5: optimizers[0].grid.betas[1]: betas takes a list of 2 values [beta_1, beta_2], "
            "got 0.99; in a grid write a list of such lists",
        ),
    ),
    (
        "cross-rule",
        HEAD + "optimizers:\n  - name: adam\n    clipnorm: 1\n    grid: {clipvalue: [1, 2]}\n",
        (
            R(
                r"F:4: optimizers\[0\]: adam: at most one of clipnorm, global_clipnorm, "
                r"clipvalue .* \(at grid point clipvalue=1\.0, and 1 more of 2\)"
            ),
        ),
    ),
    (
        "same-trial-twice",
        HEAD + "optimizers:\n  - {name: adam, lr: 0.1}\n  - {name: adam, learning_rate: 0.1}\n",
        (
            'F:5: optimizers[1]: repeats a trial of optimizers[0] ({"optimizer":"adam","params":'
            '{"learning_rate":0.1},"schedule":null,"seed":0,"semantics":"torch"}); remove one of '
            "them",
        ),
    ),
    (
        "too-many-trials",
        HEAD
        + "max_trials: 10\ntrain: {seeds: [0, 1]}\noptimizers:\n  - name: adam\n"
        + "    grid: {lr: [1, 2, 3], beta_1: [0.1, 0.2]}\n  - sgd\n",
        (
            "F:3: max_trials: the sweep has 14 trials (7 grid points [optimizers[0]: 6, "
            "optimizers[1]: 1] x 2 seeds), more than max_trials = 10; shrink the grid or raise "
            "max_trials",
        ),
    ),
    (
        "too-many-default-max",
        HEAD
        + "optimizers:\n  - name: adam\n    grid:\n"
        + "".join(f"      {p}: {list(range(1, 11))}\n" for p in ("gradient_accumulation_steps",))
        + "      lr: [{}]\n".format(", ".join(f"0.{i:04d}" for i in range(1, 1002))),
        (R(r"F:3: optimizers: the sweep has 10010 trials .* more than max_trials = 10000; .*"),),
    ),
    # --- schedules
    (
        "schedule-typo",
        HEAD + "schedule: {type: cosin}\n" + BLOCK,
        (
            "F:3: schedule.type: unknown schedule type 'cosin'; did you mean 'cosine'? valid: "
            "constant, step, multistep, exponential, cosine, cosine_warm_restarts, one_cycle, "
            "polynomial, inverse_time, piecewise_constant",
        ),
    ),
    (
        "schedule-wrong-key",
        HEAD + "schedule: {type: cosine, T_0: 2, eta_min: -1}\n" + BLOCK,
        (
            "F:3: schedule.T_0: unknown key 'T_0'; valid keys: type, unit, T_max, eta_min, "
            "warmup_steps, warmup_start",
            "F:3: schedule.eta_min: expected a finite number >= 0.0, got -1",
        ),
    ),
    (
        "schedule-no-type",
        HEAD + "schedule: {T_max: 3}\n" + BLOCK,
        (
            "F:3: schedule.type: required key missing; add type: one of constant, step, "
            "multistep, exponential, cosine, cosine_warm_restarts, one_cycle, polynomial, "
            "inverse_time, piecewise_constant",
        ),
    ),
    (
        "schedule-list-of-words",
        HEAD + "schedule: {type: multistep, milestones: [3, x], unit: batch}\n" + BLOCK,
        (
            "F:3: schedule.unit: unknown unit 'batch'; valid: epoch, step",
            'F:3: schedule.milestones: expected a list of integers, got a list [3, "x"]',
        ),
    ),
    (
        "schedule-range",
        HEAD + "schedule: {type: one_cycle, pct_start: 1.5}\n" + BLOCK,
        ("F:3: schedule: schedule pct_start = 1.5 is invalid; valid: 0 < pct_start < 1",),
    ),
    (
        "nested-too-deep",
        HEAD + "optimizers: [adam]\nx: " + "[" * 100 + "]" * 100 + "\n",
        ("F:4: nested more than 64 levels deep; a sweep file needs a few",),
    ),
    (
        "absurd-epochs",
        HEAD + "train: {epochs: 1000000000000000000000000000000}\noptimizers: [adam]\n",
        ("F:3: train.epochs: expected an integer from 1 to 100,000, got a 31-digit number",),
    ),
    (
        "batch-larger-than-data",
        "name: t\ndataset: mnist-mini\ntrain: {batch_size: 6000}\noptimizers: [adam]\n",
        (
            "F:3: train.batch_size: batch_size = 6,000 is more than the 5,000 training images "
            "of mnist-mini; at most 5,000",
        ),
    ),
    (
        "subset-larger-than-data",
        HEAD + "subset: {test: 20000}\noptimizers: [adam]\n",
        ("F:3: subset.test: mnist has 10,000 test images; subset.test = 20,000 asks for more",),
    ),
    (
        "schedule-bare-typo",
        HEAD + "schedule: cosinus\n" + BLOCK,
        (
            "F:3: schedule: unknown schedule type 'cosinus'; did you mean 'cosine'? valid: "
            "constant, step, multistep, exponential, cosine, cosine_warm_restarts, one_cycle, "
            "polynomial, inverse_time, piecewise_constant",
        ),
    ),
    (
        "block-schedule",
        HEAD + "optimizers:\n  - name: adam\n    schedule: {type: cosine_warm_restarts, T_0: 0}\n",
        ("F:5: optimizers[0].schedule.T_0: expected an integer >= 1, got 0",),
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"), [c[1:] for c in BAD_FILES], ids=[c[0] for c in BAD_FILES]
)
def test_bad_file(tmp_path: Path, text: str, expected: tuple[str | re.Pattern[str], ...]) -> None:
    check(problems(write(tmp_path, text)), expected)


def test_all_problems_collected_in_file_order(tmp_path: Path) -> None:
    text = (
        "name: t\ndataset: mnsit\ntrain: {epochs: 0, seeds: 1}\n"
        "optimizers:\n  - name: adam\n    amsgrad: no\n  - name: adma\n"
    )
    got = problems(write(tmp_path, text))
    assert [line.split(": ")[0:2] for line in got] == [
        ["F:2", "dataset"],
        ["F:3", "train.epochs"],
        ["F:3", "train.seeds"],
        ["F:6", "optimizers[0].amsgrad"],
        ["F:7", "optimizers[1].name"],
    ]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing.yaml", "cannot read the file: No such file or directory"),
        (lambda d: d, "cannot read the file: Is a directory"),
        (
            lambda d: (d / "bin.yaml", (d / "bin.yaml").write_bytes(b"name: \xff\xfe\n"))[0],
            "cannot read the file: not UTF-8 text (invalid start byte)",
        ),
    ],
    ids=["missing", "directory", "binary"],
)
def test_unreadable_file(tmp_path: Path, make, message: str) -> None:
    path = make(tmp_path)
    assert problems(path) == [f"F: {message}"]


# ───────────────────────────── good files ─────────────────────────────

SEED_ADAM = (
    HEAD
    + """\
optimizers:
  - name: adam
    semantics: keras
    epsilon: 1e-7
    grid:
      learning_rate: [1e-2, 1e-3, 1e-4, 1E-5]
      beta_1: [0.9, 0.85, 0.8, 0.75, 0.5]
      beta_2: [0.999, 0.999999, 0.95, 0.9]
      amsgrad: [true, false]
"""
)
SEED_RMSPROP = (
    HEAD
    + """\
optimizers:
  - name: rmsprop
    semantics: keras
    grid:
      learning_rate: [0.01, 0.001, 0.0001, 0.00001]
      epsilon: [1.0e-7]
      rho: [0.9, 0.75, 0.5, 0.25, 0.1]
      momentum: [0]
      centered: [true, false]
      clipnorm: [1]
"""
)
SEED_NESTEROV = (
    HEAD
    + """\
optimizers:
  - name: nesterov
    semantics: keras
    clipnorm: 1
    grid:
      learning_rate: [0.01, 0.001, 0.0001, 0.00001]
      momentum: [0.1, 0.25, 0.5, 0.75, 0.9, 0.999]
"""
)
TWO_BLOCKS = (
    HEAD
    + """\
train: {seeds: [0, 1], epochs: 2}
schedule: {type: cosine, T_max: 2}
optimizers:
  - name: sgd
    grid: {lr: [0.1, 0.01]}
  - name: adam
    betas: [0.9, 0.999]
    schedule: null
    grid: {eps: [1e-8]}
"""
)
PAIRS = (
    HEAD
    + """\
optimizers:
  - name: nadam
    grid:
      betas: [[0.9, 0.999], [0.8, 0.99]]
      lr: [2e-3, 5e+2]
"""
)
SHORTHAND = (
    HEAD
    + """\
model: {name: mlp, hidden: [256, 128]}
subset: {train: 1000}
optimizers: [adam, {name: adamw, weight_decay: 0.01}, {name: adam, clipnorm: null}]
"""
)

GOOD_FILES = [
    # id, text, trials, (first key, last key)
    ("seed-adam-160", SEED_ADAM, 160),
    ("seed-rmsprop-40", SEED_RMSPROP, 40),
    ("seed-nesterov-24", SEED_NESTEROV, 24),
    ("two-blocks-2-seeds", TWO_BLOCKS, 6),
    ("betas-pairs-zip", PAIRS, 4),
    ("shorthand", SHORTHAND, 3),
]


@pytest.mark.parametrize(
    ("text", "count"), [c[1:] for c in GOOD_FILES], ids=[c[0] for c in GOOD_FILES]
)
def test_good_file(tmp_path: Path, text: str, count: int) -> None:
    spec = load_sweep(write(tmp_path, text))
    trials = expand(spec)
    assert len(trials) == count
    keys = [t.key for t in trials]
    assert len(set(keys)) == count
    assert keys == [t.key for t in expand(spec)]
    for trial in trials:
        assert set(trial.params) <= set(trial.hyperparameters)
        assert set(trial.display) == set(trial.params)
        assert all(trial.hyperparameters[k] == v for k, v in trial.params.items())


def test_seed_adam_grid(tmp_path: Path) -> None:
    spec = load_sweep(write(tmp_path, SEED_ADAM))
    (block,) = spec.optimizers
    assert block.fixed == {"epsilon": 1e-7}
    assert block.grid["learning_rate"] == [1e-2, 1e-3, 1e-4, 1e-5]  # 1e-3 is a float, not '1e-3'
    assert [len(v) for v in block.grid.values()] == [4, 5, 4, 2]
    trials = expand(spec)
    first, last = trials[0], trials[-1]
    assert first.params == {
        "epsilon": 1e-7,
        "learning_rate": 0.01,
        "beta_1": 0.9,
        "beta_2": 0.999,
        "amsgrad": True,
    }
    assert last.params["amsgrad"] is False and last.params["learning_rate"] == 1e-5
    assert first.key == (
        '{"optimizer":"adam","params":{"amsgrad":true,"beta_1":0.9,"beta_2":0.999,'
        '"epsilon":1e-07,"learning_rate":0.01},"schedule":null,"seed":0,"semantics":"keras"}'
    )
    assert first.hyperparameters["clipnorm"] is None  # filled from the registry's defaults
    assert {t.semantics for t in trials} == {"keras"}


def test_rmsprop_and_nesterov_only_own_parameters(tmp_path: Path) -> None:
    rms = expand(load_sweep(write(tmp_path, SEED_RMSPROP)))
    assert {t.params["rho"] for t in rms} == {0.9, 0.75, 0.5, 0.25, 0.1}
    assert all(t.params["momentum"] == 0.0 and isinstance(t.params["momentum"], float) for t in rms)
    assert "beta_1" not in rms[0].hyperparameters
    nag = expand(load_sweep(write(tmp_path, SEED_NESTEROV)))
    assert [t.params["momentum"] for t in nag[:6]] == [0.1, 0.25, 0.5, 0.75, 0.9, 0.999]
    assert all(t.params["clipnorm"] == 1.0 for t in nag)
    assert "rho" not in nag[0].hyperparameters and "amsgrad" not in nag[0].hyperparameters


def test_two_blocks_seeds_outermost_and_schedules(tmp_path: Path) -> None:
    spec = load_sweep(write(tmp_path, TWO_BLOCKS))
    trials = expand(spec)
    assert [(t.optimizer, t.seed) for t in trials] == [
        ("sgd", 0), ("sgd", 0), ("adam", 0), ("sgd", 1), ("sgd", 1), ("adam", 1)
    ]  # fmt: skip
    sgd, adam = spec.optimizers
    assert sgd.schedule is not None and sgd.schedule.kind == "cosine" and sgd.schedule.T_max == 2
    assert adam.schedule is None  # `schedule: null` turns the sweep's default off
    assert adam.fixed == {"beta_1": 0.9, "beta_2": 0.999}
    assert adam.display == {"beta_1": "beta_1", "beta_2": "beta_2", "epsilon": "eps"}
    assert sgd.display == {"learning_rate": "lr"}
    assert trials[0].display == {"learning_rate": "lr"} and trials[0].block == 0
    assert trials[2].block == 1 and trials[2].params["epsilon"] == 1e-8
    assert spec.train.epochs == 2 and spec.train.seeds == (0, 1)


SCHEDULE_GRID = (
    HEAD
    + """\
train: {epochs: 4}
schedule: {type: cosine, unit: step, warmup_steps: [0, 500], eta_min: [0.0, 1.0e-5]}
optimizers:
  - name: adam
    grid: {lr: [0.01, 0.001]}
  - name: sgd
    schedule: {type: multistep, milestones: [[2], [1, 3]]}
  - name: momentum
    schedule: {type: cosine, warmup_steps: 500, eta_min: 1.0e-5, unit: step}
"""
)


def test_schedule_lists_are_grid_axes_crossed_with_the_block_grid(tmp_path: Path) -> None:
    spec = load_sweep(write(tmp_path, SCHEDULE_GRID))
    adam = spec.optimizers[0]
    assert adam.grid == {
        "learning_rate": [0.01, 0.001],
        "schedule.warmup_steps": [0, 500],
        "schedule.eta_min": [0.0, 1e-5],
    }
    trials = expand(spec)
    adam_trials = [t for t in trials if t.optimizer == "adam"]
    assert len(adam_trials) == 8 and len({t.key for t in adam_trials}) == 8
    seen = {(t.hyperparameters["learning_rate"], t.schedule.warmup_steps, t.schedule.eta_min)
            for t in adam_trials}  # fmt: skip
    assert len(seen) == 8 and all(t.schedule.unit == "step" for t in adam_trials)
    assert "schedule.warmup_steps" not in adam_trials[0].hyperparameters
    assert adam_trials[0].display["schedule.warmup_steps"] == "schedule.warmup_steps"
    assert [t.schedule.milestones for t in trials if t.optimizer == "sgd"] == [(2,), (1, 3)]
    # a schedule from a grid and the same schedule written out are the same trial
    written = next(t for t in trials if t.optimizer == "momentum").schedule
    grid_point = next(t.schedule for t in adam_trials if t.schedule.warmup_steps == 500
                      and t.schedule.eta_min == 1e-5)  # fmt: skip
    assert written == grid_point


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ("{type: cosine, warmup_steps: []}", "schedule.warmup_steps: expected a list of distinct"),
        (
            "{type: cosine, warmup_steps: [5, 5]}",
            "schedule.warmup_steps: expected a list of distinct",
        ),
        (
            "{type: one_cycle, pct_start: [0.3, 1.5]}",
            "schedule: schedule pct_start = 1.5 is invalid",
        ),
        (
            "{type: step, step_size: [2, 0]}",
            "schedule.step_size[1]: expected an integer >= 1, got 0",
        ),
    ],
)
def test_bad_schedule_grids(tmp_path: Path, schedule: str, message: str) -> None:
    text = HEAD + f"schedule: {schedule}\noptimizers: [adam]\n"
    with pytest.raises(ConfigError) as error:
        load_sweep(write(tmp_path, text))
    assert message in str(error.value)


def test_betas_pairs_are_zipped_not_crossed(tmp_path: Path) -> None:
    spec = load_sweep(write(tmp_path, PAIRS))
    (block,) = spec.optimizers
    assert block.linked == (("beta_1", "beta_2"),)
    pairs = [
        (t.params["beta_1"], t.params["beta_2"], t.params["learning_rate"]) for t in expand(spec)
    ]
    assert pairs == [
        (0.9, 0.999, 0.002),
        (0.9, 0.999, 500.0),
        (0.8, 0.99, 0.002),
        (0.8, 0.99, 500.0),
    ]


def test_shorthand_and_defaults(tmp_path: Path) -> None:
    spec = load_sweep(write(tmp_path, SHORTHAND))
    assert spec.model.name == "mlp" and spec.model.options == {"hidden": [256, 128]}
    assert (spec.subset_train, spec.subset_test) == (1000, None)
    assert spec.train == spec.train.__class__()  # every train default
    assert spec.data == DataSpec(normalize="standard", drop_last=False)  # as before data:
    assert spec.max_trials == 10000
    trials = expand(spec)
    assert trials[0].params == {} and trials[0].hyperparameters["learning_rate"] == 0.001
    assert trials[2].params == {"clipnorm": None}  # null: the optional knob stays off


def test_yaml_scalars(tmp_path: Path) -> None:
    text = "name: no\ndataset: mnist\n" + BLOCK  # 'no' stays a string
    assert load_sweep(write(tmp_path, text)).name == "no"
    scalars = read_text(
        "{a: 1e-3, b: 1E-5, c: 5e+2, d: yes, e: off, f: 1:30, g: 2024-01-02,"
        " h: ~, i: 0x10, j: 1_000, k: .5, l: True, m: 0}"
    )
    assert scalars == {
        "a": 0.001, "b": 1e-05, "c": 500.0, "d": "yes", "e": "off", "f": "1:30",
        "g": "2024-01-02", "h": None, "i": 16, "j": 1000, "k": 0.5, "l": True, "m": 0,
    }  # fmt: skip


def test_anchors_and_merge_keys(tmp_path: Path) -> None:
    text = HEAD + (
        "optimizers:\n"
        "  - &base {name: adam, semantics: keras, lr: 0.01}\n"
        "  - {<<: *base, lr: 0.001}\n"
    )
    trials = expand(load_sweep(write(tmp_path, text)))
    assert [(t.semantics, t.params) for t in trials] == [
        ("keras", {"learning_rate": 0.01}),
        ("keras", {"learning_rate": 0.001}),
    ]


def test_raw_round_trips_as_config_yaml(tmp_path: Path) -> None:
    spec = load_sweep(write(tmp_path, TWO_BLOCKS), ["train.epochs=4"])
    assert spec.raw["train"] == {"seeds": [0, 1], "epochs": 4}
    again = tmp_path / "config.yaml"
    again.write_text(yaml.safe_dump(spec.raw, sort_keys=False))
    respec = load_sweep(again)
    assert [t.key for t in expand(respec)] == [t.key for t in expand(spec)]
    assert respec.train == spec.train


def test_records_are_frozen(tmp_path: Path) -> None:
    spec = load_sweep(write(tmp_path, TWO_BLOCKS))
    assert isinstance(spec, SweepSpec) and isinstance(expand(spec)[0], TrialSpec)
    with pytest.raises(AttributeError):
        spec.name = "x"  # type: ignore[misc]


# ───────────────────────────── overrides ─────────────────────────────

OVERRIDES_OK = [
    ("train.epochs=2", lambda s: s.train.epochs == 2),
    ("train.seeds=[3, 4]", lambda s: s.train.seeds == (3, 4)),
    ("optimizers[0].grid.lr=[0.5]", lambda s: s.optimizers[0].grid == {"learning_rate": [0.5]}),
    (
        "optimizers.1.grid.eps=[1e-7, 1e-6]",
        lambda s: s.optimizers[1].grid["epsilon"] == [1e-7, 1e-6],
    ),
    ("optimizers[1].amsgrad=true", lambda s: s.optimizers[1].fixed["amsgrad"] is True),
    ("schedule={type: constant}", lambda s: s.optimizers[0].schedule is None),
    (
        "schedule=cosine_warm_restarts",
        lambda s: s.optimizers[0].schedule.kind == "cosine_warm_restarts",
    ),
    ("schedule.eta_min=1e-4", lambda s: s.optimizers[0].schedule.eta_min == 1e-4),
    ("subset.train=100", lambda s: s.subset_train == 100),  # creates the missing mapping
    ("data.normalize=unit", lambda s: s.data == DataSpec(normalize="unit")),
    ("data={drop_last: true}", lambda s: s.data == DataSpec(drop_last=True)),
    ("data=", lambda s: s.data == DataSpec()),  # an empty section: the defaults
    ("train.trials_per_batch=", lambda s: s.train.trials_per_batch is None),  # empty is null
    ("name=other", lambda s: s.name == "other" and s.raw["name"] == "other"),
]


@pytest.mark.parametrize(("override", "ok"), OVERRIDES_OK, ids=[o for o, _ in OVERRIDES_OK])
def test_override(tmp_path: Path, override: str, ok) -> None:
    assert ok(load_sweep(write(tmp_path, TWO_BLOCKS), [override]))


BARE_NAMES = HEAD + "model: 2c2d\nschedule: cosine\noptimizers: [adam, sgd]\n"
OVERRIDES_INTO_BARE_NAMES = [  # a bare name is short for a mapping an override may reach into
    ("model.init=keras", lambda s: s.model == ModelSpec("2c2d", {"init": "keras"})),
    ("optimizers[1].lr=0.5", lambda s: s.optimizers[1].fixed == {"learning_rate": 0.5}),
    ("schedule.T_max=7", lambda s: s.optimizers[0].schedule.T_max == 7),
]


@pytest.mark.parametrize(
    ("override", "ok"), OVERRIDES_INTO_BARE_NAMES, ids=[o for o, _ in OVERRIDES_INTO_BARE_NAMES]
)
def test_override_into_a_bare_name(tmp_path: Path, override: str, ok) -> None:
    spec = load_sweep(write(tmp_path, BARE_NAMES), [override])
    assert ok(spec)
    assert load_sweep(write(tmp_path, yaml.safe_dump(spec.raw))) == spec  # raw says it all


OVERRIDES_BAD = [
    ("train.epochs=0", "--set: train.epochs: expected an integer >= 1, got 0"),
    ("train.epochs=x", "--set: train.epochs: expected an integer >= 1, got the string 'x'"),
    (
        "train.epochs=08",
        "--set: train.epochs: 08 has a leading zero, which YAML 1.1 reads as octal; write 8 "
        "(decimal)",
    ),
    ("train.epochs=[1", R(r"--set: train\.epochs: YAML syntax error: .*")),
    (
        "data.normalize=minmax",
        "--set: data.normalize: unknown normalize 'minmax'; valid: standard, unit",
    ),
    (
        "trian.epochs=2",
        "--set: trian: unknown key 'trian'; did you mean 'train'? valid keys: name, dataset, "
        "subset, data, model, train, schedule, max_trials, search, report, optimizers",
    ),
    (
        "optimizers[5].lr=0.1",
        "--set: optimizers[5].lr: optimizers has 2 items; index 5 is out of range (0..1) "
        "(optimizers[5].lr=0.1)",
    ),
    (
        "name.x=1",
        "--set: name.x: name is the string 't', not a mapping (name.x=1)",
    ),
    (
        "optimizers.x=1",
        "--set: optimizers.x: optimizers is a list: use [N] (optimizers.x=1)",
    ),
    (
        "train.epochs",
        "--set: 'train.epochs' is not key.path=value (e.g. train.epochs=2, "
        "optimizers[0].grid.learning_rate=[0.1])",
    ),
    (
        "optimizers[0].grid.learning_rate=[0.1]",
        "--set: optimizers[0].grid.learning_rate: learning_rate is given twice, as 'lr' "
        "(line 7) and 'learning_rate' (--set); keep one",
    ),
    (
        "optimizers[1].amsgrad=no",
        R(r"--set: optimizers\[1\]\.amsgrad: expected true or false, got the string 'no'; .*"),
    ),
]


@pytest.mark.parametrize(("override", "expected"), OVERRIDES_BAD, ids=[o for o, _ in OVERRIDES_BAD])
def test_bad_override(tmp_path: Path, override: str, expected: str | re.Pattern[str]) -> None:
    check(problems(write(tmp_path, TWO_BLOCKS), (override,)), (expected,))


def test_override_problems_come_after_file_problems(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + "train: {epochs: 0}\n" + BLOCK)
    assert problems(path, ("train.batch_size=0", "bad")) == [
        "F:3: train.epochs: expected an integer >= 1, got 0",
        "--set: 'bad' is not key.path=value (e.g. train.epochs=2, "
        "optimizers[0].grid.learning_rate=[0.1])",
        "--set: train.batch_size: expected an integer >= 1, got 0",
    ]


@pytest.mark.parametrize(
    ("text", "path", "value"),
    [
        ("train.epochs=2", ("train", "epochs"), "2"),
        (
            "optimizers[0].grid.learning_rate=[0.1]",
            ("optimizers", 0, "grid", "learning_rate"),
            "[0.1]",
        ),
        ("optimizers.0.grid.lr = [0.1, 0.2]", ("optimizers", 0, "grid", "lr"), "[0.1, 0.2]"),
        ("a[1][2].b=x=y", ("a", 1, 2, "b"), "x=y"),
    ],
)
def test_parse_override(text: str, path: tuple, value: str) -> None:
    assert parse_override(text) == Override(path, value, text)


@pytest.mark.parametrize("text", ["epochs", "=3", "a..b=1", "a[x]=1", "a[1=2", ".a=1", "a[0]b=1"])
def test_parse_override_rejects(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_override(text)
    (problem,) = info.value.problems
    assert problem.file == "--set" and "is not key.path=value" in problem.message


def test_problem_prints_one_line() -> None:
    assert str(Problem("a.yaml", 3, "train.epochs", "bad")) == "a.yaml:3: train.epochs: bad"
    assert str(Problem("--set", None, "train.epochs", "bad")) == "--set: train.epochs: bad"
    assert str(Problem("a.yaml", None, "", "cannot read")) == "a.yaml: cannot read"
    assert str(Problem("a.yaml", 3, "a\nb", "unknown key 'a\nb'")) == (
        "a.yaml:3: a\\nb: unknown key 'a\\nb'"
    )
    error = ConfigError([Problem("a", 1, "k", "m"), Problem("b", 2, "", "n")])
    assert str(error) == "a:1: k: m\nb:2: n"


@pytest.mark.parametrize(
    ("section", "dataset", "metric", "value"),
    [
        ("", "mnist", "test_accuracy", 0.97),
        ("", "fashion-mnist", "test_accuracy", 0.85),
        ("report: {target: 0.99}\n", "mnist", "test_accuracy", 0.99),
        ("report: {target: {metric: test_loss, value: 0.1}}\n", "mnist", "test_loss", 0.1),
        ("report: {target: {value: 0.5}}\n", "cifar10", "test_accuracy", 0.5),
    ],
)
def test_report_target(tmp_path: Path, section: str, dataset: str, metric: str, value: float):
    """The validated target, and the same read back from the plain mapping a study stores."""
    from optsweep.config import Target, target_of

    spec = load_sweep(write(tmp_path, f"name: t\ndataset: {dataset}\n{section}{BLOCK}"))
    assert spec.report.target == Target(metric, value)
    assert target_of(spec.raw) == Target(metric, value)


@pytest.mark.parametrize(
    ("metric", "value", "epoch", "reached"),
    [
        ("test_accuracy", 0.9, {"test_accuracy": 0.9}, True),
        ("test_accuracy", 0.9, {"test_accuracy": 0.8999}, False),
        ("test_accuracy", 0.9, {"test_accuracy": float("nan")}, False),
        ("test_loss", 0.1, {"test_loss": 0.05}, True),
        ("test_loss", 0.1, {"test_loss": 0.2}, False),
        ("train_loss", 0.1, {"train_loss": float("nan")}, False),
    ],
)
def test_target_reached(metric: str, value: float, epoch: dict, reached: bool) -> None:
    from optsweep.config import Target

    assert Target(metric, value).reached(epoch) is reached
