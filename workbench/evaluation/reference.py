"""Reference statistics: mean and covariance (and some features, for KID and precision/recall) of a
reference image set in an extractor's feature space, computed once and cached by the set's identity.

A dataset reference is identified by the dataset plugin's name and parameters (split included), padding and
limit, the image shape, the extractor's name and version, and a SHA-256 of the images' bytes: any change of
the source (new files, another split, another extractor version) gives another cache entry, never a stale
one. Entries live in <cache dir>/reference/<extractor>/ (the cache dir of workbench.data.locations:
$XDG_CACHE_HOME/ddpm-workbench or ~/.cache/ddpm-workbench) as .npz files with `mu`, `sigma` (the keys
pytorch-fid and clean-fid use, so their statistics files load here too and ours load there), `features`
and `n`.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from workbench.errors import UsageError
from workbench.evaluation.metrics import GaussianStats, gaussian_stats

KEPT_FEATURES = 10_000  # features kept with the statistics, for KID and precision/recall (a seeded subset)
CACHE_FOLDER = "reference"


@dataclass
class ReferenceStats:
    stats: GaussianStats
    features: np.ndarray | None    # float (M, D), M <= KEPT_FEATURES; None for a mu/sigma-only .npz
    extractor: str                 # the extractor's name, "" when the file does not say
    channels: int | None           # image shape of the set (None when unknown: a precomputed .npz)
    image_size: int | None
    description: str               # "fashion-mnist split=test (10000 images)" or the .npz path


def cache_root() -> Path:
    from workbench.data.locations import cache_dir

    return cache_dir() / CACHE_FOLDER


def load_reference_npz(path: str | Path, extractor, option: str = "--reference") -> ReferenceStats:
    """Statistics from a .npz with `mu` (D,) and `sigma` (D, D) (pytorch-fid / clean-fid format), plus
    `features` when it has them."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{option} {str(path)!r} does not exist")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.keys()}
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same one line
        raise UsageError(f"{option} {str(path)!r} cannot be read as .npz ({type(exc).__name__})") from None
    if "mu" not in arrays or "sigma" not in arrays:
        raise UsageError(f"{option} {str(path)!r} has no 'mu' and 'sigma' arrays (it holds "
                         f"{', '.join(arrays) or 'nothing'}); give statistics in pytorch-fid's format")
    mu, sigma = arrays["mu"].astype(np.float64), arrays["sigma"].astype(np.float64)
    if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
        raise UsageError(f"{option} {str(path)!r}: mu {mu.shape} and sigma {sigma.shape} are not (D,) and (D, D)")
    if mu.shape[0] != extractor.dim:
        raise UsageError(f"{option} {str(path)!r} holds {mu.shape[0]}-d statistics; feature extractor "
                         f"{extractor.name!r} gives {extractor.dim}-d features (use the extractor they were made with)")
    named = str(arrays["extractor"]) if "extractor" in arrays else ""
    if named and named != extractor.name:
        raise UsageError(f"{option} {str(path)!r} was made with feature extractor {named!r}, not {extractor.name!r}; "
                         f"use --extractor {named}")
    features = arrays.get("features")
    n = int(arrays["n"]) if "n" in arrays else (len(features) if features is not None else 0)
    shape = arrays.get("image_shape")
    channels, size = (int(shape[0]), int(shape[1])) if shape is not None else (None, None)
    return ReferenceStats(GaussianStats(mu, sigma, n), features, named or extractor.name, channels, size, str(path))


def save_reference_npz(reference: ReferenceStats, file) -> None:
    """Write statistics (pytorch-fid's keys plus ours) to an open binary file or a path."""
    arrays: dict[str, Any] = {"mu": reference.stats.mu, "sigma": reference.stats.sigma,
                              "n": np.int64(reference.stats.n), "extractor": np.str_(reference.extractor)}
    if reference.features is not None:
        arrays["features"] = reference.features.astype(np.float32)
    if reference.channels is not None:
        arrays["image_shape"] = np.array([reference.channels, reference.image_size], dtype=np.int64)
    np.savez(file, **arrays)


# -- dataset references ----------------------------------------------------------------------------


@dataclass
class ReferenceImages:
    images: torch.Tensor           # uint8 (N, C, S, S), padded as training pads them
    identity: dict[str, Any]       # what the cache key is made of
    description: str


def reference_images(dataset_section) -> ReferenceImages:
    """All images of a resolved config's [dataset] section (its plugin, params, limit and padding), on the CPU."""
    from workbench.components import call_factory, chosen, label
    from workbench.data.build import check_source
    from workbench.data.preprocess import pad_images, square_size
    from workbench.data.source import InMemoryImages

    name = dataset_section.name
    params = dict(dataset_section.params)
    component = chosen(dataset_section)
    source = call_factory(component, section="dataset", **params)
    check_source(source, label(component))
    limit = int(dataset_section.limit)
    count = min(source.num_images, limit) if limit else source.num_images
    if isinstance(source, InMemoryImages):
        images = source.images[:count]
    else:
        items = [source.dataset[i] for i in range(count)]
        images = torch.stack([item[0] if isinstance(item, (tuple, list)) else item for item in items])
    images = pad_images(images, int(dataset_section.pad_to))
    square_size(int(images.shape[2]), int(images.shape[3]), f"dataset {name!r}")
    described = ", ".join(f"{k}={v}" for k, v in sorted(params.items()) if k in ("split", "path", "size"))
    identity = {"dataset": name, "params": {k: str(v) for k, v in sorted(params.items())},
                "limit": limit, "pad_to": int(dataset_section.pad_to), "shape": list(images.shape[1:]),
                "content_sha256": hashlib.sha256(images.contiguous().numpy().tobytes()).hexdigest()}
    description = f"{name}{' ' + described if described else ''} ({len(images)} images)"
    return ReferenceImages(images, identity, description)


def cache_path(reference: ReferenceImages, extractor) -> Path:
    identity = dict(reference.identity, extractor=extractor.name, extractor_version=extractor.version)
    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:20]
    split = reference.identity["params"].get("split", "")
    channels, size = reference.identity["shape"][0], reference.identity["shape"][1]
    stem = "-".join(part for part in (reference.identity["dataset"], split, f"{channels}x{size}px", key) if part)
    return cache_root() / extractor.name / f"{stem}.npz"


def compute_reference(images: ReferenceImages, extractor, *, device="cpu", batch_size: int = 500,
                      on_batch: Callable[[int, int], None] | None = None) -> ReferenceStats:
    from workbench.evaluation.extractors import extract_features

    features = extract_features(extractor, images.images, device=device, batch_size=batch_size, on_batch=on_batch)
    kept = features
    if len(features) > KEPT_FEATURES:
        kept = features[np.random.RandomState(0).choice(len(features), KEPT_FEATURES, replace=False)]
    channels, size = images.identity["shape"][0], images.identity["shape"][1]
    return ReferenceStats(gaussian_stats(features), kept.astype(np.float32), extractor.name, channels, size,
                          images.description)


def dataset_reference(dataset_section, extractor, *, device="cpu", batch_size: int = 500, use_cache: bool = True,
                      on_batch=None, on_note: Callable[[str], None] | None = None) -> ReferenceStats:
    """The statistics of a dataset reference: from the cache when its identity matches, else computed (and
    cached; a cache that cannot be written is a note, not an error)."""
    note = on_note or (lambda text: None)
    images = reference_images(dataset_section)
    path = cache_path(images, extractor)
    if use_cache and path.is_file():
        try:
            cached = load_reference_npz(path, extractor)
            cached.description = images.description
            cached.channels, cached.image_size = images.identity["shape"][0], images.identity["shape"][1]
            return cached
        except UsageError:
            note(f"cached reference statistics {path} are unreadable; computing them again")
    note(f"computing reference statistics of {images.description} with {extractor.name} (cached in {path.parent})")
    reference = compute_reference(images, extractor, device=device, batch_size=batch_size, on_batch=on_batch)
    if use_cache:
        try:
            write_atomically(path, lambda f: save_reference_npz(reference, f))
        except OSError as exc:
            note(f"could not cache the reference statistics in {path.parent} ({exc.strerror or exc}); "
                 "they will be computed again next time")
    return reference


def write_atomically(path: Path, writer: Callable) -> None:
    """Write through a temporary beside `path` and rename it over, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temp, "wb") as f:
            writer(f)
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
