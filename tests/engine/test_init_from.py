"""`train --init-from`: a new run (own directory, fresh optimizer, step 0) that starts from another run's weights."""

from __future__ import annotations

import pytest
import torch

from tests.engine.conftest import metric_losses, tiny_config
from workbench.cli import main


@pytest.fixture(scope="module")
def source_run(tmp_path_factory):
    """A tiny run trained 4 steps, with EMA weights that differ from its raw ones."""
    from workbench.engine import train

    base = tmp_path_factory.mktemp("runs")
    cfg = tiny_config(base, "train.steps=4", "train.ema_decay=0.5", "train.ema_warmup=false",
                      "train.sample_every=0", "train.checkpoint_every=0", "run.name=source")
    return train(cfg)


def first_batch_loss(cfg, model) -> float:
    """The loss of `model` on the first batch a run of `cfg` trains on: its data order and its training
    noise generator drawing t, then the noise (as the trainer's _draw_t_and_noise)."""
    from workbench.diffusion import randn
    from workbench.engine.distributed import Distributed
    from workbench.engine.setup import build_training_run

    run = build_training_run(cfg, Distributed(), torch.device("cpu"))
    x, _ = run.data.next_batch(run.micro_batch)
    t = run.diffusion.sample_timesteps(run.micro_batch, run.device, run.noise_generator)
    noise = randn(tuple(x.shape), run.noise_generator, run.device)
    with torch.no_grad():
        losses, _ = run.diffusion.training_losses(model, x, t=t, noise=noise, weighting=cfg.train.loss_weighting,
                                                  min_snr_gamma=cfg.train.min_snr_gamma)
    return float(losses.mean())


def test_the_first_loss_is_the_loaded_models_loss_on_the_same_batch(source_run, tmp_path):
    from workbench.engine import train
    from workbench.sampling.model import load_for_sampling

    cfg = tiny_config(tmp_path / "runs", "train.steps=1", "train.log_every=1", "run.seed=11", "run.name=tuned")
    loaded = load_for_sampling(run=str(source_run.path), ema=True).model  # the source's EMA weights
    expected = first_batch_loss(cfg, loaded)

    tuned = train(cfg, init_from=str(source_run.path))
    assert metric_losses(tuned)[1] == pytest.approx(expected, rel=1e-5)
    fresh = train(tiny_config(tmp_path / "fresh", "train.steps=1", "train.log_every=1", "run.seed=11"))
    assert metric_losses(fresh)[1] != pytest.approx(expected, rel=1e-3)  # a random start gives another loss


def test_it_is_a_new_run_at_step_0_with_a_fresh_optimizer(source_run, tmp_path):
    from workbench.engine import train
    from workbench.engine.checkpoint import load_checkpoint

    tuned = train(tiny_config(tmp_path / "runs", "train.steps=2", "train.checkpoint_every=0", "train.sample_every=0"),
                  init_from=str(source_run.latest_checkpoint))
    assert tuned.path != source_run.path
    state = load_checkpoint(tuned.latest_checkpoint)
    assert state["step"] == 2
    assert all(int(s["step"]) == 2 for s in state["optimizer"]["state"].values())  # two updates, not 4 + 2
    assert load_checkpoint(source_run.latest_checkpoint)["step"] == 4  # the source is untouched


def test_the_command_starts_from_the_sources_config_as_a_new_run(source_run, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--plain", "--init-from", str(source_run.path), "--set", f"run.dir={tmp_path / 'new'}",
                 "--set", "train.steps=1", "--set", "run.name=tuned"]) == 0
    out = capsys.readouterr().out
    assert f"starting from the EMA weights of step 4 in {source_run.latest_checkpoint}" in out
    config = (tmp_path / "new" / "tuned" / "config.toml").read_text()
    assert "base_channels = 16" in config and "timesteps = 100" in config  # the source's network and schedule


def test_picking_another_dataset_drops_the_sources_dataset_keys(source_run):
    from workbench.commands.train import fine_tuning_config
    from workbench.engine.initial_weights import read_initial_weights

    initial = read_initial_weights(str(source_run.path))
    cfg = fine_tuning_config(initial, ["dataset.name=fashion-mnist"])
    assert cfg.dataset.name == "fashion-mnist" and "count" not in cfg.dataset.params
    assert cfg.dataset.pad_to == 0  # host keys stay
    assert cfg.run.name == ""  # a new run: a timestamp unless --set run.name


def test_a_network_that_does_not_fit_is_one_line(source_run, tmp_path, capsys):
    assert main(["train", "--init-from", str(source_run.path), "--set", f"run.dir={tmp_path}",
                 "--set", "backbone.base_channels=24", "--set", "train.steps=1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: --init-from ") and err.count("\n") == 1, err
    assert "'time_mlp.0.weight' is (64, 16) there but (96, 24) here; weights are not adapted" in err
    assert not any(tmp_path.iterdir())


def test_resume_and_init_from_together_are_refused(source_run, capsys):
    assert main(["train", "--resume", str(source_run.path), "--init-from", str(source_run.path)]) == 2
    assert "give one of them" in capsys.readouterr().err
