"""A model ready to sample, and the one function that calls it: used by `sample`, training previews and
(later) evaluation, so labels, precision, memory format and TF32 are decided in one place.

    bundle = load_for_sampling(run="latest", device=device)         # from a checkpoint: EMA weights by default
    model_fn = model_function(bundle.model, device, labels=labels, autocast_dtype=sampling_dtype("auto", device))
    with evaluating(net): ...                                       # a live model (previews): eval, then back

Checkpoints are read with `workbench.engine.checkpoint.load_checkpoint` (the one codec); this module only
turns what it returns into a network, a diffusion and a config.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from workbench.engine.checkpoint import find_run_checkpoint, first_line, load_checkpoint
from workbench.errors import CheckpointError, ConfigError
from workbench.sampling.defaults import PRECISIONS

ModelFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class SamplingBundle:
    model: torch.nn.Module        # eval mode, on `device`; EMA weights unless asked otherwise
    diffusion: Any                # workbench.diffusion.GaussianDiffusion, on `device`
    cfg: Any                      # workbench.config.Config rebuilt from the stored dict
    step: int
    channels: int
    image_size: int
    checkpoint_path: Path
    ema: bool = True              # whether `model` holds the EMA weights


def config_from_checkpoint(state: dict, path: Path):
    from workbench.config import resolve

    try:
        return resolve(state["config"], source=f"checkpoint {path}")
    except ConfigError as exc:
        raise CheckpointError(f"checkpoint {str(path)!r}: its stored config is not valid here: {exc}") from None


def describe_mismatch(error: Exception) -> str:
    text = str(error)
    missing = re.search(r"Missing key\(s\) in state_dict: ([^.]*)", text)
    unexpected = re.search(r"Unexpected key\(s\) in state_dict: ([^.]*)", text)
    shape = re.search(r"size mismatch for ([^:]+):", text)
    parts = []
    if missing:
        parts.append(f"missing {missing.group(1).split(',')[0].strip()}")
    if unexpected:
        parts.append(f"unexpected {unexpected.group(1).split(',')[0].strip()}")
    if shape:
        parts.append(f"shape differs for {shape.group(1).strip()}")
    return ", ".join(parts) or first_line(error)


def build_model_from_state(state: dict, cfg, path: Path, *, ema: bool = True) -> tuple[torch.nn.Module, bool]:
    """The backbone described by the checkpoint's config, with its (EMA) weights loaded, on CPU."""
    from workbench.backbones import build_backbone

    channels = int(state.get("channels", 0))
    image_size = int(state.get("image_size", 0))
    if channels <= 0 or image_size <= 0:
        raise CheckpointError(f"checkpoint {str(path)!r} does not record the image shape (channels, image_size)")
    out_channels = int(state.get("out_channels", channels))
    model = build_backbone(cfg.backbone, in_channels=channels, out_channels=out_channels, image_size=image_size)
    use_ema = bool(ema and state.get("ema"))
    weights = state["ema"] if use_ema else state["model"]
    try:
        model.load_state_dict(weights)
    except (RuntimeError, KeyError, TypeError) as exc:
        raise CheckpointError(f"checkpoint {str(path)!r} does not match backbone {cfg.backbone.name!r} "
                              f"built from its stored config ({describe_mismatch(exc)})") from None
    return model, use_ema


def load_for_sampling(*, run: str | None = None, checkpoint: str | None = None, base_dir: str | Path = "runs",
                      ema: bool = True, device: str | torch.device = "cpu", best: bool = False) -> SamplingBundle:
    """Everything needed to sample from a trained run: the model (EMA weights by default), its diffusion,
    its config. Give a checkpoint file, or a run (name, path or "latest"; None means "latest"), whose newest
    checkpoint is used, or with `best` the one of its best sample-quality evaluation."""
    from workbench.diffusion import GaussianDiffusion

    path = Path(checkpoint) if checkpoint else find_run_checkpoint(run, base_dir, best=best)
    state = load_checkpoint(path, map_location="cpu")
    cfg = config_from_checkpoint(state, path)
    model, used_ema = build_model_from_state(state, cfg, path, ema=ema)
    model.to(device).eval()
    diffusion = GaussianDiffusion.from_config(cfg).to(device)
    return SamplingBundle(model=model, diffusion=diffusion, cfg=cfg, step=int(state["step"]),
                          channels=int(state["channels"]), image_size=int(state["image_size"]),
                          checkpoint_path=path, ema=used_ema)


@contextlib.contextmanager
def evaluating(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """A live (training) model in eval mode for the duration, then back in the mode it was in."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def sampling_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for the network: bf16 or None (float32). "auto" follows training's rule
    (`auto_precision`): bf16 on CUDA GPUs that support it and on CPUs with AMX (about 2x faster there)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        from workbench.engine.setup import auto_precision

        precision = auto_precision(device)
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        from workbench.errors import UsageError

        raise UsageError("--precision bf16: this GPU has no bf16 support; use --precision fp32 or auto")
    return torch.bfloat16 if precision == "bf16" else None


def model_function(model: torch.nn.Module, device: torch.device, *, labels: torch.Tensor | None = None,
                   autocast_dtype: torch.dtype | None = None, channels_last: bool | None = None) -> ModelFn:
    """`model_fn(x_t, t)` for `workbench.diffusion.sample_images`: the network under autocast to
    `autocast_dtype` (None: float32), its input in channels_last memory (default: on CUDA, where the model is
    moved to it too) and TF32 matmuls on CUDA; class `labels` (B,) passed as y; the output always float32.

    A sampler may evaluate a larger batch than it was given (e.g. guidance): the labels repeat to fit."""
    device = torch.device(device)
    if channels_last is None:
        channels_last = device.type == "cuda"
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    if channels_last:
        model.to(memory_format=memory_format)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    def model_fn(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        kwargs = {} if labels is None else {"y": _labels_for(labels, x_t)}
        with torch.autocast(device.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None):
            out = model(x_t.contiguous(memory_format=memory_format), t, **kwargs)
        return out.float()
    return model_fn


def _labels_for(labels: torch.Tensor, x_t: torch.Tensor) -> torch.Tensor:
    repeats = x_t.shape[0] // labels.shape[0]
    return labels.repeat(repeats) if repeats > 1 else labels
