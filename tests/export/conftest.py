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


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """One intra-op thread while these tests run: on the shared 2-core machine, two OpenMP threads competing
    with other processes made each tiny forward pass ~50x slower (spin-waiting), not faster."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_run(one_torch_thread, tmp_path_factory) -> Path:
    """The run directory of a model trained for 4 steps by the real engine (about a second on a CPU)."""
    from workbench.config import load_config

    base = tmp_path_factory.mktemp("runs")
    cfg = load_config(None, TINY + [f"run.dir={base}"], search_cwd=False)
    try:
        from workbench.engine import train
    except ImportError:  # TEMPORARY until the engine lands: a hand-made checkpoint in the documented format
        run = _hand_made_run(cfg)
    else:
        run = train(cfg)
    checkpoint = Path(run.path) / "checkpoints" / "latest.pt"
    assert checkpoint.is_file(), "the engine wrote no checkpoint"
    return Path(run.path)


@pytest.fixture
def tiny_checkpoint(tiny_run) -> Path:
    return tiny_run / "checkpoints" / "latest.pt"


def _hand_made_run(cfg):
    import torch

    from workbench.engine.checkpoint import FORMAT, VERSION, save_run_checkpoint
    from workbench.engine.rundir import RunDirectory
    from workbench.models import build_backbone

    torch.manual_seed(0)
    run = RunDirectory.create(cfg.run.dir, cfg.run.name)
    run.write_config(cfg.to_toml())
    model = build_backbone(cfg.backbone, in_channels=1, out_channels=1, image_size=IMAGE_SIZE)
    ema = {k: v + 0.01 * torch.randn_like(v) if v.is_floating_point() else v for k, v in model.state_dict().items()}
    state = dict(format=FORMAT, version=VERSION, step=4, config=cfg.as_dict(), channels=1, image_size=IMAGE_SIZE,
                 out_channels=1, model=model.state_dict(), ema=ema)
    save_run_checkpoint(run.checkpoints_dir, 4, state, keep=3)
    return run
