"""Feature extractors: what a `register_feature_extractors` plugin provides, and how the host runs one.

A factory returns an object with
- `name` (str) and `version` (str): part of every cached reference statistic's identity, so a new version
  of a network never reuses features of the old one;
- `dim` (int): the feature dimension;
- `frechet_label` / `kernel_label` (str): how results are labelled: "FID"/"KID" only for the standard
  Inception network, so that a distance in another feature space is never mistaken for a published FID;
- `refuse(channels, size) -> str | None`: why images of that shape cannot be scored ("" or None: they can);
- `to(device)`: move the network, returning the extractor;
- `__call__(images) -> features`: uint8 images (B, C, H, W) on the device -> float features (B, dim).

`extract_features` runs one in batches without autograd and returns float64 numpy features.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from workbench.errors import PluginError, UsageError, did_you_mean

AUTO = "auto"
INCEPTION = "inception"
SMALL_GRAYSCALE = "fashion-classifier"


def choose_extractor(name: str, channels: int, size: int) -> str:
    """`auto`: the shipped classifier for grayscale images of at most 32 px (offline, seconds on a CPU),
    Inception (published FIDs) for everything else; any other name is taken as it is."""
    if name != AUTO:
        return name
    return SMALL_GRAYSCALE if channels == 1 and size <= 32 else INCEPTION


def build_extractor(name: str, params: dict[str, Any] | None = None, *, option: str = "--extractor"):
    """The feature extractor registered as `name` in the plugin host, built with those of `params` it takes,
    and checked; errors are one line (workbench.components' policy)."""
    from workbench.components import call_factory
    from workbench.plugin_host import get_host

    registry = get_host().registries["feature_extractor"]
    if name not in registry:
        raise UsageError(f"{option} {name!r}: no such feature extractor{did_you_mean(name, registry.names())}; "
                         f"installed: {', '.join(registry.names()) or 'none'}")
    component = registry.get(name)
    params = {k: v for k, v in (params or {}).items() if k in component.params}
    resolved = component.resolve_params(params, section="feature_extractor")
    extractor = call_factory(component, section="feature_extractor", **resolved)
    check_extractor(extractor, f"feature extractor {name!r} (plugin {component.plugin})")
    return extractor


def check_extractor(extractor: Any, label: str) -> None:
    for attribute in ("name", "version", "frechet_label", "kernel_label"):
        if not isinstance(getattr(extractor, attribute, None), str):
            raise PluginError(f"{label} returned an object without a string {attribute!r}")
    if not isinstance(getattr(extractor, "dim", None), int) or extractor.dim < 1:
        raise PluginError(f"{label} returned an object without a positive integer 'dim'")
    for method in ("refuse", "to", "__call__"):
        if not callable(getattr(extractor, method, None)):
            raise PluginError(f"{label} returned an object without a {method}() method")


def check_images_for(extractor: Any, channels: int, size: int, what: str) -> None:
    reason = extractor.refuse(channels, size)
    if reason:
        raise UsageError(f"{what}: feature extractor {extractor.name!r} cannot score {channels}x{size}x{size} "
                         f"images: {reason}")


def extract_features(extractor: Any, images: torch.Tensor, *, device: torch.device | str = "cpu",
                     batch_size: int = 500, on_batch: Callable[[int, int], None] | None = None) -> np.ndarray:
    """float64 features (N, dim) of uint8 images (N, C, H, W) (on any device), in batches."""
    device = torch.device(device)
    chunks = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            batch = images[start:start + batch_size].to(device, non_blocking=True)
            features = extractor(batch)
            if tuple(features.shape) != (len(batch), extractor.dim):
                raise PluginError(f"feature extractor {extractor.name!r} returned features of shape "
                                  f"{tuple(features.shape)} for {len(batch)} images; expected ({len(batch)}, "
                                  f"{extractor.dim})")
            chunks.append(features.double().cpu().numpy())
            if on_batch is not None:
                on_batch(start + len(batch), len(images))
    return np.concatenate(chunks) if chunks else np.zeros((0, extractor.dim))
