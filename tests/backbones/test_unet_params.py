"""`[backbone]` keys of the unet plugin: presets, overrides, and one-line errors for bad values."""

from __future__ import annotations

import pytest

from workbench.config import Section
from workbench.errors import ConfigError
from workbench.backbones import build_backbone
from workbench.plugin_host import PluginHost
from workbench_plugins.backbones import PRESETS, build_unet
from workbench_plugins.backbones.presets import level_sizes, merge


@pytest.fixture(scope="module")
def unet_component():
    return PluginHost(load_entry_points=False).get("backbone", "unet")


def resolve(component, **table):
    return component.resolve_params(table, section="backbone")


def refusal(component, **table) -> str:
    with pytest.raises(ConfigError) as info:
        resolve(component, **table)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("[backbone] backbone 'unet'")
    return message


def test_default_is_the_tiny_preset_with_every_other_key_from_the_preset(unet_component):
    params = resolve(unet_component)
    assert params["preset"] == "tiny"
    assert all(v is None for k, v in params.items() if k != "preset")
    assert merge(params) == PRESETS["tiny"].config


def test_a_key_overrides_one_field_of_the_preset(unet_component):
    params = resolve(unet_component, preset="ddpm-cifar10", dropout=0, channel_mult=[1, 2])
    config = merge(params)
    assert config.dropout == 0.0 and config.channel_mult == (1, 2)
    assert config.base_channels == 128 and config.attention_levels == (1,)


def test_num_heads_replaces_a_presets_head_width():
    config = merge({"preset": "cifar10-wide", "num_heads": 2})
    assert config.head_channels == 0 and config.heads_for(512) == 2
    assert merge({"preset": "cifar10-wide"}).heads_for(512) == 8


def test_unknown_preset_lists_the_presets_with_did_you_mean(unet_component):
    message = refusal(unet_component, preset="ddpm-cifar")
    assert 'did you mean "ddpm-cifar10"' in message
    assert all(name in message for name in PRESETS)


@pytest.mark.parametrize("key, value, says", [
    ("base_channels", 0, "base_channels = 0 must be an integer >= 1"),
    ("base_channels", 32.5, "base_channels = 32.5 must be an integer"),
    ("num_res_blocks", True, "num_res_blocks = True must be an integer"),
    ("channel_mult", "1,2,2", "channel_mult = '1,2,2' must be a non-empty list"),
    ("channel_mult", [], "channel_mult = [] must be a non-empty list"),
    ("attention_resolutions", [16.0], "attention_resolutions = [16.0] must be a list"),
    ("dropout", 1.0, "dropout = 1.0 must be a number in [0, 1)"),
    ("scale_shift", "yes", "scale_shift = 'yes' must be true or false"),
    ("resample", "convv", 'did you mean "conv"'),
    ("num_classes", -1, "num_classes = -1 must be an integer >= 0"),
    ("num_classes", "many", 'num_classes = \'many\' must be an integer >= 0 or "auto"'),
])
def test_wrong_types_and_ranges_name_the_key(unet_component, key, value, says):
    assert says in refusal(unet_component, **{key: value})


def test_channels_not_divisible_by_groups(unet_component):
    message = refusal(unet_component, preset="ddpm-cifar10", base_channels=48)
    assert "groups = 32 does not divide 48 channels" in message


def test_heads_that_do_not_divide_an_attended_level(unet_component):
    assert "num_heads = 3 does not divide" in refusal(unet_component, num_heads=3)
    assert "set num_heads or head_channels, not both" in refusal(unet_component, num_heads=2, head_channels=16)


def test_attention_resolution_that_never_occurs_is_a_config_error_from_the_factory(unet_component):
    section = Section("backbone", {"name": "unet"}, {"preset": "fashion-mnist-64", "attention_resolutions": [16]},
                      unet_component)
    with pytest.raises(ConfigError, match=r"attention_resolutions = \[16\]: 16 never occurs at image size 28 "
                                          r"with 4 levels \(sizes 28, 14, 7, 4\)"):
        build_backbone(section, in_channels=1, out_channels=1, image_size=28)


def test_heads_are_checked_at_attention_resolutions_too():
    with pytest.raises(ConfigError, match="num_heads = 3 does not divide the 32 channels"):
        build_unet(1, 1, 32, base_channels=32, groups=8, channel_mult=[1], num_heads=3, mid_attention=False,
                   attention_resolutions=[32])


def test_factory_called_directly_refuses_unknown_keys():
    with pytest.raises(ConfigError, match="unknown key 'dropuot'"):
        build_unet(1, 1, 32, dropuot=0.1)


def test_level_sizes_round_up():
    assert level_sizes(28, 4) == [28, 14, 7, 4]
    assert level_sizes(32, 3) == [32, 16, 8]
