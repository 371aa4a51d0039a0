"""Optimizer, learning-rate schedule and EMA of the weights.

The learning rate is a pure function of the step (no scheduler object to checkpoint): linear warmup, then
constant or half-cosine decay to `lr * min_lr_ratio` (Loshchilov & Hutter 2017, SGDR without restarts).
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn


def lr_at(step: int, *, base_lr: float, warmup_steps: int, total_steps: int, schedule: str = "cosine",
          min_lr_ratio: float = 0.1) -> float:
    """Learning rate for optimizer step `step` (0-based: the first update uses step 0).

    Warmup: base_lr * (step + 1) / warmup_steps for step < warmup_steps. Then constant, or
    lr_min + (base_lr - lr_min) * (1 + cos(pi * p)) / 2 with p = (step - warmup) / (total - warmup),
    which reaches lr_min = base_lr * min_lr_ratio at step = total_steps."""
    if warmup_steps > 0 and step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    if schedule == "constant":
        return base_lr
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    min_lr = base_lr * min_lr_ratio
    return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def lr_for_config(step: int, train_cfg) -> float:
    return lr_at(step, base_lr=train_cfg.lr, warmup_steps=train_cfg.warmup_steps, total_steps=train_cfg.steps,
                 schedule=train_cfg.lr_schedule, min_lr_ratio=train_cfg.min_lr_ratio)


def build_optimizer(params, train_cfg, device: torch.device) -> torch.optim.Optimizer:
    """Adam or AdamW with the configured betas; fused on CUDA (one kernel for all parameters)."""
    cls = torch.optim.AdamW if train_cfg.optimizer == "adamw" else torch.optim.Adam
    kwargs = dict(lr=train_cfg.lr, betas=(train_cfg.adam_beta1, train_cfg.adam_beta2),
                  weight_decay=train_cfg.weight_decay)
    if device.type == "cuda":
        kwargs["fused"] = True
    else:
        kwargs["foreach"] = True  # one multi-tensor op per update instead of a Python loop over parameters
    return cls(params, **kwargs)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def ema_decay_at(step: int, decay: float, warmup: bool) -> float:
    """EMA decay for update `step` (0-based): min(decay, (1 + step) / (10 + step)) with warmup (as in
    tensorflow's ExponentialMovingAverage num_updates), else `decay`."""
    return min(decay, (1.0 + step) / (10.0 + step)) if warmup else decay


class EMA:
    """An exponential moving average of a module's parameters, ema <- decay * ema + (1 - decay) * param,
    done as one `torch._foreach_lerp_` over all tensors; buffers (e.g. norm statistics) are copied."""

    def __init__(self, model: nn.Module, decay: float, warmup: bool = True):
        self.decay, self.warmup = decay, warmup
        self.module = copy.deepcopy(model).eval()
        self.module.requires_grad_(False)
        self._ema_params = [p for p in self.module.parameters()]
        self._model_params: list[torch.Tensor] | None = None
        self._source = model

    def _sources(self) -> list[torch.Tensor]:
        if self._model_params is None:
            self._model_params = [p.detach() for p in self._source.parameters()]
        return self._model_params

    @torch.no_grad()
    def update(self, step: int) -> None:
        decay = ema_decay_at(step, self.decay, self.warmup)
        sources = self._sources()
        float_pairs = [(e, s) for e, s in zip(self._ema_params, sources) if e.dtype.is_floating_point]
        if float_pairs:
            ema_t, src_t = zip(*float_pairs)
            torch._foreach_lerp_(list(ema_t), list(src_t), 1.0 - decay)
        for ema_buf, buf in zip(self.module.buffers(), self._source.buffers()):
            ema_buf.copy_(buf)

    def state_dict(self) -> dict:
        return self.module.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state)


def clip_gradients(params: list[torch.Tensor], max_norm: float) -> torch.Tensor:
    """The global gradient 2-norm before clipping (a device tensor, no sync); clips to max_norm when > 0."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros((), device=params[0].device)
    if hasattr(torch.nn.utils, "get_total_norm"):
        norm = torch.nn.utils.get_total_norm(grads, foreach=True)
        if max_norm > 0:
            torch.nn.utils.clip_grads_with_norm_(params, max_norm, norm, foreach=True)
        return norm
    return torch.nn.utils.clip_grad_norm_(params, max_norm if max_norm > 0 else float("inf"), foreach=True)
