"""The embedded Fashion-MNIST sample: real training images shipped inside the package, so that
`ddpm-workbench` trains on real data on a fresh machine without network access.

data/fashion_mnist_sample.npz holds the first 1,000 images of each of the 10 classes of Fashion-MNIST's
training set (in file order; 10,000 images), with their labels and their indices in the training set.
tools/make_fashion_mnist_sample.py regenerates it from the original files. Fashion-MNIST is
Copyright (c) 2017 Zalando SE, MIT license (Xiao, Rasul & Vollgraf 2017, arXiv:1708.07747).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from workbench.data import InMemoryImages
from workbench.errors import DatasetError

SAMPLE_PATH = Path(__file__).with_name("data") / "fashion_mnist_sample.npz"
PER_CLASS = 1000


def select_balanced(labels: np.ndarray, per_class: int = PER_CLASS) -> np.ndarray:
    """Indices of the first `per_class` images of each class, in file order."""
    chosen = [np.flatnonzero(labels == c)[:per_class] for c in np.unique(labels)]
    return np.sort(np.concatenate(chosen))


def load_sample(class_names: tuple[str, ...], note: str = "", path: Path = SAMPLE_PATH) -> InMemoryImages:
    """The embedded sample as an InMemoryImages source."""
    try:
        with np.load(path) as data:
            images, labels = data["images"], data["labels"]
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DatasetError(f"the embedded Fashion-MNIST sample {path} is missing or damaged ({exc}); "
                           "reinstall ddpm-workbench or set dataset.root to the full dataset") from None
    if images.dtype != np.uint8 or images.ndim != 3 or labels.shape != (images.shape[0],):
        raise DatasetError(f"the embedded Fashion-MNIST sample {path} has unexpected contents; reinstall ddpm-workbench")
    description = f"embedded Fashion-MNIST sample ({len(images)} images)"
    if note:
        description = f"{description[:-1]}; {note})"
    return InMemoryImages(description, False, images=torch.from_numpy(images).unsqueeze(1),
                          labels=torch.from_numpy(labels.astype(np.int64)), class_names=class_names)
