"""What a dataset plugin returns: `ImageSource`, either in memory or streaming from disk.

A dataset factory (`register_datasets`) returns one of the two concrete kinds below. The host
(`workbench.data.build_dataset`) checks it, applies `limit`, the rank's shard and padding, and turns it into
batches. Images are always uint8 0..255 in (C, H, W) order with C = 1 (grayscale) or 3 (RGB).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass(frozen=True)
class ImageSource:
    """Common fields of every source.

    description: one human line that says which data this is and where it came from, e.g.
        "Fashion-MNIST train, 60000 images from /usr/share/datasets/fashion-mnist".
    flip_default: whether random horizontal flips suit this data; used when the config says flip = "auto".
    class_names: names of the label values 0..K-1, when the dataset has labels and knows their names.
    """

    description: str
    flip_default: bool = False
    class_names: tuple[str, ...] = field(default=(), kw_only=True)

    @property
    def num_images(self) -> int:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def has_labels(self) -> bool:  # pragma: no cover - overridden
        raise NotImplementedError


@dataclass(frozen=True)
class InMemoryImages(ImageSource):
    """All images at once: `images` uint8 (N, C, H, W) on the CPU, `labels` int64 (N,) or None.

    Suits everything up to a few GB (MNIST, Fashion-MNIST, CIFAR-10, small folders and arrays); the host
    moves the tensor to the training device once and batches there.
    """

    images: torch.Tensor = field(kw_only=True)
    labels: torch.Tensor | None = field(default=None, kw_only=True)

    @property
    def num_images(self) -> int:
        return int(self.images.shape[0])

    @property
    def has_labels(self) -> bool:
        return self.labels is not None


@dataclass(frozen=True)
class StreamingImages(ImageSource):
    """Images read on demand: `dataset[i]` returns a uint8 (channels, height, width) tensor, or a pair
    (tensor, int label) when `has_labels`. Every item has the same shape, known up front.

    For folders too large to hold in memory; the host reads them with a DataLoader (worker processes,
    pinned memory). `num_workers` None lets the host choose.
    """

    dataset: Any = field(kw_only=True)  # a torch.utils.data.Dataset (map-style: __len__ and __getitem__)
    channels: int = field(kw_only=True)
    height: int = field(kw_only=True)
    width: int = field(kw_only=True)
    labelled: bool = field(default=False, kw_only=True)
    num_workers: int | None = field(default=None, kw_only=True)

    @property
    def num_images(self) -> int:
        return len(self.dataset)

    @property
    def has_labels(self) -> bool:
        return self.labelled
