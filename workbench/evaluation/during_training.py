"""Sample quality measured while a model trains, and which step was best.

Every `train.eval_every` steps the engine hands the EMA model to `TrainingEvaluator.evaluate`, which
samples `train.eval_samples` images with a fast sampler (DPM-Solver++, 20 steps by default) through the
sampling path `sample` uses, extracts their features and scores them against the training dataset's
reference statistics (computed at the first evaluation and cached like `eval`'s). The result says whether
this is the best value so far of the chosen metric (lower is better for both "fd" and "kid"), so the engine
can keep a `best` checkpoint. The seconds spent here are reported apart, so img/s measures training alone.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Callable

import torch

from workbench.evaluation.evaluate import EvalResult

METRICS = ("fd", "kid")
FAST_SAMPLER = "dpm-solver++"
FAST_STEPS = 20


@dataclass(frozen=True)
class Quality:
    """One evaluation during training."""

    step: int
    metric: str          # "fd" or "kid"
    label: str           # what the value is: "FID", "FD_fashion-classifier", "KID", ...
    value: float
    result: EvalResult
    seconds: float       # sampling + features + scoring, excluded from training throughput
    is_best: bool
    best_step: int
    best_value: float


def metric_value(result: EvalResult, metric: str) -> tuple[str, float]:
    """(label, value) of the ranking metric in a result."""
    if metric == "kid":
        return result.kernel_label, float(result.kid if result.kid is not None else math.nan)
    return result.frechet_label, float(result.frechet)


class TrainingEvaluator:
    """Scores a training model every N steps and tracks the best value of one metric."""

    def __init__(self, *, dataset_section: Any, channels: int, image_size: int, samples: int, metric: str = "fd",
                 extractor: str = "auto", sampler: str = FAST_SAMPLER, steps: int = FAST_STEPS, seed: int = 0,
                 batch_size: int = 250, device: torch.device | str = "cpu",
                 on_note: Callable[[str], None] | None = None, best: tuple[int, float] | None = None):
        from workbench.evaluation.extractors import build_extractor, check_images_for, choose_extractor

        if metric not in METRICS:
            raise ValueError(f"metric {metric!r} is not one of {', '.join(METRICS)}")
        self.dataset_section, self.samples, self.metric = dataset_section, samples, metric
        self.sampler_name, self.steps, self.seed, self.batch_size = sampler, steps, seed, batch_size
        self.device, self.on_note = torch.device(device), on_note
        self.extractor = build_extractor(choose_extractor(extractor, channels, image_size),
                                         option="train.eval_extractor")
        check_images_for(self.extractor, channels, image_size, "train.eval_every")
        self.extractor.to(self.device)
        self.reference = None
        self.best_step, self.best_value = best if best is not None else (-1, math.inf)

    def _reference(self):
        if self.reference is None:
            from workbench.evaluation.reference import dataset_reference

            self.reference = dataset_reference(self.dataset_section, self.extractor, device=self.device,
                                               on_note=self.on_note)
        return self.reference

    def evaluate(self, model: torch.nn.Module, diffusion, cfg, *, step: int, channels: int, image_size: int) -> Quality:
        """Sample, extract and score; `model` is put in eval mode and restored afterwards."""
        from workbench.diffusion import build_sampler
        from workbench.evaluation.evaluate import score_features
        from workbench.evaluation.extractors import extract_features
        from workbench.sampling.generate import SampleSettings, generate

        started = time.perf_counter()
        reference = self._reference()
        section = fast_sample_section(cfg, self.sampler_name, self.steps)
        sampler = build_sampler(section)
        bundle = SimpleNamespace(model=model, diffusion=diffusion, cfg=cfg, channels=channels, image_size=image_size)
        settings = SampleSettings(n=self.samples, steps=section.steps, seed=self.seed,
                                  batch_size=min(self.batch_size, self.samples), clip_x0=section.clip_x0,
                                  dynamic_threshold=section.dynamic_threshold)
        was_training = model.training
        model.eval()
        try:
            images = generate(bundle, sampler, settings, device=self.device).images
        finally:
            model.train(was_training)
        features = extract_features(self.extractor, images, device=self.device)
        result = score_features(features, reference, self.extractor, kid=self.metric == "kid",
                                precision_recall_too=False, device=self.device)
        label, value = metric_value(result, self.metric)
        is_best = math.isfinite(value) and value < self.best_value
        if is_best:
            self.best_step, self.best_value = step, value
        return Quality(step, self.metric, label, value, result, time.perf_counter() - started, is_best,
                       self.best_step, self.best_value)


def fast_sample_section(cfg, name: str, steps: int):
    """The run's [sample] section with sampler `name` at `steps` (at most the schedule's timesteps), resolved
    like a config file: the run's own sampler keeps its options, another starts from its defaults."""
    from workbench.config import resolve

    raw = cfg.as_dict()
    stored = raw["sample"]
    table = dict(stored) if stored["name"] == name else {k: stored[k] for k in ("n", "clip_x0", "dynamic_threshold")}
    table.update(name=name, steps=min(steps, int(cfg.schedule.timesteps)))
    raw["sample"] = table
    return resolve(raw, source=cfg.source).sample


def training_evaluator(cfg, *, channels: int, image_size: int, device: torch.device,
                       best: dict | None = None) -> tuple[TrainingEvaluator | None, int, str]:
    """(evaluator, every, note) for a run's [train] eval_* keys; (None, 0, note) when evaluation is off.

    train.eval_every = -1 (auto) means off on a CPU and 10 evaluations per run on a GPU; when auto cannot
    evaluate (no Inception weights offline, say), `note` says why and training goes on without it. An
    explicit eval_every makes such problems one-line errors before training starts."""
    from workbench.errors import ConfigError, WorkbenchError

    train = cfg.train
    auto = train.eval_every == -1
    every = (max(1, train.steps // 10) if device.type == "cuda" else 0) if auto else train.eval_every
    if not every:
        return None, 0, ""
    samples = train.eval_samples or (10_000 if device.type == "cuda" else 1_000)
    try:
        evaluator = TrainingEvaluator(dataset_section=cfg.dataset, channels=channels, image_size=image_size,
                                      samples=samples, metric=train.eval_metric, extractor=train.eval_extractor,
                                      seed=cfg.run.seed, device=device)
        if samples <= evaluator.extractor.dim:
            raise ConfigError(f"[train] eval_samples = {samples} is not more than the {evaluator.extractor.dim} "
                              f"feature dimensions of {evaluator.extractor.name!r}: the Frechet distance's "
                              f"covariance would be singular; use more than {evaluator.extractor.dim} (10,000 is usual)")
    except WorkbenchError as exc:
        if auto:
            return None, 0, f"quality evaluation is off (train.eval_every = -1): {exc}"
        raise
    label = metric_value_label(evaluator.extractor, train.eval_metric)
    if best and best.get("metric") == label:
        evaluator.best_step, evaluator.best_value = int(best["step"]), float(best["value"])
    return evaluator, every, ""


def metric_value_label(extractor, metric: str) -> str:
    return extractor.kernel_label if metric == "kid" else extractor.frechet_label
