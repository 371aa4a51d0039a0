"""Preview grids during training: the EMA weights (or the raw ones without EMA) sample from the run's fixed
x_T with a sampler generator reseeded each time, so every grid starts from the same noise and differences
between grids are the model's progress, not a new draw."""

from __future__ import annotations

import numpy as np
import torch

from workbench.diffusion import sample_images
from workbench.diffusion.finite import require_finite
from workbench.engine.grid import make_grid, to_uint8
from workbench.engine.setup import Components, derived_seed


@torch.no_grad()
def preview_grid(c: Components) -> np.ndarray:
    """A uint8 (H, W, C) grid of cfg.sample.n samples."""
    cfg = c.cfg
    net = c.ema.module if c.ema is not None else c.model
    was_training = net.training
    net.eval()
    labels = c.sample_labels
    model_fn = (lambda x, t: net(x, t, y=labels)) if labels is not None else net
    generator = torch.Generator().manual_seed(derived_seed(cfg.run.seed, "sampler"))
    try:
        with c.precision.autocast(c.device):
            images = sample_images(model_fn, c.diffusion, c.sampler, tuple(c.sample_noise.shape),
                                   steps=cfg.sample.steps, generator=generator, device=c.device,
                                   clip_x0=cfg.sample.clip_x0, dynamic_threshold=cfg.sample.dynamic_threshold,
                                   noise=c.sample_noise)
    finally:
        net.train(was_training)
    require_finite(images, sampler=c.sampler, backbone=cfg.backbone.name, where=" of the preview")
    return make_grid(to_uint8(images))
