"""`build_dataset`: a config's [dataset] section -> `ImageBatches` on the training device.

Steps: call the selected plugin's factory with its params (under workbench.components' error policy),
check what it returned, keep the first `limit` images, take this rank's shard (images[rank::world_size]),
pad to `pad_to`, check the images are square, resolve flip = "auto" to the dataset's own default, and put
in-memory data on the device.
"""

from __future__ import annotations

from typing import Any

import torch

from workbench.components import call_factory, chosen, label
from workbench.data.batches import EpochOrder, ImageBatches, InMemoryBatches, ShardView, StreamingBatches
from workbench.data.preprocess import pad_images, padded_size, square_size
from workbench.data.source import InMemoryImages, StreamingImages
from workbench.errors import DatasetError, PluginError


def build_dataset(dataset_section: Any, *, device: torch.device | str = "cpu", rank: int = 0, world_size: int = 1,
                  seed: int = 0) -> ImageBatches:
    """Build the batches that rank `rank` of `world_size` trains on.

    `dataset_section` is a resolved `cfg.dataset` (its component, name, pad_to, flip, limit and the plugin's
    params). Raises DatasetError (data missing or unreadable), ConfigError or PluginError (the factory failed,
    see workbench.components, or returned something that is not an ImageSource).
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in 0..{world_size - 1}")
    name = dataset_section.name
    component = chosen(dataset_section)
    source = call_factory(component, section="dataset", **dataset_section.params)
    check_source(source, label(component))
    where = f"dataset {name!r}"

    total = source.num_images
    limit = int(dataset_section.limit)
    count = min(total, limit) if limit else total
    if count == 0:
        raise DatasetError(f"{where}: {source.description} has no images")
    if count < world_size:
        raise DatasetError(f"{where}: {count} images cannot be shared by {world_size} ranks; use more images "
                           f"(dataset.limit) or fewer ranks")
    description = source.description
    if count < total:
        description += f"; first {count} (dataset.limit)"
    if world_size > 1:
        description += f"; shard {rank} of {world_size}"
    flip = source.flip_default if dataset_section.flip == "auto" else bool(dataset_section.flip)
    pad_to = int(dataset_section.pad_to)
    device = torch.device(device)

    if isinstance(source, InMemoryImages):
        images = source.images[:count][rank::world_size]
        labels = source.labels[:count][rank::world_size] if source.labels is not None else None
        images = pad_images(images, pad_to)
        channels, height, width = images.shape[1:]
    else:
        channels = source.channels
        height, width = padded_size(source.height, source.width, pad_to)
    size = square_size(int(height), int(width), where)
    common = dict(device=device, source_name=name, description=description, channels=int(channels),
                  image_size=size, has_labels=source.has_labels, flip=flip, class_names=tuple(source.class_names),
                  rank=rank, world_size=world_size)
    if isinstance(source, InMemoryImages):
        order = EpochOrder(images.shape[0], seed, rank, device)
        return InMemoryBatches(images, labels, order=order, **common)
    indices = list(range(count))[rank::world_size]
    view = ShardView(source.dataset, indices, (source.channels, source.height, source.width), pad_to,
                     source.has_labels, where)
    order = EpochOrder(len(indices), seed, rank, device)
    return StreamingBatches(view, num_workers=source.num_workers, order=order, **common)


def check_source(source: Any, label: str) -> None:
    """PluginError unless `source` is a well-formed ImageSource."""
    if not isinstance(source, (InMemoryImages, StreamingImages)):
        raise PluginError(f"{label} returned {type(source).__name__}, not a workbench.data.InMemoryImages or "
                          "StreamingImages")
    if isinstance(source, InMemoryImages):
        images, labels = source.images, source.labels
        if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.dim() != 4:
            got = f"{images.dtype} {tuple(images.shape)}" if isinstance(images, torch.Tensor) else type(images).__name__
            raise PluginError(f"{label} returned images {got}; they must be a uint8 tensor (N, C, H, W)")
        if images.shape[1] not in (1, 3):
            raise PluginError(f"{label} returned images with {images.shape[1]} channels; use 1 (grayscale) or 3 (RGB)")
        if labels is not None and (not isinstance(labels, torch.Tensor) or labels.dtype != torch.int64
                                   or tuple(labels.shape) != (images.shape[0],)):
            raise PluginError(f"{label} returned labels that are not an int64 tensor of shape ({images.shape[0]},)")
    else:
        if source.channels not in (1, 3) or source.height < 1 or source.width < 1:
            raise PluginError(f"{label} returned a stream of {source.channels}x{source.height}x{source.width} "
                              "images; use 1 or 3 channels and a positive size")
        if not hasattr(source.dataset, "__getitem__") or not hasattr(source.dataset, "__len__"):
            raise PluginError(f"{label} returned a stream whose dataset has no __getitem__/__len__")
