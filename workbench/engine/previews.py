"""Preview grids during training: the EMA weights (or the raw ones without EMA) sample from the run's fixed
x_T with a sampler generator reseeded each time, so every grid starts from the same noise and differences
between grids are the model's progress, not a new draw. The network is called through the same
`model_function` as `ddpm-workbench sample`, at the training precision. A class-conditional run's grid has
one row per class, named on its left, sampled with classifier-free guidance at sample.guidance (titled)."""

from __future__ import annotations

import time

import numpy as np
import torch

from workbench.diffusion import sample_images
from workbench.diffusion.finite import require_finite
from workbench.engine.metrics import sync_device
from workbench.engine.setup import TrainingRun, derived_seed
from workbench.pictures import make_grid, to_uint8
from workbench.sampling.classes import class_name
from workbench.sampling.layout import labelled_grid, titled
from workbench.sampling.model import evaluating, model_function


def _preview_model(run: TrainingRun):
    """(net, model_fn, classes, guidance) of the preview grids: the EMA weights (or the raw ones without EMA)
    called like `ddpm-workbench sample` calls them, at the training precision."""
    cfg = run.cfg
    net = run.ema.module if run.ema is not None else run.model
    classes = int(cfg.backbone.params.get("num_classes") or 0) if run.sample_labels is not None else 0
    guidance = cfg.sample.guidance if classes else 1.0
    model_fn = model_function(net, run.device, labels=run.sample_labels, guidance=guidance,
                              null_label=classes or None, autocast_dtype=run.precision.dtype,
                              channels_last=run.precision.channels_last)
    return net, model_fn, classes, guidance


@torch.no_grad()
def preview_grid(run: TrainingRun) -> np.ndarray:
    """A uint8 (H, W, C) grid of cfg.sample.n samples (class-conditional: a row per class)."""
    cfg = run.cfg
    net, model_fn, classes, guidance = _preview_model(run)
    generator = torch.Generator().manual_seed(derived_seed(cfg.run.seed, "sampler"))
    with evaluating(net):
        images = sample_images(model_fn, run.diffusion, run.sampler, tuple(run.sample_noise.shape),
                               steps=cfg.sample.steps, generator=generator, device=run.device,
                               clip_x0=cfg.sample.clip_x0, dynamic_threshold=cfg.sample.dynamic_threshold,
                               noise=run.sample_noise)
    require_finite(images, sampler=run.sampler, backbone=cfg.backbone.name, where=" of the preview")
    if not classes:
        return make_grid(to_uint8(images))
    names = [class_name(c, run.data.class_names) for c in range(classes)]
    grid = labelled_grid(to_uint8(images), len(images) // classes, row_labels=names)
    return titled(grid, f"guidance {guidance:g}")


@torch.no_grad()
def preview_call_seconds(run: TrainingRun) -> float:
    """Seconds of one network call of a preview grid (the preview batch, doubled by classifier-free guidance
    where the grid uses it, on the weights the grid samples from), timed after one untimed call that lets
    oneDNN / cuDNN set up the shape. Draws no random numbers: training goes on exactly as without it."""
    net, model_fn, _, _ = _preview_model(run)
    x = run.sample_noise
    t = torch.full((x.shape[0],), run.diffusion.num_timesteps // 2, dtype=torch.long, device=run.device)
    with evaluating(net):
        model_fn(x, t)
        sync_device(run.device)
        started = time.perf_counter()
        model_fn(x, t)
        sync_device(run.device)
    return time.perf_counter() - started
