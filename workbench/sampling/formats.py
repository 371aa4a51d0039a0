"""Writing sampled images: one PNG grid, a folder of PNGs, or an .npz array for metric tools.

The .npz holds `arr_0`, uint8 (N, H, W, C) in 0..255, the layout FID/IS tools read (the reference batches
of guided-diffusion's evaluator, torch-fidelity, clean-fid); grayscale keeps C = 1. Class-conditional
samples add `labels`, int64 (N,).
"""

from __future__ import annotations

import io

import numpy as np
import torch

from workbench.pictures import make_grid, png_bytes

from workbench.sampling.defaults import DEFAULT_OUT, FORMATS, SUFFIXES  # noqa: F401 - re-exported


def grid_png(images: torch.Tensor, nrow: int | None = None) -> bytes:
    """uint8 (N, C, H, W) -> PNG bytes of one grid."""
    return png_bytes(make_grid(images, nrow=nrow))


def image_png(image: torch.Tensor) -> bytes:
    """uint8 (C, H, W) -> PNG bytes of that one image."""
    return png_bytes(image.permute(1, 2, 0).numpy())


def png_name(index: int, total: int, label: int | None = None) -> str:
    """`000123.png` (zero-padded to fit `total`, at least 6 digits), `000123_c7.png` with a class label."""
    digits = max(6, len(str(total - 1)))
    return f"{index:0{digits}d}" + (f"_c{label}" if label is not None else "") + ".png"


def npz_writer(images: torch.Tensor, labels: torch.Tensor | None):
    """A function writing the .npz to an open binary file (np.savez adds no suffix to a file object)."""
    arrays = {"arr_0": np.ascontiguousarray(images.permute(0, 2, 3, 1).numpy())}
    if labels is not None:
        arrays["labels"] = labels.numpy().astype(np.int64)

    def write(f: io.BufferedIOBase) -> None:
        np.savez(f, **arrays)
    return write
