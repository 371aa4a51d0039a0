"""Reading the images to score: an .npz of samples or a folder of PNGs, checked with one-line errors.

The .npz is what `ddpm-workbench sample --format npz` writes and metric tools read: `arr_0`, uint8
(N, H, W, C) with C = 1 or 3 (a single array under another name is accepted too). A folder is every
*.png in it (not in sub-folders), in name order; all must have the same size and colour mode.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from workbench.errors import UsageError


def load_npz_images(path: Path, option: str = "--samples") -> torch.Tensor:
    """uint8 (N, C, H, W) from a samples .npz; UsageError naming what is wrong."""
    try:
        with np.load(path, allow_pickle=False) as data:
            keys = list(data.keys())
            if "arr_0" in data:
                key = "arr_0"
            elif len(keys) == 1:
                key = keys[0]
            else:
                raise UsageError(f"{option} {str(path)!r} has no 'arr_0' array (it holds {', '.join(keys) or 'nothing'}); "
                                 "give the .npz `ddpm-workbench sample --format npz` writes")
            array = data[key]
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise UsageError(f"{option} {str(path)!r} cannot be read as .npz ({type(exc).__name__}: "
                         f"{str(exc).strip()[:100]})") from None
    if array.dtype != np.uint8:
        raise UsageError(f"{option} {str(path)!r}: {key} is {array.dtype}; expected uint8 images in 0..255 "
                         "(as `sample --format npz` writes)")
    if array.ndim != 4 or array.shape[-1] not in (1, 3):
        raise UsageError(f"{option} {str(path)!r}: {key} has shape {array.shape}; expected (N, H, W, C) with "
                         "C = 1 or 3")
    if array.shape[1] != array.shape[2]:
        raise UsageError(f"{option} {str(path)!r}: images are {array.shape[1]}x{array.shape[2]}; expected square images")
    if array.shape[0] == 0:
        raise UsageError(f"{option} {str(path)!r} holds no images")
    return torch.from_numpy(np.ascontiguousarray(array)).permute(0, 3, 1, 2).contiguous()


def load_png_folder(path: Path, option: str = "--samples") -> torch.Tensor:
    """uint8 (N, C, H, W) from every PNG in a folder; UsageError for none, mixed sizes or modes."""
    from PIL import Image, UnidentifiedImageError

    files = sorted(p for p in path.iterdir() if p.suffix.lower() == ".png" and p.is_file())
    if not files:
        raise UsageError(f"{option} {str(path)!r} holds no .png images")
    arrays, first = [], None
    for file in files:
        try:
            with Image.open(file) as image:
                mode = "L" if image.mode in ("L", "1", "I;16", "I", "LA") else "RGB"
                array = np.asarray(image.convert(mode))
        except (OSError, UnidentifiedImageError) as exc:
            raise UsageError(f"{option}: {str(file)!r} cannot be read as a PNG ({type(exc).__name__})") from None
        array = array[..., None] if array.ndim == 2 else array
        if first is None:
            first = (file, array.shape)
        elif array.shape != first[1]:
            shape = lambda s: f"{s[0]}x{s[1]} with {s[2]} channel(s)"  # noqa: E731
            raise UsageError(f"{option} {str(path)!r} mixes image sizes: {first[0].name} is {shape(first[1])}, "
                             f"{file.name} is {shape(array.shape)}; score one size at a time")
        arrays.append(array)
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    if images.shape[2] != images.shape[3]:
        raise UsageError(f"{option} {str(path)!r}: images are {images.shape[2]}x{images.shape[3]}; expected square images")
    return images


def load_images(path: str | Path, option: str = "--samples") -> torch.Tensor:
    path = Path(path)
    if not path.exists():
        raise UsageError(f"{option} {str(path)!r} does not exist")
    if path.is_dir():
        return load_png_folder(path, option)
    if path.suffix.lower() != ".npz":
        raise UsageError(f"{option} {str(path)!r}: give a samples .npz or a folder of PNGs")
    return load_npz_images(path, option)
