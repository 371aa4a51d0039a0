"""Preview grids during training: the EMA weights (or the raw ones without EMA) sample from the run's fixed
x_T with a sampler generator reseeded each time, so every grid starts from the same noise and differences
between grids are the model's progress, not a new draw. The network is called through the same
`model_function` as `ddpm-workbench sample`, at the training precision."""

from __future__ import annotations

import numpy as np
import torch

from workbench.diffusion import sample_images
from workbench.engine.setup import TrainingRun, derived_seed
from workbench.pictures import make_grid, to_uint8
from workbench.sampling.model import evaluating, model_function


@torch.no_grad()
def preview_grid(run: TrainingRun) -> np.ndarray:
    """A uint8 (H, W, C) grid of cfg.sample.n samples."""
    cfg = run.cfg
    net = run.ema.module if run.ema is not None else run.model
    model_fn = model_function(net, run.device, labels=run.sample_labels, autocast_dtype=run.precision.dtype,
                              channels_last=run.precision.channels_last)
    generator = torch.Generator().manual_seed(derived_seed(cfg.run.seed, "sampler"))
    with evaluating(net):
        images = sample_images(model_fn, run.diffusion, run.sampler, tuple(run.sample_noise.shape),
                               steps=cfg.sample.steps, generator=generator, device=run.device,
                               clip_x0=cfg.sample.clip_x0, dynamic_threshold=cfg.sample.dynamic_threshold,
                               noise=run.sample_noise)
    return make_grid(to_uint8(images))
