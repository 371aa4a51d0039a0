"""Scheduler configs <-> our schedule, prediction and sampler settings, checked against DDPMScheduler."""

from __future__ import annotations

import pytest
import torch

from workbench.errors import InteropError
from workbench.interop.diffusers_scheduler import scheduler_config_for, settings_from_scheduler


def resolved(settings: dict):
    from workbench.config import resolve

    return resolve(settings, source="test")


def our_alphas_cumprod(scheduler_config: dict) -> torch.Tensor:
    from workbench.diffusion import GaussianDiffusion

    return GaussianDiffusion.from_config(resolved(settings_from_scheduler(scheduler_config))).float64["alphas_cumprod"]


def their_alphas_cumprod(scheduler_config: dict) -> torch.Tensor:
    from diffusers import DDPMScheduler

    return DDPMScheduler(**scheduler_config).alphas_cumprod.double()


@pytest.mark.parametrize("config", [
    dict(num_train_timesteps=1000, beta_schedule="linear"),
    dict(num_train_timesteps=200, beta_schedule="linear", beta_start=0.001, beta_end=0.03),
    dict(num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012),
    dict(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2"),
    dict(num_train_timesteps=500, beta_schedule="sigmoid"),
    dict(num_train_timesteps=4, trained_betas=[0.1, 0.2, 0.3, 0.4]),
    dict(num_train_timesteps=1000, beta_schedule="scaled_linear", rescale_betas_zero_snr=True),
], ids=lambda c: c.get("beta_schedule", "trained_betas") + ("-zero-snr" if c.get("rescale_betas_zero_snr") else ""))
def test_each_schedule_maps_to_the_same_alphas_cumprod(config):
    ours, theirs = our_alphas_cumprod(config), their_alphas_cumprod(config)
    assert ours.shape == theirs.shape
    assert torch.allclose(ours, theirs, rtol=1e-5, atol=1e-7)  # diffusers computes in float32, we in float64


def test_prediction_variance_and_clipping_map_to_our_settings():
    settings = settings_from_scheduler(dict(prediction_type="v_prediction", variance_type="fixed_large_log",
                                            clip_sample=False, thresholding=True, dynamic_thresholding_ratio=0.99))
    assert settings["train"] == {"prediction": "v"}
    assert settings["sample"] == {"name": "ddpm", "variance": "fixed-large", "steps": 1000, "clip_x0": False,
                                  "dynamic_threshold": 0.99}
    ddim = settings_from_scheduler({"_class_name": "DDIMScheduler", "prediction_type": "sample"})
    assert ddim["sample"]["name"] == "ddim" and ddim["train"] == {"prediction": "x0"}


@pytest.mark.parametrize("field, value", [("beta_schedule", "exp"), ("variance_type", "learned"),
                                          ("prediction_type", "flow"), ("clip_sample_range", 2.0)])
def test_what_does_not_map_is_refused_naming_the_field(field, value):
    with pytest.raises(InteropError, match=rf"^scheduler config {field} = {value!r} cannot be mapped: "):
        settings_from_scheduler({field: value})


@pytest.mark.parametrize("overrides, expected", [
    ([], {"beta_schedule": "linear", "beta_start": 1e-4, "beta_end": 0.02, "trained_betas": None}),
    (["schedule.name=cosine"], {"beta_schedule": "squaredcos_cap_v2", "trained_betas": None}),
    (["schedule.name=cosine", "schedule.s=0.01"], {"trained_betas": "list"}),
    (["schedule.name=quadratic"], {"trained_betas": "list"}),
    (["schedule.zero_terminal_snr=true"], {"trained_betas": "list"}),
])
def test_a_run_exports_its_schedule_by_name_when_diffusers_computes_it_the_same(overrides, expected):
    from workbench.config import load_config
    from workbench.diffusion.schedule import build_schedule

    cfg = load_config(None, overrides, search_cwd=False)
    betas = build_schedule(cfg.schedule)
    config = scheduler_config_for(cfg, betas.tolist())
    for key, value in expected.items():
        assert (isinstance(config[key], list) if value == "list" else config[key] == value), (key, config[key])
    exported = {k: v for k, v in config.items() if not k.startswith("_")}
    ours = torch.cumprod(1 - betas, 0)
    assert torch.allclose(their_alphas_cumprod(exported), ours, rtol=1e-5, atol=1e-7)
