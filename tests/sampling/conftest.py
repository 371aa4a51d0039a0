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



@pytest.fixture(scope="session")
def conditional_run(tmp_path_factory) -> Path:
    """A class-conditional tiny run (the synthetic shapes: disk, square, ring, plus) trained with label
    dropout, so it samples with classes and guidance."""
    from workbench.config import load_config
    from workbench.engine import train

    base = tmp_path_factory.mktemp("runs")
    cfg = load_config(None, TINY + [f"run.dir={base}", "run.name=conditional", "backbone.num_classes=auto",
                                    "train.label_dropout=0.1", "sample.guidance=2.0"], search_cwd=False)
    return Path(train(cfg).path)


@pytest.fixture
def conditional_checkpoint(tmp_path, tiny_checkpoint):
    """The tiny checkpoint turned class-conditional (3 classes): same format, random weights of a
    conditional U-Net, trained without label dropout and, like checkpoints written before names were
    stored, without class names."""
    import torch

    from workbench.config import resolve
    from workbench.backbones import build_backbone

    state = torch.load(tiny_checkpoint, weights_only=True)
    state["config"]["backbone"]["num_classes"] = 3
    state.pop("class_names", None)
    cfg = resolve(state["config"])
    torch.manual_seed(0)
    model = build_backbone(cfg.backbone, in_channels=1, out_channels=1, image_size=IMAGE_SIZE)
    # a fresh U-Net's output layer is zero (its output ignores everything); jiggle every weight
    weights = {k: v + 0.05 * torch.randn_like(v) if v.is_floating_point() else v
               for k, v in model.state_dict().items()}
    state["model"] = state["ema"] = weights
    path = tmp_path / "conditional.pt"
    torch.save(state, path)
    return path
