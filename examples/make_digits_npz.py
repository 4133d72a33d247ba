"""Write examples/digits.npz: the MNIST subset optsweep ships, as a user's own arrays would
be (Keras's layout: x_train, y_train, x_test, y_test; uint8 images (N, 28, 28)).

    python examples/make_digits_npz.py && optsweep run examples/own-data.yaml
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from optsweep.data import load_dataset


def main() -> None:
    data = load_dataset("mnist-mini", None, "cpu", normalize="unit")
    arrays = {}
    for split, x, y in (("train", data.train_x, data.train_y), ("test", data.test_x, data.test_y)):
        arrays[f"x_{split}"] = (x[:, 0].numpy() * 255).round().astype(np.uint8)
        arrays[f"y_{split}"] = y.numpy().astype(np.uint8)
    path = Path(__file__).with_name("digits.npz")
    np.savez_compressed(path, **arrays)
    print(f"{path}: {len(arrays['x_train'])} training and {len(arrays['x_test'])} test images")


if __name__ == "__main__":
    main()
