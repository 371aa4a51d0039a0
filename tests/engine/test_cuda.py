"""Training and sampling on a CUDA device (marked `cuda`: skipped without one; bench/gpu_check.sh runs them on a
lent GPU). What the CPU tests cannot show: bf16 autocast with channels_last and fused AdamW on the GPU, a
checkpoint written on the GPU that resumes and samples on the CPU, and the same images on both."""

from __future__ import annotations

import pytest
import torch

from tests.engine.conftest import metric_losses, tiny_config
from workbench.engine import train
from workbench.engine.checkpoint import load_checkpoint
from workbench.sampling.generate import SampleSettings, generate
from workbench.sampling.model import load_for_sampling

pytestmark = pytest.mark.cuda


def test_a_gpu_run_trains_in_bf16_channels_last_and_its_checkpoint_loads_on_the_cpu(tmp_path):
    cfg = tiny_config(tmp_path, "run.device=cuda", "train.precision=auto", "train.channels_last=auto",
                      "train.steps=8", "train.log_every=4")
    run = train(cfg)
    losses = metric_losses(run)
    assert len(losses) == 2 and all(0 < v < 10 for v in losses.values())
    state = load_checkpoint(run.latest_checkpoint, map_location="cpu")
    assert state["step"] == 8 and all(t.device.type == "cpu" for t in state["model"].values())
    resumed = train(tiny_config(tmp_path, "run.device=cpu", "train.steps=10", "train.log_every=2"),
                    resume=run.path.name)
    assert load_checkpoint(resumed.latest_checkpoint)["step"] == 10


def test_sampling_on_the_gpu_matches_the_cpu_image_for_image(tmp_path):
    run = train(tiny_config(tmp_path, "train.steps=4", "train.log_every=2"))
    settings = SampleSettings(n=6, steps=10, seed=5, batch_size=3, precision="fp32")
    images = {}
    for name in ("cpu", "cuda"):
        device = torch.device(name)
        bundle = load_for_sampling(run=str(run.path), device=device)
        from workbench.diffusion import build_sampler

        images[name] = generate(bundle, build_sampler(bundle.cfg.sample), settings, device=device).images
    # uint8 pixels; fp32 kernels differ in the last bits, so a pixel may round the other way
    assert (images["cpu"].int() - images["cuda"].int()).abs().max() <= 2
