"""diffusers models built here (no network): google/ddpm-cifar10-32's exact UNet2DModel with random weights,
and a small one for the round-trip and error tests."""

from __future__ import annotations

import json
from pathlib import Path

import torch

# google/ddpm-cifar10-32's unet/config.json, field for field (35,746,307 parameters)
CIFAR10_32 = dict(
    sample_size=32, in_channels=3, out_channels=3, block_out_channels=(128, 256, 256, 256), layers_per_block=2,
    down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"), attention_head_dim=None,
    norm_num_groups=32, downsample_padding=0, flip_sin_to_cos=False, freq_shift=1, norm_eps=1e-6,
    act_fn="silu", center_input_sample=False, mid_block_scale_factor=1, time_embedding_type="positional",
)
# its scheduler/scheduler_config.json
CIFAR10_32_SCHEDULER = dict(num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02, beta_schedule="linear",
                            variance_type="fixed_large", clip_sample=True)
# 16 px, 8-32 channels: a second to build, save and import
SMALL = dict(
    sample_size=16, in_channels=1, out_channels=1, block_out_channels=(16, 32), layers_per_block=1,
    down_block_types=("DownBlock2D", "AttnDownBlock2D"), up_block_types=("AttnUpBlock2D", "UpBlock2D"),
    attention_head_dim=8, norm_num_groups=8, downsample_padding=0, flip_sin_to_cos=False, freq_shift=1,
    norm_eps=1e-6,
)
# diffusers' defaults, as its unconditional training example leaves them: cos before sin, frequencies
# 10000^(-i / (dim/2)), GroupNorm eps 1e-5, symmetric downsampling padding, 8-channel attention heads
DIFFUSERS_DEFAULTS = dict(
    sample_size=16, in_channels=3, out_channels=3, block_out_channels=(16, 32), layers_per_block=1,
    down_block_types=("DownBlock2D", "AttnDownBlock2D"), up_block_types=("AttnUpBlock2D", "UpBlock2D"),
    norm_num_groups=8,
)


def inputs(channels: int, size: int, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(2, channels, size, size, generator=generator), torch.tensor([999, 17])


def random_unet(config: dict, seed: int = 0):
    """A UNet2DModel with random weights: PyTorch's default initialisation (no layer starts at zero, so every
    one matters to the output), GroupNorm affines perturbed away from 1 and 0."""
    from diffusers import UNet2DModel

    torch.manual_seed(seed)
    model = UNet2DModel(**config)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.GroupNorm):
                module.weight.add_(torch.randn_like(module.weight) * 0.1)
                module.bias.add_(torch.randn_like(module.bias) * 0.1)
    return model.eval()


def save_pipeline(folder: Path, unet, scheduler_config: dict) -> Path:
    """A DDPMPipeline folder as save_pretrained writes it (without importing the pipeline machinery)."""
    from diffusers import DDPMScheduler

    unet.save_pretrained(folder / "unet")
    DDPMScheduler(**scheduler_config).save_pretrained(folder / "scheduler")
    (folder / "model_index.json").write_text(json.dumps({
        "_class_name": "DDPMPipeline", "_diffusers_version": "0.42.1",
        "scheduler": ["diffusers", "DDPMScheduler"], "unet": ["diffusers", "UNet2DModel"]}))
    return folder
