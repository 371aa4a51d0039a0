"""The U-Net itself: shapes at every preset's native size, parameter count, gradients, numerics."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from workbench_plugins.backbones import PRESETS, UNet, UNetConfig, build_unet
from workbench_plugins.backbones.unet import timestep_embedding

SMALL = UNetConfig(base_channels=16, channel_mult=(1, 2), num_res_blocks=1, attention_levels=(1,),
                   num_heads=2, groups=8)


def randomize_zero_weights_(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Fill the zero-initialised weights (last conv of each branch, biases, norm shifts) with noise, so that
    outputs depend on every layer and comparisons between two runs are not trivially 0 == 0."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if not p.any():
                p.copy_(torch.randn(p.shape, generator=generator) * 0.05)
    return model


def inputs(batch: int, channels: int, size: int, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, channels, size, size, generator=generator)
    t = torch.randint(0, 1000, (batch,), generator=generator)
    return x, t


@pytest.mark.parametrize("name", [n for n in PRESETS if n != "cifar10-wide"])
def test_every_preset_keeps_the_shape_at_its_native_size(name):
    preset = PRESETS[name]
    model = build_unet(preset.in_channels, preset.in_channels, preset.image_size, preset=name).eval()
    x, t = inputs(1, preset.in_channels, preset.image_size)
    with torch.no_grad():
        assert model(x, t).shape == x.shape


@pytest.mark.slow  # 258M parameters: several seconds just to initialise on 2 cores
def test_the_wide_cifar10_preset_keeps_the_shape():
    model = build_unet(3, 3, 32, preset="cifar10-wide").eval()
    x, t = inputs(1, 3, 32)
    with torch.no_grad():
        assert model(x, t).shape == x.shape


def test_ddpm_cifar10_has_the_parameter_count_of_ho_et_al():
    model = build_unet(3, 3, 32, preset="ddpm-cifar10")
    assert sum(p.numel() for p in model.parameters()) == 35_746_307


def test_tiny_preset_is_between_one_and_two_million_parameters():
    model = build_unet(1, 1, 32, preset="tiny")
    assert 1_000_000 <= sum(p.numel() for p in model.parameters()) <= 2_000_000


@pytest.mark.parametrize("size", [28, 7, 5, 33])
def test_sizes_that_do_not_halve_evenly(size):
    for resample in ("conv", "pool"):
        model = UNet(1, 1, replace(SMALL, channel_mult=(1, 2, 2, 2), resample=resample))
        x, t = inputs(2, 1, size)
        assert model(x, t).shape == (2, 1, size, size)


def test_attention_resolution_7_at_28x28_attends_at_the_third_level():
    model = build_unet(1, 1, 28, preset="fashion-mnist-64", attention_resolutions=[7])
    attended = [name for name, _ in model.named_modules() if name.endswith("attentions.0")
                and type(_).__name__ == "AttentionBlock"]
    assert attended == ["down.2.attentions.0", "up.1.attentions.0"]


def test_learned_variance_doubles_the_output_channels():
    model = UNet(3, 6, SMALL)
    x, t = inputs(2, 3, 16)
    assert model(x, t).shape == (2, 6, 16, 16)


@pytest.mark.parametrize("config", [PRESETS["tiny"].config, replace(SMALL, scale_shift=True, num_classes=3,
                                                                     dropout=0.1, resample="pool")],
                         ids=["tiny", "small-conditional"])
def test_gradients_reach_every_parameter(config):
    torch.manual_seed(0)
    model = randomize_zero_weights_(UNet(1, 2, config))
    x, t = inputs(2, 1, 16)
    y = torch.tensor([0, 2]) if config.num_classes else None
    model(x, t, y).square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert missing == []


def test_at_initialisation_the_output_is_zero_like_ho_et_al():
    # the last conv is zero-initialised, so the untrained network predicts eps = 0
    model = UNet(1, 1, SMALL)
    x, t = inputs(2, 1, 16)
    assert not model(x, t).any()


def test_same_seed_same_network_and_output_other_seed_differs():
    def build(seed):
        torch.manual_seed(seed)
        return randomize_zero_weights_(UNet(1, 1, SMALL)).eval()

    x, t = inputs(2, 1, 16)
    a, b, c = build(0), build(0), build(1)
    assert torch.equal(a(x, t), b(x, t))
    assert not torch.allclose(a(x, t), c(x, t))


def test_timesteps_change_the_output_and_float_timesteps_match_integers():
    model = randomize_zero_weights_(UNet(1, 1, SMALL)).eval()
    x, t = inputs(2, 1, 16)
    assert torch.allclose(model(x, t), model(x, t.float()))
    assert not torch.allclose(model(x, t), model(x, t + 100))


def test_timestep_embedding_matches_ho_et_al():
    emb = timestep_embedding(torch.tensor([0, 10]), 8)
    freqs = torch.exp(-torch.log(torch.tensor(10000.0)) * torch.arange(4) / 3)
    expected = torch.cat([torch.sin(10 * freqs), torch.cos(10 * freqs)])
    assert torch.allclose(emb[0], torch.tensor([0.0] * 4 + [1.0] * 4))
    assert torch.allclose(emb[1], expected)


def test_class_labels_condition_only_when_built_with_classes():
    unconditional = randomize_zero_weights_(UNet(1, 1, SMALL)).eval()
    x, t = inputs(2, 1, 16)
    assert torch.equal(unconditional(x, t), unconditional(x, t, torch.tensor([1, 2])))

    conditional = randomize_zero_weights_(UNet(1, 1, replace(SMALL, num_classes=3))).eval()
    out0, out1 = conditional(x, t, torch.tensor([0, 0])), conditional(x, t, torch.tensor([1, 1]))
    assert not torch.allclose(out0, out1)
    # y=None is the extra "no label" class used for classifier-free guidance
    assert torch.equal(conditional(x, t), conditional(x, t, torch.tensor([3, 3])))


def test_each_image_is_denoised_independently_of_the_rest_of_the_batch():
    model = randomize_zero_weights_(UNet(1, 1, SMALL)).eval()
    x, t = inputs(3, 1, 16)
    together = model(x, t)
    alone = torch.cat([model(x[i:i + 1], t[i:i + 1]) for i in range(3)])
    assert torch.allclose(together, alone, atol=1e-5)


def test_channels_last_gives_the_same_output():
    model = randomize_zero_weights_(UNet(3, 3, replace(SMALL, scale_shift=True))).eval()
    x, t = inputs(2, 3, 16)
    expected = model(x, t)
    model = model.to(memory_format=torch.channels_last)
    out = model(x.contiguous(memory_format=torch.channels_last), t)
    assert torch.allclose(out, expected, atol=1e-5, rtol=1e-4)


def test_bf16_autocast_runs_and_stays_close_to_fp32():
    model = randomize_zero_weights_(UNet(1, 1, SMALL)).eval()
    x, t = inputs(2, 1, 16)
    expected = model(x, t)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x, t)
    assert out.shape == expected.shape and torch.isfinite(out).all()
    assert (out.float() - expected).abs().max() < 0.05 * expected.abs().max()
