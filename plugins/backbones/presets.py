"""U-Net presets, the `[backbone]` keys that override them, and their validation.

A preset is one named architecture (`preset = "ddpm-cifar10"`); every other key of the `unet` backbone
defaults to None, meaning "as the preset says", and replaces that one field when set. Attention in a preset
is given per level (0 = full resolution), so a preset works at any image size; a user's
`attention_resolutions` is given in pixels and must be a size that occurs (checked by the factory, which
knows the image size).

`downsample_padding` is "symmetric" in every preset, `ddpm-cifar10` included, although the original DDPM
model pads "tf-same": a checkpoint stores its resolved config with the keys of its time, and one written
before the key existed resolves it to None, "as the preset says"; giving the preset "tf-same" would make
those checkpoints load without complaint (the shapes are equal) and compute something else. Imported
models that need "tf-same" (`ddpm-workbench import`) set it explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from workbench.errors import did_you_mean
from workbench_plugins.backbones.unet import (DOWNSAMPLE_PADDINGS, EMBEDDING_ORDERS, FREQ_SHIFTS, RESAMPLE_MODES,
                                              UNetConfig)


@dataclass(frozen=True)
class Preset:
    config: UNetConfig
    in_channels: int  # the data it was designed for (used by tests and `plugins --describe`)
    image_size: int
    description: str
    reference: str = ""


PRESETS: dict[str, Preset] = {
    "tiny": Preset(
        UNetConfig(base_channels=32, channel_mult=(1, 2, 2), num_res_blocks=1, attention_levels=(2,),
                   mid_attention=True, num_heads=4, dropout=0.0, groups=8, scale_shift=True),
        1, 32,
        "CPU-friendly default: 32-64-64 channels, 1 res block per level, 4-head attention at 1/4 size; "
        "trains on Fashion-MNIST on a laptop CPU"),
    "ddpm-cifar10": Preset(
        UNetConfig(base_channels=128, channel_mult=(1, 2, 2, 2), num_res_blocks=2, attention_levels=(1,),
                   mid_attention=True, num_heads=1, dropout=0.1, groups=32, scale_shift=False),
        3, 32,
        "the CIFAR-10 model of Ho et al. 2020: 35,746,307 parameters, attention at 16x16",
        "Ho et al. 2020, Denoising Diffusion Probabilistic Models"),
    "cifar10-wide": Preset(
        UNetConfig(base_channels=128, channel_mult=(1, 2, 4, 8), num_res_blocks=2, attention_levels=(2, 3),
                   mid_attention=True, head_channels=64, dropout=0.1, groups=32, scale_shift=True),
        3, 32,
        "128-256-512-1024 channels, attention (64-channel heads) at the two lowest resolutions, "
        "scale-shift conditioning",
        "Dhariwal & Nichol 2021 (blocks)"),
    "fashion-mnist-64": Preset(
        UNetConfig(base_channels=64, channel_mult=(1, 2, 4, 8), num_res_blocks=2, attention_levels=(),
                   mid_attention=True, num_heads=4, dropout=0.1, groups=32, scale_shift=False),
        1, 28,
        "64-128-256-512 channels for 28x28 Fashion-MNIST (28-14-7-4), 4-head attention only in the "
        "bottleneck"),
    "attn-every-block": Preset(
        UNetConfig(base_channels=64, channel_mult=(1, 2, 4, 4), num_res_blocks=2, attention_levels=(0, 1, 2, 3),
                   mid_attention=True, num_heads=4, dropout=0.0, groups=32, scale_shift=False),
        3, 32,
        "Down/Mid/Up-block U-Net (64-128-256-256 channels) with 4-head self-attention after every "
        "residual block, full resolution included"),
}

DEFAULT_PRESET = "tiny"

# The plugin's `[backbone]` keys: None means "from the preset".
PARAMS: dict[str, Any] = {
    "preset": DEFAULT_PRESET,
    "base_channels": None,
    "channel_mult": None,
    "num_res_blocks": None,
    "attention_resolutions": None,
    "mid_attention": None,
    "num_heads": None,
    "head_channels": None,
    "dropout": None,
    "groups": None,
    "scale_shift": None,
    "resample": None,
    "downsample_padding": None,
    "time_embedding": None,
    "freq_shift": None,
    "norm_eps": None,
    "num_classes": None,
}

PARAM_HELP = {
    "preset": "named architecture: " + ", ".join(PRESETS),
    "base_channels": "channels of the first level (and of the sinusoidal time embedding)",
    "channel_mult": "per-level channel multipliers, e.g. [1, 2, 2]; one level per entry",
    "num_res_blocks": "residual blocks per level on the way down (one more on the way up)",
    "attention_resolutions": "image sizes (pixels) whose levels get self-attention, e.g. [16]; [] = none",
    "mid_attention": "self-attention between the two bottleneck residual blocks",
    "num_heads": "attention heads",
    "head_channels": "channels per attention head (ADM); when set, heads = channels // head_channels",
    "dropout": "dropout in every residual block",
    "groups": "GroupNorm groups; every channel count must be divisible by it",
    "scale_shift": "condition on the timestep by norm(h) * (1 + scale) + shift (ADM) instead of adding",
    "resample": "conv (strided conv down, nearest + conv up) or pool (avg-pool down, nearest up)",
    "downsample_padding": "stride-2 conv padding: symmetric (1 on every side) or tf-same (TensorFlow 'SAME', "
                          "bottom/right: the original DDPM weights)",
    "time_embedding": "order of the sinusoidal timestep embedding: sin-cos (Ho et al.) or cos-sin (diffusers' "
                      "flip_sin_to_cos)",
    "freq_shift": "timestep frequencies 10000^(-i / (dim/2 - freq_shift)): 1 (Ho et al.) or 0 (diffusers' default)",
    "norm_eps": "GroupNorm epsilon: 1e-6 (the original DDPM code), 1e-5 (PyTorch's and diffusers' default)",
    "num_classes": "> 0: class-conditional on labels 0..num_classes-1; \"auto\": the dataset's class count; "
                   "0 = unconditional",
}

INT_KEYS = {"base_channels": 1, "num_res_blocks": 1, "num_heads": 1, "head_channels": 1, "groups": 1,
            "num_classes": 0}  # key -> smallest allowed value
BOOL_KEYS = ("mid_attention", "scale_shift")
AUTO_CLASSES = "auto"  # num_classes = "auto": as many classes as the training data has


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_types(params: dict[str, Any]) -> None:
    """ValueError for the first key whose value has the wrong type or range."""
    preset = params.get("preset", DEFAULT_PRESET)
    if not isinstance(preset, str) or preset not in PRESETS:
        raise ValueError(f"preset = {preset!r} is unknown{did_you_mean(str(preset), PRESETS)}; "
                         f"presets: {', '.join(PRESETS)}")
    for key, value in params.items():
        if value is None or key == "preset" or (key == "num_classes" and value == AUTO_CLASSES):
            continue  # "auto" classes become a count when training starts (workbench.engine.setup)
        if key in INT_KEYS:
            if not is_int(value) or value < INT_KEYS[key]:
                also = f' or "{AUTO_CLASSES}"' if key == "num_classes" else ""
                raise ValueError(f"{key} = {value!r} must be an integer >= {INT_KEYS[key]}{also} ({PARAM_HELP[key]})")
        elif key in BOOL_KEYS:
            if not isinstance(value, bool):
                raise ValueError(f"{key} = {value!r} must be true or false ({PARAM_HELP[key]})")
        elif key == "channel_mult":
            if not isinstance(value, (list, tuple)) or not value or not all(is_int(m) and m >= 1 for m in value):
                raise ValueError(f"channel_mult = {value!r} must be a non-empty list of positive integers, "
                                 "e.g. [1, 2, 2]")
        elif key == "attention_resolutions":
            if not isinstance(value, (list, tuple)) or not all(is_int(r) and r >= 1 for r in value):
                raise ValueError(f"attention_resolutions = {value!r} must be a list of image sizes in pixels, "
                                 "e.g. [16], or [] for none")
        elif key == "dropout":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
                raise ValueError(f"dropout = {value!r} must be a number in [0, 1)")
        elif key == "resample":
            if value not in RESAMPLE_MODES:
                raise ValueError(f"resample = {value!r} is unknown{did_you_mean(str(value), RESAMPLE_MODES)}; "
                                 f"use one of {', '.join(RESAMPLE_MODES)}")
        elif key == "time_embedding":
            if value not in EMBEDDING_ORDERS:
                raise ValueError(f"time_embedding = {value!r} is unknown{did_you_mean(str(value), EMBEDDING_ORDERS)}; "
                                 f"use one of {', '.join(EMBEDDING_ORDERS)}")
        elif key == "freq_shift":
            if value not in FREQ_SHIFTS or isinstance(value, bool):
                raise ValueError(f"freq_shift = {value!r} must be 0 or 1 ({PARAM_HELP[key]})")
        elif key == "norm_eps":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
                raise ValueError(f"norm_eps = {value!r} must be a number in (0, 1), e.g. 1e-6")
        elif key == "downsample_padding":
            if value not in DOWNSAMPLE_PADDINGS:
                raise ValueError(f"downsample_padding = {value!r} is unknown"
                                 f"{did_you_mean(str(value), DOWNSAMPLE_PADDINGS)}; use one of "
                                 f"{', '.join(DOWNSAMPLE_PADDINGS)}")
        elif key not in PARAMS:
            raise ValueError(f"unknown key {key!r}{did_you_mean(key, PARAMS)}; keys: {', '.join(PARAMS)}")
    if params.get("num_heads") is not None and params.get("head_channels") is not None:
        raise ValueError("set num_heads or head_channels, not both (head_channels fixes the width of each "
                         "head, num_heads their number)")


def merge(params: dict[str, Any]) -> UNetConfig:
    """The preset's config with the set keys replaced (attention_resolutions aside: it needs the image size).

    Raises ValueError naming the key for anything the U-Net cannot be built with."""
    check_types(params)
    config = PRESETS[params.get("preset", DEFAULT_PRESET)].config
    overrides = {k: v for k, v in params.items()
                 if v is not None and k not in ("preset", "attention_resolutions")
                 and not (k == "num_classes" and v == AUTO_CLASSES)}
    if "channel_mult" in overrides:
        overrides["channel_mult"] = tuple(overrides["channel_mult"])
        # a preset's attention levels may not exist with fewer levels; keep those that do
        kept = tuple(i for i in config.attention_levels if i < len(overrides["channel_mult"]))
        overrides["attention_levels"] = kept
    if params.get("attention_resolutions") is not None:
        overrides["attention_levels"] = ()  # the factory places these, knowing the image size
    for key in ("dropout", "norm_eps"):
        if key in overrides:
            overrides[key] = float(overrides[key])
    if "num_heads" in overrides:  # the user's head count replaces the preset's head width
        overrides["head_channels"] = 0
    config = replace(config, **{k: v for k, v in overrides.items() if k in {f.name for f in fields(UNetConfig)}})
    check_config(config)
    return config


def check_config(config: UNetConfig) -> None:
    """Channel counts against GroupNorm groups and attention heads."""
    for channels in [config.base_channels, *config.level_channels()]:
        if channels % config.groups:
            raise ValueError(f"groups = {config.groups} does not divide {channels} channels "
                             f"(base_channels = {config.base_channels}, channel_mult = {list(config.channel_mult)}); "
                             "pick groups that divides every level's channel count")
    attended = [config.level_channels()[i] for i in config.attention_levels]
    if config.mid_attention:
        attended.append(config.level_channels()[-1])
    for channels in attended:
        check_heads(config, channels)


def check_heads(config: UNetConfig, channels: int) -> None:
    if config.head_channels > 0:
        if channels % config.head_channels:
            raise ValueError(f"head_channels = {config.head_channels} does not divide the {channels} channels of "
                             "an attention layer; pick a divisor of every attended level's channel count")
    elif channels % config.num_heads:
        raise ValueError(f"num_heads = {config.num_heads} does not divide the {channels} channels of an "
                         "attention layer; pick a divisor of every attended level's channel count")


def level_sizes(image_size: int, levels: int) -> list[int]:
    """Feature-map size at each level: halved, rounding up (28 -> 14 -> 7 -> 4)."""
    sizes = [image_size]
    for _ in range(levels - 1):
        sizes.append((sizes[-1] + 1) // 2)
    return sizes


def attention_levels_for(resolutions: list[int], image_size: int, levels: int) -> tuple[int, ...]:
    """Level indices for attention resolutions given in pixels; ValueError for a size that never occurs."""
    sizes = level_sizes(image_size, levels)
    for r in resolutions:
        if r not in sizes:
            raise ValueError(f"attention_resolutions = {list(resolutions)}: {r} never occurs at image size "
                             f"{image_size} with {levels} levels (sizes {', '.join(map(str, sizes))}); "
                             "use some of those, or [] for none")
    return tuple(i for i, s in enumerate(sizes) if s in resolutions)
