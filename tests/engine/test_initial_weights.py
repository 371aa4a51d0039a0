"""`--init-from`: reading another run's (EMA) weights and refusing a network they do not fit."""

from __future__ import annotations

import pytest
import torch

from workbench.errors import CheckpointError


def write_run(base, name, cfg, channels, image_size, *, ema_offset=None):
    """A run directory with one checkpoint of an untrained backbone (ema = model + ema_offset when given)."""
    from workbench.engine.checkpoint import encode_model_weights, save_run_checkpoint
    from workbench.engine.rundir import RunDirectory
    from workbench.backbones import build_backbone

    model = build_backbone(cfg.backbone, in_channels=channels, out_channels=channels, image_size=image_size)
    ema = None if ema_offset is None else {k: v + ema_offset for k, v in model.state_dict().items()}
    run = RunDirectory.create(base, name)
    run.write_config(cfg.to_toml())
    state = encode_model_weights(cfg, channels=channels, image_size=image_size, model=model.state_dict(), ema=ema,
                                 step=7)
    save_run_checkpoint(run.checkpoints_dir, 7, state, keep=1)
    return run, model


@pytest.fixture
def cfg(tmp_path):
    from tests.engine.conftest import tiny_config

    return tiny_config(tmp_path / "runs")


def fresh(cfg, channels=1, image_size=16):
    from workbench.backbones import build_backbone

    return build_backbone(cfg.backbone, in_channels=channels, out_channels=channels, image_size=image_size)


def test_a_run_gives_its_ema_weights_and_a_checkpoint_file_works_the_same(cfg, tmp_path):
    from workbench.engine.initial_weights import apply_initial_weights, read_initial_weights

    run, source = write_run(tmp_path / "runs", "src", cfg, 1, 16, ema_offset=0.5)
    for spec in ("src", str(run.latest_checkpoint)):
        initial = read_initial_weights(spec, tmp_path / "runs")
        assert initial.ema and initial.step == 7
        model = fresh(cfg)
        apply_initial_weights(model, initial)
        assert all(torch.equal(model.state_dict()[k], v + 0.5) for k, v in source.state_dict().items())


def test_without_ema_the_raw_weights_are_used(cfg, tmp_path):
    from workbench.engine.initial_weights import apply_initial_weights, read_initial_weights

    _, source = write_run(tmp_path / "runs", "src", cfg, 1, 16)
    initial = read_initial_weights("src", tmp_path / "runs")
    assert not initial.ema
    model = fresh(cfg)
    apply_initial_weights(model, initial)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in source.state_dict().items())


def test_another_image_size_is_fine_for_the_convolutional_unet(cfg, tmp_path):
    from workbench.engine.initial_weights import apply_initial_weights, read_initial_weights

    write_run(tmp_path / "runs", "src", cfg, 1, 16)
    apply_initial_weights(fresh(cfg, image_size=32), read_initial_weights("src", tmp_path / "runs"))


def test_three_channels_into_one_is_refused_naming_the_layer(cfg, tmp_path):
    from workbench.engine.initial_weights import apply_initial_weights, read_initial_weights

    write_run(tmp_path / "runs", "rgb", cfg, 3, 16)
    with pytest.raises(CheckpointError) as info:
        apply_initial_weights(fresh(cfg, channels=1), read_initial_weights("rgb", tmp_path / "runs"))
    message = str(info.value)
    assert "'conv_in.weight' is (16, 3, 3, 3) there but (16, 1, 3, 3) here" in message
    assert "(a model of 3-channel images into one of 1)" in message and "\n" not in message


def test_another_architecture_is_refused_naming_the_first_parameter(cfg, tmp_path):
    from workbench.engine.initial_weights import apply_initial_weights, read_initial_weights

    write_run(tmp_path / "runs", "src", cfg, 1, 16)
    deeper = cfg.with_overrides(["backbone.num_res_blocks=3"])
    with pytest.raises(CheckpointError, match=r"the source has no 'down\.0\.blocks\.1\.norm1\.weight'"):
        apply_initial_weights(fresh(deeper), read_initial_weights("src", tmp_path / "runs"))
    conditional = cfg.with_overrides(["backbone.num_classes=10"])
    with pytest.raises(CheckpointError, match=r"the source has no 'label_emb\.weight'"):
        apply_initial_weights(fresh(conditional), read_initial_weights("src", tmp_path / "runs"))


def test_a_missing_run_is_one_line(tmp_path):
    from workbench.engine.initial_weights import read_initial_weights

    with pytest.raises(CheckpointError, match=r"^run 'nope' not found"):
        read_initial_weights("nope", tmp_path / "runs")
