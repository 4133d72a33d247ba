"""The registry: names, aliases, defaults (checked against the libraries), bad values."""

from __future__ import annotations

import inspect
import os
from typing import Any

import pytest
import torch

os.environ["KERAS_BACKEND"] = "torch"
try:
    import keras
except ImportError:  # pragma: no cover
    keras = None

from optsweep.optim import (
    OPTIMIZERS,
    SEMANTICS,
    UnknownParameterError,
    create,
    resolve,
    resolve_name,
)
from optsweep.optim.registry import COMMON_KNOBS

# keras on torch calls numpy on tensors without copy=; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

NAMES = (
    "sgd",
    "momentum",
    "nesterov",
    "asgd",
    "adagrad",
    "ftrl",
    "rmsprop",
    "rprop",
    "adadelta",
    "adam",
    "amsgrad",
    "adamw",
    "adamax",
    "radam",
    "ademamix",
    "adafactor",
    "lamb",
    "lion",
    "muon",
    "soap",
    "prodigy",
    "schedule_free_adamw",
    "schedule_free_sgd",
    "nadam",
    "nadamax",
)  # family by family (optim/families)


def test_every_optimizer_is_registered() -> None:
    assert tuple(OPTIMIZERS) == NAMES
    for info in OPTIMIZERS.values():
        assert set(COMMON_KNOBS) <= set(info.params)
        assert set(info.update_rule) == set(SEMANTICS)
        assert info.summary and info.reference and info.differences


@pytest.mark.parametrize("semantics", SEMANTICS)
@pytest.mark.parametrize("optimizer", NAMES)
def test_defaults_are_valid_and_resolve_is_idempotent(optimizer: str, semantics: str) -> None:
    info = OPTIMIZERS[optimizer]
    for p in info.params.values():
        assert p.check(p.default(semantics)) is None, p.name
        assert p.valid and p.doc
    values = resolve(optimizer, semantics, {})
    assert values == info.defaults(semantics)
    assert resolve(optimizer, semantics, values) == values


# ---------------------------------------------------------------------------------------------
# Defaults against the libraries' own signatures
# ---------------------------------------------------------------------------------------------

TORCH_CLASSES = {
    "sgd": "SGD",
    "momentum": "SGD",
    "nesterov": "SGD",
    "adagrad": "Adagrad",
    "rmsprop": "RMSprop",
    "adadelta": "Adadelta",
    "adam": "Adam",
    "amsgrad": "Adam",
    "adamax": "Adamax",
    "nadam": "NAdam",
    "adamw": "AdamW",
    "radam": "RAdam",
    "rprop": "Rprop",
    "asgd": "ASGD",
    "adafactor": "Adafactor",
    "muon": "Muon",
}
KERAS_CLASSES = {
    **{k: v for k, v in TORCH_CLASSES.items() if v in ("SGD", "Adagrad", "RMSprop")},
    "adadelta": "Adadelta",
    "adam": "Adam",
    "amsgrad": "Adam",
    "adamax": "Adamax",
    "nadam": "Nadam",
    "adamw": "AdamW",
    "ftrl": "Ftrl",
    "lion": "Lion",
    "adafactor": "Adafactor",
    "lamb": "Lamb",
    "muon": "Muon",
    "schedule_free_adamw": "ScheduleFreeAdamW",
}
# Deliberate differences from the library signature, each with its reason.
NOT_LIBRARY_DEFAULTS = {
    ("momentum", "momentum"): "library default 0 is plain SGD; the momentum optimizers use 0.9",
    ("nesterov", "momentum"): "same",
    ("muon", "epsilon"): "the AdamW half's ε (torch.optim.AdamW's 1e-8); Muon's eps is ns_epsilon",
}
TORCH_NAMES = {
    "learning_rate": "lr",
    "epsilon": "eps",
    "beta_2_decay": "beta2_decay",
    "clip_threshold": "d",
}


def _signature_defaults(cls: type) -> dict[str, Any]:
    return {
        name: p.default
        for name, p in inspect.signature(cls.__init__).parameters.items()
        if p.default is not inspect.Parameter.empty
    }


@pytest.mark.parametrize("optimizer", list(TORCH_CLASSES))
def test_torch_defaults_are_torch_optim_defaults(optimizer: str) -> None:
    lib = _signature_defaults(getattr(torch.optim, TORCH_CLASSES[optimizer]))
    checked = 0
    for name, value in resolve(optimizer, "torch", {}).items():
        if (optimizer, name) in NOT_LIBRARY_DEFAULTS:
            continue
        lib_name = "alpha" if (optimizer, name) == ("rmsprop", "rho") else TORCH_NAMES.get(name)
        lib_name = lib_name or name
        if name in ("beta_1", "beta_2"):
            assert value == lib["betas"][int(name[-1]) - 1], name
        elif name in ("eta_minus", "eta_plus"):
            assert value == lib["etas"][name == "eta_plus"], name
        elif name in ("step_size_min", "step_size_max"):
            assert value == lib["step_sizes"][name == "step_size_max"], name
        elif name in ("epsilon_1", "epsilon_2"):
            assert value == lib["eps"][name == "epsilon_2"], name
        elif name in ("muon_a", "muon_b", "muon_c"):
            assert value == lib["ns_coefficients"]["abc".index(name[-1])], name
        elif name == "ns_epsilon":
            assert value == lib["eps"], name
        elif lib_name in lib:
            assert value == lib[lib_name], name
        else:
            continue
        checked += 1
    assert checked >= 2


def test_lion_torch_defaults_are_the_reference_defaults() -> None:
    """torch has no Lion: torch semantics take lucidrains/lion-pytorch's defaults."""
    lion_pytorch = pytest.importorskip("lion_pytorch")
    lib = _signature_defaults(lion_pytorch.Lion)
    values = resolve("lion", "torch", {})
    assert values["learning_rate"] == lib["lr"] == 1e-4
    assert (values["beta_1"], values["beta_2"]) == lib["betas"]
    assert values["weight_decay"] == lib["weight_decay"]


def test_lamb_torch_defaults_are_the_reference_defaults() -> None:
    """torch has no LAMB: torch semantics take torch_optimizer.Lamb's defaults."""
    torch_optimizer = pytest.importorskip("torch_optimizer")
    lib = _signature_defaults(torch_optimizer.Lamb)
    values = resolve("lamb", "torch", {})
    assert values["learning_rate"] == lib["lr"]
    assert (values["beta_1"], values["beta_2"]) == lib["betas"]
    assert values["epsilon"] == lib["eps"] == 1e-6
    assert values["weight_decay"] == lib["weight_decay"]
    assert values["clamp_value"] == lib["clamp_value"] == 10
    assert values["debias"] is lib["debias"] is False


def test_prodigy_defaults_are_the_reference_defaults() -> None:
    """Neither library has Prodigy: both semantics take prodigyopt.Prodigy's defaults."""
    prodigyopt = pytest.importorskip("prodigyopt")
    lib = _signature_defaults(prodigyopt.Prodigy)
    for semantics in SEMANTICS:
        values = resolve("prodigy", semantics, {})
        assert values["learning_rate"] == lib["lr"] == 1.0
        assert (values["beta_1"], values["beta_2"]) == lib["betas"]
        assert values["beta_3"] is lib["beta3"] is None
        assert values["epsilon"] == lib["eps"]
        assert values["decoupled_weight_decay"] is lib["decouple"] is True
        assert values["use_bias_correction"] is lib["use_bias_correction"] is False
        assert values["safeguard_warmup"] is lib["safeguard_warmup"] is False
        assert values["d0"] == lib["d0"] and values["d_coef"] == lib["d_coef"]
        assert values["growth_rate"] is None and lib["growth_rate"] == float("inf")
    assert resolve("prodigy", "torch", {})["weight_decay"] == lib["weight_decay"]


def test_soap_defaults_are_the_reference_defaults() -> None:
    """Neither library has SOAP: both semantics take nikhilvyas/SOAP's defaults."""
    from test_optim_soap import SAME_NAMES, ReferenceSOAP

    lib = _signature_defaults(ReferenceSOAP)
    for semantics in SEMANTICS:
        values = resolve("soap", semantics, {})
        assert values["learning_rate"] == lib["lr"] == 3e-3
        assert (values["beta_1"], values["beta_2"]) == lib["betas"] == (0.95, 0.95)
        assert values["shampoo_beta"] is None and lib["shampoo_beta"] == -1  # β₂
        assert values["epsilon"] == lib["eps"] and values["weight_decay"] == lib["weight_decay"]
        for name in SAME_NAMES:
            assert values[name] == lib[name], name


@pytest.mark.parametrize(
    ("optimizer", "cls"),
    [("schedule_free_adamw", "AdamWScheduleFree"), ("schedule_free_sgd", "SGDScheduleFree")],
)
def test_schedule_free_torch_defaults_are_the_reference_defaults(optimizer: str, cls: str) -> None:
    """torch has no Schedule-Free: torch semantics take schedulefree's defaults (and keras's
    ScheduleFreeAdamW shares the AdamW ones it has: test_keras_defaults_are_keras_defaults)."""
    schedulefree = pytest.importorskip("schedulefree")
    lib = _signature_defaults(getattr(schedulefree, cls))
    values = resolve(optimizer, "torch", {})
    assert values["learning_rate"] == lib["lr"]
    for name in ("weight_decay", "warmup_steps", "r", "weight_lr_power"):
        assert values[name] == lib[name], name
    if optimizer == "schedule_free_adamw":
        assert (values["beta_1"], values["beta_2"]) == lib["betas"]
        assert values["epsilon"] == lib["eps"]
        assert resolve(optimizer, "keras", {})["weight_lr_power"] == 0.0  # keras's 1/(k + 1)
    else:
        assert values["momentum"] == lib["momentum"]
        assert resolve(optimizer, "keras", {})["learning_rate"] == lib["lr"]


@pytest.mark.skipif(keras is None, reason="keras is not installed")
@pytest.mark.parametrize("optimizer", list(KERAS_CLASSES))
def test_keras_defaults_are_keras_defaults(optimizer: str) -> None:
    lib = _signature_defaults(getattr(keras.optimizers, KERAS_CLASSES[optimizer]))
    checked = 0
    for name, value in resolve(optimizer, "keras", {}).items():
        if (optimizer, name) in NOT_LIBRARY_DEFAULTS or name not in lib:
            continue
        expected = lib[name]
        assert value == expected, name
        checked += 1
    assert checked >= 2


# ---------------------------------------------------------------------------------------------
# Names
# ---------------------------------------------------------------------------------------------

NAME_CASES = [
    ("adam", "betas", ("beta_1", "beta_2")),
    ("adam", "lr", ("learning_rate",)),
    ("adam", "eps", ("epsilon",)),
    ("adam", "beta1", ("beta_1",)),
    ("rmsprop", "alpha", ("rho",)),
    ("adadelta", "rho", ("rho",)),
    ("adamw", "weight_decay", ("weight_decay",)),
    ("sgd", "max_grad_norm", ("global_clipnorm",)),
    ("rprop", "etas", ("eta_minus", "eta_plus")),
    ("muon", "eps", ("ns_epsilon",)),  # torch's Muon(eps=); keras's epsilon is the AdamW ε
    ("muon", "epsilon", ("epsilon",)),
    ("adafactor", "eps", ("epsilon_1", "epsilon_2")),
    ("rprop", "step_sizes", ("step_size_min", "step_size_max")),
    ("prodigy", "decouple", ("decoupled_weight_decay",)),  # the reference's name
    ("prodigy", "beta3", ("beta_3",)),
    ("ademamix", "beta3_warmup", ("beta_3_warmup",)),  # the reference's name
    ("ademamix", "betas", ("beta_1", "beta_2")),  # the reference's betas triple: and beta_3
    ("soap", "betas", ("beta_1", "beta_2")),
    ("soap", "eps", ("epsilon",)),
    ("schedule_free_adamw", "betas", ("beta_1", "beta_2")),
    ("schedule_free_sgd", "momentum", ("momentum",)),
]


@pytest.mark.parametrize(("optimizer", "written", "canonical"), NAME_CASES)
def test_resolve_name(optimizer: str, written: str, canonical: tuple[str, ...]) -> None:
    assert resolve_name(optimizer, written) == canonical


UNKNOWN_CASES = [
    ("momentum", "rho", r"momentum: unknown parameter 'rho'; did you mean 'momentum'\?"),
    ("nesterov", "rho", r"did you mean 'momentum'\?"),
    ("sgd", "momentum", r"sgd: .*use optimizer 'momentum'"),
    ("adam", "betaa_1", r"adam: unknown parameter 'betaa_1'; did you mean 'beta_1'\?"),
    ("adam", "alpha", r"adam: unknown parameter 'alpha'"),
    ("adam", "momentum", r"adam: unknown parameter 'momentum'"),
    ("rmsprop", "centred", r"did you mean 'centered'\?"),
    ("muon", "adjust_lr_fn", r"muon: .*use rms_rate: null for 'original'"),
    ("muon", "ns_coefficients", r"give muon_a, muon_b and muon_c"),
    ("muon", "adjust_lr_fn", r"muon: .*use rms_rate: null for 'original'"),
    ("muon", "ns_coefficients", r"give muon_a, muon_b and muon_c"),
]


@pytest.mark.parametrize(("optimizer", "written", "pattern"), UNKNOWN_CASES)
def test_unknown_parameter(optimizer: str, written: str, pattern: str) -> None:
    with pytest.raises(UnknownParameterError, match=pattern):
        resolve_name(optimizer, written)
    with pytest.raises(ValueError, match=pattern):
        create([torch.zeros(2, requires_grad=True)], optimizer, **{written: 0.5})


# ---------------------------------------------------------------------------------------------
# Bad values: kwargs -> ValueError naming optimizer, parameter and valid range
# ---------------------------------------------------------------------------------------------

BAD = [
    ("lr-zero", "adam", "torch", {"lr": 0.0}, r"adam .*learning_rate = 0.0 .*learning_rate > 0"),
    ("lr-negative", "sgd", "keras", {"learning_rate": -0.1}, r"sgd \(keras.*learning_rate > 0"),
    ("lr-string", "adam", "torch", {"lr": "1e-3"}, r"adam.*learning_rate = '1e-3' is not a number"),
    ("lr-nan", "adam", "torch", {"lr": float("nan")}, r"adam.*learning_rate.*not finite"),
    ("beta1-one", "adam", "torch", {"beta_1": 1.0}, r"adam.*beta_1 = 1.0.*0 <= beta_1 < 1"),
    ("betas-pair", "adam", "torch", {"betas": (0.9, 1.2)}, r"adam.*beta_2 = 1.2.*0 <= beta_2 < 1"),
    ("betas-short", "nadam", "torch", {"betas": (0.9,)}, r"nadam: betas = \(0.9,\) must be a pair"),
    ("beta2-negative", "adamax", "keras", {"beta_2": -0.1}, r"adamax.*beta_2.*0 <= beta_2 < 1"),
    ("eps-negative", "adam", "keras", {"eps": -1e-8}, r"adam.*epsilon = -1e-08.*epsilon >= 0"),
    ("rho-one", "rmsprop", "torch", {"alpha": 1.0}, r"rmsprop.*rho = 1.0.*0 <= rho < 1"),
    ("rho-above", "adadelta", "torch", {"rho": 1.5}, r"adadelta.*rho.*0 <= rho <= 1"),
    ("momentum-big", "momentum", "torch", {"momentum": 1.5}, r"momentum.*0 <= momentum <= 1"),
    ("iav-negative", "adagrad", "keras", {"initial_accumulator_value": -0.1}, r"adagrad.*>= 0"),
    ("wd-negative", "adamw", "torch", {"weight_decay": -0.01}, r"adamw.*weight_decay >= 0"),
    ("bool-word", "adam", "torch", {"amsgrad": "yes"}, r"adam.*amsgrad = 'yes' is not a boolean"),
    ("bool-int", "rmsprop", "keras", {"centered": 1}, r"rmsprop.*centered = 1 is not a boolean"),
    ("acc-zero", "adam", "torch", {"gradient_accumulation_steps": 0}, r"adam.*>= 1 \(an integer"),
    ("acc-frac", "sgd", "torch", {"gradient_accumulation_steps": 2.5}, r"sgd.*not an integer"),
    ("clip-zero", "adam", "keras", {"clipnorm": 0.0}, r"adam.*clipnorm > 0"),
    ("two-clips", "adam", "keras", {"clipnorm": 1.0, "clipvalue": 1.0}, r"adam: at most one of"),
    ("same-twice", "adam", "torch", {"lr": 0.1, "learning_rate": 0.1}, r"'lr' and 'learning_rate'"),
    ("eps-twice", "adam", "torch", {"eps": 0.1, "epsilon": 0.1}, r"'eps' and 'epsilon' both"),
    ("nag-damp", "nesterov", "torch", {"dampening": 0.5}, r"nesterov \(torch.*dampening = 0"),
    ("nag-zero", "momentum", "torch", {"nesterov": True, "momentum": 0.0}, r"momentum > 0"),
    ("scale-neg", "adam", "torch", {"loss_scale_factor": -1.0}, r"loss_scale_factor > 0"),
    ("keras-l2", "adam", "keras", {"decoupled_weight_decay": False}, r"keras always decays"),
    # torch's optim_db error inputs for RAdam (optim_error_inputs_func_radam, CPU)
    ("radam-beta1", "radam", "torch", {"betas": (1.0, 0.0)}, r"radam.*beta_1 = 1.0.*< 1"),
    ("radam-wd", "radam", "torch", {"weight_decay": -1}, r"radam.*weight_decay >= 0"),
    # keras's lion_test.py test_invalid_beta_1
    ("lion-beta1-neg", "lion", "keras", {"beta_1": -0.1}, r"lion.*0 < beta_1 <= 1"),
    ("lion-beta1-0", "lion", "keras", {"beta_1": 0.0}, r"lion.*0 < beta_1 <= 1"),
    ("lion-beta1-big", "lion", "torch", {"beta_1": 1.1}, r"lion.*0 < beta_1 <= 1"),
    ("lion-beta2-big", "lion", "torch", {"betas": (0.9, 1.1)}, r"lion.*0 <= beta_2 <= 1"),
    # optim_db's error inputs for Rprop and ASGD
    ("rprop-etas", "rprop", "torch", {"etas": (1.0, 0.5)}, r"rprop.*eta_minus = 1.0.*< 1"),
    ("rprop-eta-plus", "rprop", "torch", {"etas": (0.5, 1.0)}, r"rprop.*eta_plus > 1"),
    ("rprop-sizes", "rprop", "torch", {"step_sizes": (1e-6,)}, r"pair \(step_size_min, "),
    ("asgd-wd", "asgd", "torch", {"weight_decay": -0.5}, r"asgd.*weight_decay >= 0"),
    # optim_db's error inputs for Adafactor
    ("adafactor-eps1", "adafactor", "torch", {"eps": (-1e-30, 1e-3)}, r"epsilon_1 >= 0"),
    ("adafactor-d", "adafactor", "torch", {"d": 0.5}, r"adafactor \(torch.*clip_threshold >= 1"),
    ("adafactor-d0", "adafactor", "keras", {"clip_threshold": 0.0}, r"clip_threshold > 0"),
    ("adafactor-decay", "adafactor", "torch", {"beta2_decay": 0.8}, r"beta_2_decay <= 0"),
    # what prodigyopt.Prodigy refuses (d0, lr, eps > 0; betas in [0, 1))
    ("prodigy-d0", "prodigy", "torch", {"d0": 0.0}, r"prodigy.*d0 > 0"),
    ("prodigy-eps", "prodigy", "torch", {"eps": 0.0}, r"prodigy.*epsilon > 0"),
    ("prodigy-beta", "prodigy", "torch", {"betas": (0.9, 1.0)}, r"prodigy.*beta_2 < 1"),
    ("prodigy-growth", "prodigy", "keras", {"growth_rate": 0.5}, r"prodigy.*growth_rate >= 1"),
    ("prodigy-l2", "prodigy", "keras", {"decouple": False}, r"keras always decays"),
    # what the reference AdEMAMix refuses (betas in [0, 1), alpha, eps, weight_decay >= 0)
    ("ademamix-beta3", "ademamix", "torch", {"beta_3": 1.0}, r"ademamix.*beta_3 < 1"),
    ("ademamix-alpha", "ademamix", "torch", {"alpha": -1.0}, r"ademamix.*alpha >= 0"),
    ("ademamix-warmup", "ademamix", "keras", {"alpha_warmup": 0}, r"alpha_warmup >= 1"),
    ("ademamix-steps", "ademamix", "torch", {"beta3_warmup": 2.5}, r"beta_3_warmup.*integer"),
    # what the references refuse or cannot run (x = (y − (1 − β)z)/β needs β > 0)
    ("soap-shampoo", "soap", "torch", {"shampoo_beta": 1.0}, r"soap.*shampoo_beta < 1"),
    ("soap-frequency", "soap", "keras", {"precondition_frequency": 0}, r"frequency >= 1"),
    ("soap-dim", "soap", "torch", {"max_precond_dim": 2.5}, r"max_precond_dim.*not an integer"),
    ("soap-scale", "soap", "torch", {"dynamic_loss_scale": True}, r"soap: dynamic_loss_scale is"),
    ("sf-momentum-0", "schedule_free_sgd", "torch", {"momentum": 0.0}, r"0 < momentum < 1"),
    ("sf-momentum-1", "schedule_free_sgd", "keras", {"momentum": 1.0}, r"0 < momentum < 1"),
    ("sf-beta1-0", "schedule_free_adamw", "torch", {"betas": (0.0, 0.9)}, r"0 < beta_1 < 1"),
    ("sf-warmup", "schedule_free_adamw", "keras", {"warmup_steps": -1}, r"warmup_steps >= 0"),
    ("sf-r", "schedule_free_sgd", "torch", {"r": -1.0}, r"schedule_free_sgd.*r >= 0"),
    # keras's ftrl_test.py test_invalid_*
    ("ftrl-iav", "ftrl", "keras", {"initial_accumulator_value": -0.1}, r"ftrl.*value >= 0"),
    ("ftrl-power", "ftrl", "keras", {"learning_rate_power": 0.1}, r"ftrl.*_power <= 0"),
    ("ftrl-l1", "ftrl", "keras", {"l1_regularization_strength": -0.1}, r"ftrl.*strength >= 0"),
    ("ftrl-l2", "ftrl", "torch", {"l2_regularization_strength": -0.1}, r"ftrl.*strength >= 0"),
    (
        "ftrl-shrink",
        "ftrl",
        "keras",
        {"l2_shrinkage_regularization_strength": -0.1},
        r"ftrl.*l2_shrinkage_regularization_strength >= 0",
    ),
]

# What the libraries refuse of the above, refused by the libraries too (same values).
LIBRARY_REFUSALS = [
    ("torch", "RAdam", {"lr": 1e-2, "betas": (1.0, 0.0)}, "Invalid beta parameter at index 0"),
    ("torch", "RAdam", {"lr": 1e-2, "weight_decay": -1}, "Invalid weight_decay value: -1"),
    ("torch", "Rprop", {"lr": 1e-2, "etas": (1.0, 0.5)}, "Invalid eta values: 1.0, 0.5"),
    ("torch", "Rprop", {"lr": 1e-2, "etas": (0.5, 1.0)}, "Invalid eta values: 0.5, 1.0"),
    ("torch", "ASGD", {"lr": 1e-2, "weight_decay": -0.5}, "Invalid weight_decay value: -0.5"),
    ("torch", "Adafactor", {"eps": (-1e-30, 1e-3)}, "epsilon1 should be >= 0"),
    ("torch", "Adafactor", {"d": 0.0}, "Clipping threshold d should be >= 1"),
    ("torch", "Adafactor", {"beta2_decay": 0.8}, "beta2_decay should be <= 0"),
    ("keras", "Lion", {"beta_1": -0.1}, "Argument `beta_1` must be in the \\[0, 1\\] range"),
    ("keras", "Lion", {"beta_1": 0.0}, "Received: beta_1=0.0"),
    ("keras", "Lion", {"beta_1": 1.1}, "Received: beta_1=1.1"),
    ("keras", "Ftrl", {"initial_accumulator_value": -0.1}, "initial_accumulator_value=-0.1"),
    ("keras", "Ftrl", {"learning_rate_power": 0.1}, "learning_rate_power=0.1"),
    ("keras", "Ftrl", {"l1_regularization_strength": -0.1}, "l1_regularization_strength=-0.1"),
    ("keras", "Ftrl", {"l2_regularization_strength": -0.1}, "l2_regularization_strength=-0.1"),
    (
        "keras",
        "Ftrl",
        {"l2_shrinkage_regularization_strength": -0.1},
        "l2_shrinkage_regularization_strength=-0.1",
    ),
]


def test_the_schedule_free_reference_refuses_momentum_0_and_1_too() -> None:
    schedulefree = pytest.importorskip("schedulefree")
    for momentum in (0.0, 1.0):
        with pytest.raises(ValueError, match="Momentum must be between 0 and 1 exclusive"):
            schedulefree.SGDScheduleFree([torch.zeros(2, requires_grad=True)], momentum=momentum)


@pytest.mark.parametrize(("library", "cls", "kwargs", "pattern"), LIBRARY_REFUSALS)
def test_the_libraries_refuse_them_too(library: str, cls: str, kwargs: dict, pattern: str) -> None:
    if library == "keras" and keras is None:
        pytest.skip("keras is not installed")
    with pytest.raises(ValueError, match=pattern):
        if library == "torch":
            getattr(torch.optim, cls)([torch.zeros(2, requires_grad=True)], **kwargs)
        else:
            getattr(keras.optimizers, cls)(**kwargs)


@pytest.mark.parametrize(
    ("optimizer", "semantics", "kwargs", "pattern"),
    [pytest.param(*case[1:], id=case[0]) for case in BAD],
)
def test_bad_values(optimizer: str, semantics: str, kwargs: dict, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        resolve(optimizer, semantics, kwargs)
    with pytest.raises(ValueError, match=pattern):
        create([torch.zeros(2, requires_grad=True)], optimizer, semantics=semantics, **kwargs)


def test_unknown_optimizer_and_semantics() -> None:
    with pytest.raises(ValueError, match=r"unknown optimizer 'adamm'; did you mean 'adam'\?"):
        resolve("adamm", "torch", {})
    with pytest.raises(ValueError, match=r"semantics = 'tf' is invalid"):
        resolve("adam", "tf", {})  # type: ignore[arg-type]


def test_keras_nesterov_without_momentum_is_plain_sgd() -> None:
    """Keras accepts nesterov with momentum 0 (plain SGD); torch refuses it."""
    assert resolve("momentum", "keras", {"nesterov": True, "momentum": 0.0})["momentum"] == 0.0


def test_values_are_coerced() -> None:
    v = resolve("adam", "torch", {"lr": 1, "gradient_accumulation_steps": 2.0})
    assert isinstance(v["learning_rate"], float)
    assert v["gradient_accumulation_steps"] == 2 and isinstance(
        v["gradient_accumulation_steps"], int
    )


@pytest.mark.parametrize("optimizer", NAMES)
def test_no_two_parameters_share_a_name(optimizer: str) -> None:
    """An alias names one parameter of its optimizer (muon: torch's eps is ns_epsilon, not
    the AdamW half's epsilon)."""
    written = [name for p in OPTIMIZERS[optimizer].params.values() for name in (p.name, *p.aliases)]
    assert len(written) == len(set(written)), sorted(written)


@pytest.mark.parametrize("semantics", SEMANTICS)
@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_the_registry_says_which_rules_evaluate_elsewhere_as_their_state_does(optimizer, semantics):
    """`OptimizerInfo.evaluates_elsewhere` (what batching reads from a trial's spec) agrees
    with the state each rule builds (what evaluation reads)."""
    from optsweep.optim import build, evaluates_elsewhere

    hp = resolve(optimizer, semantics, {})
    state = build(optimizer, semantics, hp).init([torch.zeros(2, 3, 4), torch.zeros(2, 5)])
    assert OPTIMIZERS[optimizer].evaluates_elsewhere is evaluates_elsewhere(state)
