"""Quality during training: a model is sampled with a fast sampler, scored, and the best step tracked."""

from __future__ import annotations

import math

import pytest
import torch

from workbench.evaluation.during_training import TrainingEvaluator

TINY = [
    "dataset.name=synthetic", "dataset.size=16", "dataset.count=64", "dataset.pad_to=0",
    "backbone.base_channels=8", "schedule.timesteps=20", "run.device=cpu",
]


pytestmark = pytest.mark.usefixtures("mean_pool_extractor")


@pytest.fixture
def tiny_model():
    from workbench.config import load_config
    from workbench.diffusion import GaussianDiffusion
    from workbench.backbones import build_backbone

    cfg = load_config(None, TINY, search_cwd=False)
    torch.manual_seed(0)
    model = build_backbone(cfg.backbone, in_channels=1, out_channels=1, image_size=16)
    return model, GaussianDiffusion.from_config(cfg), cfg


def evaluator(cfg, **kwargs) -> TrainingEvaluator:
    return TrainingEvaluator(dataset_section=cfg.dataset, channels=1, image_size=16, samples=24,
                             extractor="mean-pool", steps=2, **kwargs)


def test_an_evaluation_scores_samples_and_the_first_is_best(tiny_model):
    model, diffusion, cfg = tiny_model
    model.train()
    probe = evaluator(cfg)
    quality = probe.evaluate(model, diffusion, cfg, step=100, channels=1, image_size=16)
    assert quality.label == "FD_mean-pool" and quality.value > 0 and math.isfinite(quality.value)
    assert quality.is_best and (quality.best_step, quality.best_value) == (100, quality.value)
    assert quality.result.n == 24 and quality.seconds > 0
    assert model.training, "the model goes back to training mode"


def test_only_a_lower_value_is_a_new_best(tiny_model):
    model, diffusion, cfg = tiny_model
    probe = evaluator(cfg, best=(50, 1e-9))  # restored from a checkpoint: an unbeatable best
    quality = probe.evaluate(model, diffusion, cfg, step=100, channels=1, image_size=16)
    assert not quality.is_best and (quality.best_step, quality.best_value) == (50, 1e-9)


def test_kid_can_be_the_metric(tiny_model):
    model, diffusion, cfg = tiny_model
    quality = evaluator(cfg, metric="kid").evaluate(model, diffusion, cfg, step=1, channels=1, image_size=16)
    assert quality.label == "KD_mean-pool" and quality.value == quality.result.kid


def test_the_same_seed_gives_the_same_number(tiny_model):
    model, diffusion, cfg = tiny_model
    first = evaluator(cfg).evaluate(model, diffusion, cfg, step=1, channels=1, image_size=16)
    second = evaluator(cfg).evaluate(model, diffusion, cfg, step=1, channels=1, image_size=16)
    assert first.value == second.value
