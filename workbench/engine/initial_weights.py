"""`train --init-from RUN|CHECKPOINT`: a new run whose network starts from another model's weights.

Fine-tuning, not resuming: the new run has its own directory, its own config (dataset, steps, learning
rate...), a fresh optimizer and starts at step 0; only the network's weights are taken, the source's EMA
weights when it has them (the better model; the new run's EMA starts from them too). Imported runs
(`ddpm-workbench import`) are runs like any other here.

The network the new config builds must have exactly the source's parameter names and shapes. No weights are
adapted (not 3 channels into 1, not a different class count, not another width): any difference is refused
in one line naming the first parameter that differs and what to change. The image size may differ where the
network does not depend on it (the U-Net is convolutional; attention placed by `attention_resolutions` in
pixels follows the config).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from workbench.engine.checkpoint import find_run_checkpoint, load_checkpoint
from workbench.errors import CheckpointError


@dataclass
class InitialWeights:
    checkpoint: Path
    weights: dict[str, torch.Tensor] = field(repr=False)
    ema: bool  # whether `weights` are the source's EMA weights
    step: int  # the source's step
    config: dict = field(repr=False)  # the source's stored config


def read_initial_weights(spec: str, base_dir: str | Path = "runs") -> InitialWeights:
    """The weights to start from: `spec` is a checkpoint file, or a run (name under `base_dir`, path,
    or "latest"), whose newest checkpoint is read. CheckpointError (one line) for anything unreadable."""
    path = Path(spec)
    checkpoint = path if path.is_file() else find_run_checkpoint(spec, base_dir)
    state = load_checkpoint(checkpoint, map_location="cpu")
    ema = bool(state.get("ema"))
    return InitialWeights(checkpoint, state["ema"] if ema else state["model"], ema, int(state["step"]),
                          state.get("config") or {})


def apply_initial_weights(model: torch.nn.Module, initial: InitialWeights) -> None:
    """Copy `initial`'s weights into `model` (the raw backbone, before any wrapper), refusing any difference
    in parameter names or shapes in one line."""
    expected = model.state_dict()
    given = initial.weights
    where = f"--init-from {initial.checkpoint}"
    fix = ("keep the source's [backbone] and image channels (without --config, --init-from starts from the "
           "source's config)")
    for key, target in expected.items():
        if key not in given:
            raise CheckpointError(f"{where}: the source has no {key!r}, which this config's backbone has; {fix}")
        if tuple(given[key].shape) != tuple(target.shape):
            raise CheckpointError(f"{where}: {key!r} is {tuple(given[key].shape)} there but "
                                  f"{tuple(target.shape)} here{channel_hint(key, given[key], target)}; "
                                  f"weights are not adapted: {fix}")
    extra = [key for key in given if key not in expected]
    if extra:
        raise CheckpointError(f"{where}: the source's {extra[0]!r} has no place in this config's backbone; {fix}")
    model.load_state_dict(given)


def channel_hint(key: str, given: torch.Tensor, target: torch.Tensor) -> str:
    """' (a model of 1-channel images into one of 3)' where the first or last convolution differs in its
    image channels, else ''."""
    if given.ndim == 4 and key.startswith(("conv_in.", "conv_out.")):
        dim = 1 if key.startswith("conv_in.") else 0
        if given.shape[dim] != target.shape[dim]:
            return f" (a model of {given.shape[dim]}-channel images into one of {target.shape[dim]})"
    return ""
