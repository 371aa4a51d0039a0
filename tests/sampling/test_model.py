"""The one path to sample a model: loading, the model function (labels, precision, float32 output), eval mode;
training previews and `sample` both go through it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from workbench.pictures import native_pixels
from workbench.sampling.model import evaluating, model_function


class Recording(torch.nn.Module):
    """A stand-in backbone that records what it is called with and returns x + 1 in the input dtype."""

    def __init__(self):
        super().__init__()
        self.calls = []
        self.scale = torch.nn.Parameter(torch.ones(()))

    def forward(self, x, t, y=None):
        self.calls.append((x.dtype, torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None,
                           None if y is None else y.tolist()))
        return (x * self.scale + 1).to(torch.bfloat16 if torch.is_autocast_enabled("cpu") else x.dtype)


def test_the_model_function_passes_labels_as_y_repeated_for_a_larger_batch():
    net = Recording()
    fn = model_function(net, torch.device("cpu"), labels=torch.tensor([3, 5]))
    fn(torch.zeros(2, 1, 2, 2), torch.zeros(2, dtype=torch.long))
    fn(torch.zeros(4, 1, 2, 2), torch.zeros(4, dtype=torch.long))  # e.g. guidance doubles the batch
    assert [call[2] for call in net.calls] == [[3, 5], [3, 5, 3, 5]]


def test_the_model_function_autocasts_when_asked_and_always_returns_float32():
    net = Recording()
    for dtype in (None, torch.bfloat16):
        out = model_function(net, torch.device("cpu"), autocast_dtype=dtype)(torch.zeros(1, 1, 2, 2), torch.zeros(1))
        assert out.dtype == torch.float32 and torch.equal(out, torch.ones(1, 1, 2, 2))
    assert [call[1] for call in net.calls] == [None, torch.bfloat16]


def test_evaluating_puts_a_live_model_back_in_the_mode_it_was_in():
    net = Recording().train()
    with pytest.raises(RuntimeError), evaluating(net):
        assert not net.training
        raise RuntimeError("a sampler failed")
    assert net.training
    with evaluating(net.eval()):
        pass
    assert not net.training


def test_a_preview_grid_is_what_the_sample_path_gives_from_the_checkpoint(tmp_path):
    # Previews sample the EMA weights from the run's fixed x_T with a reseeded generator; loading the step-12
    # checkpoint and sampling it through the same model function must redraw the step-12 preview exactly.
    from tests.engine.conftest import tiny_config
    from workbench.diffusion import build_sampler, sample_images
    from workbench.engine import train
    from workbench.engine.setup import derived_seed
    from workbench.pictures import make_grid, to_uint8
    from workbench.sampling.model import load_for_sampling

    run = train(tiny_config(tmp_path, "run.name=previews", "sample.name=heun"))
    bundle = load_for_sampling(checkpoint=str(run.latest_checkpoint))
    assert bundle.ema and bundle.step == 12
    cfg = bundle.cfg
    x_T = torch.randn((cfg.sample.n, bundle.channels, bundle.image_size, bundle.image_size),
                      generator=torch.Generator().manual_seed(derived_seed(cfg.run.seed, "samples")))
    images = sample_images(model_function(bundle.model, torch.device("cpu")), bundle.diffusion,
                           build_sampler(cfg.sample), x_T.shape, steps=cfg.sample.steps, noise=x_T,
                           generator=torch.Generator().manual_seed(derived_seed(cfg.run.seed, "sampler")),
                           clip_x0=cfg.sample.clip_x0, dynamic_threshold=cfg.sample.dynamic_threshold)
    with Image.open(run.sample_grids()[-1]) as png:
        preview = np.asarray(native_pixels(png))  # saved enlarged (sample.grid_scale); the drawn pixels
    assert run.sample_grids()[-1].name == "step_0000012.png"
    np.testing.assert_array_equal(make_grid(to_uint8(images))[:, :, 0], preview)
