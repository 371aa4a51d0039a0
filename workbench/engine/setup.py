"""Everything a training run needs, built before anything is written: data, model, EMA, optimizer, precision,
generators, and (when resuming) the checkpoint's state loaded into all of them (`build_training_run`, which
returns the run's one state object, `TrainingRun`).

A user error anywhere in here (bad config value, missing dataset, unreadable checkpoint) raises a
`WorkbenchError` before the run directory exists, so nothing is left half-created.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from workbench.engine.checkpoint import (Progress, find_run_checkpoint, load_checkpoint, restore_rng,
                                         restore_training)
from workbench.engine.distributed import Distributed
from workbench.engine.initial_weights import InitialWeights, apply_initial_weights
from workbench.engine.metrics import MetricWindow
from workbench.engine.optim import EMA, build_optimizer
from workbench.engine.rundir import RunDirectory
from workbench.errors import CheckpointError, ConfigError

# Config keys a resumed run must share with its checkpoint: they decide the network and what it learns.
MODEL_SECTIONS = ("dataset", "schedule", "backbone")
MODEL_TRAIN_KEYS = ("prediction",)


def derived_seed(seed: int, stream: str) -> int:
    """An independent 63-bit seed per purpose ("noise", "samples", ...) from the run's one seed."""
    words = [seed] + [ord(c) for c in stream]
    return int(np.random.SeedSequence(words).generate_state(1, np.uint64)[0] >> np.uint64(1))


@dataclass
class Precision:
    name: str                       # fp32, bf16 or fp16
    dtype: torch.dtype | None       # autocast dtype, None for fp32
    channels_last: bool

    def autocast(self, device: torch.device):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=self.dtype)


def cpu_has_amx() -> bool:
    """Whether this CPU multiplies bf16 matrices in hardware (Intel AMX, Sapphire Rapids and newer), where
    oneDNN trains the U-Nets about 2x faster under bf16 autocast than in fp32. Not when ONEDNN_MAX_CPU_ISA
    caps oneDNN below AMX (e.g. AVX2, as bench/bench_step.py uses to see an AVX2-only CPU's path): bf16 would
    then run emulated, several times slower than fp32."""
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "").strip().upper()
    if isa and isa not in ("ALL", "DEFAULT") and "AMX" not in isa:
        return False
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)
    try:
        return bool(probe()) if probe is not None else False
    except Exception:  # noqa: BLE001 - a private torch probe; unknown means no
        return False


def auto_precision(device: torch.device) -> str:
    """What precision "auto" means on `device`: bf16 on CUDA GPUs that support it and on CPUs with AMX,
    fp32 elsewhere. Training and sampling (workbench.sampling.generate) both follow it."""
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if device.type == "cpu" and cpu_has_amx() else "fp32"


def resolve_precision(train_cfg, device: torch.device) -> Precision:
    name = train_cfg.precision
    if name == "auto":
        name = auto_precision(device)
    if name == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError("[train] precision = \"bf16\" but this GPU has no bf16 support; use fp16 or auto")
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[name]
    channels_last = train_cfg.channels_last
    if channels_last == "auto":
        channels_last = device.type == "cuda"
    return Precision(name, dtype, bool(channels_last))


def enable_fast_math(device: torch.device) -> None:
    """TF32 matmuls and convolutions on Ampere and newer (10-bit mantissa inputs, fp32 accumulation)."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True


@dataclass
class ResumePoint:
    run: RunDirectory
    checkpoint: Path
    state: dict


def find_resume_point(resume: str, base_dir: str | Path) -> ResumePoint:
    """The run to continue (a name, path, or "latest") and its newest checkpoint, loaded on the CPU."""
    path = find_run_checkpoint(resume, base_dir)
    run = RunDirectory(path.parent.parent)
    return ResumePoint(run, path, load_checkpoint(path, map_location="cpu"))


def check_resume_config(cfg, state: dict, checkpoint: Path) -> None:
    """The network, data and diffusion settings must match the checkpoint's (CheckpointError otherwise)."""
    stored = state.get("config", {})
    current = cfg.as_dict()
    for section in MODEL_SECTIONS:
        for key in sorted(set(stored.get(section, {})) | set(current.get(section, {}))):
            old, new = stored.get(section, {}).get(key), current.get(section, {}).get(key)
            if (section, key, new) == ("backbone", "num_classes", "auto") and old:
                continue  # "auto" resolves to the data's count, which the dataset keys already pin
            if old != new:
                raise CheckpointError(f"checkpoint {str(checkpoint)!r} was trained with [{section}] {key} = {old!r} "
                                      f"but the config says {new!r}; resume with the run's own settings "
                                      "(leave that key alone) or start a new run")
    for key in MODEL_TRAIN_KEYS:
        old, new = stored.get("train", {}).get(key), current["train"].get(key)
        if old != new:
            raise CheckpointError(f"checkpoint {str(checkpoint)!r} was trained with [train] {key} = {old!r} but the "
                                  f"config says {new!r}; resume with the run's own settings or start a new run")


def label_count(data, distributed: Distributed) -> int:
    """How many classes the training data has: max label + 1 over every rank's shard when the labels are in
    memory, else the dataset's class names; 0 for unlabelled data (or labels of unknown range)."""
    if not data.has_labels:
        return 0
    labels = getattr(data, "labels", None)
    if labels is None:
        return len(data.class_names)
    top = labels.max().to(torch.long).reshape(1) if labels.numel() else torch.full((1,), -1, device=labels.device)
    if distributed.enabled:
        from workbench.engine.distributed import all_reduce_max

        top = all_reduce_max(top, distributed)
    return max(int(top.item()) + 1, len(data.class_names))


def with_class_count(cfg, data, distributed: Distributed):
    """`cfg` with backbone.num_classes = "auto" replaced by the data's class count, after checking that the
    backbone's classes fit the data's labels (one-line ConfigErrors, raised before the run directory exists;
    a label out of range would otherwise be an IndexError at step 0)."""
    num_classes = cfg.backbone.params.get("num_classes")
    if num_classes is None or num_classes == 0:
        return cfg
    count = label_count(data, distributed)
    if count == 0:
        raise ConfigError(f"[backbone] num_classes = {num_classes!r} needs labels, but dataset {cfg.dataset.name!r} "
                          f"({data.description}) has none; set backbone.num_classes = 0 or pick a labelled dataset")
    if num_classes == "auto":
        from workbench.config import resolve

        raw = cfg.as_dict()
        raw["backbone"]["num_classes"] = count
        return resolve(raw, source=cfg.source)
    if num_classes < count:
        raise ConfigError(f"[backbone] num_classes = {num_classes} is too small: dataset {cfg.dataset.name!r} has "
                          f"labels 0..{count - 1}; set backbone.num_classes = {count} or \"auto\"")
    return cfg


def preview_labels(n: int, num_classes: int) -> torch.Tensor | None:
    """Labels of a class-conditional run's preview grid: one row per class of ceil(n / K) images each
    (0, 0, 1, 1, ...); None for an unconditional run."""
    if num_classes <= 0:
        return None
    return torch.arange(num_classes).repeat_interleave(-(-n // num_classes))


@dataclass
class TrainingRun:
    """One training run on this rank: what `build_training_run` built (data, model, optimizer, ...) and
    where the loop stands (step, last checkpoint, ...). Created in one place; the trainer changes only the
    second group."""

    cfg: Any
    distributed: Distributed          # the torchrun context: rank, world size (disabled in a single process)
    device: torch.device
    data: Any
    model: nn.Module                 # the raw backbone (what checkpoints store)
    forward: nn.Module               # what the training step calls: model, maybe DDP- and compile-wrapped
    ddp: Any                         # the DistributedDataParallel wrapper or None
    ema: EMA | None                  # rank 0 only (None without EMA)
    optimizer: torch.optim.Optimizer
    fused: bool                      # the optimizer skips a step on device when told found_inf
    scaler: Any                      # torch.amp.GradScaler for fp16, else None
    precision: Precision
    diffusion: Any
    sampler: Any
    noise_generator: torch.Generator  # timesteps and noise of training batches (same on every rank)
    sample_noise: torch.Tensor       # fixed x_T of the preview grids, on the device
    sample_labels: torch.Tensor | None  # class-conditional runs: one row per class (preview_labels)
    channels: int
    image_size: int
    parameters: int
    flops_per_image: int
    per_rank_batch: int
    micro_batch: int
    trainable: list                  # the parameters the optimizer updates (gradient clipping, finiteness)
    window: MetricWindow             # per-step metrics on the device until the next log step

    # -- where the loop stands ------------------------------------------------------------------------
    start_step: int = 0              # the step this process started at (the checkpoint's when resuming)
    step: int = 0
    lr: float = 0.0
    last_log_step: int = 0
    last_sample_step: int = -1
    last_checkpoint: tuple[int, Path] | None = None
    elapsed_before: float = 0.0      # training seconds of earlier processes (resume)
    bad_windows: int = 0             # log windows in a row with non-finite steps
    restores: int = 0                # rollbacks to the last checkpoint so far
    stop_requested: bool = False
    quality_best: dict | None = None  # {"step", "value", "metric"}: the best evaluation (train.eval_every)


def check_batch_sizes(train_cfg, world_size: int) -> tuple[int, int]:
    """(per-rank batch, micro-batch) for the global batch split across ranks and accumulation steps."""
    batch, accum = train_cfg.batch_size, train_cfg.grad_accum
    if batch % world_size:
        raise ConfigError(f"[train] batch_size = {batch} is not divisible by the {world_size} ranks of this "
                          f"torchrun job; use a multiple of {world_size}")
    per_rank = batch // world_size
    if per_rank % accum:
        raise ConfigError(f"[train] batch_size = {batch} over {world_size} ranks is {per_rank} per rank, not "
                          f"divisible by grad_accum = {accum}")
    return per_rank, per_rank // accum


def build_training_run(cfg, distributed: Distributed, device: torch.device,
                       resume: ResumePoint | None = None, initial: InitialWeights | None = None) -> TrainingRun:
    """Build everything one rank trains with from a resolved config, restored from `resume` when given; a
    new run's network starts from `initial`'s weights when given (`--init-from`: fine-tuning)."""
    from workbench.backbones import build_backbone, count_parameters, flops_per_image
    from workbench.data import build_dataset
    from workbench.diffusion import GaussianDiffusion, build_sampler

    per_rank, micro = check_batch_sizes(cfg.train, distributed.world_size)
    seed = cfg.run.seed
    precision = resolve_precision(cfg.train, device)
    enable_fast_math(device)
    diffusion = GaussianDiffusion.from_config(cfg).to(device)
    sampler = build_sampler(cfg.sample)
    data = build_dataset(cfg.dataset, device=device, rank=distributed.rank, world_size=distributed.world_size,
                         seed=seed)
    channels, size = int(data.channels), int(data.image_size)
    cfg = with_class_count(cfg, data, distributed)

    # Same seed on every rank: every rank starts from the same weights (DDP also broadcasts rank 0's).
    torch.manual_seed(seed)
    model = build_backbone(cfg.backbone, in_channels=channels, out_channels=channels, image_size=size)
    if initial is not None:  # before the EMA copy and the optimizer: both start from these weights
        apply_initial_weights(model, initial)
    parameters = count_parameters(model)
    flops = flops_per_image(model, channels, size)
    model.to(device)
    if precision.channels_last:
        model.to(memory_format=torch.channels_last)
    model.train()
    use_ema = cfg.train.ema_decay > 0 and distributed.is_main
    ema = EMA(model, cfg.train.ema_decay, cfg.train.ema_warmup) if use_ema else None
    optimizer = build_optimizer(model.parameters(), cfg.train, device)
    fused = bool(optimizer.defaults.get("fused"))
    scaler = torch.amp.GradScaler(device.type) if precision.name == "fp16" else None

    start_step = 0
    if resume is not None:
        start_step = restore_training(resume.state, model, ema, optimizer, scaler, data, distributed.rank,
                                      distributed.world_size)

    forward: nn.Module = model
    ddp = None
    if distributed.enabled:
        from torch.nn.parallel import DistributedDataParallel

        ddp = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        forward = ddp
    if cfg.train.compile:
        forward = torch.compile(forward)

    noise_generator = torch.Generator(device).manual_seed(derived_seed(seed, "noise"))
    sample_gen = torch.Generator().manual_seed(derived_seed(seed, "samples"))
    sample_labels = preview_labels(cfg.sample.n, int(cfg.backbone.params.get("num_classes") or 0))
    previews = cfg.sample.n if sample_labels is None else len(sample_labels)
    sample_noise = torch.randn((previews, channels, size, size), generator=sample_gen).to(device)
    sample_labels = sample_labels.to(device) if sample_labels is not None else None
    # Dropout differs per rank from here on; the weights are already equal.
    torch.manual_seed(derived_seed(seed, f"rank{distributed.rank}"))
    window = MetricWindow(device, diffusion.num_timesteps)
    run = TrainingRun(cfg=cfg, distributed=distributed, device=device, data=data, model=model, forward=forward,
                      ddp=ddp, ema=ema, optimizer=optimizer, fused=fused, scaler=scaler, precision=precision,
                      diffusion=diffusion, sampler=sampler, noise_generator=noise_generator,
                      sample_noise=sample_noise, sample_labels=sample_labels, channels=channels, image_size=size,
                      parameters=parameters, flops_per_image=flops, per_rank_batch=per_rank, micro_batch=micro,
                      trainable=[p for p in model.parameters() if p.requires_grad], window=window,
                      start_step=start_step, step=start_step, last_log_step=start_step)
    if resume is not None:
        restore_rng(resume.state, noise_generator, distributed.rank, distributed.world_size, device)
        progress = Progress.of(resume.state)
        run.last_checkpoint = (start_step, resume.checkpoint)
        run.last_sample_step = start_step
        run.elapsed_before = progress.elapsed_s
        run.quality_best = progress.quality_best
        if progress.metric_window is not None:
            window.load_state_dict(progress.metric_window)
    return run
