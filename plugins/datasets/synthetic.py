"""A small procedurally drawn dataset for smoke tests: no files, no network, the same images every time.

Each image is one shape on a black background: a disk, a square, a ring or a plus (the label, 0..3), at a
random position, size and brightness (a random colour when channels = 3), drawn from `seed` alone.
"""

from __future__ import annotations

import torch

from workbench.data import InMemoryImages

CLASS_NAMES = ("disk", "square", "ring", "plus")


def draw_shapes(count: int, size: int, channels: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(uint8 (count, channels, size, size), int64 labels (count,)), determined by the arguments alone."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(count) % len(CLASS_NAMES)
    labels = labels[torch.randperm(count, generator=gen)]
    radius = size * (0.18 + 0.17 * torch.rand(count, generator=gen))  # half-size of the shape, in pixels
    margin = radius + 1
    centre_y = margin + (size - 2 * margin) * torch.rand(count, generator=gen)
    centre_x = margin + (size - 2 * margin) * torch.rand(count, generator=gen)
    colour = 0.55 + 0.45 * torch.rand(count, channels, generator=gen)

    grid = torch.arange(size, dtype=torch.float32) + 0.5
    dy = grid.view(1, size, 1) - centre_y.view(-1, 1, 1)
    dx = grid.view(1, 1, size) - centre_x.view(-1, 1, 1)
    r = radius.view(-1, 1, 1)
    dist = torch.sqrt(dy**2 + dx**2)
    masks = torch.stack([
        dist <= r,                                                      # disk
        (dy.abs() <= r * 0.8) & (dx.abs() <= r * 0.8),                  # square
        (dist <= r) & (dist >= r * 0.6),                                # ring
        ((dy.abs() <= r * 0.25) & (dx.abs() <= r)) | ((dx.abs() <= r * 0.25) & (dy.abs() <= r)),  # plus
    ])  # (4, count, size, size)
    mask = masks[labels, torch.arange(count)].float()
    images = (mask.unsqueeze(1) * colour.view(count, channels, 1, 1) * 255).round().to(torch.uint8)
    return images, labels


def load_synthetic(count: int = 512, size: int = 32, channels: int = 1, seed: int = 0) -> InMemoryImages:
    """The `synthetic` dataset (see the module docstring)."""
    images, labels = draw_shapes(count, size, channels, seed)
    return InMemoryImages(f"synthetic shapes, {count} {'grayscale' if channels == 1 else 'RGB'} images of "
                          f"{size}x{size} (seed {seed})", True, images=images, labels=labels,
                          class_names=CLASS_NAMES)


def check_params(params: dict) -> None:
    if not 1 <= params["count"] <= 100_000:
        raise ValueError(f"count = {params['count']} must be 1..100000")
    if not 8 <= params["size"] <= 512:
        raise ValueError(f"size = {params['size']} must be 8..512")
    if params["channels"] not in (1, 3):
        raise ValueError(f"channels = {params['channels']} must be 1 or 3")
