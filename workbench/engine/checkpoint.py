"""Checkpoints: atomic writes, safe loads, rotation, and loading a trained model for sampling.

A checkpoint is one `torch.save`d dict of tensors, numbers, strings, lists and dicts only, so it loads with
`torch.load(weights_only=True)` (no arbitrary pickles). The training engine stores in it:

    format, version          "ddpm-workbench-checkpoint", 1
    step                     optimizer steps done
    config                   the resolved config as a plain dict (Config.as_dict())
    channels, image_size, out_channels    the backbone's shape arguments
    model, ema               state dicts of the unwrapped backbone and of its EMA copy (ema may be None)
    optimizer, scaler        optimizer / GradScaler state dicts (scaler may be None)
    lr_schedule              {"base_lr", "step"} (the schedule itself is a pure function of the config)
    rng                      torch CPU + CUDA states and the engine's generators
    data                     the data batcher's state_dict

Writes go to a temporary file in the same folder, are fsynced, then `os.replace`d over the target, so a
kill at any moment leaves either the previous checkpoint or the new one, never half of one.
"""

from __future__ import annotations

import os
import pickle
import re
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from workbench.errors import CheckpointError, ConfigError, UsageError
from workbench.files import writing

FORMAT = "ddpm-workbench-checkpoint"
VERSION = 1
STEP_FILE = re.compile(r"^step_(\d+)\.pt$")


# -- writing ---------------------------------------------------------------------------------------


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX); silently skipped where directories cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_checkpoint(path: str | Path, state: dict) -> None:
    """Write `state` to `path` atomically: temp file + fsync + os.replace (old file intact until then)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    # A full disk surfaces as torch's "[enforce fail at inline_container.cc] unexpected pos" RuntimeError:
    # `writing` makes it (and any OSError) the one-line WriteFailed, and removes the temporary.
    kept = f"the previous {path.name}" if path.exists() else ""
    with writing(path, kept=kept, cleanup=tmp):
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    _fsync_dir(path.parent)


def link_or_copy_atomic(source: Path, target: Path) -> None:
    """Make `target` hold the same bytes as `source`, atomically (a hard link when possible: no copy)."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    with writing(target, kept=f"{source.name}, and the previous {target.name}", cleanup=tmp):
        try:
            os.link(source, tmp)
        except OSError:
            with open(source, "rb") as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
                dst.flush()
                os.fsync(dst.fileno())
        os.replace(tmp, target)
    _fsync_dir(target.parent)


def step_checkpoints(folder: str | Path) -> list[tuple[int, Path]]:
    """(step, path) of every `step_XXXXXXX.pt` in `folder`, oldest step first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = []
    for entry in folder.iterdir():
        match = STEP_FILE.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry))
    return sorted(found)


def prune_checkpoints(folder: str | Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` step checkpoints; returns what was deleted. latest.pt is never touched."""
    removed = []
    for _, path in step_checkpoints(folder)[:-keep] if keep > 0 else step_checkpoints(folder):
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def save_run_checkpoint(checkpoints_dir: str | Path, step: int, state: dict, keep: int) -> Path:
    """Write `step_XXXXXXX.pt`, point `latest.pt` at it, and keep only the newest `keep` step files."""
    folder = Path(checkpoints_dir)
    path = folder / f"step_{step:07d}.pt"
    save_checkpoint(path, state)
    link_or_copy_atomic(path, folder / "latest.pt")
    prune_checkpoints(folder, keep)
    return path


# -- reading ---------------------------------------------------------------------------------------


def load_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict:
    """Load a checkpoint written by `save_checkpoint` with `weights_only=True`.

    Missing, truncated, foreign or unsafe files raise `CheckpointError` with one line naming the file.
    """
    path = Path(path)
    name = str(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {name!r} does not exist; check the path or the run name")
    if path.is_dir():
        raise CheckpointError(f"checkpoint {name!r} is a directory; name a .pt file inside it")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; a cut-off one has no central directory
        raise CheckpointError(f"checkpoint {name!r} is truncated or not a checkpoint (not the zip archive "
                              f"torch.save writes){intact_siblings(path)}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights_only" in str(exc) or "Weights only" in str(exc):
            raise CheckpointError(f"checkpoint {name!r} holds Python objects other than tensors and plain data; "
                                  "refusing to unpickle it (only load checkpoints you trust, with torch directly)") from None
        raise CheckpointError(f"checkpoint {name!r} is truncated or not a checkpoint ({first_line(exc)})"
                              f"{intact_siblings(path)}") from None
    except Exception as exc:  # noqa: BLE001 - a damaged file can fail in many ways inside torch.load
        raise CheckpointError(f"checkpoint {name!r} is truncated or not a checkpoint ({first_line(exc)})"
                              f"{intact_siblings(path)}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {name!r} is not a ddpm-workbench checkpoint (no format marker)")
    if int(state.get("version", 0)) > VERSION:
        raise CheckpointError(f"checkpoint {name!r} has format version {state.get('version')}, newer than this "
                              f"program understands ({VERSION}); upgrade ddpm-workbench")
    for key in ("step", "config", "model"):
        if key not in state:
            raise CheckpointError(f"checkpoint {name!r} has no {key!r} entry; it is incomplete")
    return state


def intact_siblings(path: Path) -> str:
    """For a damaged checkpoint: the newest other checkpoint beside it that opens as a zip archive, and how
    to use it ("" when there is none)."""
    others = sorted((p for p in path.parent.glob("step_*.pt") if p.name != path.name), reverse=True)
    for other in others:
        if zipfile.is_zipfile(other):
            return (f"; {other.name} beside it looks intact: sample with --checkpoint {other}, or copy it over "
                    f"{path.name} to resume from it")
    return ""


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = (text[0] if text else "").split(". ")[0][:160]
    if isinstance(exc, RuntimeError) and line:
        return line
    return f"{type(exc).__name__}: {line}" if line else type(exc).__name__


def find_run_checkpoint(run: str | Path | None, base_dir: str | Path = "runs") -> Path:
    """The newest checkpoint of a run (`latest.pt`, else the highest step file); run is a name, path or "latest"."""
    from workbench.engine.rundir import RunDirectory

    try:
        run_dir = RunDirectory.resolve(run, base_dir)
    except UsageError as exc:
        raise CheckpointError(str(exc)) from None
    if run_dir.latest_checkpoint.is_file():
        return run_dir.latest_checkpoint
    steps = step_checkpoints(run_dir.checkpoints_dir)
    if steps:
        return steps[-1][1]
    state, why = run_dir.observed_state()
    if state == "abandoned":  # killed before its first checkpoint: there is nothing to continue from
        raise CheckpointError(f"run {str(run_dir.path)!r} cannot be resumed: {why}; start a new run "
                              f"(and delete {str(run_dir.path)!r} to clean up)")
    raise CheckpointError(f"run {str(run_dir.path)!r} has no checkpoint yet (nothing in "
                          f"{str(run_dir.checkpoints_dir)!r}); train longer or pick another run")


# -- sampling --------------------------------------------------------------------------------------


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
    from workbench.models import build_backbone

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
                      ema: bool = True, device: str | torch.device = "cpu") -> SamplingBundle:
    """Everything needed to sample from a trained run: the model (EMA weights by default), its diffusion,
    its config. Give a checkpoint file, or a run (name, path or "latest"; None means "latest")."""
    from workbench.diffusion import GaussianDiffusion

    path = Path(checkpoint) if checkpoint else find_run_checkpoint(run, base_dir)
    state = load_checkpoint(path, map_location="cpu")
    cfg = config_from_checkpoint(state, path)
    model, used_ema = build_model_from_state(state, cfg, path, ema=ema)
    model.to(device).eval()
    diffusion = GaussianDiffusion.from_config(cfg).to(device)
    return SamplingBundle(model=model, diffusion=diffusion, cfg=cfg, step=int(state["step"]),
                          channels=int(state["channels"]), image_size=int(state["image_size"]),
                          checkpoint_path=path, ema=used_ema)
