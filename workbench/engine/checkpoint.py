"""Checkpoints: the one codec of the training checkpoint (written and read here), atomic writes, safe loads
and rotation (loading a model for sampling: workbench.sampling.model).

A checkpoint is one `torch.save`d dict of tensors, numbers, strings, lists and dicts only, so it loads with
`torch.load(weights_only=True)` (no arbitrary pickles). `encode_training_state` below writes it, and
`encode_model_weights` the part of it a model not trained here has (an import: the keys up to `ema`); these
keys, and nothing else, make format version 1 (the keys `load_checkpoint` requires are marked *):

    format*, version*        "ddpm-workbench-checkpoint", 1
    step*                    optimizer steps done
    config*                  the resolved config as a plain dict (Config.as_dict())
    channels, image_size, out_channels    the backbone's shape arguments
    model*, ema              state dicts of the unwrapped backbone and of its EMA copy (ema may be None)
    optimizer, scaler        optimizer / GradScaler state dicts (scaler may be None)
    lr_schedule              {"base_lr", "step"} (the schedule itself is a pure function of the config)
    rng                      {"noise": the training-noise generator's state,
                              "ranks": per rank {"torch_cpu": CPU RNG state, "cuda": CUDA RNG state or None}}
    data_ranks               per rank, the data batcher's state_dict (epoch order and position)
    metric_window            the unfinished metric window (so a resumed run logs what an unbroken one would)
    world_size               how many torchrun ranks wrote it
    elapsed_s                training seconds before this checkpoint
    quality_best             {"step", "value", "metric"} of the best sample-quality evaluation so far
                             (train.eval_every), or None
    class_names              names of the labels 0..K-1 the dataset reported (a list of str, [] when it has
                             none), so `sample --class NAME` needs no dataset; optional, absent before it was added

Reading: `load_checkpoint` checks a file and returns the dict; `restore_weights`, `restore_training` and
`restore_rng` put it back into a run's objects; `Progress.of` reads where the run stood. Readers use
`.get` for every optional key, so any version-1 checkpoint loads; a change that breaks that bumps VERSION.

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

from workbench.errors import CheckpointError, UsageError
from workbench.files import writing

FORMAT = "ddpm-workbench-checkpoint"
VERSION = 1
STEP_FILE = re.compile(r"^step_(\d+)\.pt$")


# -- the training state: encoding and decoding -----------------------------------------------------


def encode_training_state(run, step: int, *, data_ranks: list, rng_ranks: list, elapsed_s: float) -> dict:
    """The checkpoint dict of a `workbench.engine.setup.TrainingRun` at `step` (see the module docstring).

    `data_ranks` and `rng_ranks` are every rank's `data.state_dict()` and `rank_rng_state()`, gathered."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "step": step,
        "config": run.cfg.as_dict(),
        "channels": run.channels,
        "image_size": run.image_size,
        "out_channels": run.channels,
        "model": run.model.state_dict(),
        "ema": run.ema.state_dict() if run.ema is not None else None,
        "optimizer": run.optimizer.state_dict(),
        "scaler": run.scaler.state_dict() if run.scaler is not None else None,
        "lr_schedule": {"base_lr": run.cfg.train.lr, "step": step},
        "rng": {"noise": run.noise_generator.get_state(), "ranks": rng_ranks},
        "data_ranks": data_ranks,
        "metric_window": run.window.state_dict(),
        "world_size": run.distributed.world_size,
        "elapsed_s": elapsed_s,
        "quality_best": run.quality_best,
        "class_names": [str(name) for name in getattr(run.data, "class_names", ())],
    }


def encode_model_weights(cfg, *, channels: int, image_size: int, model: dict, ema: dict | None = None,
                         step: int = 0) -> dict:
    """The checkpoint dict of weights alone (`ddpm-workbench import`): config, image shape, model and EMA
    state dicts. Without optimizer, RNG and data state, a resume starts those afresh (`restore_training`)."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "step": step,
        "config": cfg.as_dict(),
        "channels": channels,
        "image_size": image_size,
        "out_channels": channels,
        "model": model,
        "ema": ema,
    }


def rank_rng_state(device: torch.device) -> dict:
    """This rank's entry of `rng["ranks"]`."""
    return {"torch_cpu": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None}


@dataclass(frozen=True)
class Progress:
    """Where a checkpointed run stood."""

    step: int
    elapsed_s: float
    metric_window: dict | None
    data_ranks: int        # how many ranks' data order it holds
    world_size: int | None  # how many ranks wrote it
    quality_best: dict | None = None  # {"step", "value", "metric"} of the best evaluation so far

    @classmethod
    def of(cls, state: dict) -> "Progress":
        return cls(step=int(state["step"]), elapsed_s=float(state.get("elapsed_s", 0.0)),
                   metric_window=state.get("metric_window"), data_ranks=len(state.get("data_ranks") or []),
                   world_size=state.get("world_size"), quality_best=state.get("quality_best"))


def restore_weights(state: dict, model: torch.nn.Module, ema, optimizer, scaler) -> None:
    """Model, EMA, optimizer and grad-scaler state from a checkpoint dict (used by resume and by the
    non-finite guard's rollback). Without a stored EMA, the EMA starts from the model's weights."""
    model.load_state_dict(state["model"])
    if ema is not None:
        ema.load_state_dict(state["ema"] if state.get("ema") else state["model"])
    if state.get("optimizer"):
        optimizer.load_state_dict(state["optimizer"])
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])


def restore_training(state: dict, model, ema, optimizer, scaler, data, rank: int, world_size: int) -> int:
    """Everything `restore_weights` does plus this rank's data order (when the rank count matches);
    returns the step. A checkpoint of another network is a one-line CheckpointError."""
    try:
        restore_weights(state, model, ema, optimizer, scaler)
    except (RuntimeError, KeyError, ValueError) as exc:
        raise CheckpointError(f"the checkpoint does not fit this model: {str(exc).splitlines()[0][:200]}") from None
    data_states = state.get("data_ranks") or []
    if len(data_states) == world_size:
        data.load_state_dict(data_states[rank])
    return int(state["step"])


def restore_rng(state: dict, noise_generator: torch.Generator, rank: int, world_size: int,
                device: torch.device) -> None:
    """The training-noise generator and, when the rank count matches, this rank's torch RNG states."""
    rng = state.get("rng", {})
    if "noise" in rng:
        noise_generator.set_state(rng["noise"])
    ranks = rng.get("ranks") or []
    if len(ranks) == world_size:
        mine = ranks[rank]
        torch.set_rng_state(mine["torch_cpu"])
        if device.type == "cuda" and mine.get("cuda") is not None:
            torch.cuda.set_rng_state(mine["cuda"], device)


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


def find_run_checkpoint(run: str | Path | None, base_dir: str | Path = "runs", *, best: bool = False) -> Path:
    """The newest checkpoint of a run (`latest.pt`, else the highest step file), or with `best` the one of its
    best sample-quality evaluation (`best.pt`); run is a name, path or "latest", or a checkpoint file of a
    run, which is then the one returned."""
    from workbench.engine.rundir import RunDirectory

    try:
        if RunDirectory.of_checkpoint(run) is not None:
            return Path(run)
        run_dir = RunDirectory.resolve(run, base_dir)
    except UsageError as exc:
        raise CheckpointError(str(exc)) from None
    if best:
        if run_dir.best_checkpoint.is_file():
            return run_dir.best_checkpoint
        raise CheckpointError(f"run {str(run_dir.path)!r} has no best checkpoint ({run_dir.best_checkpoint} is "
                              "missing); train with train.eval_every and train.keep_best, or drop --best")
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
