"""A NumPy array of images (.npy, or an array inside a .npz) as a dataset.

Accepted layouts (`layout = "auto"` tells them apart by where the 1 or 3 channels are):
  (N, H, W)       grayscale
  (N, H, W, C)    channels last, C = 1 or 3
  (N, C, H, W)    channels first, C = 1 or 3
Accepted values: uint8 0..255; other integer types holding 0..255; float in [0, 1] (when no value is
negative) or in [-1, 1] (when some are). In a .npz, the images are the array named by `key`, else the one
called "images", "x", "data" or "arr_0", else the only array; labels (optional, integers (N,)) are the array
named by `labels_key`, else one called "labels" or "y".
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from workbench.data import InMemoryImages
from workbench.data.preprocess import resize_shorter_center_crop
from workbench.errors import DatasetError

LAYOUTS = ("auto", "NHW", "NHWC", "NCHW")
IMAGE_KEYS = ("images", "x", "data", "arr_0")
LABEL_KEYS = ("labels", "y")


def read_arrays(path: Path, key: str, labels_key: str) -> tuple[np.ndarray, np.ndarray | None, str]:
    """(images, labels or None, name of the images array) from a .npy or .npz file."""
    if not path.exists():
        raise DatasetError(f"array file {path} does not exist; set dataset.path to a .npy or .npz file")
    if path.is_dir():
        raise DatasetError(f"dataset.path {path} is a folder; the npy dataset reads one .npy or .npz file "
                           "(for a folder of images use dataset.name = \"image-folder\")")
    try:
        loaded = np.load(path, mmap_mode="r", allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            if key or labels_key:
                raise DatasetError(f"{path} is a .npy file with one array; dataset.key and dataset.labels_key "
                                   "only apply to .npz files")
            return loaded, None, "the array"
        with loaded:
            names = list(loaded.files)
            name = key or next((k for k in IMAGE_KEYS if k in names), names[0] if len(names) == 1 else "")
            if name not in names:
                wanted = f"no array named {key!r}" if key else f"no array named {', '.join(IMAGE_KEYS)}"
                raise DatasetError(f"{path} has {wanted}; its arrays are {', '.join(names) or 'none'}: set "
                                   "dataset.key to the one holding the images")
            label_name = labels_key or next((k for k in LABEL_KEYS if k in names), "")
            if labels_key and labels_key not in names:
                raise DatasetError(f"{path} has no array named {labels_key!r} (dataset.labels_key); its arrays are "
                                   f"{', '.join(names)}")
            return loaded[name], (loaded[label_name] if label_name else None), f"array {name!r}"
    except DatasetError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise DatasetError(f"cannot read {path} as a NumPy .npy/.npz file ({' '.join(str(exc).split())}); "
                           "save it with numpy.save or numpy.savez") from None


def channels_first(images: np.ndarray, layout: str, where: str) -> np.ndarray:
    """(N, C, H, W) view of an (N, H, W), (N, H, W, C) or (N, C, H, W) array."""
    if layout == "auto":
        if images.ndim == 3:
            layout = "NHW"
        elif images.ndim == 4:
            layout = "NCHW" if images.shape[1] in (1, 3) and images.shape[3] not in (1, 3) else "NHWC"
    expected_rank = 3 if layout == "NHW" else 4
    if images.ndim != expected_rank:
        raise DatasetError(f"{where} has shape {images.shape} (rank {images.ndim}); images must be (N, H, W), "
                           "(N, H, W, C) or (N, C, H, W)" + ("" if layout == "auto" or images.ndim not in (3, 4)
                                                            else f", and dataset.layout = {layout!r} needs rank {expected_rank}"))
    if layout == "NHW":
        images = images[:, None]
    elif layout == "NHWC":
        images = images.transpose(0, 3, 1, 2)
    if images.shape[1] not in (1, 3):
        raise DatasetError(f"{where} has {images.shape[1]} channels (shape {images.shape} read as {layout}); "
                           "use 1 (grayscale) or 3 (RGB), or set dataset.layout")
    return images


def to_uint8(images: np.ndarray, where: str) -> np.ndarray:
    """uint8 pixels from uint8, integer 0..255, or float in [0, 1] / [-1, 1]."""
    if images.dtype == np.uint8:
        return np.array(images, order="C")  # a copy: the source may be a read-only memory map of the file
    if images.size == 0:
        raise DatasetError(f"{where} is empty (shape {images.shape})")
    if np.issubdtype(images.dtype, np.integer):
        low, high = int(images.min()), int(images.max())
        if low < 0 or high > 255:
            raise DatasetError(f"{where} is {images.dtype} with values {low}..{high}; integer images must be 0..255")
        return images.astype(np.uint8)
    if np.issubdtype(images.dtype, np.floating):
        values = np.asarray(images, dtype=np.float32)
        if not np.isfinite(values).all():
            raise DatasetError(f"{where} contains NaN or infinite values")
        low, high = float(values.min()), float(values.max())
        if low < -1.0 or high > 1.0:
            raise DatasetError(f"{where} is {images.dtype} with values in [{low:g}, {high:g}]; float images must be in "
                               "[0, 1] or [-1, 1] (divide 0..255 values by 255)")
        scaled = (values + 1.0) * 127.5 if low < 0 else values * 255.0
        return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    raise DatasetError(f"{where} has dtype {images.dtype}; images must be uint8 (0..255) or float in [0, 1] or [-1, 1]")


def load_array(path: str = "", key: str = "", labels_key: str = "", layout: str = "auto",
               size: int = 0) -> InMemoryImages:
    """The `npy` dataset (see the module docstring)."""
    file = Path(path).expanduser()
    raw, raw_labels, name = read_arrays(file, key, labels_key)
    where = f"{file}: {name}"
    if raw.dtype.kind not in "uif":
        raise DatasetError(f"{where} has dtype {raw.dtype}; images must be uint8 (0..255) or float in [0, 1] or [-1, 1]")
    images = to_uint8(channels_first(raw, layout, where), where)
    if images.shape[0] == 0:
        raise DatasetError(f"{where} holds no images (shape {raw.shape})")
    tensor = torch.from_numpy(np.ascontiguousarray(images))
    if size:
        tensor = resize_shorter_center_crop(tensor, size)
    labels = None
    if raw_labels is not None:
        raw_labels = np.asarray(raw_labels)
        if raw_labels.shape != (images.shape[0],) or not np.issubdtype(raw_labels.dtype, np.integer):
            raise DatasetError(f"{file}: labels are {raw_labels.dtype} {raw_labels.shape}; they must be integers of "
                               f"shape ({images.shape[0]},), one per image")
        if raw_labels.size and raw_labels.min() < 0:
            raise DatasetError(f"{file}: labels must be >= 0, found {int(raw_labels.min())}")
        labels = torch.from_numpy(raw_labels.astype(np.int64))
    n, c, h, w = tensor.shape
    description = f"array {file}" + (f" [{name[7:-1]}]" if name.startswith("array ") else "") + \
        f", {n} {'grayscale' if c == 1 else 'RGB'} images of {h}x{w}"
    return InMemoryImages(description, False, images=tensor, labels=labels)


def check_params(params: dict) -> None:
    if not params["path"]:
        raise ValueError("path is empty; set dataset.path to a .npy or .npz file of images")
    if params["layout"] not in LAYOUTS:
        raise ValueError(f"layout = {params['layout']!r}; choose one of {', '.join(LAYOUTS)}")
    if params["size"] < 0:
        raise ValueError(f"size = {params['size']} must be >= 0 (0 keeps the arrays' own size)")
