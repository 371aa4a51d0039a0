"""The CPU sampling path: the network sees at most `cpu_chunk_images` images at a time (same numbers as one
call), and a model loaded for sampling runs in channels_last under float32, a live training model never."""

from __future__ import annotations

import pytest
import torch

import workbench.sampling.model as sampling_model
from workbench.sampling.model import cpu_chunk_images, model_function, sampling_channels_last

CPU = torch.device("cpu")


class BatchRecorder(torch.nn.Module):
    """Records the batch size of each call; the output mixes x, t and y per image, so a misplaced slice shows."""

    def __init__(self):
        super().__init__()
        self.batches: list[int] = []
        self.weight = torch.nn.Parameter(torch.tensor(0.5))

    def forward(self, x, t, y=None):
        self.batches.append(x.shape[0])
        out = x * self.weight + t.float().reshape(-1, 1, 1, 1) / 1000
        return out if y is None else out + y.float().reshape(-1, 1, 1, 1)


def small_chunks(monkeypatch, images: int, size: int = 4) -> None:
    monkeypatch.setattr(sampling_model, "CPU_CHUNK_PIXELS", images * size * size)


def test_chunks_hold_a_fixed_number_of_pixels_and_at_least_one_image():
    assert cpu_chunk_images((1, 28, 28)) == 20
    assert cpu_chunk_images((3, 32, 32)) == 16
    assert cpu_chunk_images((3, 256, 256)) == 1
    assert cpu_chunk_images((1, 28, 28), torch.bfloat16) == 83  # half-size activations, longer AMX rows


def test_a_large_batch_runs_in_chunks_and_gives_what_one_call_gives(monkeypatch):
    small_chunks(monkeypatch, 3)
    net = BatchRecorder()
    x, t = torch.randn(7, 1, 4, 4), torch.arange(7) * 100
    whole = model_function(net, CPU, chunk=False)(x, t)
    chunked = model_function(net, CPU)(x, t)
    assert net.batches == [7, 3, 3, 1]
    assert torch.equal(chunked, whole)


def test_a_scalar_timestep_is_spread_over_the_chunks(monkeypatch):
    small_chunks(monkeypatch, 2)
    net = BatchRecorder()
    x = torch.randn(5, 1, 4, 4)
    chunked = model_function(net, CPU)(x, torch.tensor(300))
    assert net.batches == [2, 2, 1]
    assert torch.equal(chunked, model_function(net, CPU, chunk=False)(x, torch.tensor(300)))


def test_labels_and_guidance_follow_their_images_into_the_chunks(monkeypatch):
    small_chunks(monkeypatch, 3)
    net = BatchRecorder()
    x, t = torch.randn(4, 1, 4, 4), torch.tensor([900, 500, 100, 10])
    labels = torch.tensor([0, 1, 2, 1])
    for guidance in (1.0, 0.0, 3.0):  # 3.0 runs one call of twice the batch: labels, then the no-label class
        whole = model_function(net, CPU, labels=labels, guidance=guidance, null_label=9, chunk=False)(x, t)
        chunked = model_function(net, CPU, labels=labels, guidance=guidance, null_label=9)(x, t)
        assert torch.equal(chunked, whole), guidance
    assert net.batches == [4, 3, 1, 4, 3, 1, 8, 3, 3, 2]


def test_chunk_false_turns_chunking_off():
    net = BatchRecorder()
    model_function(net, torch.device("cpu"), chunk=False)(torch.zeros(100, 1, 28, 28), torch.zeros(100))
    assert net.batches == [100]


def test_channels_last_only_for_float32_on_a_cpu_and_on_cuda():
    assert sampling_channels_last(CPU, None)
    assert not sampling_channels_last(CPU, torch.bfloat16)
    assert sampling_channels_last(torch.device("cuda"), torch.bfloat16)


def tiny_unet():
    from workbench.config import load_config
    from workbench.backbones import build_backbone
    from workbench.diffusion import GaussianDiffusion

    cfg = load_config(None, ["backbone.base_channels=8", "schedule.timesteps=50", "sample.name=ddim",
                             "sample.steps=4"], search_cwd=False)
    torch.manual_seed(0)
    model = build_backbone(cfg.backbone, in_channels=1, out_channels=1, image_size=8)
    for p in model.parameters():  # the zero-initialised last layers would make every output 0
        torch.nn.init.normal_(p, std=0.1)
    return cfg, model.eval(), GaussianDiffusion.from_config(cfg)


def _generate(bundle, cfg, batch_size: int):
    from workbench.diffusion import build_sampler
    from workbench.sampling.generate import SampleSettings, generate

    settings = SampleSettings(n=5, steps=4, batch_size=batch_size, precision="fp32")
    return generate(bundle, build_sampler(cfg.sample), settings, device=CPU).images


def test_a_model_loaded_for_sampling_runs_channels_last_and_images_do_not_depend_on_the_chunks(monkeypatch):
    from workbench.sampling.model import SamplingBundle

    cfg, model, diffusion = tiny_unet()
    bundle = SamplingBundle(model=model, diffusion=diffusion, cfg=cfg, step=0, channels=1, image_size=8,
                            checkpoint_path=None)
    whole = _generate(bundle, cfg, batch_size=5)
    assert model.down[0].blocks[0].conv1.weight.is_contiguous(memory_format=torch.channels_last)
    small_chunks(monkeypatch, 2, size=8)
    chunked = _generate(bundle, cfg, batch_size=5)
    assert (whole.int() - chunked.int()).abs().max() <= 1  # float32 rounding at another batch size, at most
    assert (whole != chunked).float().mean() < 0.01


def test_a_live_training_model_keeps_its_memory_format():
    from types import SimpleNamespace

    cfg, model, diffusion = tiny_unet()
    bundle = SimpleNamespace(model=model, diffusion=diffusion, cfg=cfg, channels=1, image_size=8)
    _generate(bundle, cfg, batch_size=5)
    assert not model.down[0].blocks[0].conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert model.down[0].blocks[0].conv1.weight.is_contiguous()


@pytest.mark.parametrize("images", [1, 4])
def test_a_chunk_of_one_image_or_more_gives_the_same_images(monkeypatch, images):
    cfg, model, diffusion = tiny_unet()
    from types import SimpleNamespace

    bundle = SimpleNamespace(model=model, diffusion=diffusion, cfg=cfg, channels=1, image_size=8)
    whole = _generate(bundle, cfg, batch_size=5)
    small_chunks(monkeypatch, images, size=8)
    assert (whole.int() - _generate(bundle, cfg, batch_size=5).int()).abs().max() <= 1
