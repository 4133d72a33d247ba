"""Sweep configuration: a YAML file becomes a validated `SweepSpec`, then a list of `TrialSpec`.

One sweep per file::

    name: adam                    # names results/<name>/
    dataset: mnist
    subset: {train: null, test: null}
    data: {normalize: standard, drop_last: false}   # the data protocol
    model: mlp                    # or {name: mlp, hidden: [256, 128], init: torch}
    train: {epochs: 3, batch_size: 128, seeds: [0], device: auto}
    schedule: {type: cosine, T_max: 3, eta_min: 0.0}
    max_trials: 10000
    optimizers:
      - name: adam
        semantics: keras
        learning_rate: 0.001      # fixed values, keras or torch names
        grid:                     # lists: cartesian product within the block
          beta_1: [0.9, 0.85]
          amsgrad: [true, false]

`load_sweep` (a file) and `validate` (a mapping already read) collect *every* problem and raise
one `ConfigError`; each `Problem` prints as one line ``file:line: key.path: message`` saying
what is wrong and what would be valid.

The package, in the order imports flow:

- `problems`: the problems found, their one-line form, the checks every key shares.
- `schema`: how a key is declared once (type, default, bounds, help, meaning) and checked.
- `specs`: the records a sweep becomes; each section's keys are declared on its fields.
- `reader`: YAML 1.2-like reading with a line for every key path, and ``--set`` overrides.
- `sections`, `blocks`: the sections' checks; optimizer blocks and schedules, registry-driven.
- `expand`: grid points and seeds into trials, and their stable keys.
- `sweep`: the whole file: `load_sweep`, `validate`.
- `document`: the JSON Schema and the README's key table, from the declarations.
"""

from __future__ import annotations

from optsweep.values import fmt

from .expand import (
    configuration_key,
    expand,
    identity,
    label_of,
    make_trial,
    structure_key,
    trains_beside_others,
    trial_label,
)
from .problems import ConfigError, Problem
from .reader import Override, parse_override
from .specs import (
    DataSpec,
    ModelSpec,
    OptimizerBlock,
    RangeSpec,
    ReportSpec,
    SearchSpec,
    SweepSpec,
    Target,
    TrainSpec,
    TrialSpec,
    dataset_label,
    parse_target,
)
from .sweep import load_sweep, target_of, validate

__all__ = [
    "ConfigError",
    "DataSpec",
    "ModelSpec",
    "OptimizerBlock",
    "Override",
    "Problem",
    "RangeSpec",
    "ReportSpec",
    "SearchSpec",
    "SweepSpec",
    "Target",
    "TrainSpec",
    "TrialSpec",
    "configuration_key",
    "dataset_label",
    "expand",
    "fmt",
    "identity",
    "label_of",
    "load_sweep",
    "make_trial",
    "parse_override",
    "parse_target",
    "structure_key",
    "target_of",
    "trains_beside_others",
    "trial_label",
    "validate",
]
