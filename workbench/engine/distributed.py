"""Devices and torchrun: which device this process trains on, and the process group when there are ranks.

`torchrun --nproc-per-node N -m workbench train ...` sets RANK, WORLD_SIZE and LOCAL_RANK (and the
rendezvous address) in each process's environment; we join the group with NCCL on GPUs and gloo on CPU.
Only rank 0 writes the run directory.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from workbench.errors import ConfigError


@dataclass(frozen=True)
class Distributed:
    """This process's place in a torchrun job (rank 0 of 1, disabled, when not launched by torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    started_here: bool = False  # we called init_process_group, so we destroy it at the end

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def resolve_device(spec: str, local_rank: int = 0, *, option: str = "[run] device =",
                   error: type[Exception] = ConfigError) -> torch.device:
    """run.device (or a command's --device) -> a torch.device: auto (cuda when available, else cpu), cpu,
    cuda (the local rank's GPU), cuda:N or mps. Problems raise `error`, naming `option`."""
    from workbench.config import check_device

    problem = check_device(spec)  # the form, checked where the config checks it; availability below
    if problem:
        raise error(f"{option} {spec!r} {problem}")
    spec = spec.strip().lower()
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "cuda" or spec.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise error(f"{option} {spec!r} but no CUDA GPU is available here; use \"cpu\" or \"auto\"")
        index = local_rank if spec == "cuda" else int(spec[5:])  # check_device let only cuda:<digits> through
        if not 0 <= index < torch.cuda.device_count():
            raise error(f"{option} {spec!r}: no such GPU (this machine has {torch.cuda.device_count()}); "
                        f"use cuda:0 .. cuda:{torch.cuda.device_count() - 1}")
        return torch.device("cuda", index)
    if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):  # spec is "mps"
        raise error(f"{option} {spec!r} but no Apple GPU (MPS) is available here; use \"cpu\" or \"auto\"")
    return torch.device("mps")


def init_distributed(device_spec: str) -> tuple[Distributed, torch.device]:
    """Join the torchrun process group when launched by torchrun (NCCL on GPU, gloo on CPU); the device."""
    if not launched_by_torchrun() or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return Distributed(), resolve_device(device_spec)
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_spec, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    started = False
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        kwargs = {"device_id": device} if device.type == "cuda" else {}
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=30), **kwargs)
        started = True
    return Distributed(rank, world, local_rank, started), device


def all_reduce_sum(tensor: torch.Tensor, distributed: Distributed) -> torch.Tensor:
    if distributed.enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_reduce_max(tensor: torch.Tensor, distributed: Distributed) -> torch.Tensor:
    if distributed.enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return tensor


def shutdown(distributed: Distributed) -> None:
    if distributed.started_here and dist.is_initialized():
        dist.destroy_process_group()
