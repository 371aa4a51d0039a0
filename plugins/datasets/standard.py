"""MNIST, Fashion-MNIST and CIFAR-10: found offline first, downloaded with torchvision only as a last resort.

Where each is looked for, in order (workbench.data.locations): `dataset.root`, $DDPM_WORKBENCH_DATA, the
user cache, the system dataset folders (Debian's dataset-fashion-mnist puts the original gzipped IDX files
in /usr/share/datasets/fashion-mnist), then a torchvision download into `root` or the cache. Both
torchvision's layout (ROOT/FashionMNIST/raw/..., ROOT/cifar-10-batches-py/...) and a flat folder of the
files are accepted. The files are read here rather than through torchvision's classes so that a corrupted
file gives a one-line error naming it (torchvision asserts), and so that gzipped IDX files are read in place.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from workbench.data import InMemoryImages
from workbench.data.locations import DATA_ENV, SearchPlace, describe_places, download_dir, search_places
from workbench.errors import DatasetError
from workbench_plugins.datasets import cifar
from workbench_plugins.datasets.idx import read_idx_images, read_idx_labels

SPLITS = ("train", "test", "all")


@dataclass(frozen=True)
class IdxDataset:
    """An MNIST-style dataset: its names, where its files may sit, and its defaults."""

    title: str  # for messages: "Fashion-MNIST"
    torchvision_name: str  # torchvision's class, also its folder: ROOT/FashionMNIST/raw
    folder_names: tuple[str, ...]  # sub-folders it may sit in under a data folder
    class_names: tuple[str, ...]
    flip_default: bool
    install_hint: str = ""


MNIST = IdxDataset("MNIST", "MNIST", ("mnist", "MNIST"), tuple(str(d) for d in range(10)), flip_default=False)
FASHION_MNIST = IdxDataset(
    "Fashion-MNIST", "FashionMNIST", ("fashion-mnist", "fashion_mnist", "FashionMNIST"),
    ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    flip_default=False, install_hint="apt-get install dataset-fashion-mnist")

IDX_PREFIXES = {"train": ("train",), "test": ("t10k",), "all": ("train", "t10k")}


def idx_file(folder: Path, prefix: str, kind: str) -> Path | None:
    """The IDX file for e.g. ("train", "images") in `folder`: uncompressed first (faster), then .gz; both the
    official dash names (train-images-idx3-ubyte) and the common dotted ones (train-images.idx3-ubyte)."""
    dims = "idx3" if kind == "images" else "idx1"
    for name in (f"{prefix}-{kind}-{dims}-ubyte", f"{prefix}-{kind}.{dims}-ubyte"):
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    return None


def candidate_folders(place: SearchPlace, subfolders: list[str]) -> list[Path]:
    """The folders a dataset may sit in under one search place. Only the configured root may hold the files
    directly: the other places are shared folders of many datasets (MNIST and Fashion-MNIST files have the
    same names)."""
    assert place.path is not None
    folders = [place.path / sub for sub in subfolders]
    return folders + [place.path] if place.label == "dataset.root" else folders


def find(places: list[SearchPlace], subfolders: list[str], holds: Callable[[Path], bool]) -> Path | None:
    for place in places:
        if place.path is None:
            continue
        for folder in candidate_folders(place, subfolders):
            if folder.is_dir() and holds(folder):
                return folder
    return None


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def download_with_torchvision(class_name: str, target: Path, splits: tuple[bool, ...]) -> None:
    """Download with torchvision's dataset class (train=True/False per entry of `splits`) into `target`.
    Needs network access; raises whatever torchvision raises."""
    import torchvision.datasets

    target.mkdir(parents=True, exist_ok=True)
    for train in splits:
        getattr(torchvision.datasets, class_name)(str(target), train=train, download=True)


def not_found(what: str, places: list[SearchPlace], download: str, fixes: str) -> DatasetError:
    return DatasetError(f"{what} not found; looked in {describe_places(places)}; download {download}; "
                        f"fix: {fixes}")


def locate(title: str, class_name: str, root: str, split: str, download: bool, subfolders: list[str],
           holds: Callable[[Path], bool], files: str, layout: str, hint: str = "",
           fallback: Callable[[], InMemoryImages] | None = None) -> Path | InMemoryImages:
    """Search, then download when asked, then the fallback; else one DatasetError saying where it looked.

    A `root` the user set must exist (a typo must not silently train on another copy or the embedded sample),
    except with `download`, where a root that does not exist yet is where the download goes: then nothing
    else is searched."""
    places = search_places(root)
    if root and not places[0].path.is_dir():
        where = places[0].path
        wanted = f"{title} {split} files ({files}; {layout})"
        if where.exists():
            raise DatasetError(f"dataset.root = {root!r} is a file, not a folder; set it to the folder holding "
                               f"the {wanted}")
        if not download:
            raise DatasetError(f"dataset.root = {root!r} does not exist; set it to a folder holding the {wanted}, "
                               "or set dataset.download = true to download into it, or leave it empty (\"\") to "
                               f"search ${DATA_ENV}, the cache and the system dataset folders")
        places = places[:1]
    folder = find(places, subfolders, holds)
    if folder is not None:
        return folder
    if not download:
        if fallback is not None:
            return fallback()
        outcome = "not attempted (dataset.download = false)"
    else:
        target = download_dir(root)
        try:
            download_with_torchvision(class_name, target, tuple(s == "train" for s in (("train", "test") if split == "all" else (split,))))
        except Exception as exc:  # noqa: BLE001 - urllib, torchvision and disk errors all mean "it failed"
            outcome = f"into {target} failed ({one_line(exc)})"
        else:
            folder = find([SearchPlace("dataset.root", target)], subfolders, holds)
            if folder is not None:
                return folder
            outcome = f"into {target} finished but the files are not there"
    fixes = (f"set dataset.root to a folder holding {files} ({layout}), or point ${DATA_ENV} at a "
             f"folder that holds it, or set dataset.download = true on a machine with network access")
    if hint:
        fixes += f", or {hint}"
    raise not_found(f"{title} {split} files ({files})", places, outcome, fixes)


def load_idx_dataset(spec: IdxDataset, root: str = "", split: str = "train", download: bool = True,
                     fallback: Callable[[], InMemoryImages] | None = None) -> InMemoryImages:
    """Images and labels of an MNIST-style dataset, found as described in the module docstring."""
    prefixes = IDX_PREFIXES[split]

    def holds(folder: Path) -> bool:
        return all(idx_file(folder, p, k) is not None for p in prefixes for k in ("images", "labels"))

    files = " and ".join(f"{p}-{k}-{'idx3' if k == 'images' else 'idx1'}-ubyte[.gz]"
                         for p in prefixes for k in ("images", "labels"))
    subfolders = [f"{spec.torchvision_name}/raw"] + [f for name in spec.folder_names for f in (name, f"{name}/raw")]
    found = locate(spec.title, spec.torchvision_name, root, split, download, subfolders, holds, files,
                   f"flat, or torchvision's {spec.torchvision_name}/raw layout", spec.install_hint, fallback)
    if isinstance(found, InMemoryImages):
        return found
    images, labels = [], []
    for prefix in prefixes:
        image_path, label_path = idx_file(found, prefix, "images"), idx_file(found, prefix, "labels")
        x, y = read_idx_images(image_path), read_idx_labels(label_path)
        if len(x) != len(y):
            raise DatasetError(f"{image_path} has {len(x)} images but {label_path} has {len(y)} labels; "
                               "one of them is from another dataset or damaged, download them again")
        if y.size and int(y.max()) >= len(spec.class_names):
            raise DatasetError(f"{label_path}: label {int(y.max())} is outside 0..{len(spec.class_names) - 1}")
        images.append(x)
        labels.append(y)
    x = np.concatenate(images) if len(images) > 1 else images[0]
    y = np.concatenate(labels) if len(labels) > 1 else labels[0]
    return InMemoryImages(
        f"{spec.title} {split}, {len(x)} images from {found}", spec.flip_default,
        images=torch.from_numpy(np.array(x, dtype=np.uint8)).unsqueeze(1),
        labels=torch.from_numpy(y.astype(np.int64)), class_names=spec.class_names)


CIFAR_FOLDER = "cifar-10-batches-py"
CIFAR_BATCHES = {"train": cifar.TRAIN_BATCHES, "test": cifar.TEST_BATCHES,
                 "all": cifar.TRAIN_BATCHES + cifar.TEST_BATCHES}


def load_cifar10(root: str = "", split: str = "train", download: bool = True) -> InMemoryImages:
    """CIFAR-10's python batches (Krizhevsky 2009), found as described in the module docstring."""
    names = CIFAR_BATCHES[split]

    def holds(folder: Path) -> bool:
        return all((folder / n).is_file() for n in names)

    subfolders = [CIFAR_FOLDER] + [f for name in ("cifar10", "cifar-10", "CIFAR10") for f in (f"{name}/{CIFAR_FOLDER}", name)]
    files = f"{CIFAR_FOLDER}/{names[0]}" + (f"..{names[-1]}" if len(names) > 1 else "")
    found = locate("CIFAR-10", "CIFAR10", root, split, download, subfolders, holds, files,
                   f"the extracted {CIFAR_FOLDER} folder or its parent")
    assert isinstance(found, Path)
    parts = [cifar.read_cifar_batch(found / n) for n in names]
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    return InMemoryImages(f"CIFAR-10 {split}, {len(x)} images from {found}", True,
                          images=torch.from_numpy(x), labels=torch.from_numpy(y),
                          class_names=cifar.read_class_names(found))


def check_split(params: dict, allowed: tuple[str, ...] = SPLITS) -> None:
    if params["split"] not in allowed:
        raise ValueError(f"split = {params['split']!r}; choose one of {', '.join(allowed)}")
