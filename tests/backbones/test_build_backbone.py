"""workbench.backbones: building any registered backbone, the host's checks, parameters and FLOPs."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch import nn

from workbench.config import Section
from workbench.errors import ConfigError, PluginError
from workbench.backbones import (
    build_backbone,
    count_parameters,
    describe_backbone,
    describe_registered_backbones,
    flops_per_image,
)
from workbench.plugin_host import PluginHost, get_host, hookimpl
from workbench.plugin_host.manager import PluginInfo
from workbench_plugins.backbones import UNet, UNetConfig


class PlainConvNet(nn.Module):
    """Any nn.Module can be a backbone: this one ignores structure entirely (two convs + a time bias)."""

    def __init__(self, in_channels: int, out_channels: int, width: int):
        super().__init__()
        self.conv_in = nn.Conv2d(in_channels, width, 3, padding=1)
        self.time = nn.Embedding(1000, width)
        self.conv_out = nn.Conv2d(width, out_channels, 3, padding=1)

    def forward(self, x, t):
        return self.conv_out(torch.relu(self.conv_in(x) + self.time(t)[:, :, None, None]))


class PlainConvPlugin:
    """The ten-line wrapper of the docs: a class-based plugin adapting a module to forward(x, t, y=None)."""

    class Backbone(nn.Module):
        def __init__(self, in_channels, out_channels, image_size, width=8):
            super().__init__()
            self.net = PlainConvNet(in_channels, out_channels, width)

        def forward(self, x, t, y=None):
            return self.net(x, t)

    @hookimpl
    def register_backbones(self, register):
        register("plain-conv", self.Backbone, params={"width": 8}, description="two convs")


def host_with(plugin, name="test-backbones", **kw) -> PluginHost:
    host = PluginHost(load_entry_points=False, **kw)
    assert host.add_plugin(plugin, PluginInfo(name, "tests", "0", "tests.backbones")) is None
    return host


def section(name: str, host=None, **params) -> Section:
    """A resolved cfg.backbone: the component looked up in `host` (default: the process-wide one) and its
    params validated, as workbench.config.resolve does."""
    component = (host or get_host()).get("backbone", name, section="backbone")
    return Section("backbone", {"name": name, **params}, component.resolve_params(params, section="backbone"),
                   component)


def test_a_wrapped_plain_module_builds_through_a_class_based_plugin():
    host = host_with(PlainConvPlugin())
    component = host.get("backbone", "plain-conv")
    params = component.resolve_params({"width": 4}, section="backbone")
    model = build_backbone(section("plain-conv", host=host, **params), in_channels=3, out_channels=6,
                           image_size=12)
    assert model.net.conv_in.out_channels == 4
    x = torch.randn(5, 3, 12, 12)
    assert model(x, torch.randint(0, 1000, (5,))).shape == (5, 6, 12, 12)


def test_the_builtin_unet_builds_from_the_default_config_section():
    model = build_backbone(section("unet", preset="tiny"), in_channels=1, out_channels=2, image_size=32)
    assert isinstance(model, UNet) and model.out_channels == 2


def make_plugin(factory, params=None):
    class Plugin:
        @hookimpl
        def register_backbones(self, register):
            register("broken", factory, params=params or {})

    return host_with(Plugin(), name="broken-plugin")


def build_broken(factory, **kw):
    host = make_plugin(factory)
    return build_backbone(section("broken", host=host), in_channels=1, out_channels=1, image_size=8, **kw)


@pytest.mark.parametrize("factory, says", [
    (lambda **kw: "not a module", "returned str, not a torch.nn.Module"),
    (lambda in_channels, out_channels, image_size: nn.Conv2d(in_channels, out_channels, 1),
     "forward(x, t) on x of shape (2, 1, 8, 8) failed: TypeError"),
], ids=["not-a-module", "wrong-signature"])
def test_what_a_factory_returns_is_checked(factory, says):
    with pytest.raises(PluginError) as info:
        build_broken(factory)
    message = str(info.value)
    assert message.startswith("backbone 'broken' (plugin broken-plugin)") and says in message


class WrongShape(nn.Module):
    def forward(self, x, t, y=None):
        return x[:, :, ::2]


class NotFinite(nn.Module):
    def forward(self, x, t, y=None):
        return x / 0


def test_wrong_output_shape_names_the_backbone_and_plugin():
    with pytest.raises(PluginError, match=r"backbone 'broken' \(plugin broken-plugin\): forward on x of shape "
                                          r"\(2, 1, 8, 8\) returned shape \(2, 1, 4, 8\); expected \(2, 1, 8, 8\)"):
        build_broken(lambda **kw: WrongShape())


def test_non_finite_output_is_refused():
    with pytest.raises(PluginError, match="non-finite"):
        build_broken(lambda **kw: NotFinite())


def test_a_factory_crash_is_wrapped_but_config_errors_pass_through():
    def crashes(**kw):
        raise RuntimeError("CUDA kernel missing\nsecond line")

    with pytest.raises(PluginError, match=r"^backbone 'broken' \(plugin broken-plugin\) failed to build: "
                                          r"RuntimeError: CUDA kernel missing$"):
        build_broken(crashes)

    def refuses(**kw):
        raise ConfigError("[backbone] width = 3 is too small")

    with pytest.raises(ConfigError, match=r"^\[backbone\] width = 3 is too small$"):
        build_broken(refuses)


def test_the_check_forward_leaves_training_mode_and_batchnorm_statistics_alone():
    class WithBatchNorm(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm = nn.BatchNorm2d(1)

        def forward(self, x, t, y=None):
            return self.norm(x)

    model = build_broken(lambda **kw: WithBatchNorm())
    assert model.training
    assert torch.equal(model.norm.running_mean, torch.zeros(1)) and int(model.norm.num_batches_tracked) == 0


def test_unknown_backbone_name_is_a_config_error():
    with pytest.raises(ConfigError, match='did you mean "unet"'):
        build_backbone(section("unte"), in_channels=1, out_channels=1, image_size=8)


def test_count_parameters_counts_shared_weights_once():
    shared = nn.Linear(3, 4)
    assert count_parameters(nn.Sequential(shared, nn.ReLU(), shared)) == 16


def test_flops_per_image_counts_a_convolution_exactly():
    class OneConv(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)

        def forward(self, x, t, y=None):
            return self.conv(x)

    # 2 FLOPs per multiply-add: 2 * (8 outputs * 3 inputs * 3 * 3) per pixel, 16 * 16 pixels
    assert flops_per_image(OneConv(), 3, 16) == 2 * 8 * 3 * 9 * 16 * 16


def test_flops_per_image_counts_attention_on_every_device():
    class OneAttention(nn.Module):
        def forward(self, x, t, y=None):
            q = x.flatten(2).transpose(1, 2).unsqueeze(1)  # (B, 1 head, 64 positions, 4 channels)
            return torch.nn.functional.scaled_dot_product_attention(q, q, q).squeeze(1).transpose(1, 2).reshape(x.shape)

    # q k^T and (softmax) v: two matmuls of 64 x 64 x 4 multiply-adds each (the CPU's fused kernel counted 0)
    assert flops_per_image(OneAttention(), 4, 8) == 2 * 2 * 64 * 64 * 4


def test_unet_flops_scale_with_the_image_area_and_include_attention():
    config = UNetConfig(base_channels=16, channel_mult=(1, 2), num_res_blocks=1, groups=8, mid_attention=False)
    model = UNet(1, 1, config)
    # the time-embedding MLP and projections cost the same at any size; every conv scales with the area
    per_image = sum(2 * m.in_features * m.out_features for m in model.modules() if isinstance(m, nn.Linear))
    assert flops_per_image(model, 1, 32) - per_image == 4 * (flops_per_image(model, 1, 16) - per_image)
    model_with_attention = UNet(1, 1, replace(config, mid_attention=True))
    assert flops_per_image(model_with_attention, 1, 16) > flops_per_image(model, 1, 16)


def test_describe_backbone_and_every_registered_backbone():
    model = UNet(1, 1, UNetConfig(base_channels=16, groups=8))
    described = describe_backbone(model, 1, 16)
    assert described == {"params": count_parameters(model), "flops_per_image": flops_per_image(model, 1, 16)}

    host = host_with(PlainConvPlugin(), builtins=())  # without the unet: its presets take a while to build
    rows = describe_registered_backbones(host)
    assert rows == [{"backbone": "plain-conv", "plugin": "test-backbones", "variant": "", "in_channels": 3,
                     "image_size": 32, "params": 3 * 8 * 9 + 8 + 1000 * 8 + 8 * 3 * 9 + 3,
                     "flops_per_image": 2 * 2 * (3 * 8 * 9) * 32 * 32}]


def test_plugins_describe_lists_every_backbone_with_params_and_flops(capsys):
    import argparse
    import json

    from workbench.commands import plugins as plugins_command
    from workbench.plugin_host.manager import reset_host

    class Broken:
        @hookimpl
        def register_backbones(self, register):
            register("broken", lambda **kw: "not a module")

    host = host_with(PlainConvPlugin(), builtins=())
    host.add_plugin(Broken(), PluginInfo("broken-plugin", "tests", "0", "tests.backbones"))
    reset_host(host)
    assert plugins_command.run(argparse.Namespace(json=True, describe=True)) == 0
    rows = {r["backbone"]: r for r in json.loads(capsys.readouterr().out)["backbones"]}
    assert rows["plain-conv"]["params"] == count_parameters(PlainConvPlugin.Backbone(3, 3, 32))
    assert "not a torch.nn.Module" in rows["broken"]["error"]

    assert plugins_command.run(argparse.Namespace(json=False, describe=True)) == 0
    text = capsys.readouterr().out
    assert "plain-conv" in text and "GFLOPs/img" in text and "failed" in text


def test_the_documented_diffusers_wrapper_builds_when_diffusers_is_installed():
    diffusers = pytest.importorskip("diffusers")

    class DiffusersUNet(nn.Module):  # as in docs/backbones.md
        def __init__(self, in_channels, out_channels, image_size, width=64):
            super().__init__()
            self.net = diffusers.UNet2DModel(sample_size=image_size, in_channels=in_channels,
                                             out_channels=out_channels,
                                             block_out_channels=(width, 2 * width, 2 * width, 2 * width))

        def forward(self, x, t, y=None):
            return self.net(x, t).sample

    class Plugin:
        @hookimpl
        def register_backbones(self, register):
            register("diffusers-unet", DiffusersUNet, params={"width": 64}, description="diffusers UNet2DModel")

    host = host_with(Plugin(), builtins=())
    model = build_backbone(section("diffusers-unet", host=host, width=32), in_channels=1, out_channels=2,
                           image_size=16)
    assert isinstance(model.net, diffusers.UNet2DModel)
