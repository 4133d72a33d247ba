"""Build optsweep's bundled mnist-mini: the first N MNIST train and test images, gzip IDX.

Reads the published MNIST files (``train-images-idx3-ubyte.gz`` …) from ``--source``,
keeps the first ``--train`` training and first ``--test`` test images (in the original
order), and writes the same four file names, gzip level 9 with a zero timestamp so
rebuilding gives identical bytes. ``--check`` then trains the quickstart model (MLP
784-128-10, Adam lr 1e-3, batch 128) on the result and prints the test accuracy per epoch.

    python scripts/make_mnist_mini.py --source ../shared/datasets/mnist --check
"""

from __future__ import annotations

import argparse
import gzip
import io
import struct
from pathlib import Path

import numpy as np
import torch

from optsweep.data import MNIST_MINI_DIR, read_idx
from optsweep.models import build_model

FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
DEFAULT_SOURCE = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "mnist"


def idx_bytes(array: np.ndarray) -> bytes:
    """IDX encoding of a uint8 array: magic ``0x0000 08 <ndim>``, big-endian sizes, data."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_gzip(path: Path, payload: bytes) -> int:
    """Write ``payload`` gzip -9 with mtime 0 and no file name (reproducible); return size."""
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", compresslevel=9, fileobj=buffer, mtime=0) as f:
        f.write(payload)
    path.write_bytes(buffer.getvalue())
    return len(buffer.getvalue())


def find(folder: Path, base: str) -> Path:
    for candidate in (folder / f"{base}.gz", folder / base):
        if candidate.is_file():
            return candidate
    raise SystemExit(f"{base}[.gz] not found in {folder}")


def build(source: Path, out: Path, sizes: dict[str, int]) -> int:
    """Write the subset files into ``out``; print and return the total compressed size."""
    out.mkdir(parents=True, exist_ok=True)
    total = 0
    for split, (images_name, labels_name) in FILES.items():
        n = sizes[split]
        for name, ndim in ((images_name, 3), (labels_name, 1)):
            array = read_idx(find(source, name), ndim=ndim)[:n]
            if len(array) < n:
                raise SystemExit(f"{name}: only {len(array)} items, asked for {n}")
            size = write_gzip(out / f"{name}.gz", idx_bytes(array))
            total += size
            print(f"{out / name}.gz  {array.shape}  {size:,} bytes")
    print(f"total {total:,} bytes")
    return total


def load_split(out: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Images normalised as optsweep does for MNIST ``(N, 1, 28, 28)``, labels int64."""
    images_name, labels_name = FILES[split]
    images = torch.from_numpy(read_idx(out / f"{images_name}.gz", ndim=3).copy())
    labels = torch.from_numpy(read_idx(out / f"{labels_name}.gz", ndim=1).astype(np.int64))
    return (images[:, None].float() / 255 - 0.1307) / 0.3081, labels


def check(out: Path, epochs: int, seeds: list[int]) -> None:
    """Train MLP 784-128-10 with Adam(1e-3), batch 128 on the files; print test accuracy."""
    train_x, train_y = load_split(out, "train")
    test_x, test_y = load_split(out, "test")
    model = build_model("mlp", (1, 28, 28), 10, hidden=[128])
    for seed in seeds:
        params = [p.requires_grad_() for p in model.init_stacked([seed])]
        optimizer = torch.optim.Adam(params, lr=1e-3)
        order = torch.Generator().manual_seed(seed)
        accuracies = []
        for _ in range(epochs):
            for idx in torch.randperm(len(train_x), generator=order).split(128):
                loss = torch.nn.functional.cross_entropy(
                    model.forward(params, train_x[idx])[0], train_y[idx]
                )
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            with torch.no_grad():
                correct = (model.forward(params, test_x)[0].argmax(-1) == test_y).float().mean()
            accuracies.append(f"{100 * correct.item():.1f}")
        print(f"seed {seed}: test accuracy % by epoch: {' '.join(accuracies)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--source", type=Path, default=DEFAULT_SOURCE, help="folder with MNIST files"
    )
    parser.add_argument("--out", type=Path, default=MNIST_MINI_DIR, help="where to write")
    parser.add_argument("--train", type=int, default=5000, help="first N training images")
    parser.add_argument("--test", type=int, default=1000, help="first N test images")
    parser.add_argument("--check", action="store_true", help="train the quickstart MLP on it")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    build(args.source, args.out, {"train": args.train, "test": args.test})
    if args.check:
        check(args.out, args.epochs, args.seeds)


if __name__ == "__main__":
    main()
