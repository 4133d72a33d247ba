"""Tests for optsweep.models: batched K-trial forward against reference nn.Modules."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from _keras import ARRAY_WARNING, keras
from torch import nn

from optsweep.engine import stack_initial_params
from optsweep.models import INITS, MODELS, build_model

# ------------------------------------------------------------------------------- reference modules


class RefMLP(nn.Module):
    """Plain MLP; with no hidden layer it is logistic regression (one layer named ``fc``)."""

    def __init__(self, in_features: int, hidden: list[int], num_classes: int) -> None:
        super().__init__()
        widths = [in_features, *hidden, num_classes]
        self.names = ["fc"] if not hidden else [f"fc{i + 1}" for i in range(len(widths) - 1)]
        for name, a, b in zip(self.names, widths[:-1], widths[1:], strict=True):
            self.add_module(name, nn.Linear(a, b))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.flatten(1)
        for i, name in enumerate(self.names):
            h = getattr(self, name)(h if i == 0 else F.relu(h))
        return h


class RefCNN(nn.Module):
    """pytorch/examples mnist/main.py ``Net`` (returning logits, not log_softmax)."""

    def __init__(self, channels: int = 1, flat: int = 9216, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(flat, 128)
        self.fc2 = nn.Linear(128, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv2(F.relu(self.conv1(x)))), 2)
        x = F.relu(self.fc1(torch.flatten(self.dropout1(x), 1)))
        return self.fc2(self.dropout2(x))


def tf_same_pool(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """DeepOBS tfmaxpool2d(tf_padding_type='same'), written independently."""
    pads = []
    for size in (x.shape[-1], x.shape[-2]):
        out = math.ceil(size / stride)
        total = max((out - 1) * stride + kernel - size, 0)
        pads += [total // 2, total - total // 2]
    return F.max_pool2d(F.pad(x, pads), kernel, stride)


class Ref2c2d(nn.Module):
    """DeepOBS net_mnist_2c2d."""

    def __init__(self, flat: int = 3136, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 5, padding=2)
        self.conv2 = nn.Conv2d(32, 64, 5, padding=2)
        self.dense1 = nn.Linear(flat, 1024)
        self.dense2 = nn.Linear(1024, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = tf_same_pool(F.relu(self.conv1(x)), 2, 2)
        x = tf_same_pool(F.relu(self.conv2(x)), 2, 2)
        return self.dense2(F.relu(self.dense1(x.flatten(1))))


class Ref3c3d(nn.Module):
    """DeepOBS net_cifar10_3c3d."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 5)
        self.conv2 = nn.Conv2d(64, 96, 3)
        self.conv3 = nn.Conv2d(96, 128, 3, padding=1)
        self.dense1 = nn.Linear(3 * 3 * 128, 512)
        self.dense2 = nn.Linear(512, 256)
        self.dense3 = nn.Linear(256, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = tf_same_pool(F.relu(self.conv1(x)), 3, 2)
        x = tf_same_pool(F.relu(self.conv2(x)), 3, 2)
        x = tf_same_pool(F.relu(self.conv3(x)), 3, 2)
        x = F.relu(self.dense2(F.relu(self.dense1(x.flatten(1)))))
        return self.dense3(x)


MNIST, CIFAR = (1, 28, 28), (3, 32, 32)
# (model, input shape, options, reference factory)
CASES = [
    ("logreg", MNIST, {}, lambda: RefMLP(784, [], 10)),
    ("mlp", MNIST, {}, lambda: RefMLP(784, [128], 10)),
    ("mlp", MNIST, {"hidden": [16, 8]}, lambda: RefMLP(784, [16, 8], 10)),
    ("cnn", MNIST, {}, lambda: RefCNN()),
    ("2c2d", MNIST, {}, lambda: Ref2c2d()),
    ("3c3d", CIFAR, {}, lambda: Ref3c3d()),
]
IDS = [f"{name}{options.get('hidden', '')}" for name, _, options, _ in CASES]
SEEDS = [3, 4, 5]


def make_reference(factory, model, params, k: int) -> nn.Module:
    ref = factory().eval()
    ref.load_state_dict({n: p[k] for n, p in zip(model.param_names, params, strict=True)})
    return ref


# --------------------------------------------------------------------------------------- exactness


# None: all K trials in one hand-batched call (grouped convs); 2: K=3 split 2 + 1 (CPU path)
CHUNKS = pytest.mark.parametrize("chunk", [None, 2], ids=["all-trials", "chunks-of-2"])


@CHUNKS
@pytest.mark.parametrize(("name", "shape", "options", "factory"), CASES, ids=IDS)
def test_forward_matches_reference_module(name, shape, options, factory, chunk) -> None:
    model = dataclasses.replace(build_model(name, shape, 10, **options), cpu_trial_chunk=chunk)
    params = model.init_stacked(SEEDS)
    x = torch.randn(3, *shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = model.forward(params, x)
        assert out.shape == (len(SEEDS), 3, 10)
        for k in range(len(SEEDS)):
            expected = make_reference(factory, model, params, k)(x)
            torch.testing.assert_close(out[k], expected, rtol=1e-4, atol=1e-5)


@CHUNKS
@pytest.mark.parametrize(("name", "shape", "options", "factory"), CASES, ids=IDS)
def test_stacked_equals_separate_and_gradients_match(name, shape, options, factory, chunk) -> None:
    model = dataclasses.replace(build_model(name, shape, 10, **options), cpu_trial_chunk=chunk)
    x = torch.randn(2, *shape, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([1, 7])
    stacked = [p.requires_grad_() for p in model.init_stacked(SEEDS)]
    out = model.forward(stacked, x)
    # sum over trials: trial k's gradient is its own loss's gradient
    F.cross_entropy(out.flatten(0, 1), y.repeat(len(SEEDS)), reduction="sum").backward()
    for k, seed in enumerate(SEEDS):
        single = [p.requires_grad_() for p in model.init_stacked([seed])]
        out_k = model.forward(single, x)
        torch.testing.assert_close(out[k].detach(), out_k[0].detach(), rtol=1e-4, atol=1e-5)
        F.cross_entropy(out_k[0], y, reduction="sum").backward()
        for p_stacked, p_single in zip(stacked, single, strict=True):
            torch.testing.assert_close(p_stacked.grad[k], p_single.grad[0], rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------------- initialisation


@pytest.mark.parametrize("init", INITS)
@pytest.mark.parametrize("name", MODELS)
def test_init_depends_only_on_seed(name: str, init: str) -> None:
    model = build_model(name, CIFAR if name == "3c3d" else MNIST, 10, init=init)
    a, b, other = model.init(7), model.init(7), model.init(8)
    assert all(torch.equal(p, q) for p, q in zip(a, b, strict=True))
    assert any(not torch.equal(p, q) for p, q in zip(a, other, strict=True))
    assert all(p.dtype == torch.float32 and p.device.type == "cpu" for p in a)
    stacked = model.init_stacked([8, 7, 7])  # position and K do not matter
    for p, q, r in zip(stacked, a, other, strict=True):
        assert torch.equal(p[1], q) and torch.equal(p[2], q) and torch.equal(p[0], r)


@pytest.mark.parametrize(
    ("name", "factory"),
    [
        ("logreg", lambda: RefMLP(784, [], 10)),
        ("mlp", lambda: RefMLP(784, [128], 10)),
        ("cnn", lambda: RefCNN()),
    ],
)
def test_default_init_is_torch_default(name: str, factory) -> None:
    """Same draws as ``torch.manual_seed(seed); Module()``: the torch default init, bit for bit."""
    with torch.random.fork_rng():
        torch.manual_seed(11)
        ref = factory()
    model = build_model(name, MNIST, 10)
    for param_name, p in zip(model.param_names, model.init(11), strict=True):
        assert torch.equal(p, ref.state_dict()[param_name]), param_name


def test_deepobs_inits() -> None:
    m2 = build_model("2c2d", MNIST, 10)
    for name, p in zip(m2.param_names, m2.init(0), strict=True):
        if name.endswith("bias"):
            assert torch.all(p == 0.05)
        else:  # truncated normal(0, 0.05) at 2 std
            assert p.abs().max() <= 0.1 and abs(p.std().item() - 0.05 * 0.88) < 0.01
    m3 = build_model("3c3d", CIFAR, 10)
    for name, p in zip(m3.param_names, m3.init(0), strict=True):
        if name.endswith("bias"):
            assert torch.all(p == 0)
        else:  # xavier: std = sqrt(2 / (fan_in + fan_out))
            fan_in, fan_out = math.prod(p.shape[1:]), p.shape[0] * math.prod(p.shape[2:])
            assert abs(p.std().item() / math.sqrt(2 / (fan_in + fan_out)) - 1) < 0.1, name


def glorot_bound(torch_shape: tuple[int, ...]) -> float:
    """Keras's glorot_uniform limit, its fans taken from the Keras layout of the same weight:
    Dense ``(in, out)``, Conv2D ``(kh, kw, in, out)``."""
    out_channels, in_channels, *kernel = torch_shape
    receptive = math.prod(kernel)
    fan_in, fan_out = receptive * in_channels, receptive * out_channels
    return math.sqrt(6 / (fan_in + fan_out))


KERAS_CASES = [("logreg", MNIST), ("mlp", MNIST), ("cnn", MNIST), ("2c2d", MNIST), ("3c3d", CIFAR)]


@pytest.mark.parametrize(("name", "shape"), KERAS_CASES, ids=[c[0] for c in KERAS_CASES])
def test_keras_init_is_glorot_uniform_with_zero_biases(name: str, shape) -> None:
    model = build_model(name, shape, 10, init="keras")
    params = model.init(5)
    for param_name, p in zip(model.param_names, params, strict=True):
        if param_name.endswith(".bias"):
            assert torch.all(p == 0), param_name
            continue
        bound = glorot_bound(tuple(p.shape))
        assert p.abs().max().item() <= bound, param_name  # U(-bound, bound)
        assert p.abs().max().item() > 0.95 * bound, param_name  # and the whole of it
        assert abs(p.std().item() / (bound / math.sqrt(3)) - 1) < 0.1, param_name
        assert abs(p.mean().item()) < 0.1 * bound, param_name
    torch_init = build_model(name, shape, 10).init(5)  # 3c3d's dense layers are glorot too
    assert not all(torch.equal(p, q) for p, q in zip(params, torch_init, strict=True))


@pytest.mark.parametrize(("name", "shape"), KERAS_CASES, ids=[c[0] for c in KERAS_CASES])
def test_keras_init_is_per_trial_in_a_stacked_model(name: str, shape) -> None:
    """The K trials of a batch start from the seed's single-model draw; seeds stack alone."""
    model = build_model(name, shape, 10, init="keras")
    single = model.init(9)
    for p, q in zip(stack_initial_params(model, 9, 3, torch.device("cpu")), single, strict=True):
        assert p.shape == (3, *q.shape) and all(torch.equal(row, q) for row in p)
    for p, q in zip(model.init_stacked([2, 9]), single, strict=True):
        assert torch.equal(p[1], q)


@pytest.mark.skipif(keras is None, reason="keras not installed")
@pytest.mark.filterwarnings(ARRAY_WARNING)
@pytest.mark.parametrize(
    ("layer", "built_on", "torch_shape"),
    [
        ("dense", (None, 784), (128, 784)),
        ("dense", (None, 1024), (10, 1024)),
        ("conv", (None, 28, 28, 1), (32, 1, 5, 5)),
        ("conv", (None, 14, 14, 32), (64, 32, 5, 5)),
    ],
)
def test_keras_layers_start_where_ours_do(layer: str, built_on, torch_shape) -> None:
    """Keras itself: its Dense/Conv2D default kernel fills our glorot range, its bias is 0."""
    out = torch_shape[0]
    keras.utils.set_random_seed(0)
    made = keras.layers.Dense(out) if layer == "dense" else keras.layers.Conv2D(out, 5)
    made.build(built_on)
    kernel = keras.ops.convert_to_numpy(made.kernel)
    bound = glorot_bound(torch_shape)
    assert kernel.shape == (*torch_shape[2:], torch_shape[1], out)
    assert 0.95 * bound < abs(kernel).max() <= bound
    assert not keras.ops.convert_to_numpy(made.bias).any()


# ----------------------------------------------------------------------------------------- dropout


@CHUNKS
def test_dropout_masks_do_not_depend_on_k(chunk) -> None:
    model = dataclasses.replace(build_model("cnn", MNIST, 10), cpu_trial_chunk=chunk)
    x = torch.randn(4, *MNIST, generator=torch.Generator().manual_seed(2))
    stacked = model.init_stacked(SEEDS)
    with torch.no_grad():
        out = model.forward(stacked, x, train=True, generator=torch.Generator().manual_seed(9))
        for k, seed in enumerate(SEEDS):
            single = model.init_stacked([seed])
            out_k = model.forward(single, x, train=True, generator=torch.Generator().manual_seed(9))
            torch.testing.assert_close(out[k], out_k[0], rtol=1e-4, atol=1e-5)
        assert not torch.allclose(out, model.forward(stacked, x))  # dropout did something
        again = model.forward(stacked, x, train=True, generator=torch.Generator().manual_seed(9))
        assert torch.equal(out, again)


def test_dropout_off() -> None:
    model = build_model("cnn", MNIST, 10, dropout=False)
    params = model.init_stacked([0, 1])
    x = torch.randn(2, *MNIST)
    with torch.no_grad():
        torch.testing.assert_close(model.forward(params, x, train=True), model.forward(params, x))


# --------------------------------------------------------------------------- shapes, flops, errors

SHAPES = [  # model, input, options, expected (name, shape) of the first dense layer's weight
    ("logreg", MNIST, {}, ("fc.weight", (10, 784))),
    ("mlp", CIFAR, {"hidden": [64]}, ("fc1.weight", (64, 3072))),
    ("cnn", MNIST, {}, ("fc1.weight", (128, 9216))),
    ("cnn", CIFAR, {}, ("fc1.weight", (128, 12544))),
    ("2c2d", MNIST, {}, ("dense1.weight", (1024, 3136))),
    ("2c2d", (1, 27, 27), {}, ("dense1.weight", (1024, 3136))),
    ("3c3d", CIFAR, {}, ("dense1.weight", (512, 1152))),
    ("3c3d", MNIST, {}, ("dense1.weight", (512, 1152))),
]


@pytest.mark.parametrize(("name", "shape", "options", "dense"), SHAPES)
def test_shapes(name, shape, options, dense) -> None:
    model = build_model(name, shape, 10, **options)
    assert dict(zip(model.param_names, model.param_shapes, strict=True))[dense[0]] == dense[1]
    params = model.init_stacked([0, 1])
    assert model.forward(params, torch.zeros(5, *shape)).shape == (2, 5, 10)


@pytest.mark.parametrize(
    ("name", "shape", "count"),
    [
        ("cnn", MNIST, 1_199_882),
        ("2c2d", MNIST, 3_274_634),
        ("3c3d", CIFAR, 895_210),
        # He et al. 2016, table 6: 0.27M, 0.46M, 0.85M (akamaster/pytorch_resnet_cifar10's
        # exact counts)
        ("resnet20", CIFAR, 269_722),
        ("resnet32", CIFAR, 464_154),
        ("resnet56", CIFAR, 853_018),
    ],
)
def test_parameter_counts_match_published(name, shape, count) -> None:
    assert build_model(name, shape, 10).num_params() == count


def test_flops_per_sample_by_hand() -> None:
    assert build_model("mlp", MNIST, 10).flops_per_sample() == 2 * (784 * 128 + 128 * 10)
    assert build_model("mlp", MNIST, 10, hidden=[32, 16]).flops_per_sample() == 2 * (
        784 * 32 + 32 * 16 + 16 * 10
    )
    assert build_model("logreg", MNIST, 10).flops_per_sample() == 2 * 7840
    cnn = 32 * 26 * 26 * 9 + 64 * 24 * 24 * 32 * 9 + 9216 * 128 + 128 * 10
    assert build_model("cnn", MNIST, 10).flops_per_sample() == 2 * cnn


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("resnet", {}, "valid: logreg, mlp, cnn, 2c2d, 3c3d, resnet20, resnet32, resnet56"),
        ("resnet20", {"depth": 32}, "no option 'depth'; valid options: init"),
        ("mlp", {"hiden": [3]}, "no option 'hiden'; valid options: hidden"),
        ("cnn", {"hidden": [3]}, "valid options: dropout"),
        ("3c3d", {"dropout": True}, "valid options: init"),
        ("mlp", {"init": "glorot"}, "mlp option init must be one of torch, keras, got 'glorot'"),
        ("2c2d", {"init": None}, "2c2d option init must be one of torch, keras, got None"),
        ("mlp", {"hidden": [0]}, "positive ints"),
        ("cnn", {"dropout": "yes"}, "true or false"),
    ],
)
def test_bad_names_and_options(name, options, message) -> None:
    with pytest.raises(ValueError, match=message):
        build_model(name, MNIST, 10, **options)


def test_forward_checks_input() -> None:
    model = build_model("mlp", MNIST, 10)
    with pytest.raises(ValueError, match="expected"):
        model.forward(model.init_stacked([0]), torch.zeros(2, 3, 32, 32))


def test_every_model_of_the_table_has_a_builder_and_builds_within_its_entry() -> None:
    from optsweep.catalog import MODEL_TABLE
    from optsweep.models import _BUILDERS

    assert list(_BUILDERS) == list(MODEL_TABLE)
    for name, entry in MODEL_TABLE.items():
        size = max(entry.min_size, 8)
        model = build_model(name, (1, size, size), 10)
        assert set(model.options) == set(entry.options)
        assert model.cpu_trial_chunk == entry.cpu_trial_chunk
        assert model.cpu_channels_last == entry.cpu_channels_last
        assert model.macs_per_sample > 0
        if entry.min_size > 1:
            small = entry.min_size - 1
            with pytest.raises(ValueError, match=f"at least {entry.min_size}x"):
                build_model(name, (1, small, small), 10)


# ------------------------------------------------------------------------------------------ resnet


@pytest.mark.parametrize("init", INITS)
def test_resnet_trials_equal_the_plain_module_training_and_evaluating(init: str) -> None:
    """K = 3 ResNet-20 trials in one call: each trial's logits, gradients and BatchNorm
    statistics are the plain ``CifarResNet`` module's under its seed, in training (batch
    statistics, running ones updated) and in evaluation (running statistics)."""
    from optsweep.resnet import CifarResNet

    model = build_model("resnet20", CIFAR, 10, init=init)
    x = torch.randn(8, *CIFAR, generator=torch.Generator().manual_seed(2))
    y = torch.arange(8) % 10
    params = [p.requires_grad_() for p in model.init_stacked(SEEDS)]
    buffers = [torch.stack(ts) for ts in zip(*map(model.init_buffers, SEEDS), strict=True)]
    out = model.forward(params, x, buffers=buffers, train=True)
    F.cross_entropy(out.flatten(0, 1), y.repeat(len(SEEDS)), reduction="sum").backward()
    evaluated = model.forward(params, x, buffers=buffers)
    for k, seed in enumerate(SEEDS):
        torch.manual_seed(seed)
        plain = CifarResNet(20, init=init)
        F.cross_entropy(plain(x), y, reduction="sum").backward()
        named = dict(plain.named_parameters())
        for name, p in zip(model.param_names, params, strict=True):
            torch.testing.assert_close(p.grad[k], named[name].grad, rtol=1e-4, atol=1e-5)
        for spec, b in zip(model.buffers, buffers, strict=True):
            torch.testing.assert_close(b[k], plain.get_buffer(spec.name))
        with torch.no_grad():
            torch.testing.assert_close(evaluated[k], plain.eval()(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    ("name", "shape", "nhwc"),
    [
        ("3c3d", CIFAR, True),
        ("resnet20", CIFAR, True),
        ("resnet20", MNIST, True),
        ("2c2d", MNIST, True),
        ("cnn", MNIST, True),
        ("mlp", MNIST, None),
    ],
)
def test_the_conv_nets_convolve_a_channels_last_batch_on_cpu(
    name: str, shape: tuple[int, int, int], nhwc: bool | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`cpu_channels_last`: the first conv of every conv net gets the batch NHWC, one channel
    (MNIST) included, where `Tensor.contiguous` would leave it NCHW (None: no conv)."""
    seen: list[bool] = []
    conv2d = F.conv2d

    def recording(x: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        seen.append(x.stride(1) == 1)  # NHWC: channels adjacent (NCHW: a plane apart)
        return conv2d(x, *args, **kwargs)

    model = build_model(name, shape, 10)
    monkeypatch.setattr(F, "conv2d", recording)
    x = torch.randn(2, *shape, generator=torch.Generator().manual_seed(0))
    model.forward(model.init_stacked([0]), x, buffers=[b[None] for b in model.init_buffers(0)])
    assert (seen[0] if seen else None) is nhwc


@pytest.mark.parametrize("seeds", [[0, 0, 0], [0, 1, 0], [3, 3, 1]])
def test_init_draws_a_seed_once_in_a_row_and_hands_out_copies(
    seeds: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`BatchedModel.init` keeps the last seed's draw (2c2d's take 0.1 s): each call gets
    the seed's parameters as drawn, whatever an earlier caller did to its copy."""
    from optsweep import models

    model = build_model("2c2d", MNIST, 10)
    draws: list[int] = []
    drawn = models._drawn
    monkeypatch.setattr(
        models, "_drawn", lambda specs, seed: draws.append(seed) or drawn(specs, seed)
    )
    for seed in seeds:
        params = model.init(seed)
        for got, expected in zip(params, drawn(model.params, seed), strict=True):
            assert torch.equal(got, expected)
        params[0].add_(1.0).requires_grad_()
    assert draws == [s for i, s in enumerate(seeds) if i == 0 or seeds[i - 1] != s]
