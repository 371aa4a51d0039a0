"""Imported models become run directories; runs become diffusers pipeline folders.

An imported run is a run like any other (`sample`, `attach` and the TUI read it the same way):

    runs/<name>/config.toml            the config the model maps to (every U-Net field explicit)
    runs/<name>/checkpoints/latest.pt  our checkpoint format at step 0: the weights as `model`, no EMA,
                                       no optimizer state
    runs/<name>/status.json            state "finished", and "imported": {"format", "source", "weights"}
    runs/<name>/events.jsonl           started + checkpoint + finished, so `attach` replays what happened

An export is a DDPMPipeline folder: model_index.json, unet/config.json +
unet/diffusion_pytorch_model.safetensors, scheduler/scheduler_config.json.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

from workbench.errors import InteropError
from workbench.interop.diffusers_folder import DiffusersModel, locate, read_weights
from workbench.interop.diffusers_scheduler import scheduler_config_for, settings_from_scheduler
from workbench.interop.diffusers_unet import (diffusers_config_for, from_diffusers, to_diffusers,
                                              unet_params_from_diffusers)

DIFFUSERS_VERSION = "0.27.0"  # what an exported folder says it was written for (the oldest we test against)


def imported_config(model: DiffusersModel, *, name: str, base_dir: str | Path):
    """The resolved `Config` an imported model runs under, with its image size and channel count."""
    from workbench.config import resolve

    params, size, channels = unet_params_from_diffusers(model.unet_config)
    settings = settings_from_scheduler(model.scheduler_config or {})
    # The dataset is what a fine-tuning run would read; sampling needs none. CIFAR-10 for 32x32 RGB models,
    # else synthetic data of the model's shape, to be replaced with --set dataset.name=... when training.
    if channels == 3 and size == 32:
        dataset: dict[str, Any] = {"name": "cifar10", "pad_to": 0}
    else:
        dataset = {"name": "synthetic", "size": size, "channels": channels, "pad_to": 0}
    raw = {
        "run": {"name": name, "dir": str(base_dir)},
        "dataset": dataset,
        "schedule": settings["schedule"],
        "backbone": {"name": "unet", "preset": nearest_preset(params), **params},
        "train": settings["train"],
        "sample": settings["sample"],
    }
    return resolve(raw, source=f"imported from {model.source}"), size, channels


def nearest_preset(params: dict[str, Any]) -> str:
    """The U-Net preset that differs from the imported architecture in the fewest fields. Only a label (runs
    are described as "unet (preset)"): the imported config sets every field itself."""
    from dataclasses import fields

    from workbench_plugins.backbones.presets import PRESETS, merge

    def differences(name: str) -> int:
        mapped, preset = merge({**params, "preset": name}), PRESETS[name].config
        return sum(getattr(mapped, f.name) != getattr(preset, f.name) for f in fields(preset)
                   if f.name != "attention_levels")

    return min(PRESETS, key=differences)


def import_model(source: str, *, name: str = "", base_dir: str | Path = "runs"):
    """Read a diffusers model (folder or Hub id), check its weights fit, and write it as a new run directory.
    Returns the RunDirectory. Nothing is written before everything has been read and mapped."""
    from workbench.backbones import build_backbone, count_parameters
    from workbench.engine.checkpoint import encode_model_weights, save_run_checkpoint
    from workbench.engine.events import CheckpointSaved, RunFinished, RunStarted
    from workbench.engine.rundir import RunDirectory

    model = locate(source)
    run_name = name or Path(str(source).rstrip("/")).name
    cfg, size, channels = imported_config(model, name=run_name, base_dir=base_dir)
    unet = build_backbone(cfg.backbone, in_channels=channels, out_channels=channels, image_size=size)
    weights = from_diffusers(read_weights(model.weights_path), unet.state_dict(), str(model.weights_path))
    unet.load_state_dict(weights)

    run = RunDirectory.create(base_dir, run_name)
    run.write_config(cfg.to_toml())
    state = encode_model_weights(cfg, channels=channels, image_size=size, model=unet.state_dict())
    path = save_run_checkpoint(run.checkpoints_dir, 0, state, keep=1)
    parameters = count_parameters(unet)
    run.record(RunStarted(run_dir=str(run.path), total_steps=0, dataset="none (imported weights)",
                          backbone=f"unet imported from {source}, {parameters / 1e6:.1f}M parameters",
                          parameters=parameters, image_shape=(channels, size, size)))
    run.record(CheckpointSaved(step=0, path=str(path)))
    run.record(RunFinished(step=0, run_dir=str(run.path)))
    # the one status field no event carries: where the weights came from
    run.write_status("finished", message=f"imported from {source}",
                     imported={"format": "diffusers", "source": str(source),
                               "weights": str(model.weights_path.resolve()),
                               "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    return run


def export_run(*, run: str | None = None, checkpoint: str | None = None, base_dir: str | Path = "runs",
               out: str | Path, ema: bool = True) -> tuple[Path, str]:
    """Write a run's model (EMA weights by default) as a DDPMPipeline folder at `out` (new or empty).
    Returns the folder and which weights went into it ("EMA weights of step 2000 (runs/x/...)")."""
    from safetensors.torch import save_file

    from workbench.diffusion.schedule import build_schedule
    from workbench.sampling.model import load_for_sampling

    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InteropError(f"{str(out)!r} already exists and is not an empty folder; name a new folder")
    bundle = load_for_sampling(run=run, checkpoint=checkpoint, base_dir=base_dir, ema=ema, device="cpu")
    cfg = bundle.cfg
    if cfg.backbone.name != "unet":
        raise InteropError(f"[backbone] name = {cfg.backbone.name!r} cannot be exported: only the built-in unet "
                           "maps to diffusers' UNet2DModel")
    unet_config = diffusers_config_for(bundle.model.config, bundle.channels, bundle.image_size)
    scheduler_config = scheduler_config_for(cfg, build_schedule(cfg.schedule).tolist())
    weights = to_diffusers(bundle.model.state_dict())

    tmp = out.with_name(f".{out.name}.partial")
    if tmp.exists():
        import shutil

        shutil.rmtree(tmp)
    (tmp / "unet").mkdir(parents=True)
    (tmp / "scheduler").mkdir()
    version = {"_diffusers_version": DIFFUSERS_VERSION}
    write_json(tmp / "model_index.json", {"_class_name": "DDPMPipeline", **version,
                                          "scheduler": ["diffusers", "DDPMScheduler"],
                                          "unet": ["diffusers", "UNet2DModel"]})
    write_json(tmp / "unet" / "config.json", {**unet_config, **version})
    write_json(tmp / "scheduler" / "scheduler_config.json", {**scheduler_config, **version})
    which = f"{'EMA' if bundle.ema else 'raw'} weights of step {bundle.step} ({bundle.checkpoint_path})"
    save_file({k: v.to(torch.float32).contiguous() for k, v in weights.items()},
              str(tmp / "unet" / "diffusion_pytorch_model.safetensors"),
              metadata={"format": "pt", "source": f"ddpm-workbench: {which}"})
    if out.exists():
        out.rmdir()
    tmp.rename(out)
    return out, which


def write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
