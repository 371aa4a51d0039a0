"""Sample grids: images in [-1, 1] -> one uint8 picture with 2-px padding, saved as PNG with PIL."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import torch

PADDING = 2
PAD_VALUE = 128  # mid-grey separates tiles on black (Fashion-MNIST) and white backgrounds alike


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) floats in [-1, 1] -> uint8 0..255 (clamped, rounded), on the CPU."""
    return ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu()


def make_grid(images: torch.Tensor, nrow: int | None = None, padding: int = PADDING,
              pad_value: int = PAD_VALUE) -> np.ndarray:
    """uint8 (N, C, H, W) -> uint8 (H', W', C) grid with `nrow` tiles per row (default isqrt(N), rounded up
    to fit), `padding` px around and between tiles."""
    if images.dtype != torch.uint8:
        images = to_uint8(images)
    n, c, h, w = images.shape
    ncol = nrow or max(1, math.isqrt(n))
    if ncol * ncol < n and nrow is None and math.isqrt(n) ** 2 != n:
        ncol = math.ceil(math.sqrt(n))
    nrows = math.ceil(n / ncol)
    grid = np.full((padding + nrows * (h + padding), padding + ncol * (w + padding), c), pad_value, dtype=np.uint8)
    pixels = images.permute(0, 2, 3, 1).numpy()
    for i in range(n):
        r, col = divmod(i, ncol)
        y, x = padding + r * (h + padding), padding + col * (w + padding)
        grid[y:y + h, x:x + w] = pixels[i]
    return grid


SCALE_KEY = "ddpm-workbench-scale"  # PNG text chunk: how many times a saved grid was enlarged


def enlarge(grid: np.ndarray, scale: int) -> np.ndarray:
    """Each pixel as a scale x scale block (nearest neighbour: tiles stay crisp)."""
    return grid if scale == 1 else np.repeat(np.repeat(grid, scale, axis=0), scale, axis=1)


def png_bytes(grid: np.ndarray, scale: int = 1) -> bytes:
    """A uint8 (H, W, C) picture as PNG, enlarged `scale` times; the factor is recorded in the file so a reader
    can get the native pixels back (`native_pixels`)."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    grid = enlarge(grid, scale)
    # uint8 (H, W) is read as mode "L", uint8 (H, W, 3) as "RGB"
    image = Image.fromarray(np.ascontiguousarray(grid[:, :, 0] if grid.shape[2] == 1 else grid))
    info = PngInfo()
    if scale > 1:
        info.add_text(SCALE_KEY, str(scale))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def native_pixels(image):
    """A PIL image read from a grid PNG at the size it was drawn: an enlarged one is shrunk back exactly."""
    try:
        scale = int(image.info.get(SCALE_KEY, 1))
    except (TypeError, ValueError):
        scale = 1
    if scale <= 1 or image.width % scale or image.height % scale:
        return image
    from PIL import Image

    return image.resize((image.width // scale, image.height // scale), Image.Resampling.NEAREST)


def save_grid(grid: np.ndarray, path: str | Path, scale: int = 1) -> None:
    from workbench.engine.rundir import atomic_write_bytes

    atomic_write_bytes(Path(path), png_bytes(grid, scale))
