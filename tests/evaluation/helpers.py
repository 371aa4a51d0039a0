"""Small stand-ins for evaluation tests: a cheap feature extractor and image sets written as .npy files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


class MeanPoolFeatures:
    """Features = the image averaged over a 4x4 grid of cells (16-d): cheap, deterministic, image-aware."""

    name = "mean-pool"
    version = "1"
    dim = 16
    frechet_label = "FD_mean-pool"
    kernel_label = "KD_mean-pool"

    def refuse(self, channels: int, size: int):
        return None if channels == 1 else "grayscale only"

    def to(self, device):
        return self

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.adaptive_avg_pool2d(images.float() / 255, 4).flatten(1)


def noise_images(n: int, size: int = 16, seed: int = 0) -> np.ndarray:
    """uint8 (n, size, size) smooth random blobs."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, size=(n, size // 4, size // 4))
    return np.kron(coarse, np.ones((4, 4))).astype(np.uint8)


def write_npy(path: Path, images: np.ndarray) -> Path:
    np.save(path, images)
    return path


def dataset_section(path: Path, *extra: str):
    from workbench.config import load_config

    return load_config(None, ["dataset.name=npy", f"dataset.path={path}", "dataset.pad_to=0", *extra],
                       search_cwd=False).dataset
