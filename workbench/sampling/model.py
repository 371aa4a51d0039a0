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
    class_names: tuple[str, ...] = ()  # names of labels 0..K-1 from the checkpoint (older ones: none)


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
                          checkpoint_path=path, ema=used_ema,
                          class_names=tuple(str(name) for name in state.get("class_names") or ()))


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


def null_label_of(model: torch.nn.Module) -> int | None:
    """The "no label" class of a class-conditional backbone: its `config.num_classes` (the U-Net's extra
    embedding row), None when the model does not say."""
    value = getattr(getattr(model, "config", None), "num_classes", None)
    return int(value) if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def sampling_channels_last(device: torch.device, autocast_dtype: torch.dtype | None) -> bool:
    """Whether a model loaded for sampling runs in channels_last memory: on CUDA, and on a CPU in float32,
    where oneDNN's convolutions of the tiny U-Net were 1.13x faster in it on the AVX2 path and about even with
    AVX-512; not under bf16 on a CPU, where it was 1.5x slower (docs/performance.md). Float32 images stay the
    same at any batch size either way, but differ from NCHW ones in the last bits."""
    device = torch.device(device)
    return device.type == "cuda" or (device.type == "cpu" and autocast_dtype is None)


# On a CPU the network runs on at most this many pixels (images x H x W) at a time. Larger batches made
# every activation a fresh mmap of tens of MiB that glibc returns to the kernel when freed, so each layer
# page-faulted its output in again (a third of the CPU time was system time at batch 250, one thread) and
# nothing stayed in cache. 2**14 pixels (20 images of 28x28, 16 of 32x32; the tiny U-Net's largest
# activation about 6 MiB) was the fastest of 2**12 .. 2**15 and leaves no system time (2**15 still had
# some). Under bf16 autocast (AMX) activations are half the size and AMX wants longer rows: 2**16 pixels (83
# images of 28x28) there: forward passes took 2.9-3.1 ms per image at 32-125 images, 3.4 at 16, 4.0 at 250
# (docs/performance.md).
# The images of a batch are independent, so chunking changes no result.
CPU_CHUNK_PIXELS = 2**14
CPU_CHUNK_PIXELS_BF16 = 2**16


def cpu_chunk_images(image_shape, autocast_dtype: torch.dtype | None = None) -> int:
    """Images per network call on a CPU for images of shape (C, H, W): CPU_CHUNK_PIXELS of them in float32,
    CPU_CHUNK_PIXELS_BF16 under bf16 autocast; at least one image."""
    height, width = int(image_shape[-2]), int(image_shape[-1])
    pixels = CPU_CHUNK_PIXELS if autocast_dtype is None else CPU_CHUNK_PIXELS_BF16
    return max(1, pixels // max(1, height * width))


def model_function(model: torch.nn.Module, device: torch.device, *, labels: torch.Tensor | None = None,
                   guidance: float = 1.0, null_label: int | None = None,
                   autocast_dtype: torch.dtype | None = None, channels_last: bool | None = None,
                   chunk: bool | None = None) -> ModelFn:
    """`model_fn(x_t, t)` for `workbench.diffusion.sample_images`: the network under autocast to
    `autocast_dtype` (None: float32), its input in channels_last memory (default: on CUDA, where the model is
    moved to it too; `sampling_channels_last` is the rule of a model owned by sampling) and TF32 matmuls on
    CUDA; class `labels` (B,) passed as y; the output always float32.

    Classifier-free guidance (Ho & Salimans 2022) happens here, on the network's raw output (eps, x0 or v),
    so `make_denoiser` converts the guided output to x0 like any other and every sampler gets it without
    cooperation: `guidance` W = 1 is the plain conditional output, W = 0 the unconditional one (labels
    replaced by `null_label`, default `null_label_of(model)`), other W run both in ONE forward pass of twice
    the batch (labels, then the no-label class) and return eps_uncond + W (eps_cond - eps_uncond).

    On a CPU (`chunk` None or True; False turns it off) a large batch goes through the network in pieces of
    `cpu_chunk_images` images, concatenated: the same numbers, without the memory churn of huge activations.

    A sampler may evaluate a larger batch than it was given: the labels repeat to fit."""
    device = torch.device(device)
    if channels_last is None:
        channels_last = device.type == "cuda"
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    if channels_last:
        model.to(memory_format=memory_format)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    guidance = float(guidance)
    if not guidance >= 0:  # also refuses NaN
        raise ValueError(f"guidance = {guidance!r} must be 0 or more")
    if labels is not None and guidance != 1.0:
        null_label = null_label if null_label is not None else null_label_of(model)
        if null_label is None:
            raise ValueError(f"guidance = {guidance:g} needs the no-label class of {type(model).__name__}; "
                             "pass null_label (the backbone's num_classes)")

    chunked = device.type == "cpu" if chunk is None else bool(chunk)

    def call(x_t: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        kwargs = {} if y is None else {"y": y}
        with torch.autocast(device.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None):
            out = model(x_t.contiguous(memory_format=memory_format), t, **kwargs)
        return out.float()

    def network(x_t: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        size = cpu_chunk_images(x_t.shape, autocast_dtype) if chunked and x_t.dim() == 4 else x_t.shape[0]
        if x_t.shape[0] <= size:
            return call(x_t, t, y)
        t = t.expand(x_t.shape[0]) if t.dim() == 0 else t
        return torch.cat([call(x_t[i:i + size], t[i:i + size], None if y is None else y[i:i + size])
                          for i in range(0, x_t.shape[0], size)])

    def model_fn(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if labels is None or guidance == 1.0:
            return network(x_t, t, None if labels is None else _labels_for(labels, x_t))
        y = _labels_for(labels, x_t)
        t = t.expand(x_t.shape[0]) if t.dim() == 0 else t
        unlabelled = torch.full_like(y, null_label)
        if guidance == 0.0:
            return network(x_t, t, unlabelled)
        both = network(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([y, unlabelled]))
        conditional, unconditional = both.chunk(2)
        return unconditional + guidance * (conditional - unconditional)
    return model_fn


def _labels_for(labels: torch.Tensor, x_t: torch.Tensor) -> torch.Tensor:
    repeats = x_t.shape[0] // labels.shape[0]
    return labels.repeat(repeats) if repeats > 1 else labels
