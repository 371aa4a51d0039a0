"""A folder tree of PNG, JPEG, WebP (or BMP) images as a dataset.

Images are found recursively (hidden files and folders skipped) and sorted by path. When every image sits in
a first-level sub-folder and there are at least two of them, the sub-folder names are the classes (like
torchvision's ImageFolder). With `size`, each image is resized so its shorter side is `size` (bicubic,
antialiased) and the centre square is kept; without it, all images must have the same size. Transparent
images are composited onto white. Folders whose decoded pixels fit in `max_memory_mb` are loaded into memory
(and then live on the training device); larger ones stream from disk through DataLoader workers.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from workbench.data import InMemoryImages, StreamingImages
from workbench.errors import DatasetError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
_PIL_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)


def list_images(folder: Path) -> list[Path]:
    if not folder.exists():
        raise DatasetError(f"image folder {folder} does not exist; set dataset.path to a folder of PNG/JPEG/WebP images")
    if not folder.is_dir():
        raise DatasetError(f"dataset.path {folder} is a file, not a folder of images (for a .npy/.npz array use "
                           "dataset.name = \"npy\")")
    found = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found += [Path(dirpath) / f for f in filenames
                  if not f.startswith(".") and f.lower().endswith(IMAGE_SUFFIXES)]
    if not found:
        raise DatasetError(f"image folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)}), looked recursively")
    return sorted(found)


def class_labels(folder: Path, files: list[Path]) -> tuple[np.ndarray | None, tuple[str, ...]]:
    """Labels from first-level sub-folder names, when every image is in one and there are at least two."""
    tops = [f.relative_to(folder).parts for f in files]
    if any(len(parts) < 2 for parts in tops):
        return None, ()
    names = sorted({parts[0] for parts in tops})
    if len(names) < 2:
        return None, ()
    index = {name: i for i, name in enumerate(names)}
    return np.array([index[parts[0]] for parts in tops], dtype=np.int64), tuple(names)


def to_mode(image: Image.Image, grayscale: bool) -> Image.Image:
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return image.convert("L" if grayscale else "RGB")


def resize_center_crop(image: Image.Image, size: int) -> Image.Image:
    """Scale the shorter side to `size` (bicubic; PIL antialiases when shrinking), keep the centre square."""
    width, height = image.size
    if (width, height) != (size, size):
        scale = size / min(width, height)
        new_w, new_h = max(size, round(width * scale)), max(size, round(height * scale))
        image = image.resize((new_w, new_h), Image.Resampling.BICUBIC)
        left, top = (new_w - size) // 2, (new_h - size) // 2
        image = image.crop((left, top, left + size, top + size))
    return image


def decode(path: Path, size: int, grayscale: bool) -> np.ndarray:
    """uint8 (H, W, C) pixels of one image file, or a DatasetError naming it."""
    try:
        with Image.open(path) as image:
            image.load()
            image = to_mode(image, grayscale)
            if size:
                image = resize_center_crop(image, size)
            pixels = np.asarray(image, dtype=np.uint8)
    except _PIL_ERRORS as exc:
        raise DatasetError(f"cannot read image {path}: {' '.join(str(exc).split()) or type(exc).__name__}; "
                           "replace or remove the file") from None
    return pixels[:, :, None] if pixels.ndim == 2 else pixels


def header_size(path: Path) -> tuple[int, int]:
    """(width, height) from the file header alone."""
    try:
        with Image.open(path) as image:
            return image.size
    except _PIL_ERRORS as exc:
        raise DatasetError(f"cannot read image {path}: {' '.join(str(exc).split()) or type(exc).__name__}; "
                           "replace or remove the file") from None


def mixed_sizes(first: Path, first_hw: tuple[int, int], other: Path, other_hw: tuple[int, int]) -> DatasetError:
    return DatasetError(f"images differ in size: {first} is {first_hw[0]}x{first_hw[1]} but {other} is "
                        f"{other_hw[0]}x{other_hw[1]} (height x width); set dataset.size=N to resize and "
                        "center-crop every image to N x N")


class FolderStream(torch.utils.data.Dataset):
    """Decodes one image per item (in DataLoader workers): uint8 (C, H, W), with its label when labelled."""

    def __init__(self, files: list[Path], labels: np.ndarray | None, size: int, grayscale: bool,
                 shape: tuple[int, int]):
        self.files, self.labels, self.size, self.grayscale, self.shape = files, labels, size, grayscale, shape

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        pixels = decode(self.files[i], self.size, self.grayscale)
        if pixels.shape[:2] != self.shape:
            raise mixed_sizes(self.files[0], self.shape, self.files[i], pixels.shape[:2])
        image = torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))
        return (image, int(self.labels[i])) if self.labels is not None else image


def load_image_folder(path: str = "", size: int = 0, grayscale: bool = False, max_memory_mb: int = 2048,
                      workers: int = -1) -> InMemoryImages | StreamingImages:
    """The `image-folder` dataset (see the module docstring)."""
    folder = Path(path).expanduser()
    files = list_images(folder)
    labels, class_names = class_labels(folder, files)
    channels = 1 if grayscale else 3
    if size:
        shape = (size, size)
    else:
        first_w, first_h = header_size(files[0])
        shape = (first_h, first_w)
    kind = "grayscale" if grayscale else "RGB"
    resized = f", resized and center-cropped to {size}x{size}" if size else ""
    description = f"image folder {folder}, {len(files)} {kind} images{resized}"
    threads = min(8, os.cpu_count() or 1)
    if len(files) * channels * shape[0] * shape[1] <= max_memory_mb * 2**20:
        images = np.empty((len(files), shape[0], shape[1], channels), dtype=np.uint8)

        def load(i: int) -> None:
            pixels = decode(files[i], size, grayscale)
            if pixels.shape[:2] != shape:
                raise mixed_sizes(files[0], shape, files[i], pixels.shape[:2])
            images[i] = pixels

        with ThreadPoolExecutor(threads) as pool:  # PIL decodes without the GIL
            for _ in pool.map(load, range(len(files))):
                pass
        return InMemoryImages(description, True, images=torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(),
                              labels=torch.from_numpy(labels) if labels is not None else None,
                              class_names=class_names)
    if not size:  # a stream must know its shape up front: check every header now, not mid-training
        with ThreadPoolExecutor(threads) as pool:
            for f, (w, h) in zip(files, pool.map(header_size, files)):
                if (h, w) != shape:
                    raise mixed_sizes(files[0], shape, f, (h, w))
    return StreamingImages(description + " (streamed from disk)", True,
                           dataset=FolderStream(files, labels, size, grayscale, shape), channels=channels,
                           height=shape[0], width=shape[1], labelled=labels is not None,
                           num_workers=None if workers < 0 else workers, class_names=class_names)


def check_params(params: dict) -> None:
    if not params["path"]:
        raise ValueError("path is empty; set dataset.path to a folder of PNG/JPEG/WebP images")
    if params["size"] < 0:
        raise ValueError(f"size = {params['size']} must be >= 0 (0 keeps the images' own size)")
    if params["max_memory_mb"] < 0:
        raise ValueError(f"max_memory_mb = {params['max_memory_mb']} must be >= 0")
    if params["workers"] < -1:
        raise ValueError(f"workers = {params['workers']} must be >= 0, or -1 to choose automatically")
