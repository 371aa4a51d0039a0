"""A tiny trained model for the sampling tests: 16 px synthetic images, an 8-channel U-Net, T = 50."""

from __future__ import annotations

from pathlib import Path

import pytest

TINY = [
    "dataset.name=synthetic", "dataset.size=16", "dataset.count=64", "dataset.pad_to=0",
    "backbone.base_channels=8", "schedule.timesteps=50",
    "train.steps=4", "train.batch_size=8", "train.warmup_steps=0", "train.log_every=2",
    "train.sample_every=0", "train.checkpoint_every=0", "train.ema_decay=0.9",
    "sample.steps=5", "sample.n=4", "run.device=cpu", "run.name=tiny",
]
IMAGE_SIZE, TIMESTEPS = 16, 50


@pytest.fixture(autouse=True)
def _single_thread(one_torch_thread):
    """Tiny tensors: one intra-op thread (see tests/conftest.py)."""
    yield


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """The run directory of a model trained for 4 steps by the real engine (about a second on a CPU)."""
    from workbench.config import load_config
    from workbench.engine import train

    base = tmp_path_factory.mktemp("runs")
    cfg = load_config(None, TINY + [f"run.dir={base}"], search_cwd=False)
    run = train(cfg)
    checkpoint = Path(run.path) / "checkpoints" / "latest.pt"
    assert checkpoint.is_file(), "the engine wrote no checkpoint"
    return Path(run.path)


@pytest.fixture
def tiny_checkpoint(tiny_run) -> Path:
    return tiny_run / "checkpoints" / "latest.pt"

