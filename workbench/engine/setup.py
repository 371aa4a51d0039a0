"""Everything a training run needs, built before anything is written: data, model, EMA, optimizer, precision,
generators, and (when resuming) the checkpoint's state loaded into all of them.

A user error anywhere in here (bad config value, missing dataset, unreadable checkpoint) raises a
`WorkbenchError` before the run directory exists, so nothing is left half-created.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from workbench.engine.checkpoint import FORMAT, VERSION, find_run_checkpoint, load_checkpoint
from workbench.engine.distributed import Distributed
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
    oneDNN trains the U-Nets about 2x faster under bf16 autocast than in fp32."""
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
            if old != new:
                raise CheckpointError(f"checkpoint {str(checkpoint)!r} was trained with [{section}] {key} = {old!r} "
                                      f"but the config says {new!r}; resume with the run's own settings "
                                      "(leave that key alone) or start a new run")
    for key in MODEL_TRAIN_KEYS:
        old, new = stored.get("train", {}).get(key), current["train"].get(key)
        if old != new:
            raise CheckpointError(f"checkpoint {str(checkpoint)!r} was trained with [train] {key} = {old!r} but the "
                                  f"config says {new!r}; resume with the run's own settings or start a new run")


@dataclass
class Components:
    """The built pieces of one run (on this rank)."""

    cfg: Any
    ctx: Distributed
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
    sample_labels: torch.Tensor | None
    channels: int
    image_size: int
    parameters: int
    flops_per_image: int
    per_rank_batch: int
    micro_batch: int
    start_step: int = 0
    resume_state: dict | None = field(default=None, repr=False)


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


def build_components(cfg, ctx: Distributed, device: torch.device, resume_state: dict | None = None) -> Components:
    from workbench.data import build_dataset
    from workbench.diffusion import GaussianDiffusion, build_sampler
    from workbench.models import build_backbone, count_parameters, flops_per_image

    per_rank, micro = check_batch_sizes(cfg.train, ctx.world_size)
    seed = cfg.run.seed
    precision = resolve_precision(cfg.train, device)
    enable_fast_math(device)
    diffusion = GaussianDiffusion.from_config(cfg).to(device)
    sampler = build_sampler(cfg.sample)
    data = build_dataset(cfg.dataset, device=device, rank=ctx.rank, world_size=ctx.world_size, seed=seed)
    channels, size = int(data.channels), int(data.image_size)

    # Same seed on every rank: every rank starts from the same weights (DDP also broadcasts rank 0's).
    torch.manual_seed(seed)
    model = build_backbone(cfg.backbone, in_channels=channels, out_channels=channels, image_size=size)
    parameters = count_parameters(model)
    flops = flops_per_image(model, channels, size)
    model.to(device)
    if precision.channels_last:
        model.to(memory_format=torch.channels_last)
    model.train()
    ema = EMA(model, cfg.train.ema_decay, cfg.train.ema_warmup) if cfg.train.ema_decay > 0 and ctx.is_main else None
    optimizer = build_optimizer(model.parameters(), cfg.train, device)
    fused = bool(optimizer.defaults.get("fused"))
    scaler = torch.amp.GradScaler(device.type) if precision.name == "fp16" else None

    start_step = 0
    if resume_state is not None:
        start_step = load_training_state(resume_state, model, ema, optimizer, scaler, data, ctx, device)

    forward: nn.Module = model
    ddp = None
    if ctx.enabled:
        from torch.nn.parallel import DistributedDataParallel

        ddp = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        forward = ddp
    if cfg.train.compile:
        forward = torch.compile(forward)

    noise_generator = torch.Generator(device).manual_seed(derived_seed(seed, "noise"))
    sample_gen = torch.Generator().manual_seed(derived_seed(seed, "samples"))
    sample_noise = torch.randn((cfg.sample.n, channels, size, size), generator=sample_gen).to(device)
    num_classes = int(cfg.backbone.params.get("num_classes") or 0) if hasattr(cfg.backbone, "params") else 0
    sample_labels = (torch.arange(cfg.sample.n, device=device) % num_classes) if num_classes > 0 else None
    # Dropout differs per rank from here on; the weights are already equal.
    torch.manual_seed(derived_seed(seed, f"rank{ctx.rank}"))
    if resume_state is not None:
        restore_rng(resume_state, noise_generator, ctx, device)

    return Components(cfg=cfg, ctx=ctx, device=device, data=data, model=model, forward=forward, ddp=ddp, ema=ema,
                      optimizer=optimizer, fused=fused, scaler=scaler, precision=precision, diffusion=diffusion,
                      sampler=sampler, noise_generator=noise_generator, sample_noise=sample_noise,
                      sample_labels=sample_labels, channels=channels, image_size=size, parameters=parameters,
                      flops_per_image=flops, per_rank_batch=per_rank, micro_batch=micro, start_step=start_step,
                      resume_state=resume_state)


# -- checkpoint state ------------------------------------------------------------------------------


def load_weights(state: dict, model: nn.Module, ema: EMA | None, optimizer, scaler) -> None:
    """Model, EMA, optimizer and grad-scaler state from a checkpoint dict (used by resume and by the
    non-finite guard's restore)."""
    model.load_state_dict(state["model"])
    if ema is not None:
        ema.load_state_dict(state["ema"] if state.get("ema") else state["model"])
    if state.get("optimizer"):
        optimizer.load_state_dict(state["optimizer"])
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])


def load_training_state(state: dict, model, ema, optimizer, scaler, data, ctx: Distributed, device) -> int:
    try:
        load_weights(state, model, ema, optimizer, scaler)
    except (RuntimeError, KeyError, ValueError) as exc:
        raise CheckpointError(f"the checkpoint does not fit this model: {str(exc).splitlines()[0][:200]}") from None
    data_states = state.get("data_ranks") or []
    if len(data_states) == ctx.world_size:
        data.load_state_dict(data_states[ctx.rank])
    return int(state["step"])


def restore_rng(state: dict, noise_generator: torch.Generator, ctx: Distributed, device: torch.device) -> None:
    rng = state.get("rng", {})
    if "noise" in rng:
        noise_generator.set_state(rng["noise"])
    ranks = rng.get("ranks") or []
    if len(ranks) == ctx.world_size:
        mine = ranks[ctx.rank]
        torch.set_rng_state(mine["torch_cpu"])
        if device.type == "cuda" and mine.get("cuda") is not None:
            torch.cuda.set_rng_state(mine["cuda"], device)


def rank_rng_state(device: torch.device) -> dict:
    return {"torch_cpu": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None}


def training_state(c: Components, step: int, *, data_ranks: list, rng_ranks: list, window: dict) -> dict:
    """The checkpoint dict (tensors and plain data only; see workbench.engine.checkpoint)."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "step": step,
        "config": c.cfg.as_dict(),
        "channels": c.channels,
        "image_size": c.image_size,
        "out_channels": c.channels,
        "model": c.model.state_dict(),
        "ema": c.ema.state_dict() if c.ema is not None else None,
        "optimizer": c.optimizer.state_dict(),
        "scaler": c.scaler.state_dict() if c.scaler is not None else None,
        "lr_schedule": {"base_lr": c.cfg.train.lr, "step": step},
        "rng": {"noise": c.noise_generator.get_state(), "ranks": rng_ranks},
        "data_ranks": data_ranks,
        "metric_window": window,
        "world_size": c.ctx.world_size,
    }
