"""Pixel preprocessing shared by every dataset: uint8 -> [-1, 1], padding, resizing, flips.

DDPM (Ho et al. 2020, section 3.3) scales pixel values {0..255} linearly to [-1, 1].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from workbench.errors import DatasetError


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 0..255 -> float32 in [-1, 1] as x / 127.5 - 1 (Ho et al. 2020), on the tensor's device."""
    return torch.div(images, 127.5).sub_(1.0)  # uint8 / float -> float32 in one kernel


def pad_amounts(height: int, width: int, pad_to: int) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) padding that centres an image in pad_to x pad_to; zero where it is already
    at least that large (padding never crops)."""
    if pad_to <= 0:
        return (0, 0, 0, 0)
    dh, dw = max(0, pad_to - height), max(0, pad_to - width)
    return (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2)


def pad_images(images: torch.Tensor, pad_to: int, background: int = 0) -> torch.Tensor:
    """Pad uint8 (..., H, W) images to at least pad_to on each side with the background value (0 is black,
    i.e. -1 after scaling: the background of MNIST and Fashion-MNIST). Never crops."""
    left, right, top, bottom = pad_amounts(images.shape[-2], images.shape[-1], pad_to)
    if not (left or right or top or bottom):
        return images
    return F.pad(images, (left, right, top, bottom), mode="constant", value=background)


def padded_size(height: int, width: int, pad_to: int) -> tuple[int, int]:
    left, right, top, bottom = pad_amounts(height, width, pad_to)
    return height + top + bottom, width + left + right


def square_size(height: int, width: int, where: str) -> int:
    """The side of square images, or a DatasetError that says how to make them square."""
    if height != width:
        raise DatasetError(f"{where}: images are {height}x{width} (height x width), not square; set "
                           f"dataset.size=N to resize and center-crop them to N x N, or raise dataset.pad_to "
                           f"to at least {max(height, width)} to pad them square")
    return height


def resize_shorter_center_crop(images: torch.Tensor, size: int, chunk: int = 1024) -> torch.Tensor:
    """uint8 (N, C, H, W) -> uint8 (N, C, size, size): scale the shorter side to `size` (bicubic,
    antialiased when shrinking), then cut the centre square. Works in chunks to bound memory."""
    n, c, h, w = images.shape
    if h == size and w == size:
        return images
    scale = size / min(h, w)
    new_h, new_w = max(size, round(h * scale)), max(size, round(w * scale))
    top, left = (new_h - size) // 2, (new_w - size) // 2
    out = torch.empty((n, c, size, size), dtype=torch.uint8)
    for start in range(0, n, chunk):
        part = images[start:start + chunk].to(torch.float32)
        if (new_h, new_w) != (h, w):
            part = F.interpolate(part, size=(new_h, new_w), mode="bicubic", align_corners=False,
                                 antialias=scale < 1)
        out[start:start + chunk] = part[:, :, top:top + size, left:left + size].round_().clamp_(0, 255).to(torch.uint8)
    return out


def flip_where(images: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
    """Mirror left-right the images (B, C, H, W) whose entry in the bool mask `flips` (B,) is true."""
    return torch.where(flips.view(-1, 1, 1, 1), images.flip(-1), images)
