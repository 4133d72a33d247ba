"""What a CI job needs: a smoke run of a whole config in seconds, and results it can read.

``smoke_overrides`` turns a sweep into its smoke run: every trial (block, grid point, seed)
for a few optimizer steps over two epochs (so per-epoch schedules, evaluation and pruning run
too) on a tiny subset, a fixed K (no K measurement), into ``<name>-smoke``; the same engine,
study and results code then run it. ``junit_xml`` writes one testcase per trial.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import Any

from optsweep.catalog import DATASET_SIZES, SMOKE_SIZES, DatasetSize
from optsweep.config import SweepSpec, trial_label

__all__ = ["SMOKE_STEPS", "SMOKE_TEST_IMAGES", "junit_xml", "smoke_overrides"]

SMOKE_STEPS = 6
SMOKE_TEST_IMAGES = 64
SMOKE_TRIALS_PER_BATCH = 32


def smoke_overrides(spec: SweepSpec, steps: int = SMOKE_STEPS) -> list[str]:
    """``--set`` overrides that make ``spec`` its smoke run of about ``steps`` steps."""
    epochs = 2 if steps >= 2 else 1
    per_epoch = math.ceil(steps / epochs)
    # a dataset optsweep ships no subset of is read from --data-dir (or the user's .npz): a
    # few of its first images
    if spec.files is not None:
        from optsweep.data import npz_sizes

        available = DatasetSize(*npz_sizes(spec.files))
    else:
        available = SMOKE_SIZES.get(spec.dataset, DATASET_SIZES[spec.dataset])
    batch = min(spec.train.batch_size, available.train // per_epoch)
    return [
        f"name={spec.name}-smoke",
        f"train.epochs={epochs}",
        f"train.batch_size={batch}",
        f"subset.train={batch * per_epoch}",
        f"subset.test={min(SMOKE_TEST_IMAGES, available.test)}",
        f"train.trials_per_batch={SMOKE_TRIALS_PER_BATCH}",
        "train.log_every=1",
    ]


def _trial_seconds(record: Any) -> float:
    """A testcase's time: the trial's share of its batch's wall time (the K trials of a batch
    train together, so the suite's time is the batches' total), 0 when not measured."""
    for seconds in (record.seconds_per_trial, record.seconds):
        if math.isfinite(seconds):
            return seconds
    return 0.0


def junit_xml(records: Sequence[Any], suite: str, *, fail_on_diverged: bool = False) -> str:
    """JUnit XML: one testcase per trial (optimizer, semantics, parameters, seed); a failed
    trial is a failure with its message; a diverged one too with ``fail_on_diverged``, else a
    passing case that says so."""
    root = ET.Element("testsuites")
    failing = {"failed", "diverged"} if fail_on_diverged else {"failed"}
    failures = sum(r.status in failing for r in records)
    seconds = sum(_trial_seconds(r) for r in records)
    group = ET.SubElement(
        root,
        "testsuite",
        name=suite,
        tests=str(len(records)),
        failures=str(failures),
        errors="0",
        skipped="0",
        time=f"{seconds:.3f}",
    )
    for r in records:
        case = ET.SubElement(
            group,
            "testcase",
            classname=f"optsweep.{suite}",
            name=trial_label(r.optimizer, r.semantics, r.params, r.seed),
            time=f"{_trial_seconds(r):.3f}",
        )
        accuracy = r.final_test_accuracy
        said = f"status: {r.status}; final test accuracy: {accuracy:.4f}"
        if r.status in failing:
            message = r.error or f"the trial {r.status}"
            ET.SubElement(case, "failure", message=message, type=r.status).text = said
        else:
            ET.SubElement(case, "system-out").text = said
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
