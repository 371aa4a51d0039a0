"""Fixtures: diffusers models saved to folders the way save_pretrained writes them (no network)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.interop.diffusers_models import CIFAR10_32, CIFAR10_32_SCHEDULER, SMALL, random_unet, save_pipeline


@pytest.fixture(autouse=True)
def _single_thread(one_torch_thread):
    yield


@pytest.fixture(scope="module")
def cifar_unet():
    return random_unet(CIFAR10_32)


@pytest.fixture(scope="module")
def cifar_folder(cifar_unet, tmp_path_factory) -> Path:
    return save_pipeline(tmp_path_factory.mktemp("ddpm-cifar10-32"), cifar_unet, CIFAR10_32_SCHEDULER)


@pytest.fixture
def small_unet():
    return random_unet(SMALL)


@pytest.fixture
def small_folder(small_unet, tmp_path) -> Path:
    return save_pipeline(tmp_path / "small", small_unet, dict(num_train_timesteps=50, beta_schedule="linear"))


@pytest.fixture(scope="session")
def tiny_trained_run(tmp_path_factory) -> Path:
    """A unet run trained 3 steps by the real engine, with EMA (16 px synthetic data, 8 channels)."""
    from workbench.config import load_config
    from workbench.engine import train

    base = tmp_path_factory.mktemp("trained")
    cfg = load_config(None, [
        "dataset.name=synthetic", "dataset.size=16", "dataset.count=16", "dataset.pad_to=0",
        "backbone.base_channels=8", "schedule.timesteps=20", "train.steps=3", "train.batch_size=4",
        "train.warmup_steps=0", "train.sample_every=0", "train.checkpoint_every=0", "train.ema_decay=0.5",
        "train.ema_warmup=false", "sample.steps=2", "sample.n=2", "run.device=cpu", "run.name=tiny",
        f"run.dir={base}"], search_cwd=False)
    return Path(train(cfg).path)
