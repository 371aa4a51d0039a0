"""Sampling many images from a trained model in batches, fast and reproducibly.

The batch stays on the device for the whole reverse process; the only host syncs are the copy of each
finished batch to the CPU (as uint8) and, for a progression, the kept frames after the first batch. With
precision "auto" the network runs under bf16 autocast where training does (CUDA GPUs with bf16, CPUs with
AMX), with channels_last memory on CUDA and in float32 on a CPU; its output is cast back to float32 so the
sampler's arithmetic stays in full precision. On a CPU the network sees at most `cpu_chunk_images` images at
a time (workbench.sampling.model), whatever the batch size.

Image i always starts from the same noise x_T (see `workbench.sampling.seeding`), whatever the batch size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from workbench.pictures import to_uint8
from workbench.sampling.model import SamplingBundle, model_function, sampling_channels_last, sampling_dtype
from workbench.sampling.seeding import starting_noise, step_noise_generators


@dataclass
class SampleSettings:
    """What to sample: `n` images in batches of `batch_size` with `steps` sampler steps."""

    n: int
    steps: int
    seed: int = 0
    batch_size: int = 64
    clip_x0: bool = True
    dynamic_threshold: float = 0.0
    label: int | None = None  # class-conditional models: this class for all images; None: cycle 0..K-1
    labels: tuple[int, ...] | None = None  # or the class of each image (n of them), overriding `label`
    guidance: float = 1.0     # classifier-free guidance W (class-conditional models; see model_function)
    precision: str = "auto"  # auto (bf16 where training uses it), bf16 or fp32


@dataclass
class SampleResult:
    images: torch.Tensor           # uint8 (N, C, H, W) on the CPU
    labels: torch.Tensor | None    # int64 (N,) for class-conditional models, else None


def resolve_device(name: str | None) -> torch.device:
    """A command's --device (None: auto), by training's rules (workbench.engine.distributed.resolve_device)."""
    from workbench.engine.distributed import resolve_device as resolve
    from workbench.errors import UsageError

    return resolve(name or "auto", option="--device", error=UsageError)


def class_count(cfg) -> int:
    """Number of classes of a class-conditional backbone (0 for unconditional ones)."""
    value = cfg.backbone.params.get("num_classes") if hasattr(cfg.backbone, "params") else None
    return int(value or 0)


def image_labels(n: int, num_classes: int, label: int | None,
                 labels: tuple[int, ...] | None = None) -> torch.Tensor | None:
    """Labels of images 0..n-1: `labels` when given (n of them), else `label` for all, else 0, 1, ..., K-1,
    0, 1, ... (same at any batch size)."""
    if num_classes <= 0:
        return None
    if labels is not None:
        if len(labels) != n:
            raise ValueError(f"{len(labels)} labels for {n} images")
        return torch.tensor(list(labels), dtype=torch.long)
    if label is not None:
        return torch.full((n,), int(label), dtype=torch.long)
    return torch.arange(n, dtype=torch.long) % num_classes


def generate(bundle: Any, sampler: Any, settings: SampleSettings, *, device: torch.device,
             on_step: Callable[[Any], None] | None = None, on_batch: Callable[[int, int], None] | None = None,
             first_batch_callback: Callable[[Any], None] | None = None) -> SampleResult:
    """Sample `settings.n` images from `bundle` (a workbench.sampling.model.SamplingBundle) with `sampler`.

    on_step(step) runs at every sampler step of every batch (progress bars; it must not sync),
    first_batch_callback(step) at every step of the first batch only (progression recording), and
    on_batch(done, n) after each batch is on the CPU.
    """
    from workbench.diffusion import sample_images
    from workbench.diffusion.finite import require_finite

    shape = (bundle.channels, bundle.image_size, bundle.image_size)
    classes = class_count(bundle.cfg)
    all_labels = image_labels(settings.n, classes, settings.label, settings.labels)
    dtype = sampling_dtype(settings.precision, device)
    # Only a model loaded for sampling (load_for_sampling) is moved to another memory format: a live training
    # model (evaluation during training) keeps the format its optimizer and compiled graphs were built with.
    channels_last = sampling_channels_last(device, dtype) if isinstance(bundle, SamplingBundle) else None
    chunks: list[torch.Tensor] = []
    with torch.inference_mode():
        for start in range(0, settings.n, settings.batch_size):
            count = min(settings.batch_size, settings.n - start)
            noise = starting_noise(settings.seed, start, count, shape).to(device, non_blocking=True)
            labels = all_labels[start:start + count].to(device) if all_labels is not None else None
            callback = _combine(on_step, first_batch_callback if start == 0 else None)
            model_fn = model_function(bundle.model, device, labels=labels, guidance=settings.guidance,
                                      null_label=classes or None, autocast_dtype=dtype,
                                      channels_last=channels_last)
            images = sample_images(model_fn, bundle.diffusion, sampler, (count, *shape),
                                   steps=settings.steps, generator=step_noise_generators(settings.seed, start, count, device),
                                   device=device, clip_x0=settings.clip_x0,
                                   dynamic_threshold=settings.dynamic_threshold, callback=callback, noise=noise)
            require_finite(images, sampler=sampler, backbone=bundle.cfg.backbone.name,
                           where=f" {start + 1}..{start + count}; nothing was written (try an earlier checkpoint "
                                 "or another sampler)")
            chunks.append(to_uint8(images))  # the one host sync per batch
            if on_batch is not None:
                on_batch(start + count, settings.n)
    return SampleResult(torch.cat(chunks), all_labels)


def _combine(*callbacks):
    active = [c for c in callbacks if c is not None]
    if not active:
        return None
    if len(active) == 1:
        return active[0]

    def callback(step):
        for c in active:
            c(step)
    return callback
