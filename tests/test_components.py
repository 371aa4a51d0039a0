"""Resolve once, build from the resolved config, one error policy for every kind (workbench.components)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import workbench.plugin_host
import workbench.plugin_host.manager as manager
from workbench.backbones import build_backbone
from workbench.config import resolve
from workbench.data import InMemoryImages, build_dataset
from workbench.diffusion import build_sampler, build_schedule
from workbench.errors import ConfigError, PluginError
from workbench.plugin_host import PluginHost, hookimpl
from workbench.plugin_host.manager import PluginInfo


class Still:
    """A sampler that keeps x as it is: enough to be a Sampler."""

    def set_timesteps(self, diffusion, steps, device):
        return list(range(steps))[::-1]

    def step(self, index, x_t, pred_x0, generator):
        return x_t


class Identity(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 1)

    def forward(self, x, t, y=None):
        return self.conv(x)


def behave(fail: str):
    """Raise what `fail` asks for: a plugin bug, a refusal of the parameters, or a user error."""
    if fail == "crash":
        raise RuntimeError("boom\nsecond line")
    if fail == "refuse":
        raise ValueError("not with these parameters")
    if fail == "config":
        raise ConfigError("[somewhere] the plugin's own one-line message")


class Tiny:
    """One component of every kind; each factory takes `fail` to choose how it breaks."""

    @hookimpl
    def register_schedules(self, register):
        def betas(timesteps, fail=""):
            behave(fail)
            return torch.linspace(1e-4, 0.02, timesteps, dtype=torch.float64)

        register("tiny-schedule", betas, params={"fail": ""})

    @hookimpl
    def register_samplers(self, register):
        def sampler(fail=""):
            behave(fail)
            return Still()

        register("tiny-sampler", sampler, params={"fail": ""})

    @hookimpl
    def register_datasets(self, register):
        def dataset(fail=""):
            behave(fail)
            return InMemoryImages("four tiny images", images=torch.zeros(4, 1, 8, 8, dtype=torch.uint8))

        register("tiny-data", dataset, params={"fail": ""})

    @hookimpl
    def register_backbones(self, register):
        def backbone(in_channels, out_channels, image_size, fail=""):
            behave(fail)
            return Identity(in_channels)

        register("tiny-net", backbone, params={"fail": ""})


@pytest.fixture
def tiny_host():
    host = PluginHost(load_entry_points=False)
    assert host.add_plugin(Tiny(), PluginInfo("tiny", "tests", "0", "tests.test_components")) is None
    return host


def tiny_config(host, fail: dict[str, str] | None = None):
    fail = fail or {}
    raw = {"schedule": {"name": "tiny-schedule", "timesteps": 10, "fail": fail.get("schedule", "")},
           "sample": {"name": "tiny-sampler", "steps": 5, "fail": fail.get("sample", "")},
           "dataset": {"name": "tiny-data", "pad_to": 0, "fail": fail.get("dataset", "")},
           "backbone": {"name": "tiny-net", "fail": fail.get("backbone", "")}}
    return resolve(raw, host=host)


BUILDS = {
    "schedule": lambda cfg: build_schedule(cfg.schedule),
    "sample": lambda cfg: build_sampler(cfg.sample),
    "dataset": lambda cfg: build_dataset(cfg.dataset),
    "backbone": lambda cfg: build_backbone(cfg.backbone, in_channels=1, out_channels=1, image_size=8),
}
LABELS = {"schedule": "schedule 'tiny-schedule'", "sample": "sampler 'tiny-sampler'",
          "dataset": "dataset 'tiny-data'", "backbone": "backbone 'tiny-net'"}


def test_the_resolved_config_carries_each_component_with_its_validated_params(tiny_host):
    cfg = tiny_config(tiny_host)
    assert cfg.schedule.component is tiny_host.get("schedule", "tiny-schedule")
    assert cfg.backbone.component is tiny_host.get("backbone", "tiny-net")
    assert cfg.sample.params == {"fail": ""} and cfg.dataset.component.plugin == "tiny"
    assert cfg.run.component is None  # not a plugin section
    assert "component" not in cfg.as_dict()["schedule"] and "component" not in cfg.to_toml()


def test_every_kind_is_built_from_the_resolved_config_without_the_global_host(tiny_host, monkeypatch):
    cfg = tiny_config(tiny_host)

    def no_global_host():
        raise AssertionError("a build function consulted the process-wide plugin host")

    monkeypatch.setattr(manager, "get_host", no_global_host)
    monkeypatch.setattr(workbench.plugin_host, "get_host", no_global_host)
    monkeypatch.setattr(manager, "_HOST", None)
    assert build_schedule(cfg.schedule).shape == (10,)
    assert isinstance(build_sampler(cfg.sample), Still)
    assert build_dataset(cfg.dataset).num_images == 4
    assert isinstance(build_backbone(cfg.backbone, in_channels=1, out_channels=1, image_size=8), Identity)


def test_an_unresolved_section_is_refused_as_a_programming_error():
    from types import SimpleNamespace

    with pytest.raises(TypeError, match="not a resolved plugin section"):
        build_sampler(SimpleNamespace(name="ddpm", params={}))


@pytest.mark.parametrize("section", BUILDS)
def test_a_crashing_factory_is_a_plugin_error_naming_the_plugin(tiny_host, section):
    cfg = tiny_config(tiny_host, {section: "crash"})
    with pytest.raises(PluginError) as info:
        BUILDS[section](cfg)
    message = str(info.value)
    assert message.startswith(f"{LABELS[section]} (plugin tiny) failed to build")
    assert message.endswith("RuntimeError: boom") and "\n" not in message
    assert isinstance(info.value.__cause__, RuntimeError)  # the traceback is kept for a debugger


@pytest.mark.parametrize("section", BUILDS)
def test_a_factory_refusing_its_parameters_is_a_config_error_naming_the_plugin(tiny_host, section):
    cfg = tiny_config(tiny_host, {section: "refuse"})
    with pytest.raises(ConfigError, match=rf"^\[{section}\] {LABELS[section]} \(plugin tiny\) refused its "
                                          r"parameters.*: not with these parameters$"):
        BUILDS[section](cfg)


@pytest.mark.parametrize("section", BUILDS)
def test_a_factory_user_error_passes_through_unchanged(tiny_host, section):
    cfg = tiny_config(tiny_host, {section: "config"})
    with pytest.raises(ConfigError, match=r"^\[somewhere\] the plugin's own one-line message$"):
        BUILDS[section](cfg)
