"""Build the smoke-run data shipped in the package: a few hundred real images per dataset.

``optsweep run CONFIG --smoke`` reads ``optsweep/datasets/smoke/`` as its data folder unless
``--data-dir`` is given: the first 512 training and 128 test images of MNIST and
Fashion-MNIST (gzip IDX, reproducible bytes), and the first 400 training images of the shared
CIFAR-10 subset as five batches of 80 (``data_batch_1`` … ``data_batch_5``) plus its first 128
test images (``test_batch``), pickled as CIFAR-10 publishes them.

    python scripts/make_smoke_data.py --source ../shared/datasets
"""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path

import numpy as np
from make_mnist_mini import FILES, find, idx_bytes, write_gzip

from optsweep.data import SMOKE_DATA_DIR, read_cifar_batch, read_idx

DEFAULT_SOURCE = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
IDX_TRAIN, IDX_TEST = 512, 128
CIFAR_BATCH, CIFAR_BATCHES, CIFAR_TEST = 80, 5, 128


def idx_subset(source: Path, out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    total = 0
    for split, names in FILES.items():
        n = IDX_TRAIN if split == "train" else IDX_TEST
        for name, ndim in zip(names, (3, 1), strict=True):
            array = read_idx(find(source, name), ndim=ndim)[:n]
            total += write_gzip(out / f"{name}.gz", idx_bytes(array))
    return total


def cifar_batch(path: Path, images: np.ndarray, labels: np.ndarray) -> int:
    batch = {b"data": images.reshape(len(images), -1), b"labels": [int(v) for v in labels]}
    path.write_bytes(pickle.dumps(batch, protocol=2))
    return path.stat().st_size


def cifar_subset(source: Path, out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    folder = source / "cifar-10" / "cifar-10-batches-py"
    train = next(
        p for p in (folder / "data_batch_1", folder / "data_batch_1_first4000") if p.is_file()
    )
    test = next(p for p in (folder / "test_batch", folder / "test_batch_first1000") if p.is_file())
    images, labels = read_cifar_batch(train)
    total = 0
    for i in range(CIFAR_BATCHES):
        rows = slice(i * CIFAR_BATCH, (i + 1) * CIFAR_BATCH)
        total += cifar_batch(out / f"data_batch_{i + 1}", images[rows], labels[rows])
    images, labels = read_cifar_batch(test)
    return total + cifar_batch(out / "test_batch", images[:CIFAR_TEST], labels[:CIFAR_TEST])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="the datasets folder")
    parser.add_argument("--out", type=Path, default=SMOKE_DATA_DIR, help="where to write")
    args = parser.parse_args()
    sizes = {
        "mnist": idx_subset(args.source / "mnist", args.out / "mnist"),
        "fashion-mnist": idx_subset(args.source / "fashion-mnist", args.out / "fashion-mnist"),
        "cifar10": cifar_subset(args.source, args.out / "cifar-10" / "cifar-10-batches-py"),
    }
    for name, size in sizes.items():
        print(f"{name}: {size:,} bytes")
    print(f"total {sum(sizes.values()):,} bytes in {args.out}")


if __name__ == "__main__":
    main()
