"""Reading CIFAR-10's python batches (Krizhevsky 2009): cifar-10-batches-py/data_batch_1..5, test_batch and
batches.meta, each a pickled dict with b"data" uint8 (N, 3072) (1024 red, 1024 green, 1024 blue values per
image, rows of 32) and b"labels" (N ints).

The files are unpickled with an unpickler that only allows numpy arrays, so a tampered file cannot run code.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from workbench.errors import DatasetError

TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCHES = ("test_batch",)
CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),  # how Python 3 writes bytes at protocol 2, the protocol of the original files
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def load_pickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            obj = _NumpyOnlyUnpickler(f, encoding="bytes").load()
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {exc.strerror or exc}") from None
    except Exception as exc:  # noqa: BLE001 - unpickling corrupt bytes raises many kinds of errors
        raise DatasetError(f"{path} is not a readable CIFAR-10 pickle ({type(exc).__name__}: "
                           f"{str(exc).splitlines()[0] if str(exc) else 'corrupted'}); download it again") from None
    if not isinstance(obj, dict):
        raise DatasetError(f"{path} holds a {type(obj).__name__}, not a CIFAR-10 batch dict; download it again")
    return obj


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 3, 32, 32), labels int64 (N,)) from one CIFAR-10 python batch file."""
    batch = load_pickle(path)
    data, labels = batch.get(b"data", batch.get("data")), batch.get(b"labels", batch.get("labels"))
    if data is None or labels is None:
        raise DatasetError(f"{path} is not a CIFAR-10 batch: it has no b'data' and b'labels' entries; download it again")
    data = np.asarray(data)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DatasetError(f"{path}: b'data' is {data.dtype} {data.shape}, not uint8 (N, 3072); download it again")
    labels = np.asarray(labels, dtype=np.int64)
    if labels.shape != (data.shape[0],):
        raise DatasetError(f"{path}: {labels.shape[0]} labels for {data.shape[0]} images; download it again")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DatasetError(f"{path}: labels outside 0..9; download it again")
    return data.reshape(-1, 3, 32, 32), labels


def read_class_names(folder: Path) -> tuple[str, ...]:
    """batches.meta's label_names when readable, else CIFAR-10's ten names."""
    meta = folder / "batches.meta"
    if meta.is_file():
        names = load_pickle(meta).get(b"label_names")
        if isinstance(names, list) and len(names) == 10:
            return tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)
    return CLASS_NAMES


def write_cifar_batch(path: Path, images: np.ndarray, labels, name: bytes = b"batch") -> None:
    """Write a CIFAR-10 python batch exactly as the dataset ships it (tests and tools use this)."""
    data = np.ascontiguousarray(images, dtype=np.uint8).reshape(len(images), -1)
    with open(path, "wb") as f:
        pickle.dump({b"batch_label": name, b"labels": [int(x) for x in labels], b"data": data,
                     b"filenames": [b"x.png"] * len(data)}, f, protocol=2)
