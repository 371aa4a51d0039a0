"""Helpers for the dataset tests: build a Config the way a user does, and files in the real formats."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from workbench.config import load_config
from workbench.data import build_dataset
from workbench_plugins.datasets.cifar import write_cifar_batch
from workbench_plugins.datasets.idx import write_idx


def load(*overrides: str, **kw):
    """build_dataset on a config resolved from --set style overrides, the way the engine calls it."""
    cfg = load_config(None, list(overrides), search_cwd=False)
    return build_dataset(cfg.dataset, **kw)


def pattern_images(n: int, height: int = 28, width: int = 28, seed: int = 0) -> np.ndarray:
    """uint8 (n, height, width) images that are all different and not left-right symmetric."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, height, width), dtype=np.uint8)


def write_mnist(folder: Path, n_train: int = 20, n_test: int = 8, gz: bool = True, seed: int = 0,
                dotted: bool = False) -> dict[str, np.ndarray]:
    """IDX files exactly as MNIST and Fashion-MNIST ship them (magic 2051/2049, big-endian dims)."""
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    sep = "." if dotted else "-"
    arrays = {}
    for prefix, n, offset in (("train", n_train, 0), ("t10k", n_test, 1)):
        images = pattern_images(n, seed=seed + offset)
        labels = (np.arange(n) % 10).astype(np.uint8)
        write_idx(folder / f"{prefix}-images{sep}idx3-ubyte{suffix}", images)
        write_idx(folder / f"{prefix}-labels{sep}idx1-ubyte{suffix}", labels)
        arrays[prefix] = images
        arrays[prefix + "_labels"] = labels
    return arrays


def write_cifar(parent: Path, n_per_batch: int = 4, seed: int = 0) -> dict[str, np.ndarray]:
    """cifar-10-batches-py/ with data_batch_1..5, test_batch and batches.meta, as CIFAR-10 ships them."""
    import pickle

    folder = parent / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    train, train_labels = [], []
    for i in range(1, 6):
        images = rng.integers(0, 256, size=(n_per_batch, 3, 32, 32), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n_per_batch)
        write_cifar_batch(folder / f"data_batch_{i}", images, labels, name=f"training batch {i} of 5".encode())
        train.append(images)
        train_labels.append(labels)
    test = rng.integers(0, 256, size=(n_per_batch, 3, 32, 32), dtype=np.uint8)
    test_labels = rng.integers(0, 10, size=n_per_batch)
    write_cifar_batch(folder / "test_batch", test, test_labels, name=b"testing batch 1 of 1")
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": names, b"num_cases_per_batch": n_per_batch, b"num_vis": 3072}, f, protocol=2)
    return {"train": np.concatenate(train), "train_labels": np.concatenate(train_labels), "test": test,
            "test_labels": test_labels, "folder": folder}
