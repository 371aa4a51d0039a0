"""Regenerate plugins/datasets/data/fashion_mnist_sample.npz, the embedded Fashion-MNIST sample.

It takes the first 1,000 training images of each of the 10 classes (10,000 images, in file order) from the
original IDX files and stores images (uint8 N x 28 x 28), labels (uint8 N) and indices (uint16 N, positions in
the training set) as a compressed .npz. The zip entries get a fixed timestamp so the file is byte-for-byte
reproducible.

    python tools/make_fashion_mnist_sample.py [--source /usr/share/datasets/fashion-mnist] [--out PATH]

Fashion-MNIST: Copyright (c) 2017 Zalando SE, MIT license (Xiao, Rasul & Vollgraf 2017).
"""

from __future__ import annotations

import argparse
import io
import zipfile
from pathlib import Path

import numpy as np

from workbench_plugins.datasets.embedded import PER_CLASS, SAMPLE_PATH, select_balanced
from workbench_plugins.datasets.idx import read_idx_images, read_idx_labels
from workbench_plugins.datasets.standard import idx_file


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """np.savez_compressed, but with fixed zip timestamps (np.savez stamps the current time)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, buffer.getvalue(), compresslevel=9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=Path("/usr/share/datasets/fashion-mnist"),
                        help="folder with train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz]")
    parser.add_argument("--out", type=Path, default=SAMPLE_PATH)
    args = parser.parse_args()
    images_path, labels_path = idx_file(args.source, "train", "images"), idx_file(args.source, "train", "labels")
    if images_path is None or labels_path is None:
        raise SystemExit(f"no Fashion-MNIST training files in {args.source}")
    images, labels = read_idx_images(images_path), read_idx_labels(labels_path)
    indices = select_balanced(labels, PER_CLASS)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_npz(args.out, {"images": images[indices], "labels": labels[indices], "indices": indices.astype(np.uint16)})
    print(f"wrote {args.out}: {len(indices)} images, {args.out.stat().st_size} bytes")


if __name__ == "__main__":
    main()
