"""Reading a diffusers model: a pipeline folder, a bare UNet folder, or a Hugging Face Hub id.

    pipeline folder      model_index.json, unet/ (config.json + weights), scheduler/scheduler_config.json
    bare UNet folder     config.json + diffusion_pytorch_model.safetensors (or .bin), maybe a
                         scheduler_config.json beside them
    Hub id               owner/name, fetched into huggingface_hub's normal cache (json files, then the
                         safetensors weights, the .bin only when there are none)

Weights never load through code: safetensors, or `torch.load(weights_only=True)` for a .bin; a pickle that
needs code to load is refused.
"""

from __future__ import annotations

import json
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from workbench.errors import InteropError

WEIGHTS = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass
class DiffusersModel:
    source: str                        # what the user named: a folder or a Hub id
    unet_dir: Path                     # the folder holding the UNet's config.json and weights
    unet_config: dict[str, Any]
    weights_path: Path
    scheduler_config: dict[str, Any] | None  # None: no scheduler in the folder (DDPMScheduler's defaults apply)


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise InteropError(f"cannot read {str(path)!r}: {exc}") from None
    except ValueError as exc:
        raise InteropError(f"{str(path)!r} is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise InteropError(f"{str(path)!r} holds no JSON object")
    return data


def locate(source: str) -> DiffusersModel:
    """The UNet config, weights file and scheduler config of `source` (a local folder or a Hub id)."""
    folder = Path(source).expanduser()
    if not folder.exists():
        if HUB_ID.match(source):
            folder = fetch_from_hub(source)
        else:
            raise InteropError(f"{source!r} is neither a folder nor a Hugging Face Hub id (owner/name); pass a "
                               "diffusers model folder or an id such as google/ddpm-cifar10-32")
    if not folder.is_dir():
        raise InteropError(f"{source!r} is a file; pass the diffusers model folder that holds it")
    unet_dir, scheduler_path = folder, folder / "scheduler_config.json"
    if (folder / "model_index.json").is_file():
        index = read_json(folder / "model_index.json")
        if "unet" not in index:
            raise InteropError(f"{str(folder / 'model_index.json')!r} names no unet (a {index.get('_class_name', '?')}"
                               "); only UNet2DModel pipelines such as DDPMPipeline can be imported")
        if (folder / "unet" / "config.json").is_file():
            unet_dir = folder / "unet"
        if (folder / "scheduler" / "scheduler_config.json").is_file():
            scheduler_path = folder / "scheduler" / "scheduler_config.json"
    config_path = unet_dir / "config.json"
    if not config_path.is_file():
        raise InteropError(f"{str(folder)!r} has no config.json (nor unet/config.json); pass a diffusers model "
                           "folder, as written by save_pretrained")
    weights = next((unet_dir / name for name in WEIGHTS if (unet_dir / name).is_file()), None)
    if weights is None:
        sharded = sorted(unet_dir.glob("*.index.json"))
        why = (f"sharded weights ({sharded[0].name}) are not supported" if sharded
               else f"it has neither {' nor '.join(WEIGHTS)}")
        raise InteropError(f"{str(unet_dir)!r}: {why}")
    scheduler = read_json(scheduler_path) if scheduler_path.is_file() else None
    return DiffusersModel(source, unet_dir, read_json(config_path), weights, scheduler)


def fetch_from_hub(repo_id: str) -> Path:
    """The local snapshot of a Hub model (huggingface_hub's cache): json files and the safetensors weights,
    or the .bin weights when the model has no safetensors."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise InteropError(f"{repo_id!r} looks like a Hub id, but huggingface_hub is not installed; "
                           "pip install huggingface_hub, or pass a local diffusers folder") from None
    try:
        folder = Path(snapshot_download(repo_id, allow_patterns=["*.json", "*.safetensors"]))
        if not any(folder.rglob("diffusion_pytorch_model.safetensors")):
            folder = Path(snapshot_download(repo_id, allow_patterns=["*.json", "*.bin"]))
    except Exception as exc:  # noqa: BLE001 - offline, unknown repo, gated, ...: all one line for the user
        text = str(exc).strip().splitlines()
        reason = f"{type(exc).__name__}: {text[0].split('. ')[0][:160]}" if text else type(exc).__name__
        raise InteropError(f"cannot fetch {repo_id!r} from the Hugging Face Hub ({reason}); without network "
                           f"access, download it where there is some (hf download {repo_id} --local-dir DIR), "
                           "copy DIR here and pass that folder: ddpm-workbench import DIR") from None
    return folder


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from .safetensors, or from a .bin through torch.load(weights_only=True); never a pickle
    that needs code."""
    name = str(path)
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise InteropError(f"{name!r} is truncated or not a safetensors file ({str(exc).splitlines()[0][:160]})"
                               ) from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights_only" in str(exc) or "Weights only" in str(exc):
            raise InteropError(f"{name!r} is a pickle that needs Python code to load; refusing it (convert it "
                               "to safetensors where you trust it, or use a model that ships safetensors)") from None
        raise InteropError(f"{name!r} is truncated or not a PyTorch weights file ({str(exc).splitlines()[0][:160]})"
                           ) from None
    except Exception as exc:  # noqa: BLE001 - a damaged file fails in many ways inside torch.load
        text = str(exc).strip().splitlines()
        raise InteropError(f"{name!r} is truncated or not a PyTorch weights file "
                           f"({text[0][:160] if text else type(exc).__name__})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InteropError(f"{name!r} holds no state dict of tensors")
    return state
