"""Conventions where the original DDPM code and diffusers differ: downsampling padding (TensorFlow 'SAME'
or symmetric), the timestep embedding's order and frequencies, the GroupNorm epsilon."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from workbench_plugins.backbones import PRESETS, UNet, UNetConfig, build_unet, validate_unet_params
from workbench_plugins.backbones.unet import Downsample, tf_same_padding, timestep_embedding

SMALL = UNetConfig(base_channels=16, channel_mult=(1, 2), num_res_blocks=1, attention_levels=(1,), groups=8)


def test_tf_same_pads_bottom_right_on_even_sizes_like_diffusers_downsample_padding_0():
    from diffusers.models.downsampling import Downsample2D

    ours = Downsample(4, "conv", "tf-same")
    theirs = Downsample2D(4, use_conv=True, out_channels=4, padding=0, name="op")
    theirs.conv.load_state_dict(ours.conv.state_dict())
    x = torch.randn(2, 4, 8, 8)
    assert torch.equal(ours(x), theirs(x))
    # and it is not what symmetric padding computes with the same weights
    symmetric = Downsample(4, "conv", "symmetric")
    symmetric.conv.load_state_dict(ours.conv.state_dict())
    assert not torch.allclose(ours(x), symmetric(x))
    assert torch.equal(symmetric(x), F.conv2d(x, ours.conv.weight, ours.conv.bias, stride=2, padding=1))


@pytest.mark.parametrize("size, expected", [(32, (0, 1)), (8, (0, 1)), (7, (1, 1)), (1, (1, 1))])
def test_tf_same_padding_gives_ceil_half_like_tensorflow(size, expected):
    assert tf_same_padding(size) == expected
    ours = Downsample(1, "conv", "tf-same")
    assert ours(torch.zeros(1, 1, size, size)).shape[-1] == (size + 1) // 2


def test_both_paddings_build_the_same_parameters_and_shapes_at_odd_sizes():
    symmetric, tf_same = UNet(1, 1, SMALL), UNet(1, 1, replace(SMALL, downsample_padding="tf-same"))
    assert {k: v.shape for k, v in symmetric.state_dict().items()} == \
        {k: v.shape for k, v in tf_same.state_dict().items()}
    x, t = torch.randn(2, 1, 28, 28), torch.tensor([3, 500])
    assert tf_same(x, t).shape == x.shape


def test_every_preset_keeps_symmetric_padding_so_old_checkpoints_compute_what_they_did():
    # A checkpoint written before the key existed resolves it to None ("as the preset says").
    assert all(p.config.downsample_padding == "symmetric" for p in PRESETS.values())
    old = build_unet(3, 3, 32, preset="ddpm-cifar10")
    assert all(not d.tf_same for d in old.downsamples)
    new = build_unet(3, 3, 32, preset="ddpm-cifar10", downsample_padding="tf-same")
    assert all(d.tf_same for d in new.downsamples)


def test_an_unknown_padding_is_refused_naming_the_key():
    with pytest.raises(ValueError, match=r"downsample_padding = 'tf_same' is unknown \(did you mean \"tf-same\"\?\)"):
        validate_unet_params({"preset": "tiny", "downsample_padding": "tf_same"})


@pytest.mark.parametrize("order, freq_shift", [("sin-cos", 1), ("cos-sin", 0), ("cos-sin", 1), ("sin-cos", 0)])
def test_the_timestep_embedding_is_bitwise_diffusers(order, freq_shift):
    from diffusers.models.embeddings import get_timestep_embedding

    t = torch.arange(0, 1000, 7)
    ours = timestep_embedding(t, 128, order, freq_shift)
    theirs = get_timestep_embedding(t, 128, flip_sin_to_cos=order == "cos-sin", downscale_freq_shift=freq_shift)
    assert torch.equal(ours, theirs)


def test_embedding_order_frequencies_and_norm_eps_each_change_the_output():
    base = replace(SMALL, num_heads=2)
    x, t = torch.randn(2, 1, 16, 16), torch.tensor([3, 500])
    reference = UNet(1, 1, base)
    with torch.no_grad():  # the zero-initialised last layers of each branch would hide the embedding
        for parameter in reference.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.05)
    for change in ({"time_embedding": "cos-sin"}, {"freq_shift": 0}, {"norm_eps": 1e-1}):
        other = UNet(1, 1, replace(base, **change))
        other.load_state_dict(reference.state_dict())
        with torch.no_grad():
            assert not torch.allclose(other(x, t), reference(x, t)), change


@pytest.mark.parametrize("key, value, expected", [
    ("time_embedding", "cos_sin", r"time_embedding = 'cos_sin' is unknown"),
    ("freq_shift", 2, r"freq_shift = 2 must be 0 or 1"),
    ("freq_shift", True, r"freq_shift = True must be 0 or 1"),
    ("norm_eps", 0.0, r"norm_eps = 0.0 must be a number in \(0, 1\)"),
])
def test_bad_convention_values_are_refused_naming_the_key(key, value, expected):
    with pytest.raises(ValueError, match=expected):
        validate_unet_params({"preset": "tiny", key: value})
