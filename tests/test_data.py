"""Tests for optsweep.data: readers on files written here in the published formats."""

from __future__ import annotations

import gzip
import os
import pickle
import socket
import struct
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import real_data_dir

from optsweep import data
from optsweep.data import DataFormatError, DataNotFoundError, default_data_dir, load_dataset

REPO = Path(__file__).resolve().parents[1]
SHARED = real_data_dir() or REPO.parent / "shared" / "datasets"
IDX_NAMES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any socket connection in these tests is a bug."""

    def refuse(*args, **kwargs):
        raise AssertionError("test tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


# --------------------------------------------------------------------- writers (published formats)


def idx_bytes(array: np.ndarray) -> bytes:
    magic = 0x0800 | array.ndim  # 0x00000803 for images, 0x00000801 for labels
    return struct.pack(f">I{array.ndim}I", magic, *array.shape) + array.astype(np.uint8).tobytes()


def write_idx(path: Path, array: np.ndarray, compress: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = idx_bytes(array)
    if compress:
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(payload))
    else:
        path.write_bytes(payload)


def fake_mnist(n_train: int = 12, n_test: int = 5, seed: int = 0) -> dict[str, tuple]:
    rng = np.random.default_rng(seed)
    return {
        split: (
            rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
            rng.integers(0, 10, n).astype(np.uint8),
        )
        for split, n in (("train", n_train), ("test", n_test))
    }


def write_mnist(folder: Path, arrays: dict[str, tuple], compress: bool = True) -> None:
    for split, (images_name, labels_name) in IDX_NAMES.items():
        write_idx(folder / images_name, arrays[split][0], compress)
        write_idx(folder / labels_name, arrays[split][1], compress)


def write_cifar(folder: Path, names: dict[str, list[str]], n: int = 4, seed: int = 0) -> dict:
    """Write CIFAR-10 python batches (pickle protocol 2, bytes keys); return their arrays."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for split, files in names.items():
        rows, labels = [], []
        for name in files:
            batch_rows = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
            batch_labels = [int(v) for v in rng.integers(0, 10, n)]
            batch = {b"batch_label": name.encode(), b"labels": batch_labels, b"data": batch_rows}
            (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
            rows.append(batch_rows)
            labels += batch_labels
        written[split] = (np.concatenate(rows), np.array(labels))
    return written


def expected_images(u8: np.ndarray, mean, std) -> torch.Tensor:
    x = torch.from_numpy(u8.astype(np.float32) / 255.0)
    shape = (1, len(mean), 1, 1)
    return (x - torch.tensor(mean).view(shape)) / torch.tensor(std).view(shape)


# --------------------------------------------------------------------------------- MNIST-style IDX


@pytest.mark.parametrize(
    ("name", "folder", "compress", "mean", "std"),
    [
        ("mnist", "mnist", True, 0.1307, 0.3081),
        ("mnist", "MNIST/raw", False, 0.1307, 0.3081),  # torchvision layout, uncompressed
        ("fashion-mnist", "fashion-mnist", True, 0.2860, 0.3530),
        ("fashion-mnist", "FashionMNIST/raw", False, 0.2860, 0.3530),
    ],
)
def test_reads_idx_layouts(tmp_path: Path, name, folder, compress, mean, std) -> None:
    arrays = fake_mnist()
    write_mnist(tmp_path / folder, arrays, compress)
    ds = load_dataset(name, tmp_path, "cpu", download=False)
    assert ds.name == name and ds.num_classes == 10 and ds.input_shape == (1, 28, 28)
    assert ds.train_x.shape == (12, 1, 28, 28) and ds.test_x.shape == (5, 1, 28, 28)
    assert ds.train_x.dtype == torch.float32 and ds.train_y.dtype == torch.int64
    torch.testing.assert_close(
        ds.train_x, expected_images(arrays["train"][0][:, None], (mean,), (std,))
    )
    torch.testing.assert_close(
        ds.test_x, expected_images(arrays["test"][0][:, None], (mean,), (std,))
    )
    assert ds.train_y.tolist() == arrays["train"][1].tolist()
    assert ds.test_y.tolist() == arrays["test"][1].tolist()
    assert Path(ds.source) == tmp_path / folder


def test_subsets_are_first_n(tmp_path: Path) -> None:
    arrays = fake_mnist()
    write_mnist(tmp_path / "mnist", arrays)
    ds = load_dataset("mnist", tmp_path, "cpu", train_subset=4, test_subset=2, download=False)
    assert ds.train_x.shape[0] == 4 and ds.test_x.shape[0] == 2
    assert ds.train_y.tolist() == arrays["train"][1][:4].tolist()
    torch.testing.assert_close(
        ds.test_x, expected_images(arrays["test"][0][:2, None], (0.1307,), (0.3081,))
    )
    with pytest.raises(ValueError, match="train_subset=13 but mnist has only 12 train images"):
        load_dataset("mnist", tmp_path, "cpu", train_subset=13, download=False)
    with pytest.raises(ValueError, match="positive int"):
        load_dataset("mnist", tmp_path, "cpu", test_subset=0, download=False)


def header(magic: int, *dims: int) -> bytes:
    return struct.pack(f">I{len(dims)}I", magic, *dims)


CORRUPTIONS = [  # what to write instead of train-images-idx3-ubyte.gz, expected message
    (gzip.compress(header(0x0804, 1, 28, 28) + bytes(784)), "expected 3"),  # 4-dim magic
    (gzip.compress(header(0x12345678, 1, 28, 28) + bytes(784)), "bad magic"),
    (gzip.compress(header(0x0D03, 1, 28, 28) + bytes(784)), "not 0x08"),  # float32 type
    (gzip.compress(header(0x0803, 12, 28, 28) + bytes(100)), "12x28x28 = 9408"),
    (gzip.compress(header(0x0803)), "header truncated"),
    (gzip.compress(idx_bytes(np.zeros((12, 28, 28), np.uint8)))[:-30], "corrupt gzip"),
    (gzip.compress(idx_bytes(np.zeros((11, 28, 28), np.uint8))), "11 images but"),
]


@pytest.mark.parametrize(("content", "message"), CORRUPTIONS)
def test_corrupt_idx_raises_clear_error(tmp_path: Path, content: bytes, message: str) -> None:
    write_mnist(tmp_path / "mnist", fake_mnist())
    bad = tmp_path / "mnist" / "train-images-idx3-ubyte.gz"
    bad.write_bytes(content)
    with pytest.raises(DataFormatError, match=message) as info:
        load_dataset("mnist", tmp_path, "cpu", download=False)
    assert "train-images-idx3-ubyte" in str(info.value)


def test_labels_out_of_range(tmp_path: Path) -> None:
    arrays = fake_mnist()
    arrays["test"][1][0] = 10
    write_mnist(tmp_path / "mnist", arrays)
    with pytest.raises(DataFormatError, match=r"labels outside 0\.\.9"):
        load_dataset("mnist", tmp_path, "cpu", download=False)


# -------------------------------------------------------------------------------- CIFAR-10 pickles


FULL = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
SUBSET = {"train": ["data_batch_1_first4000"], "test": ["test_batch_first1000"]}


@pytest.mark.parametrize(
    ("folder", "names"),
    [
        ("cifar-10/cifar-10-batches-py", FULL),
        ("cifar-10-batches-py", FULL),  # torchvision layout
        ("cifar-10/cifar-10-batches-py", SUBSET),  # the shared subset's file names
    ],
)
def test_reads_cifar_batches(tmp_path: Path, folder: str, names: dict) -> None:
    written = write_cifar(tmp_path / folder, names)
    ds = load_dataset("cifar10", tmp_path, "cpu", download=False)
    assert ds.input_shape == (3, 32, 32) and ds.num_classes == 10
    assert ds.train_x.shape == (4 * len(names["train"]), 3, 32, 32)
    rows = written["train"][0]
    # row layout: 1024 red, then 1024 green, then 1024 blue values, each 32x32 row-major
    red_pixel_0_1 = (rows[0, 1] / 255.0 - 0.4914) / 0.2470
    blue_pixel_31_31 = (rows[0, 3071] / 255.0 - 0.4465) / 0.2616
    assert ds.train_x[0, 0, 0, 1].item() == pytest.approx(red_pixel_0_1, abs=1e-5)
    assert ds.train_x[0, 2, 31, 31].item() == pytest.approx(blue_pixel_31_31, abs=1e-5)
    mean, std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
    torch.testing.assert_close(
        ds.test_x, expected_images(written["test"][0].reshape(-1, 3, 32, 32), mean, std)
    )
    assert ds.train_y.tolist() == written["train"][1].tolist()


def test_cifar_prefers_full_batches(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10" / "cifar-10-batches-py"
    write_cifar(folder, SUBSET, n=2)
    write_cifar(folder, FULL, n=3)
    assert load_dataset("cifar10", tmp_path, "cpu", download=False).train_x.shape[0] == 15


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"not a pickle at all", "not a CIFAR-10 pickle"),
        (pickle.dumps([1, 2, 3], protocol=2), "not a dict"),
        (pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}), "3072"),
        (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}), "1 labels"),
        (pickle.dumps({b"data": os.getcwd, b"labels": []}), "not allowed"),  # no code runs
    ],
)
def test_corrupt_cifar_raises(tmp_path: Path, payload: bytes, message: str) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar(folder, SUBSET)
    (folder / "test_batch_first1000").write_bytes(payload)
    with pytest.raises(DataFormatError, match=message):
        load_dataset("cifar10", tmp_path, "cpu", download=False)


# ------------------------------------------------------------------------------------ missing data


def test_missing_files_one_line_error_without_download(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(data, "_download", lambda *a: pytest.fail("download attempted"))
    with pytest.raises(DataNotFoundError) as info:
        load_dataset("mnist", tmp_path / "nowhere", "cpu", download=False)
    message = str(info.value)
    assert "\n" not in message
    assert str(tmp_path / "nowhere" / "mnist") in message and "MNIST/raw" in message
    assert "https://" in message and "--data-dir" in message and "OPTSWEEP_DATA" in message


@pytest.mark.parametrize("failure", ["missing", "broken"])
def test_unusable_torchvision_fails_fast(tmp_path: Path, monkeypatch, failure: str) -> None:
    """download=True with torchvision absent, or raising RuntimeError on import (a torch/
    torchvision mismatch), gives DataNotFoundError, not a crash."""
    if failure == "missing":
        monkeypatch.setitem(sys.modules, "torchvision", None)
    else:
        broken = types.ModuleType("torchvision")

        def getattr_(name: str):
            raise RuntimeError("operator torchvision::nms does not exist")

        broken.__getattr__ = getattr_
        monkeypatch.setitem(sys.modules, "torchvision", broken)
    with pytest.raises(DataNotFoundError, match="torchvision unavailable") as info:
        load_dataset("cifar10", tmp_path, "cpu", download=True)
    assert "\n" not in str(info.value) and "cifar-10-batches-py" in str(info.value)


def test_failed_download_leaves_no_empty_folders(tmp_path: Path, monkeypatch) -> None:
    calls = []

    class OfflineMNIST:  # what torchvision.datasets.MNIST does without network
        def __init__(self, root: str, train: bool, download: bool) -> None:
            calls.append((root, train, download))
            (Path(root) / "MNIST" / "raw").mkdir(parents=True)
            raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nTried mirrors")

    fake = types.ModuleType("torchvision")
    fake.datasets = types.SimpleNamespace(MNIST=OfflineMNIST)
    monkeypatch.setitem(sys.modules, "torchvision", fake)
    with pytest.raises(
        DataNotFoundError, match=r"download failed \(RuntimeError: Error downloading"
    ):
        load_dataset("mnist", tmp_path / "data", "cpu", download=True)
    assert calls == [(str(tmp_path / "data"), True, True)]
    assert not (tmp_path / "data").exists()


def test_download_reads_what_it_wrote(tmp_path: Path, monkeypatch) -> None:
    arrays = fake_mnist()

    def fake_download(spec, data_dir: Path) -> None:  # what torchvision.datasets.MNIST leaves
        write_mnist(data_dir / "MNIST" / "raw", arrays, compress=False)

    monkeypatch.setattr(data, "_download", fake_download)
    ds = load_dataset("mnist", tmp_path, "cpu")
    assert ds.train_y.tolist() == arrays["train"][1].tolist()


def test_unknown_dataset_and_default_dir(monkeypatch) -> None:
    with pytest.raises(ValueError, match="valid: mnist, fashion-mnist, cifar10, mnist-mini"):
        load_dataset("imagenet", None, "cpu")
    monkeypatch.setenv("OPTSWEEP_DATA", "/some/where")
    assert default_data_dir() == Path("/some/where")
    monkeypatch.delenv("OPTSWEEP_DATA")
    assert default_data_dir() == Path("data")


# --------------------------------------------------------------------------- bundled and real data


def test_mnist_mini_is_bundled_and_small() -> None:
    files = sorted(data.MNIST_MINI_DIR.glob("*.gz"))
    assert len(files) == 4 and sum(f.stat().st_size for f in files) < 1_000_000
    ds = load_dataset("mnist-mini", None, "cpu", download=False)
    assert ds.train_x.shape == (5000, 1, 28, 28) and ds.test_x.shape == (1000, 1, 28, 28)
    assert ds.input_shape == (1, 28, 28) and ds.num_classes == 10
    assert set(ds.train_y.tolist()) == set(range(10)) and set(ds.test_y.tolist()) == set(range(10))
    assert ds.train_y[:5].tolist() == [5, 0, 4, 1, 9] and ds.test_y[:5].tolist() == [7, 2, 1, 0, 4]
    assert abs(ds.train_x.mean().item()) < 0.05 and abs(ds.train_x.std().item() - 1) < 0.05


needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"no shared datasets at {SHARED}")


@needs_shared
def test_real_mnist_and_mini_is_its_prefix() -> None:
    ds = load_dataset("mnist", SHARED, "cpu", download=False)
    assert ds.train_x.shape == (60000, 1, 28, 28) and ds.test_x.shape == (10000, 1, 28, 28)
    assert ds.train_y[:5].tolist() == [5, 0, 4, 1, 9] and ds.test_y[:5].tolist() == [7, 2, 1, 0, 4]
    mini = load_dataset("mnist-mini", None, "cpu")
    assert torch.equal(mini.train_x, ds.train_x[:5000])
    assert torch.equal(mini.test_y, ds.test_y[:1000])


@needs_shared
def test_real_cifar_subset() -> None:
    ds = load_dataset("cifar10", SHARED, "cpu", download=False)
    assert ds.train_x.shape == (4000, 3, 32, 32) and ds.test_x.shape == (1000, 3, 32, 32)
    assert ds.train_y[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]
    assert ds.test_y[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]


# ------------------------------------------------------------------------------- normalisation


@pytest.mark.parametrize(
    ("name", "normalize", "mean", "std"),
    [
        ("mnist", "standard", (0.1307,), (0.3081,)),
        ("mnist", "unit", (0.0,), (1.0,)),
        ("cifar10", "standard", (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
        ("cifar10", "unit", (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
    ],
)
def test_normalize_is_exact_on_written_files(tmp_path: Path, name, normalize, mean, std) -> None:
    """``unit`` is x / 255 and nothing else; ``standard`` subtracts and divides per channel."""
    if name == "mnist":
        arrays = fake_mnist()
        write_mnist(tmp_path / "mnist", arrays)
        images = arrays["train"][0][:, None]
    else:
        rows = write_cifar(tmp_path / "cifar-10-batches-py", FULL)["train"][0]
        images = rows.reshape(-1, 3, 32, 32)
    ds = load_dataset(name, tmp_path, "cpu", download=False, normalize=normalize)
    torch.testing.assert_close(ds.train_x, expected_images(images, mean, std))


# What each normalisation gives on a whole training set: unit keeps the pixels' own mean and
# std per channel (the published constants, on [0, 1]); standard centres and scales them.
REAL = [
    ("mnist-mini", (0.1307,), (0.3081,)),
    ("mnist", (0.1307,), (0.3081,)),
    ("fashion-mnist", (0.2860,), (0.3530,)),
    ("cifar10", (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),  # the shared subset
]


@pytest.mark.parametrize(("name", "mean", "std"), REAL, ids=[r[0] for r in REAL])
def test_normalize_on_real_training_sets(name: str, mean, std) -> None:
    if name != "mnist-mini" and not SHARED.is_dir():
        pytest.skip(f"no shared datasets at {SHARED}")
    where = None if name == "mnist-mini" else SHARED
    unit = load_dataset(name, where, "cpu", download=False, normalize="unit").train_x
    standard = load_dataset(name, where, "cpu", download=False, normalize="standard").train_x
    assert unit.min().item() == 0.0 and unit.max().item() == 1.0
    channels = (0, 2, 3)
    torch.testing.assert_close(unit.mean(channels), torch.tensor(mean), rtol=0, atol=0.003)
    torch.testing.assert_close(unit.std(channels), torch.tensor(std), rtol=0, atol=0.003)
    torch.testing.assert_close(standard.mean(channels), torch.zeros(len(mean)), rtol=0, atol=0.01)
    torch.testing.assert_close(standard.std(channels), torch.ones(len(mean)), rtol=0, atol=0.01)
    shape = (1, len(mean), 1, 1)
    scaled = (unit - torch.tensor(mean).view(shape)) / torch.tensor(std).view(shape)
    torch.testing.assert_close(standard, scaled)


def test_unknown_normalize_names_the_choices() -> None:
    with pytest.raises(ValueError, match="unknown normalize 'z-score'; valid: standard, unit"):
        load_dataset("mnist-mini", None, "cpu", normalize="z-score")


@pytest.mark.parametrize(
    ("padding", "flip"), [(0, True), (1, False), (4, False), (4, True), (2, True)]
)
def test_augment_crops_padded_images_and_mirrors_them_as_torchvision_does(padding, flip):
    from optsweep.data import augment

    x = torch.randn(6, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    fill = torch.tensor([-1.0, -2.0, -3.0])
    got = augment(x, torch.Generator().manual_seed(7), padding=padding, flip=flip, fill=fill)
    # the same draws, image by image: offsets (dy then dx for the batch), then the coins
    gen = torch.Generator().manual_seed(7)
    offsets = torch.randint(0, 2 * padding + 1, (2, 6), generator=gen) if padding else None
    coins = torch.rand(6, generator=gen) < 0.5 if flip else torch.zeros(6, dtype=torch.bool)
    for i in range(6):
        image = torch.nn.functional.pad(x[i], (padding,) * 4)
        for c in range(3):  # pad with each channel's fill, not 0
            image[c, :padding, :] = fill[c]
            image[c, image.shape[1] - padding :, :] = fill[c]
            image[c, :, :padding] = fill[c]
            image[c, :, image.shape[2] - padding :] = fill[c]
        if padding:
            dy, dx = int(offsets[0, i]), int(offsets[1, i])
            image = image[:, dy : dy + 8, dx : dx + 8]
        if coins[i]:
            image = image.flip(-1)
        assert torch.equal(got[i], image), i
    if padding or flip:
        assert not torch.equal(got, x)  # it did something


# ------------------------------------------------------- torchvision's other small sets, offline

EMNIST_NAMES = {
    split: tuple(
        f"emnist-balanced-{split}-{kind}" for kind in ("images-idx3-ubyte", "labels-idx1-ubyte")
    )
    for split in ("train", "test")
}


def write_cifar100(folder: Path, n: int = 6, first_label: int | None = None) -> dict:
    """CIFAR-100's ``train`` and ``test`` pickles (bytes keys, fine and coarse labels)."""
    rng = np.random.default_rng(3)
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for split in ("train", "test"):
        rows = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        fine = [int(v) for v in rng.integers(0, 100, n)]
        if first_label is not None:
            fine[0] = first_label
        batch = {b"data": rows, b"fine_labels": fine, b"coarse_labels": [f // 5 for f in fine]}
        (folder / split).write_bytes(pickle.dumps(batch, protocol=2))
        written[split] = (rows.reshape(-1, 3, 32, 32), fine)
    return written


def write_svhn(folder: Path, n: int = 5, x: np.ndarray | None = None) -> dict:
    """SVHN's ``{train,test}_32x32.mat``: X (32, 32, 3, N) uint8, y (N, 1) with 10 for 0."""
    from scipy.io import savemat

    rng = np.random.default_rng(4)
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for split in ("train", "test"):
        images = x if x is not None else rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
        digits = np.array([0, 1, 9, 0, 5][: images.shape[-1]], dtype=np.uint8)
        savemat(
            folder / f"{split}_32x32.mat",
            {"X": images, "y": np.where(digits == 0, 10, digits)[:, None]},
        )
        written[split] = (images.transpose(3, 2, 0, 1), digits)
    return written


def _write_svhn_text(folder: Path) -> None:
    (folder / "svhn").mkdir()
    for split in ("train", "test"):
        (folder / "svhn" / f"{split}_32x32.mat").write_bytes(b"not a MATLAB file")


def assert_standardised(x: torch.Tensor) -> None:
    """Normalised with the training split's own mean and std: 0 and 1 per channel."""
    per_channel = x.transpose(0, 1).reshape(x.shape[1], -1).double()
    torch.testing.assert_close(
        per_channel.mean(1), torch.zeros(x.shape[1], dtype=torch.float64), atol=1e-5, rtol=0
    )
    torch.testing.assert_close(
        per_channel.std(1, correction=0),
        torch.ones(x.shape[1], dtype=torch.float64),
        atol=1e-5,
        rtol=0,
    )


def test_kmnist_reads_its_idx_files(tmp_path: Path) -> None:
    arrays = fake_mnist(seed=5)
    write_mnist(tmp_path / "KMNIST" / "raw", arrays)  # torchvision's layout
    ds = load_dataset("kmnist", tmp_path, "cpu")
    assert ds.num_classes == 10 and ds.input_shape == (1, 28, 28)
    assert ds.train_y.tolist() == arrays["train"][1].tolist()
    assert_standardised(ds.train_x)


def test_emnist_balanced_is_turned_upright(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    arrays = {
        split: (
            rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
            rng.integers(0, 47, n).astype(np.uint8),
        )
        for split, n in (("train", 9), ("test", 4))
    }
    for split, (images_name, labels_name) in EMNIST_NAMES.items():
        write_idx(tmp_path / "emnist" / images_name, arrays[split][0], compress=True)
        write_idx(tmp_path / "emnist" / labels_name, arrays[split][1], compress=True)
    ds = load_dataset("emnist-balanced", tmp_path, "cpu", normalize="unit")
    assert ds.num_classes == 47
    stored = torch.from_numpy(arrays["test"][0].transpose(0, 2, 1).astype(np.float32) / 255)
    torch.testing.assert_close(ds.test_x[:, 0], stored)  # EMNIST stores images transposed
    assert ds.train_y.tolist() == arrays["train"][1].tolist()


def test_cifar100_reads_its_fine_labels(tmp_path: Path) -> None:
    written = write_cifar100(tmp_path / "cifar-100-python")
    ds = load_dataset("cifar100", tmp_path, "cpu", normalize="unit")
    assert ds.num_classes == 100 and ds.input_shape == (3, 32, 32)
    assert ds.test_y.tolist() == written["test"][1]
    torch.testing.assert_close(
        ds.train_x, torch.from_numpy(written["train"][0].astype(np.float32) / 255)
    )


def test_svhn_reads_its_mat_files_and_ten_is_zero(tmp_path: Path) -> None:
    written = write_svhn(tmp_path / "svhn")
    ds = load_dataset("svhn", tmp_path, "cpu")
    assert ds.train_y.tolist() == [0, 1, 9, 0, 5]
    expected = torch.from_numpy(written["train"][0].astype(np.float64) / 255)
    mean = expected.transpose(0, 1).reshape(3, -1).mean(1)
    std = expected.transpose(0, 1).reshape(3, -1).std(1, correction=0)
    want = ((expected - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)).float()
    torch.testing.assert_close(ds.train_x, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("write", "name", "message"),
    [
        (
            lambda d: write_cifar100(d / "cifar-100-python", first_label=100),
            "cifar100",
            r"labels outside 0\.\.99",
        ),
        (
            lambda d: write_svhn(d / "svhn", x=np.zeros((28, 28, 3, 2), np.uint8)),
            "svhn",
            r"SVHN 'X' is uint8 \(28, 28, 3, 2\), expected uint8 \(32, 32, 3, N\)",
        ),
        (_write_svhn_text, "svhn", "not a MATLAB file"),
    ],
    ids=["cifar100-label-out-of-range", "svhn-wrong-shape", "svhn-not-mat"],
)
def test_bad_arrays_are_one_line(tmp_path: Path, write, name: str, message: str) -> None:
    write(tmp_path)
    with pytest.raises(DataFormatError, match=message) as info:
        load_dataset(name, tmp_path, "cpu", download=False)
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------------- a user's own .npz arrays


def npz_arrays(seed: int = 0, layout: str = "nhw", dtype: str = "uint8") -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    shapes = {"nhw": (28, 28), "nhwc": (16, 16, 3), "nchw": (3, 16, 16)}[layout]
    arrays = {}
    for split, n in (("train", 12), ("test", 5)):
        x = rng.integers(0, 256, (n, *shapes), dtype=np.uint8)
        arrays[f"x_{split}"] = x if dtype == "uint8" else (x / 255).astype(dtype)
        arrays[f"y_{split}"] = rng.integers(0, 4, n).astype(np.int64)
    return arrays


@pytest.mark.parametrize(
    ("layout", "dtype", "shape"),
    [
        ("nhw", "uint8", (1, 28, 28)),
        ("nhwc", "float32", (3, 16, 16)),
        ("nchw", "uint8", (3, 16, 16)),
    ],
)
def test_npz_of_keras_layouts(tmp_path: Path, layout: str, dtype: str, shape) -> None:
    arrays = npz_arrays(layout=layout, dtype=dtype)
    np.savez(tmp_path / "mine.npz", **arrays)
    ds = data.load_npz(tmp_path / "mine.npz", "cpu", normalize="unit")
    assert ds.input_shape == shape and ds.num_classes == 4
    x = arrays["x_test"].astype(np.float64) / (255 if dtype == "uint8" else 1)
    if layout == "nhw":
        x = x[:, None]
    elif layout == "nhwc":
        x = x.transpose(0, 3, 1, 2)
    torch.testing.assert_close(ds.test_x, torch.from_numpy(x).float(), atol=1e-6, rtol=0)
    assert ds.train_y.tolist() == arrays["y_train"].tolist()
    standard = data.load_npz(tmp_path / "mine.npz", "cpu")
    assert_standardised(standard.train_x)


def _bad(change):
    def write(path: Path) -> None:
        arrays = npz_arrays()
        change(arrays)
        np.savez(path, **arrays)

    return write


@pytest.mark.parametrize(
    ("write", "message"),
    [
        (_bad(lambda a: a.pop("y_test")), r"lacks y_test; a \.npz holds x_train, y_train"),
        (_bad(lambda a: a.update(y_train=a["y_train"][:-1])), "12 images but y_train has 11"),
        (_bad(lambda a: a.update(y_test=-a["y_test"] - 1)), "y_test holds a negative label"),
        (_bad(lambda a: a.update(x_train=a["x_train"][:, :, :, None, None])), r"x_train has shape"),
        (
            _bad(lambda a: a.update(x_test=np.full((5, 28, 28), np.nan, np.float32))),
            "x_test holds NaN or infinite pixels",
        ),
        (_bad(lambda a: a.update(x_test=a["x_test"] * 2.0)), "x_test floats run from 0 to"),
        (_bad(lambda a: a.update(y_train=a["y_train"] / 2)), r"y_train is float64 \(12,\)"),
        (_bad(lambda a: a.update(x_test=a["x_test"][:, :20])), r"x_train images are .* but x_test"),
        (lambda p: p.write_bytes(b"not a zip"), r"not a readable \.npz"),
    ],
    ids=[
        "missing-array",
        "fewer-labels",
        "negative-label",
        "wrong-shape",
        "nan",
        "float-range",
        "float-labels",
        "test-shape",
        "not-zip",
    ],
)
def test_bad_npz_is_one_line(tmp_path: Path, write, message: str) -> None:
    path = tmp_path / "mine.npz"
    write(path)
    with pytest.raises(DataFormatError, match=message) as info:
        data.load_npz(path, "cpu")
    assert "\n" not in str(info.value) and str(path) in str(info.value)
