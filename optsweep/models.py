"""Small vision models that run K trials at once on one shared batch.

A model's parameters for K trials are a list of tensors, each stacked ``(K, ...)`` in
torch's layout (linear weight ``(K, out, in)``, conv weight ``(K, out, in, kh, kw)``).
``forward(params, x)`` takes ONE batch ``x`` of shape ``(B, C, H, W)`` shared by all K
trials and returns logits ``(K, B, num_classes)``. The layers are batched by hand:

- the first layer sees the shared input, so it is ONE GEMM / ONE conv with the K trials'
  weights concatenated along the output axis (conv output ``(B, K*Cout, H, W)``);
- later convs are grouped convs (``groups=K``) on that channel-concatenated layout;
- later linears are ``torch.baddbmm`` over the trial axis.

On CPU the conv models run the trials in chunks of ``cpu_trial_chunk`` (1): there, grouped
convs over many trials are memory-bound and slower than one trial at a time (measured;
see ``catalog.ModelEntry.cpu_trial_chunk``). The result is the same either way. There the
conv nets take the batch channels-last, NHWC: 1.1-1.6x faster
(``catalog.ModelEntry.cpu_channels_last``), the same result to rounding.

Dropout masks are drawn from ``generator`` with a shape that does not depend on K (one
mask per sample, shared by the K trials), so a trial's result never depends on K.

Models: ``logreg``; ``mlp`` (ReLU, option ``hidden``); ``cnn``, the PyTorch examples
MNIST network (option ``dropout``); ``2c2d`` and ``3c3d``, the DeepOBS Fashion-MNIST and
CIFAR-10 networks (Schneider et al. 2019, "DeepOBS: A Deep Learning Optimizer Benchmark
Suite"), with TensorFlow "same" padding and their published initialisations.

Every model takes option ``init``: ``torch`` (default) draws as the reference PyTorch module
does (``torch.nn`` defaults for logreg, mlp and cnn; DeepOBS's PyTorch initialisation for
2c2d and 3c3d); ``keras`` draws as Keras ``Dense``/``Conv2D`` layers start, glorot_uniform
kernels and zero biases, for comparing with a Keras paper or script.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from optsweep.catalog import INITS, MODEL_TABLE, MODELS, USER_MODEL

__all__ = ["INITS", "MODELS", "BatchedModel", "ParamSpec", "build_model", "resolved_options"]


Init = Callable[[Tensor, torch.Generator], None]
Masks = list[Tensor] | None  # dropout masks for one batch, shared by all trials
ForwardFn = Callable[[Sequence[Tensor], Tensor, Masks], Tensor]
MaskFn = Callable[[Tensor, "torch.Generator | None"], list[Tensor]]


@dataclass(frozen=True)
class ParamSpec:
    """One trial's parameter or buffer: its name (as in the reference ``nn.Module``), shape,
    init and dtype (a buffer's may be an integer type: BatchNorm's ``num_batches_tracked``)."""

    name: str
    shape: tuple[int, ...]
    init: Init = field(repr=False)
    dtype: torch.dtype = torch.float32


@dataclass(frozen=True, eq=False)  # holds tensors: compare by identity
class BatchedModel:
    """A model whose forward runs K trials (stacked parameters) on one shared batch.

    ``init(seed)`` gives one trial's parameters; stack K of them (``init_stacked``) for
    ``forward``. ``param_names`` match the reference module's ``state_dict`` keys.

    ``buffers`` are state a training forward updates in place and no optimizer touches
    (BatchNorm's running statistics), stacked per trial as parameters are (``init_buffers``):
    ``_forward`` receives the parameters followed by the buffers.
    """

    name: str
    input_shape: tuple[int, int, int]
    num_classes: int
    params: tuple[ParamSpec, ...]
    macs_per_sample: int  # forward multiply-adds of one trial on one sample
    options: dict[str, Any]
    _forward: ForwardFn = field(repr=False)
    _masks: MaskFn | None = field(default=None, repr=False)
    # Trials per batched call on CPU (None: all K at once). On CPU, grouped convs over many
    # trials are memory-bound and slower than a few trials at a time; see catalog.ModelEntry.
    cpu_trial_chunk: int | None = None
    buffers: tuple[ParamSpec, ...] = ()
    # Whether a CPU batch enters channels-last (NHWC); see catalog.ModelEntry.
    cpu_channels_last: bool = False
    # The last seed's parameters as drawn: a sweep's batches start from the same seed, and
    # 2c2d's truncated normals took 0.11-0.13 s a draw (four batches and the K probe's
    # memory count drew them five times in a 32-trial run)
    _drawn_last: dict[int, list[Tensor]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    @property
    def param_shapes(self) -> tuple[tuple[int, ...], ...]:
        return tuple(p.shape for p in self.params)

    def num_params(self) -> int:
        """Parameters of one trial."""
        return sum(math.prod(s) for s in self.param_shapes)

    def flops_per_sample(self) -> int:
        """Forward FLOPs of one trial on one sample (multiply-adds × 2; biases not counted)."""
        return 2 * self.macs_per_sample

    def init(self, seed: int) -> list[Tensor]:
        """One trial's parameters, CPU float32, drawn from ``torch.Generator().manual_seed(seed)``.

        Depends only on ``seed``; draws in the reference module's construction order, so
        torch-default models equal ``torch.manual_seed(seed); Module()`` exactly.
        """
        if seed not in self._drawn_last:
            self._drawn_last.clear()
            self._drawn_last[seed] = _drawn(self.params, seed)
        return [t.clone() for t in self._drawn_last[seed]]

    def init_buffers(self, seed: int) -> list[Tensor]:
        """One trial's buffers as the reference module starts them (seed ``seed``), CPU."""
        return _drawn(self.buffers, seed)

    def init_stacked(
        self, seeds: Sequence[int], device: torch.device | str = "cpu"
    ) -> list[Tensor]:
        """Parameters for ``len(seeds)`` trials, each stacked ``(K, ...)``, on ``device``."""
        per_trial = [self.init(s) for s in seeds]
        return [torch.stack(ts).to(device) for ts in zip(*per_trial, strict=True)]

    def forward(
        self,
        params: Sequence[Tensor],
        x: Tensor,
        *,
        buffers: Sequence[Tensor] = (),
        train: bool = False,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Logits ``(K, B, num_classes)`` of K trials on the shared batch ``x`` ``(B, C, H, W)``.

        ``params[i]`` is ``(K, *param_shapes[i])``. With ``train=True`` dropout (cnn) draws
        its masks from ``generator`` (on ``x``'s device), one mask per sample for all K.
        On CPU, conv models run ``cpu_trial_chunk`` trials per call and take the batch
        channels-last (``cpu_channels_last``): the same result to rounding, faster.
        ``buffers[i]`` is ``(K, *buffers[i].shape)``; a training forward updates them in place.
        """
        if len(params) != len(self.params) or len(buffers) != len(self.buffers):
            raise ValueError(
                f"{self.name}: expected {len(self.params)} parameters and {len(self.buffers)} "
                f"buffers, got {len(params)} and {len(buffers)}"
            )
        if tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(
                f"{self.name}: input batch has shape {tuple(x.shape)}, expected (B, "
                f"{', '.join(map(str, self.input_shape))})"
            )
        masks = self._masks(x, generator) if train and self._masks is not None else None
        k = params[0].shape[0]
        chunk = self.cpu_trial_chunk if x.device.type == "cpu" else None
        if self.cpu_channels_last and x.device.type == "cpu":
            x = _channels_last(x)
        if chunk is None or chunk >= k:
            return self._forward([*params, *buffers], x, masks)
        # split (not slicing) so the backward pass concatenates the chunks' gradients once;
        # a buffer's pieces are views, updated in place where they lie
        pieces = zip(*(t.split(chunk) for t in (*params, *buffers)), strict=True)
        return torch.cat([self._forward(piece, x, masks) for piece in pieces])

    __call__ = forward


def _drawn(specs: Sequence[ParamSpec], seed: int) -> list[Tensor]:
    """Each spec's tensor, CPU, drawn in order from ``torch.Generator().manual_seed(seed)``."""
    generator = torch.Generator().manual_seed(seed)
    tensors = []
    for spec in specs:
        t = torch.empty(spec.shape, dtype=spec.dtype)
        with torch.no_grad():
            spec.init(t, generator)
        tensors.append(t)
    return tensors


# ---------------------------------------------------------------------------------- batched layers


def _channels_last(x: Tensor) -> Tensor:
    """``x`` ``(B, C, H, W)`` with NHWC strides, which the convs after it then keep. One
    channel (MNIST) is the same memory either way, so `Tensor.contiguous` leaves its NCHW
    strides, and a conv on them runs NCHW: it gets NHWC strides over the same memory."""
    if x.shape[1] == 1:
        _, _, height, width = x.shape
        return x.contiguous().as_strided(x.shape, (height * width, 1, width, 1))
    return x.contiguous(memory_format=torch.channels_last)


def _first_linear(x: Tensor, w: Tensor, b: Tensor) -> Tensor:
    """Shared input ``(B, D)``, weights ``(K, O, D)``, bias ``(K, O)`` → ``(K, O, B)``, one GEMM.

    Feature-major output (``_linear_t`` continues in it): W·xᵀ is a plain ``(K·O, D) @ (D, B)``
    GEMM, and its weight gradient ``(K·O, B) @ (B, D)`` another. Measured on 2 AVX-512 cores,
    K=32, O=128, D=784, B=64: forward 2.2 ms against 3.1 ms for x·Wᵀ ``(B, K·O)``, and the
    32-trial MLP's forward+backward 6.7 ms against 7.7 ms.
    """
    k, o, d = w.shape
    out = torch.addmm(b.reshape(k * o, 1), w.reshape(k * o, d), x.t())  # (K*O, B)
    return out.view(k, o, x.shape[0])


def _linear_t(h: Tensor, w: Tensor, b: Tensor) -> Tensor:
    """Feature-major per-trial input ``(K, I, B)``, weights ``(K, O, I)``, bias ``(K, O)`` →
    ``(K, O, B)``: every operand of the bmm and of its backward is contiguous (measured 0.05 ms
    against 0.46 ms for ``_linear`` on the transposed view, 32 trials, 64×128 → 10)."""
    return torch.baddbmm(b.unsqueeze(2), w, h)


def _linear(h: Tensor, w: Tensor, b: Tensor) -> Tensor:
    """Per-trial input ``(K, B, I)``, weights ``(K, O, I)``, bias ``(K, O)`` → ``(K, B, O)``.

    One trial (conv nets on CPU run trial by trial) is a plain ``F.linear``: ``baddbmm`` on the
    transposed weight copied it, forward and backward (2c2d's 1024×3136 dense layer: 11 ms of
    copies in a 47 ms trial step, measured on 2 cores).
    """
    if w.shape[0] == 1:
        return F.linear(h.squeeze(0), w.squeeze(0), b.squeeze(0)).unsqueeze(0)
    return torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2))


def _conv(h: Tensor, w: Tensor, b: Tensor, padding: int, groups: int) -> Tensor:
    """Conv of ``(B, G*Cin, H, W)`` with weights ``(K, O, Cin, kh, kw)`` → ``(B, K*O, H', W')``.

    ``groups=1`` for the first layer (shared input), ``groups=K`` afterwards.
    """
    k, o = w.shape[:2]
    return F.conv2d(
        h, w.reshape(k * o, *w.shape[2:]), b.reshape(k * o), padding=padding, groups=groups
    )


def _same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow 'same' padding (before, after) along one axis (extra pixel goes after)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _max_pool_same(h: Tensor, kernel: int, stride: int) -> Tensor:
    """Max-pool with TF 'same' padding, zero-padded as in DeepOBS (inputs are post-ReLU, >= 0)."""
    top, bottom = _same_pads(h.shape[-2], kernel, stride)
    left, right = _same_pads(h.shape[-1], kernel, stride)
    if top or bottom or left or right:
        h = F.pad(h, (left, right, top, bottom))
    return F.max_pool2d(h, kernel, stride)


def _dropout_mask(
    shape: tuple[int, ...], p: float, like: Tensor, generator: torch.Generator | None
) -> Tensor:
    """Inverted-dropout mask (values 0 or 1/(1-p)) of ``shape``, one per sample."""
    mask = torch.empty(shape, dtype=like.dtype, device=like.device)
    return mask.bernoulli_(1.0 - p, generator=generator).div_(1.0 - p)


def _to_trials(h: Tensor, k: int) -> Tensor:
    """Conv features ``(B, K*C, H, W)`` → per-trial flat features ``(K, B, C*H*W)``."""
    return h.reshape(h.shape[0], k, -1).transpose(0, 1)


# ------------------------------------------------------------------------------------ initialisers


def _torch_default_weight(w: Tensor, g: torch.Generator) -> None:
    """``nn.Linear``/``nn.Conv2d`` default: kaiming_uniform(a=√5) = U(±1/√fan_in)."""
    torch.nn.init.kaiming_uniform_(w, a=math.sqrt(5), generator=g)


def _torch_default_bias(fan_in: int) -> Init:
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0

    def init(b: Tensor, g: torch.Generator) -> None:
        torch.nn.init.uniform_(b, -bound, bound, generator=g)

    return init


def _truncated_normal_005(w: Tensor, g: torch.Generator) -> None:
    """DeepOBS 2c2d: normal(0, 0.05) truncated at 2 std (as TF's truncated_normal)."""
    torch.nn.init.trunc_normal_(w, mean=0.0, std=0.05, a=-0.1, b=0.1, generator=g)


def _constant(value: float) -> Init:
    def init(t: Tensor, g: torch.Generator) -> None:
        t.fill_(value)

    return init


def _xavier_normal(w: Tensor, g: torch.Generator) -> None:
    torch.nn.init.xavier_normal_(w, generator=g)


def _xavier_uniform(w: Tensor, g: torch.Generator) -> None:
    torch.nn.init.xavier_uniform_(w, generator=g)


def _keras_defaults(params: Sequence[ParamSpec]) -> list[ParamSpec]:
    """Keras's layer defaults for every layer: glorot_uniform kernels, zero biases.

    Keras computes a conv kernel's fans as ``kh*kw*in`` and ``kh*kw*out``, which is what
    ``xavier_uniform_`` computes on torch's ``(out, in, kh, kw)`` layout: U(±√(6/(fan_in +
    fan_out))) either way. The draws keep the reference order, one layer after another.
    """
    zero = _constant(0.0)
    return [
        dataclasses.replace(p, init=_xavier_uniform if p.name.endswith(".weight") else zero)
        for p in params
    ]


def _torch_default_layer(name: str, shape: tuple[int, ...]) -> list[ParamSpec]:
    fan_in = math.prod(shape[1:])
    return [
        ParamSpec(f"{name}.weight", shape, _torch_default_weight),
        ParamSpec(f"{name}.bias", shape[:1], _torch_default_bias(fan_in)),
    ]


def _layer(name: str, shape: tuple[int, ...], weight: Init, bias: Init) -> list[ParamSpec]:
    return [ParamSpec(f"{name}.weight", shape, weight), ParamSpec(f"{name}.bias", shape[:1], bias)]


# ------------------------------------------------------------------------------------------ models


@dataclass(frozen=True)
class _Built:
    params: list[ParamSpec]
    macs: int
    forward: ForwardFn
    masks: MaskFn | None = None


def _mlp(input_shape: tuple[int, int, int], num_classes: int, hidden: Sequence[int]) -> _Built:
    """Fully connected ReLU network ``D → hidden[0] → … → num_classes`` (logreg: no hidden)."""
    widths = [math.prod(input_shape), *hidden, num_classes]
    names = ["fc"] if not hidden else [f"fc{i + 1}" for i in range(len(widths) - 1)]
    params: list[ParamSpec] = []
    for name, (fan_in, fan_out) in zip(names, itertools.pairwise(widths), strict=True):
        params += _torch_default_layer(name, (fan_out, fan_in))
    macs = sum(a * b for a, b in itertools.pairwise(widths))

    def forward(p: Sequence[Tensor], x: Tensor, masks: Masks) -> Tensor:
        h = _first_linear(x.flatten(1), p[0], p[1])  # (K, O, B) from here on
        for i in range(2, len(p), 2):
            h = _linear_t(torch.relu(h), p[i], p[i + 1])
        return h.transpose(1, 2)

    return _Built(params, macs, forward)


def _cnn(input_shape: tuple[int, int, int], num_classes: int, dropout: bool) -> _Built:
    """PyTorch examples MNIST net: conv32 3x3 → relu → conv64 3x3 → relu → maxpool 2 →
    dropout .25 → fc128 → relu → dropout .5 → fc. Reference: pytorch/examples mnist/main.py."""
    c, height, width = input_shape
    h2, w2 = (height - 4) // 2, (width - 4) // 2
    flat = 64 * h2 * w2
    params = [
        *_torch_default_layer("conv1", (32, c, 3, 3)),
        *_torch_default_layer("conv2", (64, 32, 3, 3)),
        *_torch_default_layer("fc1", (128, flat)),
        *_torch_default_layer("fc2", (num_classes, 128)),
    ]
    macs = (
        32 * (height - 2) * (width - 2) * c * 9
        + 64 * (height - 4) * (width - 4) * 32 * 9
        + flat * 128
        + 128 * num_classes
    )

    def forward(p: Sequence[Tensor], x: Tensor, masks: Masks) -> Tensor:
        k, batch = p[0].shape[0], x.shape[0]
        h = torch.relu(_conv(x, p[0], p[1], padding=0, groups=1))  # (B, K*32, H-2, W-2)
        h = torch.relu(_conv(h, p[2], p[3], padding=0, groups=k))  # (B, K*64, H-4, W-4)
        h = F.max_pool2d(h, 2).reshape(batch, k, flat)  # (B, K, F)
        if masks is not None:
            h = h * masks[0]
        h = torch.relu(_linear(h.transpose(0, 1), p[4], p[5]))  # (K, B, 128)
        if masks is not None:
            h = h * masks[1]
        return _linear(h, p[6], p[7])

    def draw_masks(x: Tensor, gen: torch.Generator | None) -> list[Tensor]:
        batch = x.shape[0]  # shapes do not depend on K: all trials share the masks
        return [
            _dropout_mask((batch, 1, flat), 0.25, x, gen),
            _dropout_mask((1, batch, 128), 0.5, x, gen),
        ]

    return _Built(params, macs, forward, draw_masks if dropout else None)


def _2c2d(input_shape: tuple[int, int, int], num_classes: int) -> _Built:
    """DeepOBS Fashion-MNIST 2c2d: conv32 5x5 same → relu → maxpool 2 → conv64 5x5 same →
    relu → maxpool 2 → fc1024 → relu → fc. Weights truncated normal(0.05), biases 0.05."""
    c, height, width = input_shape
    h1, w1 = -(-height // 2), -(-width // 2)
    h2, w2 = -(-h1 // 2), -(-w1 // 2)
    flat = 64 * h2 * w2
    tn, b05 = _truncated_normal_005, _constant(0.05)
    params = [
        *_layer("conv1", (32, c, 5, 5), tn, b05),
        *_layer("conv2", (64, 32, 5, 5), tn, b05),
        *_layer("dense1", (1024, flat), tn, b05),
        *_layer("dense2", (num_classes, 1024), tn, b05),
    ]
    macs = 32 * height * width * c * 25 + 64 * h1 * w1 * 32 * 25 + flat * 1024 + 1024 * num_classes

    def forward(p: Sequence[Tensor], x: Tensor, masks: Masks) -> Tensor:
        k = p[0].shape[0]
        h = _max_pool_same(torch.relu(_conv(x, p[0], p[1], padding=2, groups=1)), 2, 2)
        h = _max_pool_same(torch.relu(_conv(h, p[2], p[3], padding=2, groups=k)), 2, 2)
        h = torch.relu(_linear(_to_trials(h, k), p[4], p[5]))
        return _linear(h, p[6], p[7])

    return _Built(params, macs, forward)


def _3c3d(input_shape: tuple[int, int, int], num_classes: int) -> _Built:
    """DeepOBS CIFAR-10 3c3d: conv64 5x5 valid → relu → maxpool 3/2 same → conv96 3x3 valid →
    relu → maxpool 3/2 same → conv128 3x3 same → relu → maxpool 3/2 same → fc512 → relu →
    fc256 → relu → fc. Conv weights xavier normal, linear xavier uniform, biases 0."""
    c, height, width = input_shape
    s1 = (-(-(height - 4) // 2), -(-(width - 4) // 2))
    s2 = (-(-(s1[0] - 2) // 2), -(-(s1[1] - 2) // 2))
    s3 = (-(-s2[0] // 2), -(-s2[1] // 2))
    flat = 128 * s3[0] * s3[1]
    zero = _constant(0.0)
    params = [
        *_layer("conv1", (64, c, 5, 5), _xavier_normal, zero),
        *_layer("conv2", (96, 64, 3, 3), _xavier_normal, zero),
        *_layer("conv3", (128, 96, 3, 3), _xavier_normal, zero),
        *_layer("dense1", (512, flat), _xavier_uniform, zero),
        *_layer("dense2", (256, 512), _xavier_uniform, zero),
        *_layer("dense3", (num_classes, 256), _xavier_uniform, zero),
    ]
    macs = (
        64 * (height - 4) * (width - 4) * c * 25
        + 96 * (s1[0] - 2) * (s1[1] - 2) * 64 * 9
        + 128 * s2[0] * s2[1] * 96 * 9
        + flat * 512
        + 512 * 256
        + 256 * num_classes
    )

    def forward(p: Sequence[Tensor], x: Tensor, masks: Masks) -> Tensor:
        k = p[0].shape[0]
        h = _max_pool_same(torch.relu(_conv(x, p[0], p[1], padding=0, groups=1)), 3, 2)
        h = _max_pool_same(torch.relu(_conv(h, p[2], p[3], padding=0, groups=k)), 3, 2)
        h = _max_pool_same(torch.relu(_conv(h, p[4], p[5], padding=1, groups=k)), 3, 2)
        h = torch.relu(_linear(_to_trials(h, k), p[6], p[7]))
        h = torch.relu(_linear(h, p[8], p[9]))
        return _linear(h, p[10], p[11])

    return _Built(params, macs, forward)


def _resnet(
    depth: int, input_shape: tuple[int, int, int], num_classes: int, options: dict[str, Any]
) -> BatchedModel:
    """He et al.'s CIFAR ResNet-``depth`` (`optsweep.resnet`), a plain ``nn.Module`` trained K
    trials at once through ``torch.func`` as a user's module is: BatchNorm's running
    statistics are per trial, and a trial equals the module trained alone."""
    from optsweep.resnet import CifarResNet
    from optsweep.usermodels import module_model

    args = {
        "depth": depth,
        "num_classes": num_classes,
        "in_channels": input_shape[0],
        "init": options["init"],
    }
    name = f"resnet{depth}"
    return module_model(
        CifarResNet, args, input_shape, num_classes, reference=name, name=name, options=options
    )


# ---------------------------------------------------------------------------------------- registry

# Each built-in model's builder; what is known of it without torch: `catalog.MODEL_TABLE`.
# A builder gives the hand-batched layers (`_Built`), or a `BatchedModel` of a plain module.
_BUILDERS: dict[
    str, Callable[[tuple[int, int, int], int, dict[str, Any]], _Built | BatchedModel]
] = {
    "logreg": lambda shape, classes, options: _mlp(shape, classes, hidden=()),
    "mlp": lambda shape, classes, options: _mlp(shape, classes, hidden=options["hidden"]),
    "cnn": lambda shape, classes, options: _cnn(shape, classes, dropout=options["dropout"]),
    "2c2d": lambda shape, classes, options: _2c2d(shape, classes),
    "3c3d": lambda shape, classes, options: _3c3d(shape, classes),
    **{
        f"resnet{depth}": functools.partial(_resnet, depth)
        for depth in (20, 32, 56)  # resnet.DEPTHS
    },
}


def _check_options(name: str, options: dict[str, Any]) -> dict[str, Any]:
    valid = MODEL_TABLE[name].options
    unknown = sorted(set(options) - set(valid))
    if unknown:
        allowed = ", ".join(sorted(valid)) or "none"
        raise ValueError(f"model {name!r} has no option {unknown[0]!r}; valid options: {allowed}")
    resolved = {**valid, **options}
    if name == "mlp":
        hidden = resolved["hidden"]
        if isinstance(hidden, int) and not isinstance(hidden, bool):
            hidden = [hidden]
        if not isinstance(hidden, Sequence) or not all(
            isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in hidden
        ):
            raise ValueError(f"mlp option hidden must be a list of positive ints, got {hidden!r}")
        resolved["hidden"] = tuple(hidden)
    if name == "cnn" and not isinstance(resolved["dropout"], bool):
        raise ValueError(f"cnn option dropout must be true or false, got {resolved['dropout']!r}")
    if resolved["init"] not in INITS:
        raise ValueError(
            f"{name} option init must be one of {', '.join(INITS)}, got {resolved['init']!r}"
        )
    return resolved


def resolved_options(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` of model ``name`` with its defaults filled in, as `build_model` uses them.

    Raises ``ValueError`` for an unknown name or option, or a bad value.
    """
    if name == USER_MODEL:
        return dict(options)
    if name not in MODEL_TABLE:
        raise ValueError(f"unknown model {name!r}; valid: {', '.join(MODELS)}")
    return _check_options(name, dict(options))


def build_model(
    name: str, input_shape: Sequence[int], num_classes: int, **options: Any
) -> BatchedModel:
    """Build a named model for inputs ``(C, H, W)`` and ``num_classes`` outputs.

    Options: ``mlp``: ``hidden`` (list of widths, default ``[128]``); ``cnn``: ``dropout``
    (bool, default true); every model: ``init`` (one of `INITS`, default ``torch``).
    Raises ``ValueError`` for an unknown name or option.

    ``name`` `USER_MODEL` (``module``) builds the user's module, ``options`` ``{module: REF,
    args: {…}}`` (`optsweep.usermodels`).
    """
    if name == USER_MODEL:
        from optsweep.usermodels import build_user_model

        return build_user_model(
            options["module"], options.get("args") or {}, input_shape, num_classes
        )
    if name not in MODEL_TABLE:
        raise ValueError(f"unknown model {name!r}; valid: {', '.join(MODELS)}")
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"input_shape must be (C, H, W), positive ints; got {tuple(input_shape)}")
    entry = MODEL_TABLE[name]
    if min(shape[1:]) < entry.min_size:
        size = entry.min_size
        raise ValueError(f"model {name!r} needs images of at least {size}x{size}, got {shape}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    resolved = _check_options(name, options)
    c_h_w = (shape[0], shape[1], shape[2])
    built = _BUILDERS[name](c_h_w, num_classes, resolved)
    if isinstance(built, BatchedModel):
        return dataclasses.replace(
            built,
            cpu_trial_chunk=entry.cpu_trial_chunk,
            cpu_channels_last=entry.cpu_channels_last,
        )
    params = _keras_defaults(built.params) if resolved["init"] == "keras" else built.params
    return BatchedModel(
        name=name,
        input_shape=c_h_w,
        num_classes=num_classes,
        params=tuple(params),
        macs_per_sample=built.macs,
        options=resolved,
        _forward=built.forward,
        _masks=built.masks,
        cpu_trial_chunk=entry.cpu_trial_chunk,
        cpu_channels_last=entry.cpu_channels_last,
    )
