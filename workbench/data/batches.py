"""Training batches: the order of images, and the two batchers (device-resident and streaming).

Order: an endless stream made of one permutation per epoch. Epoch e's permutation, and a flip bit for each
of its positions, come from (seed, rank, e) alone, so the state of a run's data order is two integers
(epoch, position) and a resumed run continues with exactly the same batches on any device. A batch that
reaches the end of an epoch continues into the next, so every batch is full and every image is seen once
per epoch.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from workbench.errors import CheckpointError, DatasetError, WorkbenchError
from workbench.data.preprocess import flip_where, pad_images, to_unit_range

STATE_VERSION = 1


def epoch_seed(seed: int, rank: int, epoch: int) -> int:
    """A well-mixed 63-bit seed for one epoch of one rank (numpy's SeedSequence hashing)."""
    return int(np.random.SeedSequence([seed, rank, epoch]).generate_state(1, np.uint64)[0] >> np.uint64(1))


class EpochOrder:
    """Which images come next: per-epoch permutations of 0..n-1 and flip bits, from (seed, rank, epoch)."""

    def __init__(self, num_images: int, seed: int, rank: int = 0, device: torch.device | str = "cpu"):
        self.num_images, self.seed, self.rank = num_images, seed, rank
        self.device = torch.device(device)
        self.epoch = 0
        self.position = 0
        self._tables: tuple[int, torch.Tensor, torch.Tensor] | None = None

    def tables(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(permutation int64 (n,), flips bool (n,)) of `epoch`, on the device. Drawn on the CPU so that
        the order does not depend on the device; once per epoch, so the copy costs nothing."""
        if self._tables is None or self._tables[0] != epoch:
            gen = torch.Generator().manual_seed(epoch_seed(self.seed, self.rank, epoch))
            perm = torch.randperm(self.num_images, generator=gen)
            flips = torch.randint(0, 2, (self.num_images,), generator=gen, dtype=torch.uint8).bool()
            self._tables = (epoch, perm.to(self.device), flips.to(self.device))
        return self._tables[1], self._tables[2]

    def take(self, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The next `count` (indices, flips), advancing the position (into later epochs when needed)."""
        parts_idx, parts_flip = [], []
        remaining = count
        while remaining:
            perm, flips = self.tables(self.epoch)
            step = min(remaining, self.num_images - self.position)
            parts_idx.append(perm[self.position:self.position + step])
            parts_flip.append(flips[self.position:self.position + step])
            self.position += step
            remaining -= step
            if self.position == self.num_images:
                self.epoch, self.position = self.epoch + 1, 0
        if len(parts_idx) == 1:
            return parts_idx[0], parts_flip[0]
        return torch.cat(parts_idx), torch.cat(parts_flip)

    def state_dict(self) -> dict[str, int]:
        return {"version": STATE_VERSION, "epoch": self.epoch, "position": self.position, "seed": self.seed,
                "rank": self.rank, "num_images": self.num_images}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("num_images") != self.num_images:
            raise CheckpointError(f"the checkpoint's data order is for {state.get('num_images')} images but this "
                                  f"rank's dataset has {self.num_images}; resume with the same [dataset] settings "
                                  "(name, limit, split) and the same number of ranks")
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        self.seed, self.rank = int(state["seed"]), int(state.get("rank", self.rank))
        self._tables = None


class ImageBatches:
    """Batches of training images on the device.

    Attributes: channels, image_size (square side after padding), num_images (this rank's shard),
    description, has_labels, source_name, flip (resolved), class_names, rank, world_size.
    """

    channels: int
    image_size: int
    num_images: int
    description: str
    has_labels: bool
    source_name: str
    flip: bool
    class_names: tuple[str, ...]

    def __init__(self, *, order: EpochOrder, device: torch.device, source_name: str, description: str,
                 channels: int, image_size: int, has_labels: bool, flip: bool,
                 class_names: tuple[str, ...] = (), rank: int = 0, world_size: int = 1):
        self.order, self.device = order, device
        self.source_name, self.description = source_name, description
        self.channels, self.image_size, self.has_labels, self.flip = channels, image_size, has_labels, flip
        self.class_names, self.rank, self.world_size = class_names, rank, world_size
        self.num_images = order.num_images

    @property
    def epoch(self) -> int:
        return self.order.epoch

    def next_batch(self, batch_size: int, generator: torch.Generator | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor | None]:  # pragma: no cover - abstract
        raise NotImplementedError

    def real_images(self, n: int) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def state_dict(self) -> dict[str, int]:
        """Position in the data order; with `load_state_dict` a resumed run gets the same next batches."""
        return self.order.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.order.load_state_dict(state)

    def close(self) -> None:
        """Release worker processes (streaming only)."""

    def _flips(self, planned: torch.Tensor, batch_size: int, generator: torch.Generator | None) -> torch.Tensor:
        # With a caller's generator the flips follow it (the caller restores it when resuming); otherwise
        # they are part of the epoch tables and so of the state_dict.
        if generator is None:
            return planned
        return (torch.rand(batch_size, generator=generator, device=generator.device) < 0.5).to(self.device)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.source_name!r}, {self.num_images} images, {self.channels}x"
                f"{self.image_size}x{self.image_size}, flip={self.flip}, device={self.device})")


class InMemoryBatches(ImageBatches):
    """The whole shard lives on the device as one uint8 tensor; batches are gathered, flipped and scaled
    there, with no DataLoader and no host-device copy per step.

    With flips on, a mirrored copy of each image is stored after the originals (when that costs at most
    MIRROR_TABLE_MAX_BYTES), so that gathering and flipping a batch is a single index_select: row i + N is
    image i mirrored. Larger datasets flip with torch.where instead; both give the same batches.
    """

    MIRROR_TABLE_MAX_BYTES = 1 << 30

    def __init__(self, images: torch.Tensor, labels: torch.Tensor | None, **kw):
        super().__init__(**kw)
        images = images.to(self.device).contiguous()
        self.mirrored = self.flip and images.numel() <= self.MIRROR_TABLE_MAX_BYTES
        self.table = torch.cat([images, images.flip(-1)]) if self.mirrored else images
        self.labels = labels.to(self.device) if labels is not None else None

    @property
    def images(self) -> torch.Tensor:
        """The shard's images, uint8 (N, C, H, W) on the device."""
        return self.table[:self.num_images]

    def next_batch(self, batch_size: int, generator: torch.Generator | None = None):
        """(x float32 (B, C, H, W) in [-1, 1], y int64 (B,) or None), both on the device."""
        indices, flips = self.order.take(batch_size)
        if not self.flip:
            x = self.table.index_select(0, indices)
        elif self.mirrored:
            x = self.table.index_select(0, indices + self.num_images * self._flips(flips, batch_size, generator))
        else:
            x = flip_where(self.table.index_select(0, indices), self._flips(flips, batch_size, generator))
        y = self.labels.index_select(0, indices) if self.labels is not None else None
        return to_unit_range(x), y

    def real_images(self, n: int) -> torch.Tensor:
        """The first n images of this rank's shard (all of them when n is larger), uint8 on the CPU."""
        return self.table[:min(n, self.num_images)].cpu()


class ShardView(torch.utils.data.Dataset):
    """The part of a streaming source that one rank reads: `indices` into it, padded to `pad_to`.

    Items are (uint8 (C, H, W), int64 label or -1)."""

    def __init__(self, dataset, indices: list[int], shape: tuple[int, int, int], pad_to: int, labelled: bool,
                 where: str):
        self.dataset, self.indices, self.shape, self.pad_to = dataset, indices, shape, pad_to
        self.labelled, self.where = labelled, where

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        item = self.dataset[self.indices[i]]
        image, label = item if self.labelled else (item, -1)
        if not isinstance(image, torch.Tensor) or image.dtype != torch.uint8 or tuple(image.shape) != self.shape:
            got = f"{tuple(image.shape)} {image.dtype}" if isinstance(image, torch.Tensor) else type(image).__name__
            raise DatasetError(f"{self.where}: item {self.indices[i]} is {got}; every item must be a uint8 tensor "
                               f"of shape {self.shape}")
        return pad_images(image, self.pad_to), torch.tensor(int(label), dtype=torch.int64)


class _OrderBatchSampler:
    """Feeds the DataLoader the same endless index stream as the batcher's own EpochOrder."""

    def __init__(self, state: dict[str, Any], batch_size: int):
        self.order = EpochOrder(state["num_images"], state["seed"], state["rank"])
        self.order.load_state_dict(state)
        self.batch_size = batch_size

    def __iter__(self):
        while True:
            yield self.order.take(self.batch_size)[0].tolist()


class StreamingBatches(ImageBatches):
    """Images read from disk by DataLoader workers (pinned memory, persistent workers), then flipped and
    scaled on the device. For folders too large to keep in memory."""

    def __init__(self, view: ShardView, num_workers: int | None = None, **kw):
        super().__init__(**kw)
        self.view = view
        self.num_workers = min(4, os.cpu_count() or 1) if num_workers is None else num_workers
        self._iterator = None
        self._batch_size = 0

    def _start(self, batch_size: int) -> None:
        self.close()
        loader = torch.utils.data.DataLoader(
            self.view, batch_sampler=_OrderBatchSampler(self.order.state_dict(), batch_size),
            num_workers=self.num_workers, pin_memory=self.device.type == "cuda",
            persistent_workers=self.num_workers > 0, prefetch_factor=4 if self.num_workers > 0 else None)
        self._iterator, self._batch_size = iter(loader), batch_size

    def next_batch(self, batch_size: int, generator: torch.Generator | None = None):
        """(x float32 (B, C, H, W) in [-1, 1], y int64 (B,) or None), both on the device."""
        if self._iterator is None or batch_size != self._batch_size:
            self._start(batch_size)  # the loader's sampler starts from the current state
        try:
            images, labels = next(self._iterator)
        except WorkbenchError as exc:  # raised in a worker; the DataLoader wraps it in a traceback
            self.close()
            raise type(exc)(last_line(str(exc))) from None
        _, flips = self.order.take(batch_size)
        x = images.to(self.device, non_blocking=True)
        if self.flip:
            x = flip_where(x, self._flips(flips, batch_size, generator))
        y = labels.to(self.device, non_blocking=True) if self.has_labels else None
        return to_unit_range(x), y

    def real_images(self, n: int) -> torch.Tensor:
        """The first n images of this rank's shard (all of them when n is larger), uint8 on the CPU."""
        n = min(n, len(self.view))
        if n == 0:
            return torch.empty((0, self.channels, self.image_size, self.image_size), dtype=torch.uint8)
        return torch.stack([self.view[i][0] for i in range(n)])

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.close()  # batches prefetched from the old position are stale

    def close(self) -> None:
        iterator, self._iterator = self._iterator, None
        if iterator is not None and hasattr(iterator, "_shutdown_workers"):
            iterator._shutdown_workers()

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


def last_line(message: str) -> str:
    """The original one-line message of an error re-raised from a DataLoader worker."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    line = lines[-1] if lines else message
    head, sep, rest = line.partition(": ")
    return rest if sep and head.rsplit(".", 1)[-1].endswith("Error") else line
