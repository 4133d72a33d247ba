"""Datasets as four on-device tensors, decoded once from the published files.

A dataset is ``train_x, train_y, test_x, test_y``: images float32 ``(N, C, H, W)``
normalised with the dataset's usual per-channel mean and std (``normalize="standard"``) or
scaled to [0, 1] only (``"unit"``, DeepOBS's MNIST and Fashion-MNIST), labels int64 ``(N,)``,
all on one device. The engine slices batches from them by index; nothing here runs
per sample in Python and nothing is cached on disk.

Readers take the files exactly as published, without torchvision:

- MNIST and Fashion-MNIST: IDX files (``train-images-idx3-ubyte[.gz]`` …), gzip or not.
- CIFAR-10: the python pickles (``cifar-10-batches-py/data_batch_1..5``, ``test_batch``),
  or the shared subset (``data_batch_1_first4000``, ``test_batch_first1000``).

Layout of a data folder ``DIR`` (``/work/shared/datasets`` works as is)::

    DIR/mnist/                          DIR/MNIST/raw/          (torchvision)
    DIR/fashion-mnist/                  DIR/FashionMNIST/raw/   (torchvision)
    DIR/cifar-10/cifar-10-batches-py/   DIR/cifar-10-batches-py/ (torchvision)

``mnist-mini`` is a real MNIST subset shipped in the package (first 5,000 training and
first 1,000 test images, built by ``scripts/make_mnist_mini.py``) so a fresh clone runs
offline. When files are missing and torchvision imports, ``load_dataset`` asks
torchvision to download them into ``DIR``; otherwise it raises ``DataNotFoundError``.

References: LeCun et al. 1998 (MNIST); Xiao et al. 2017 (Fashion-MNIST);
Krizhevsky 2009 (CIFAR-10).
"""

from __future__ import annotations

import gzip
import logging
import os
import pickle
import socket
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from optsweep.catalog import DATASETS, NORMALIZATIONS

__all__ = [
    "DATASETS",
    "NORMALIZATIONS",
    "SMOKE_DATA_DIR",
    "DataFormatError",
    "DataNotFoundError",
    "Dataset",
    "default_data_dir",
    "load_dataset",
    "read_cifar_batch",
    "read_idx",
]

log = logging.getLogger(__name__)


MNIST_MINI_DIR = Path(__file__).resolve().parent / "datasets" / "mnist-mini"
# a data folder of a few hundred real images per dataset, for smoke runs (--smoke)
SMOKE_DATA_DIR = Path(__file__).resolve().parent / "datasets" / "smoke"
_DOWNLOAD_SOCKET_TIMEOUT_S = 30.0  # per socket operation, so a dead network fails fast


class DataNotFoundError(Exception):
    """The dataset's files are not where we looked (the message says where and how to get them)."""


class DataFormatError(ValueError):
    """A data file exists but is not in the published format (bad header, size or pickle)."""


@dataclass(frozen=True, eq=False)  # holds tensors: compare by identity
class Dataset:
    """Train and test tensors of one dataset, on one device.

    ``train_x``/``test_x``: float32 ``(N, C, H, W)``, normalised as ``load_dataset`` was
    asked; ``train_y``/``test_y``: int64 ``(N,)`` class ids in ``[0, num_classes)``;
    ``input_shape`` is ``(C, H, W)``; ``source`` names the folder the files were read from.
    """

    name: str
    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
    num_classes: int
    input_shape: tuple[int, int, int]
    source: str = ""


# ----------------------------------------------------------------------------------- dataset facts


@dataclass(frozen=True)
class _Spec:
    """Where a dataset lives, how it is stored, and how it is normalised."""

    name: str
    kind: str  # "idx" | "cifar" | "cifar100" | "svhn"
    folders: tuple[str, ...]  # relative to the data folder, in search order
    # per channel, on the [0, 1] scale; None: the training split's own, computed when read
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    url: str
    fetch: str  # how to install the files by hand, {dir} = the data folder
    torchvision: str | None  # torchvision.datasets class that downloads it
    num_classes: int = 10
    files: dict[str, tuple[str, ...]] | None = None  # per split; None: the kind's usual names
    downloads: tuple[dict[str, object], ...] = ({"train": True},)  # torchvision's keywords
    transposed: bool = False  # IDX images stored column-major (EMNIST): turned upright


_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_CIFAR_FULL = {
    "train": tuple(f"data_batch_{i}" for i in range(1, 6)),
    "test": ("test_batch",),
}
_CIFAR_SUBSET = {"train": ("data_batch_1_first4000",), "test": ("test_batch_first1000",)}

_MNIST_MEAN, _MNIST_STD = (0.1307,), (0.3081,)
_SPECS = {
    "mnist": _Spec(
        "mnist",
        "idx",
        ("mnist", "MNIST/raw"),
        _MNIST_MEAN,
        _MNIST_STD,
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "save the four *-ubyte.gz files in {dir}/mnist/",
        "MNIST",
    ),
    "fashion-mnist": _Spec(
        "fashion-mnist",
        "idx",
        ("fashion-mnist", "FashionMNIST/raw"),
        (0.2860,),  # training-set pixel mean and std
        (0.3530,),
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "save the four *-ubyte.gz files in {dir}/fashion-mnist/",
        "FashionMNIST",
    ),
    "cifar10": _Spec(
        "cifar10",
        "cifar",
        ("cifar-10/cifar-10-batches-py", "cifar-10-batches-py"),
        (0.4914, 0.4822, 0.4465),  # training-set per-channel mean and std
        (0.2470, 0.2435, 0.2616),
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        "extract it in {dir}/cifar-10/",
        "CIFAR10",
    ),
    "mnist-mini": _Spec("mnist-mini", "idx", (), _MNIST_MEAN, _MNIST_STD, "", "", None),
    "kmnist": _Spec(
        "kmnist",
        "idx",
        ("kmnist", "KMNIST/raw"),
        None,
        None,
        "https://codh.rois.ac.jp/kmnist/dataset/kmnist/",
        "save the four *-ubyte.gz files in {dir}/kmnist/",
        "KMNIST",
    ),
    "emnist-balanced": _Spec(
        "emnist-balanced",
        "idx",
        ("emnist", "EMNIST/raw"),
        None,
        None,
        "https://biometrics.nist.gov/cs_links/EMNIST/gzip.zip",
        "extract emnist-balanced-*-ubyte.gz from its gzip/ folder into {dir}/emnist/",
        "EMNIST",
        num_classes=47,
        files={
            "train": (
                "emnist-balanced-train-images-idx3-ubyte",
                "emnist-balanced-train-labels-idx1-ubyte",
            ),
            "test": (
                "emnist-balanced-test-images-idx3-ubyte",
                "emnist-balanced-test-labels-idx1-ubyte",
            ),
        },
        downloads=({"split": "balanced", "train": True},),
        transposed=True,
    ),
    "cifar100": _Spec(
        "cifar100",
        "cifar100",
        ("cifar-100/cifar-100-python", "cifar-100-python"),
        None,
        None,
        "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        "extract it in {dir}/cifar-100/",
        "CIFAR100",
        num_classes=100,
    ),
    "svhn": _Spec(
        "svhn",
        "svhn",
        ("svhn", ""),
        None,
        None,
        "http://ufldl.stanford.edu/housenumbers/",
        "save train_32x32.mat and test_32x32.mat in {dir}/svhn/",
        "SVHN",
        downloads=({"split": "train"}, {"split": "test"}),
    ),
}


def default_data_dir() -> Path:
    """The data folder: ``$OPTSWEEP_DATA`` if set, else ``./data``."""
    return Path(os.environ.get("OPTSWEEP_DATA") or "data").expanduser()


# ------------------------------------------------------------------------------------ file readers


def _read_maybe_gzip(path: Path) -> bytes:
    """The file's bytes, gunzipped when it starts with the gzip magic number."""
    raw = path.read_bytes()
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # ~1.7x faster than gzip's
        data = inflater.decompress(raw)
        if not inflater.eof:
            raise EOFError("compressed stream ends early")
        if inflater.unused_data:  # several gzip members: rare, let gzip handle it
            data = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataFormatError(f"{path}: corrupt gzip file ({exc})") from exc
    return data


def read_idx(path: Path | str, ndim: int | None = None) -> np.ndarray:
    """Read an IDX file of unsigned bytes (gzip or not) into a uint8 array.

    Format (LeCun et al.): big-endian magic ``0x0000 08 <ndim>``, then ``ndim`` uint32
    sizes, then the bytes in row-major order. MNIST images are ``(N, 28, 28)`` (magic
    2051), labels ``(N,)`` (magic 2049). Raises ``DataFormatError`` on a bad header,
    a size that does not match the payload, or ``ndim`` other than expected.
    """
    path = Path(path)
    data = _read_maybe_gzip(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        what = f"bad magic number {data[:4].hex()}" if data else "the file is empty"
        raise DataFormatError(f"{path}: not an IDX file ({what})")
    if data[2] != 0x08:
        raise DataFormatError(
            f"{path}: IDX element type 0x{data[2]:02x} is not 0x08 (unsigned byte)"
        )
    file_ndim = data[3]
    if ndim is not None and file_ndim != ndim:
        raise DataFormatError(f"{path}: IDX file has {file_ndim} dimensions, expected {ndim}")
    header = 4 + 4 * file_ndim
    if len(data) < header:
        raise DataFormatError(f"{path}: IDX header truncated")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=file_ndim, offset=4))
    expected = int(np.prod(dims, dtype=np.int64))
    if len(data) - header != expected:
        raise DataFormatError(
            f"{path}: IDX header says {'x'.join(map(str, dims))} = {expected} bytes, "
            f"file holds {len(data) - header}"
        )
    return np.frombuffer(data, dtype=np.uint8, count=expected, offset=header).reshape(dims)


def _numpy_reconstruct() -> object:
    try:  # numpy >= 2
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


class _CifarUnpickler(pickle.Unpickler):
    """Unpickler that allows only what a CIFAR batch holds (numpy arrays), nothing else."""

    def find_class(self, module: str, name: str) -> object:
        if name == "_reconstruct" and module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            return _numpy_reconstruct()
        if module == "numpy" and name in ("ndarray", "dtype"):
            return getattr(np, name)
        if (module, name) == ("_codecs", "encode"):  # bytes pickled by Python 3, protocol 2
            import _codecs

            return _codecs.encode
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR batch")


def read_cifar_batch(path: Path | str, labels_key: str = "labels") -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-10 python batch: images uint8 ``(N, 3, 32, 32)``, labels int64 ``(N,)``.

    The file is a pickled dict with ``data`` (uint8 ``N x 3072``: 1024 red, 1024 green,
    1024 blue values, each 32x32 row-major) and ``labels`` (N ints); keys may be bytes
    (Python 2 pickles) or str. Only numpy globals are unpickled. Raises ``DataFormatError``.
    """
    path = Path(path)
    try:
        with path.open("rb") as f:
            batch = _CifarUnpickler(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError) as exc:
        raise DataFormatError(f"{path}: not a CIFAR-10 pickle ({exc})") from exc
    if not isinstance(batch, dict):
        raise DataFormatError(f"{path}: CIFAR-10 batch is a {type(batch).__name__}, not a dict")
    batch = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in batch.items()}
    data, labels = batch.get("data"), batch.get(labels_key)
    if not isinstance(data, np.ndarray) or labels is None:
        raise DataFormatError(f"{path}: CIFAR-10 batch lacks 'data' array or 'labels'")
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DataFormatError(
            f"{path}: CIFAR-10 'data' is {data.dtype} {data.shape}, expected uint8 (N, 3072)"
        )
    labels = np.asarray(labels, dtype=np.int64)
    if labels.shape != (data.shape[0],):
        raise DataFormatError(f"{path}: {len(labels)} labels for {data.shape[0]} images")
    return data.reshape(-1, 3, 32, 32), labels


# ---------------------------------------------------------------------------------- locating files


@dataclass(frozen=True)
class _Raw:
    """Undecoded uint8 images ``(N, C, H, W)`` and int64 labels, as read from disk."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    source: Path


def _find_idx(folder: Path, base: str) -> Path | None:
    for candidate in (folder / base, folder / f"{base}.gz"):  # uncompressed reads faster
        if candidate.is_file():
            return candidate
    return None


def _read_idx_folder(folder: Path, spec: _Spec) -> _Raw | None:
    """Read the four MNIST-style IDX files in ``folder``, or None if any is missing."""
    paths = {
        split: [_find_idx(folder, base) for base in bases]
        for split, bases in (spec.files or _IDX_FILES).items()
    }
    if any(p is None for pair in paths.values() for p in pair):
        return None
    arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for split, (image_path, label_path) in paths.items():
        images = read_idx(image_path, ndim=3)
        labels = read_idx(label_path, ndim=1)
        if len(images) != len(labels):
            raise DataFormatError(
                f"{image_path}: {len(images)} images but {label_path.name} has {len(labels)} labels"
            )
        if spec.transposed:
            images = images.transpose(0, 2, 1)
        arrays[split] = (images[:, None], labels)  # add the channel axis
    return _Raw(*arrays["train"], *arrays["test"], source=folder)


def _read_cifar100_folder(folder: Path, spec: _Spec) -> _Raw | None:
    """Read CIFAR-100's ``train`` and ``test`` pickles (its 100 fine labels), or None."""
    paths = {split: folder / split for split in ("train", "test")}
    if not all(p.is_file() for p in paths.values()):
        return None
    arrays = {s: read_cifar_batch(p, labels_key="fine_labels") for s, p in paths.items()}
    return _Raw(*arrays["train"], *arrays["test"], source=folder)


def read_svhn_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One SVHN cropped-digits file (``train_32x32.mat``): ``X`` uint8 ``(32, 32, 3, N)`` and
    ``y`` ``(N, 1)`` with 10 for the digit 0, as images ``(N, 3, 32, 32)`` and labels 0-9.
    Raises ``DataFormatError``."""
    from scipy.io import loadmat  # only SVHN needs it

    try:
        contents = loadmat(path)
    except Exception as exc:  # scipy raises ValueError, TypeError, OSError... for a bad file
        raise DataFormatError(f"{path}: not a MATLAB file ({_one_line(exc)})") from exc
    x, y = contents.get("X"), contents.get("y")
    if not isinstance(x, np.ndarray) or not isinstance(y, np.ndarray):
        raise DataFormatError(f"{path}: SVHN file lacks its 'X' and 'y' arrays")
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[:3] != (32, 32, 3):
        raise DataFormatError(
            f"{path}: SVHN 'X' is {x.dtype} {x.shape}, expected uint8 (32, 32, 3, N)"
        )
    labels = np.asarray(y, dtype=np.int64).reshape(-1)
    if labels.shape != (x.shape[3],):
        raise DataFormatError(f"{path}: {labels.size} labels for {x.shape[3]} images")
    labels = np.where(labels == 10, 0, labels)
    return np.ascontiguousarray(x.transpose(3, 2, 0, 1)), labels


def _read_svhn_folder(folder: Path, spec: _Spec) -> _Raw | None:
    paths = {split: folder / f"{split}_32x32.mat" for split in ("train", "test")}
    if not all(p.is_file() for p in paths.values()):
        return None
    arrays = {s: read_svhn_mat(p) for s, p in paths.items()}
    return _Raw(*arrays["train"], *arrays["test"], source=folder)


def _read_cifar_folder(folder: Path, spec: _Spec) -> _Raw | None:
    """Read the full CIFAR-10 batches in ``folder``, else the shared subset, else None."""
    for names in (_CIFAR_FULL, _CIFAR_SUBSET):
        if all((folder / n).is_file() for split in names.values() for n in split):
            break
    else:
        return None
    if names is _CIFAR_SUBSET:
        log.warning(
            "%s holds only the CIFAR-10 subset (%s, %s); accuracy is not comparable with "
            "published CIFAR-10 numbers",
            folder,
            *_CIFAR_SUBSET["train"],
            *_CIFAR_SUBSET["test"],
        )
    arrays = {}
    for split, files in names.items():
        batches = [read_cifar_batch(folder / n) for n in files]
        arrays[split] = (
            np.concatenate([b[0] for b in batches]),
            np.concatenate([b[1] for b in batches]),
        )
    return _Raw(*arrays["train"], *arrays["test"], source=folder)


_READERS = {
    "idx": _read_idx_folder,
    "cifar": _read_cifar_folder,
    "cifar100": _read_cifar100_folder,
    "svhn": _read_svhn_folder,
}


def _read_local(spec: _Spec, data_dir: Path) -> tuple[_Raw | None, list[Path]]:
    """Try each folder the dataset may live in; return what was read and where we looked."""
    folders = (
        [MNIST_MINI_DIR] if spec.name == "mnist-mini" else [data_dir / f for f in spec.folders]
    )
    reader = _READERS[spec.kind]
    for folder in folders:
        raw = reader(folder, spec)
        if raw is not None:
            return raw, folders
    return None, folders


def _download(spec: _Spec, data_dir: Path) -> str | None:
    """Download with torchvision into ``data_dir``; None on success, else why it failed."""
    try:
        from torchvision import datasets as tv_datasets  # a broken install raises RuntimeError
    except Exception as exc:
        return f"torchvision unavailable ({type(exc).__name__}: {_one_line(exc)})"
    new_dirs = [d for d in _download_dirs(spec, data_dir) if not d.exists()]
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(_DOWNLOAD_SOCKET_TIMEOUT_S)
    try:
        for keywords in spec.downloads:
            getattr(tv_datasets, spec.torchvision)(root=str(data_dir), download=True, **keywords)
    except Exception as exc:
        for d in new_dirs:  # leave no empty folders behind a failed attempt
            if d.is_dir() and not any(d.iterdir()):
                d.rmdir()
        return f"download failed ({type(exc).__name__}: {_one_line(exc)})"
    finally:
        socket.setdefaulttimeout(previous)
    return None


def _download_dirs(spec: _Spec, data_dir: Path) -> list[Path]:
    """``data_dir`` and the folders torchvision may create in it, deepest first."""
    dirs = {data_dir}
    for folder in spec.folders:
        parts = Path(folder).parts
        dirs.update(data_dir.joinpath(*parts[: i + 1]) for i in range(len(parts)))
    return sorted(dirs, key=lambda d: len(d.parts), reverse=True)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _not_found_message(spec: _Spec, data_dir: Path, folders: list[Path], why: str) -> str:
    files = {
        "idx": ", ".join(
            f"{b}[.gz]" for bases in (spec.files or _IDX_FILES).values() for b in bases
        ),
        "cifar": "data_batch_1..5 + test_batch (or data_batch_1_first4000 + test_batch_first1000)",
        "cifar100": "train + test",
        "svhn": "train_32x32.mat + test_32x32.mat",
    }[spec.kind]
    where = " or ".join(str(f.resolve()) for f in folders)
    return (
        f"{spec.name}: data not found: looked for {files} in {where}; {why}. "
        f"Get {spec.url} and {spec.fetch.format(dir=data_dir.resolve())}, "
        f"or point --data-dir / OPTSWEEP_DATA at a folder that holds {spec.folders[0]}/"
    )


def _read_raw(spec: _Spec, data_dir: Path, download: bool) -> _Raw:
    raw, folders = _read_local(spec, data_dir)
    if raw is not None:
        return raw
    if spec.torchvision is None:  # mnist-mini is package data: a broken install
        raise DataNotFoundError(
            f"mnist-mini: package data missing in {MNIST_MINI_DIR}; reinstall optsweep "
            "or rebuild it with scripts/make_mnist_mini.py"
        )
    if not download:
        why = "download=False"
    else:
        why = _download(spec, data_dir) or ""
        raw, _ = _read_local(spec, data_dir)
        if raw is not None:
            return raw
        why = why or "torchvision downloaded nothing readable"
    raise DataNotFoundError(_not_found_message(spec, data_dir, folders, why))


# ---------------------------------------------------------------------------------------- decoding


def _check_subset(name: str, split: str, subset: int | None, available: int, source: Path) -> int:
    if subset is None:
        return available
    if isinstance(subset, bool) or not isinstance(subset, int) or subset < 1:
        raise ValueError(f"{split}_subset must be a positive int or None, got {subset!r}")
    if subset > available:
        raise ValueError(
            f"{split}_subset={subset} but {name} has only {available} {split} images in {source}"
        )
    return subset


def _scale(
    spec: _Spec, normalize: str, train_images: np.ndarray
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The (mean, std) per channel that ``normalize`` subtracts and divides by, on [0, 1]:
    the dataset's published constants, or where it has none here the whole training split's
    own (before any subset, so a subset does not change what a pixel becomes).

    ``unit`` is mean 0 and std 1: the pixels stay x / 255, as ``transforms.ToTensor()``
    leaves them in DeepOBS's MNIST and Fashion-MNIST data sets.
    """
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"unknown normalize {normalize!r}; valid: {', '.join(NORMALIZATIONS)}")
    channels = train_images.shape[1]
    if normalize == "unit":
        return (0.0,) * channels, (1.0,) * channels
    if spec.mean is not None and spec.std is not None:
        return spec.mean, spec.std
    pixels = train_images.transpose(1, 0, 2, 3).reshape(channels, -1).astype(np.float64) / 255
    return tuple(pixels.mean(axis=1).tolist()), tuple(pixels.std(axis=1).tolist())


def _images_to_tensor(
    images: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...], device: torch.device
) -> Tensor:
    """``(N, C, H, W)`` on the 0-255 scale (uint8, or a user's floats) → float32 ``(x / 255 -
    mean) / std`` on ``device``."""
    x = torch.from_numpy(np.array(images, copy=True)).to(device)  # uint8: 4x less to move
    shape = (1, len(mean), 1, 1)
    mean_t = torch.tensor(mean, dtype=torch.float32, device=device).view(shape)
    std_t = torch.tensor(std, dtype=torch.float32, device=device).view(shape)
    return x.to(torch.float32).div_(255.0).sub_(mean_t).div_(std_t)


def _labels_to_tensor(
    labels: np.ndarray, num_classes: int, path: Path, device: torch.device
) -> Tensor:
    y = np.asarray(labels, dtype=np.int64)
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise DataFormatError(f"{path}: labels outside 0..{num_classes - 1}")
    return torch.from_numpy(y.copy()).to(device)


def load_dataset(
    name: str,
    data_dir: Path | str | None = None,
    device: torch.device | str = "cpu",
    train_subset: int | None = None,
    test_subset: int | None = None,
    *,
    download: bool = True,
    normalize: str = "standard",
) -> Dataset:
    """Load a dataset's train and test tensors onto ``device``, decoded once.

    Args:
        name: one of ``DATASETS``.
        data_dir: folder holding ``mnist/``, ``fashion-mnist/``, ``cifar-10/`` (or the
            torchvision layouts); None means ``default_data_dir()``. Unused by mnist-mini.
        device: where the tensors live.
        train_subset, test_subset: keep the first N images of each split (None: all).
        download: when files are missing, try ``torchvision.datasets.<X>(data_dir,
            download=True)`` first (needs torchvision and network).
        normalize: ``standard``: ``(x / 255 - mean) / std`` with the training set's
            per-channel mean and std; ``unit``: ``x / 255`` only (one of `NORMALIZATIONS`).

    Returns:
        ``Dataset`` with float32 ``(N, C, H, W)`` normalised images and int64 labels.

    Raises:
        DataNotFoundError: files not found (and not downloadable); one line saying where
            it looked and how to get them.
        DataFormatError: a file exists but is corrupt.
        ValueError: unknown name or normalize, or a subset larger than the split.
    """
    if name not in _SPECS:
        raise ValueError(f"unknown dataset {name!r}; valid: {', '.join(DATASETS)}")
    spec = _SPECS[name]
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"unknown normalize {normalize!r}; valid: {', '.join(NORMALIZATIONS)}")
    data_dir = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    device = torch.device(device)
    raw = _read_raw(spec, data_dir, download)
    mean, std = _scale(spec, normalize, raw.train_images)

    n_train = _check_subset(name, "train", train_subset, len(raw.train_images), raw.source)
    n_test = _check_subset(name, "test", test_subset, len(raw.test_images), raw.source)
    train_x = _images_to_tensor(raw.train_images[:n_train], mean, std, device)
    test_x = _images_to_tensor(raw.test_images[:n_test], mean, std, device)
    return Dataset(
        name=name,
        train_x=train_x,
        train_y=_labels_to_tensor(raw.train_labels[:n_train], spec.num_classes, raw.source, device),
        test_x=test_x,
        test_y=_labels_to_tensor(raw.test_labels[:n_test], spec.num_classes, raw.source, device),
        num_classes=spec.num_classes,
        input_shape=tuple(train_x.shape[1:]),
        source=str(raw.source),
    )


# ------------------------------------------------------------------------------ a user's own arrays

NPZ_ARRAYS = ("x_train", "y_train", "x_test", "y_test")


def _npz_images(path: Path, key: str, x: np.ndarray) -> np.ndarray:
    """Images as uint8-scale float32 ``(N, C, H, W)``: uint8 as they are, floats on [0, 1]
    times 255; ``(N, H, W)`` gains a channel; ``(N, H, W, C)`` (channels last, Keras's
    layout) with C of 1, 3 or 4 is turned channels first, else ``(N, C, H, W)`` is kept."""
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[-1] in (1, 3, 4) and x.shape[1] not in (1, 3, 4):
        x = x.transpose(0, 3, 1, 2)
    elif x.ndim != 4:
        raise DataFormatError(
            f"{path}: {key} has shape {x.shape}; expected (N, H, W), (N, H, W, C) or (N, C, H, W)"
        )
    if x.dtype == np.uint8:
        return np.ascontiguousarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        raise DataFormatError(f"{path}: {key} is {x.dtype}; expected uint8 (0-255) or floats (0-1)")
    if not np.isfinite(x).all():
        raise DataFormatError(f"{path}: {key} holds NaN or infinite pixels")
    if x.min() < 0 or x.max() > 1:
        raise DataFormatError(
            f"{path}: {key} floats run from {x.min():g} to {x.max():g}; expected 0 to 1 "
            f"(or uint8 0-255)"
        )
    return np.ascontiguousarray(x * 255, dtype=np.float32)


def _npz_labels(path: Path, key: str, y: np.ndarray, n: int) -> np.ndarray:
    y = y.reshape(-1) if y.ndim == 2 and y.shape[1] == 1 else y
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise DataFormatError(f"{path}: {key} is {y.dtype} {y.shape}; expected integer labels (N,)")
    if len(y) != n:
        raise DataFormatError(f"{path}: {n} images but {key} has {len(y)} labels")
    if len(y) and y.min() < 0:
        raise DataFormatError(f"{path}: {key} holds a negative label ({y.min()})")
    return y.astype(np.int64)


def read_npz(path: Path | str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A user's ``.npz`` (Keras's ``x_train, y_train, x_test, y_test``): images ``(N, C, H,
    W)`` on the 0-255 scale and int64 labels, checked. Raises ``DataFormatError``."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as contents:
            missing = [k for k in NPZ_ARRAYS if k not in contents.files]
            if missing:
                raise DataFormatError(
                    f"{path}: lacks {', '.join(missing)}; a .npz holds x_train, y_train, "
                    f"x_test, y_test (as keras.datasets' mnist.npz)"
                )
            arrays = {k: contents[k] for k in NPZ_ARRAYS}
    except (OSError, ValueError, EOFError) as exc:  # not a zip, an object array refused...
        raise DataFormatError(f"{path}: not a readable .npz ({_one_line(exc)})") from exc
    x_train = _npz_images(path, "x_train", arrays["x_train"])
    x_test = _npz_images(path, "x_test", arrays["x_test"])
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DataFormatError(
            f"{path}: x_train images are {x_train.shape[1:]} but x_test's {x_test.shape[1:]}"
        )
    y_train = _npz_labels(path, "y_train", arrays["y_train"], len(x_train))
    y_test = _npz_labels(path, "y_test", arrays["y_test"], len(x_test))
    return x_train, y_train, x_test, y_test


def load_npz(
    path: Path | str,
    device: torch.device | str = "cpu",
    train_subset: int | None = None,
    test_subset: int | None = None,
    *,
    normalize: str = "standard",
) -> Dataset:
    """A user's ``.npz`` as a `Dataset` (`read_npz`); classes: the largest label + 1 of both
    splits; ``standard`` normalisation with the training split's own per-channel mean and
    std."""
    path = Path(path)
    x_train, y_train, x_test, y_test = read_npz(path)
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"unknown normalize {normalize!r}; valid: {', '.join(NORMALIZATIONS)}")
    spec = _Spec(path.name, "npz", (), None, None, "", "", None)
    mean, std = _scale(spec, normalize, x_train)
    device = torch.device(device)
    n_train = _check_subset(path.name, "train", train_subset, len(x_train), path)
    n_test = _check_subset(path.name, "test", test_subset, len(x_test), path)
    classes = int(max(y_train.max(initial=0), y_test.max(initial=0))) + 1
    train_x = _images_to_tensor(x_train[:n_train], mean, std, device)
    return Dataset(
        name=path.name,
        train_x=train_x,
        train_y=_labels_to_tensor(y_train[:n_train], classes, path, device),
        test_x=_images_to_tensor(x_test[:n_test], mean, std, device),
        test_y=_labels_to_tensor(y_test[:n_test], classes, path, device),
        num_classes=classes,
        input_shape=tuple(train_x.shape[1:]),
        source=str(path),
    )


def npz_sizes(path: Path | str) -> tuple[int, int]:
    """Training and test images in a user's ``.npz`` (for a smoke run's subsets)."""
    x_train, _, x_test, _ = read_npz(path)
    return len(x_train), len(x_test)


# ------------------------------------------------------------------------------------ augmentation


def augment(
    x: Tensor, generator: torch.Generator, *, padding: int, flip: bool, fill: Tensor
) -> Tensor:
    """A training batch ``(B, C, H, W)`` augmented on its device (``data.crop_padding``,
    ``data.flip``): each image padded by ``padding`` pixels of ``fill`` (per channel: black,
    normalised) and cropped back to ``H x W`` at an offset drawn from ``generator``, as
    torchvision's ``RandomCrop(H, padding)`` before ``Normalize``; then mirrored left to
    right with probability ½, as ``RandomHorizontalFlip``. Offsets first, then flips.
    """
    b, c, h, w = x.shape
    if padding:
        padded = fill.view(1, c, 1, 1).expand(b, c, h + 2 * padding, w + 2 * padding).clone()
        padded[:, :, padding : padding + h, padding : padding + w] = x
        dy, dx = torch.randint(
            0, 2 * padding + 1, (2, b), generator=generator, device=generator.device
        ).to(x.device)
        rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
        cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
        images = torch.arange(b, device=x.device)[:, None, None, None]
        channels = torch.arange(c, device=x.device)[None, :, None, None]
        x = padded[images, channels, rows, cols]
    if flip:
        mirrored = torch.rand(b, generator=generator, device=generator.device).to(x.device) < 0.5
        x = torch.where(mirrored[:, None, None, None], x.flip(-1), x)
    return x
