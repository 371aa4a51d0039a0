"""Class-conditional training for classifier-free guidance: backbone.num_classes = "auto" counts the data's
classes, train.label_dropout trains the "no label" class from the training-noise generator (so resume stays
exact), the checkpoint keeps the class names, and backbone classes that do not fit the data are one line
before anything is written."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.engine.conftest import StopAfter, metric_losses, tiny_config
from workbench.engine import train
from workbench.engine.checkpoint import load_checkpoint
from workbench.errors import ConfigError

CONDITIONAL = ("backbone.num_classes=auto", "train.label_dropout=0.25")
SHAPES = ["disk", "square", "ring", "plus"]  # the synthetic dataset's classes


def test_label_dropout_replaces_that_fraction_of_labels_with_the_no_label_class(tmp_path):
    from workbench.engine.distributed import Distributed
    from workbench.engine.setup import build_training_run
    from workbench.engine.trainer import Trainer

    cfg = tiny_config(tmp_path, *CONDITIONAL, "train.batch_size=4000")
    trainer = Trainer(cfg)
    run = trainer.run = build_training_run(cfg, Distributed(), torch.device("cpu"))
    trainer.cfg = run.cfg
    assert run.cfg.backbone.params["num_classes"] == 4
    y = torch.arange(4000) % 4
    before = run.noise_generator.get_state()
    dropped = trainer._drop_labels(y)
    assert not torch.equal(run.noise_generator.get_state(), before)  # drawn from the training-noise stream
    no_label = dropped == 4
    assert abs(int(no_label.sum()) - 1000) < 4 * (4000 * 0.25 * 0.75) ** 0.5  # 1000 +- 4 sigma (110)
    assert torch.equal(dropped[~no_label], y[~no_label])  # the others keep their label
    run.noise_generator.set_state(before)
    assert torch.equal(trainer._drop_labels(y), dropped)  # the same generator state, the same mask


def test_auto_classes_become_the_data_count_in_the_run_config_and_the_checkpoint_keeps_the_names(tmp_path):
    run = train(tiny_config(tmp_path, *CONDITIONAL, "train.steps=2", "run.name=cond"))
    state = load_checkpoint(run.latest_checkpoint)
    assert state["config"]["backbone"]["num_classes"] == 4
    assert state["config"]["train"]["label_dropout"] == 0.25
    assert state["class_names"] == SHAPES
    assert "num_classes = 4" in (run.path / "config.toml").read_text()


def test_resume_with_label_dropout_continues_exactly(tmp_path):
    extra = (*CONDITIONAL, "train.steps=8", "train.log_every=2", "train.sample_every=0", "train.checkpoint_every=0")
    whole = train(tiny_config(tmp_path / "a", *extra, "run.name=whole"))
    train(tiny_config(tmp_path / "b", *extra, "run.name=split"), stop_event=StopAfter(3))
    resumed = train(tiny_config(tmp_path / "b", *extra, "run.name=split"), resume="split")  # "auto" again
    expected = {s: v for s, v in metric_losses(whole).items() if s > 3}
    assert {s: v for s, v in metric_losses(resumed).items() if s > 3} == expected and len(expected) == 3
    a, b = load_checkpoint(whole.latest_checkpoint), load_checkpoint(resumed.latest_checkpoint)
    assert all(torch.equal(a["model"][key], b["model"][key]) for key in a["model"])


def test_label_dropout_changes_what_is_trained(tmp_path):
    # the mask is really applied: the same run without dropout reaches other losses
    common = ("backbone.num_classes=auto", "train.steps=4", "train.log_every=2", "train.sample_every=0")
    with_dropout = metric_losses(train(tiny_config(tmp_path, *common, "train.label_dropout=0.5", "run.name=a")))
    without = metric_losses(train(tiny_config(tmp_path, *common, "run.name=b")))
    assert with_dropout != without


def test_too_few_classes_for_the_labels_is_one_line_before_the_run_directory_exists(tmp_path):
    with pytest.raises(ConfigError, match=r"^\[backbone\] num_classes = 2 is too small: dataset 'synthetic' has "
                                          r"labels 0\.\.3; set backbone.num_classes = 4 or \"auto\"$"):
        train(tiny_config(tmp_path, "backbone.num_classes=2"))
    assert not (tmp_path / "runs").exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("classes", ["auto", "3"])
def test_classes_on_an_unlabelled_dataset_are_one_line(tmp_path, classes):
    images = np.random.default_rng(0).integers(0, 256, (16, 16, 16), dtype=np.uint8)
    np.save(tmp_path / "images.npy", images)
    base = tmp_path / "base"
    with pytest.raises(ConfigError, match=r"needs labels, but dataset 'npy' .* has none; set "
                                          r"backbone.num_classes = 0 or pick a labelled dataset$"):
        train(tiny_config(base, "dataset.name=npy", f"dataset.path={tmp_path / 'images.npy'}",
                          f"backbone.num_classes={classes}"))
    assert not base.exists()


def test_a_conditional_preview_has_a_named_row_per_class_guided_at_sample_guidance(tmp_path):
    # The preview is the one sampling path's guided output for labels 0..3 from the run's fixed x_T, laid out
    # one row per class with the names in a left gutter under a "guidance W" title.
    from PIL import Image

    from workbench.diffusion import build_sampler, sample_images
    from workbench.engine.setup import derived_seed
    from workbench.pictures import make_grid, to_uint8
    from workbench.sampling.layout import LINE_HEIGHT, text_width
    from workbench.sampling.model import load_for_sampling, model_function
    from workbench.pictures import PADDING

    run = train(tiny_config(tmp_path, *CONDITIONAL, "sample.guidance=3", "train.steps=6", "run.name=p"))
    bundle = load_for_sampling(checkpoint=str(run.latest_checkpoint))
    cfg = bundle.cfg
    labels = torch.arange(4)  # sample.n = 4 over 4 classes: one image per row
    x_T = torch.randn((4, bundle.channels, bundle.image_size, bundle.image_size),
                      generator=torch.Generator().manual_seed(derived_seed(cfg.run.seed, "samples")))
    images = sample_images(model_function(bundle.model, torch.device("cpu"), labels=labels, guidance=3.0),
                           bundle.diffusion, build_sampler(cfg.sample), x_T.shape, steps=cfg.sample.steps,
                           noise=x_T, generator=torch.Generator().manual_seed(derived_seed(cfg.run.seed, "sampler")))
    tiles = make_grid(to_uint8(images), nrow=1)[:, :, 0]
    with Image.open(run.sample_grids()[-1]) as png:
        preview = np.asarray(png)
    scale = preview.shape[0] // (LINE_HEIGHT + tiles.shape[0])  # preview PNGs may be enlarged (nearest neighbour)
    preview = preview[::scale, ::scale]
    gutter = max(text_width(name) for name in SHAPES) + 2 * PADDING
    assert preview.shape[0] == LINE_HEIGHT + tiles.shape[0]
    np.testing.assert_array_equal(preview[LINE_HEIGHT:, gutter:gutter + tiles.shape[1]], tiles)
    assert (preview[:LINE_HEIGHT] < 128).any() and (preview[LINE_HEIGHT:, :gutter] < 128).any()  # title, names


@pytest.mark.parametrize("overrides, warning", [
    (("train.label_dropout=0.1",), "train.label_dropout = 0.1 does nothing: the backbone is not class-conditional"),
    (("backbone.num_classes=auto", "sample.guidance=3"), "sample.guidance = 3 with train.label_dropout = 0: the "
                                                         "previews guide with an unconditional branch that is never "
                                                         "trained"),
])
def test_settings_that_cannot_work_together_warn_at_the_start(tmp_path, overrides, warning):
    from tests.engine.conftest import Recorder

    recorder = Recorder()
    train(tiny_config(tmp_path, *overrides, "train.steps=1", "train.sample_every=0"), on_event=recorder)
    warnings = recorder.of("warning")
    assert len(warnings) == 1 and warnings[0].message.startswith(warning)
