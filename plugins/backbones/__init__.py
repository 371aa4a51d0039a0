"""Built-in backbones: the DDPM/ADM U-Net (`[backbone] name = "unet"`), selected by `preset`.

    [backbone]
    name = "unet"
    preset = "ddpm-cifar10"      # tiny (default), ddpm-cifar10, cifar10-wide, fashion-mnist-64, attn-every-block
    dropout = 0.0                # any other key replaces that field of the preset

See docs/backbones.md for the presets and for the contract any backbone plugin follows.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from workbench.errors import ConfigError
from workbench.plugin_host import hookimpl
from workbench_plugins.backbones.presets import (
    PARAMS,
    PRESETS,
    attention_levels_for,
    check_heads,
    merge,
)
from workbench_plugins.backbones.unet import UNet, UNetConfig

__all__ = ["UNet", "UNetConfig", "PRESETS", "build_unet", "validate_unet_params"]


def validate_unet_params(params: dict[str, Any]) -> None:
    """The registry's check of `[backbone]` keys: raises ValueError (one line, naming the key)."""
    merge(params)


def unet_config_for(params: dict[str, Any], image_size: int) -> UNetConfig:
    """The resolved architecture at `image_size`; ConfigError naming the key for what cannot be built."""
    try:
        config = merge(params)
        resolutions = params.get("attention_resolutions")
        if resolutions is not None:
            levels = attention_levels_for(list(resolutions), image_size, len(config.channel_mult))
            config = replace(config, attention_levels=levels)
            for i in levels:
                check_heads(config, config.level_channels()[i])
    except ValueError as exc:
        raise ConfigError(f"[backbone] unet: {exc}") from None
    return config


def build_unet(in_channels: int, out_channels: int, image_size: int, **params: Any) -> UNet:
    """The `unet` backbone factory: the preset's U-Net with the set keys overridden."""
    unknown = sorted(set(params) - set(PARAMS))
    if unknown:
        raise ConfigError(f"[backbone] unet: unknown key {unknown[0]!r}; keys: {', '.join(PARAMS)}")
    params = {**PARAMS, **params}
    return UNet(in_channels, out_channels, unet_config_for(params, image_size))


# What `ddpm-workbench plugins --describe` builds: each preset at the data size it was designed for.
build_unet.presets = {
    name: {"params": {"preset": name}, "in_channels": p.in_channels, "image_size": p.image_size}
    for name, p in PRESETS.items()
}


@hookimpl
def register_backbones(register):
    register("unet", build_unet, params=dict(PARAMS), validate=validate_unet_params,
             description="DDPM/ADM U-Net; presets: " + ", ".join(PRESETS),
             reference="Ho et al. 2020; Dhariwal & Nichol 2021")
