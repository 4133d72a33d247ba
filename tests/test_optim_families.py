"""One definition per optimizer: each family module holds its entries and its one update.

What makes a second hand-written form, or an optimizer without its cases, fail here:
- every registry entry's kernel is defined in the entry's own family module, and builds and
  steps for each semantics and each setting of its flags;
- no module outside ``optim/families/`` defines a function or class named after an optimizer;
- ``test_optim_parity`` runs every optimizer in every form it has (its coverage test) and the
  wrapper is one of those forms;
- the definitions import without torch.
"""

from __future__ import annotations

import ast
import inspect
import itertools
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from optsweep import optim
from optsweep.optim import (
    OPTIMIZERS,
    SEMANTICS,
    inplace,
    resolve,
    stack_hyperparameters,
    state_slots,
)
from optsweep.optim.families import FAMILIES

PACKAGE = Path(optim.__file__).parent.parent
# words that name an optimizer's update (a function or class by these names is an update form)
OPTIMIZER_WORDS = (
    "sgd",
    "momentum",
    "nesterov",
    "adagrad",
    "rmsprop",
    "adadelta",
    "adam",
    "lion",
    "rprop",
    "adafactor",
    "lamb",
    "muon",
    "ftrl",
    "prodigy",
    "ademamix",
    "soap",
    "schedule_free",
)
# named after a parameter, not an optimizer: factories of ParamInfo records
PARAMETER_FACTORIES = {("parameters.py", "momentum"), ("parameters.py", "momentum_decay")}


def test_every_entry_comes_from_one_family_module_with_its_kernel() -> None:
    seen = []
    for family in FAMILIES:
        for info in family.OPTIMIZERS:
            seen.append(info.name)
            assert inspect.getmodule(info.kernel) is family, info.name
            if info.fused is not None:
                assert inspect.getmodule(info.fused) is family, info.name
    assert sorted(seen) == sorted(OPTIMIZERS)


def _flag_settings(optimizer: str) -> list[dict[str, bool]]:
    flags = [n for n, p in OPTIMIZERS[optimizer].params.items() if p.kind == "bool"]
    return [
        dict(zip(flags, values, strict=True))
        for values in itertools.product(*[(0, 1)] * len(flags))
    ]


KERNEL_CASES = [
    pytest.param(o, s, {k: bool(v) for k, v in flags.items()}, id=f"{o}-{s}-{flags}")
    for o in OPTIMIZERS
    for s in SEMANTICS
    for flags in _flag_settings(o)
    if not (s == "keras" and flags.get("decoupled_weight_decay") == 0)  # keras refuses it
    and not any(flags.get(knob) for knob in OPTIMIZERS[o].refuses)  # and soap these
]


@pytest.mark.parametrize(("optimizer", "semantics", "flags"), KERNEL_CASES)
def test_every_kernel_builds_and_steps(optimizer: str, semantics: str, flags: dict) -> None:
    values = resolve(optimizer, semantics, flags)
    kernel = inplace(optimizer, semantics, values)
    params = [torch.randn(2, 3, 4), torch.randn(2, 5)]
    start = [p.clone() for p in params]
    state = kernel.init(params)
    hp = stack_hyperparameters(optimizer, [values, values])
    # the caller scales the loss by the dynamic scale: unscaled, a step of η·g/2¹⁶ is below
    # float32's resolution for most weights (flaky for sgd and radam's unrectified steps)
    scale = values["initial_scale"] if values["dynamic_loss_scale"] else 1.0
    for _ in range(2):
        kernel.update_([scale * torch.randn_like(p) for p in params], state, params, hp)
    assert all(not torch.equal(p, q) for p, q in zip(params, start, strict=True))
    assert all(torch.isfinite(p).all() for p in params)


def offenders(package: Path) -> list[str]:
    """Functions and classes named after an optimizer outside ``package/optim/families``."""
    found = []
    families = package / "optim" / "families"
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    for path in sorted(package.rglob("*.py")):
        if families in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, kinds) or (path.name, node.name) in PARAMETER_FACTORIES:
                continue
            if any(word in node.name.lower() for word in OPTIMIZER_WORDS):
                found.append(f"{path.relative_to(package)}: {node.name}")
    return found


def test_no_update_is_written_outside_its_family_module() -> None:
    assert offenders(PACKAGE) == []


def test_a_second_form_outside_the_families_is_found(tmp_path: Path) -> None:
    update = "def adam_update_(grads, state, params, hp):\n    pass\n"
    (tmp_path / "optim" / "families").mkdir(parents=True)
    (tmp_path / "optim" / "families" / "adam.py").write_text(update)
    assert offenders(tmp_path) == []
    (tmp_path / "optim" / "fast.py").write_text(update)
    assert offenders(tmp_path) == ["optim/fast.py: adam_update_"]


def test_definitions_import_without_torch() -> None:
    code = (
        "import sys\n"
        "from optsweep.optim import registry, parameters, families\n"
        f"assert len(registry.OPTIMIZERS) == {len(OPTIMIZERS)}\n"
        "registry.resolve('adam', 'keras', {'lr': 0.1})\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "False"


def test_state_slots_count_a_rule_with_more_state() -> None:
    """Prodigy keeps θ₀, s, m and v: four copies where the estimate assumes three."""
    values = resolve("prodigy", "torch", {})
    assert state_slots(values) == 3
    assert state_slots(values, "prodigy") == 4
    assert state_slots(resolve("adam", "torch", {}), "adam") == 3
    assert state_slots({**values, "dynamic_loss_scale": True}, "prodigy") == 9
    params = [torch.randn(2, 3)]
    state = inplace("prodigy", "torch", values).init(params)
    copies = [leaf for leaf in state if isinstance(leaf, list)]
    assert len(copies) == OPTIMIZERS["prodigy"].state_copies == 4


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_state_slots_hold_what_the_state_holds(optimizer: str) -> None:
    """Given the shapes, the estimate covers the floats of a built state per trial, after the
    first update (where state is allocated on it: Adafactor, Muon, SOAP)."""
    shapes = [(6, 5), (6,), (3, 2, 2)]
    values = resolve(optimizer, "torch", {})
    kernel = inplace(optimizer, "torch", values)
    params = [torch.randn(2, *s) for s in shapes]  # K = 2
    state = kernel.init(params)
    hp = stack_hyperparameters(optimizer, [values, values])
    kernel.update_([torch.randn_like(p) for p in params], state, params, hp)
    leaves = [leaf for leaf in state if isinstance(leaf, list)]
    floats = sum(t.numel() for leaf in leaves for t in leaf) // 2
    size = sum(p[0].numel() for p in params)
    assert floats <= state_slots(values, optimizer, shapes) * size
