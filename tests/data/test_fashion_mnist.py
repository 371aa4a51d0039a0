"""Fashion-MNIST itself: the real files when installed, and the embedded sample every install ships."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from workbench_plugins.datasets.embedded import SAMPLE_PATH
from workbench_plugins.datasets.idx import read_idx_images, read_idx_labels

from .helpers import load

SYSTEM_COPY = Path("/usr/share/datasets/fashion-mnist")
needs_system_copy = pytest.mark.skipif(not (SYSTEM_COPY / "train-images-idx3-ubyte.gz").is_file(),
                                       reason="Debian's dataset-fashion-mnist is not installed")


@needs_system_copy
def test_real_fashion_mnist_from_the_debian_package():
    batches = load("dataset.name=fashion-mnist", f"dataset.root={SYSTEM_COPY}")
    assert batches.num_images == 60000
    assert (batches.channels, batches.image_size) == (1, 28)  # native: the default pads nothing
    assert batches.description == f"Fashion-MNIST train, 60000 images from {SYSTEM_COPY}"
    counts = torch.bincount(batches.labels.cpu())
    assert counts.tolist() == [6000] * 10
    assert batches.class_names[9] == "Ankle boot"


def test_embedded_sample_is_10000_real_28x28_images():
    batches = load("dataset.name=fashion-mnist", "dataset.split=sample", "dataset.pad_to=0")
    assert batches.description == "embedded Fashion-MNIST sample (10000 images)"
    assert (batches.num_images, batches.channels, batches.image_size) == (10000, 1, 28)
    assert torch.bincount(batches.labels.cpu()).tolist() == [1000] * 10  # first 1000 of each class
    images = batches.real_images(10000).float()
    # Garments on a black background: dark borders, bright centres, nothing like noise.
    assert images[:, :, :, 0].mean() < 10 and images[:, :, 10:18, 10:18].mean() > 100
    assert SAMPLE_PATH.stat().st_size < 6 * 2**20


@needs_system_copy
def test_embedded_sample_is_exactly_the_documented_selection():
    with np.load(SAMPLE_PATH) as data:
        images, labels, indices = data["images"], data["labels"], data["indices"].astype(np.int64)
    train_labels = read_idx_labels(SYSTEM_COPY / "train-labels-idx1-ubyte.gz")
    expected = np.sort(np.concatenate([np.flatnonzero(train_labels == c)[:1000] for c in range(10)]))
    assert np.array_equal(indices, expected)
    assert np.array_equal(labels, train_labels[indices])
    assert np.array_equal(images, read_idx_images(SYSTEM_COPY / "train-images-idx3-ubyte.gz")[indices])
