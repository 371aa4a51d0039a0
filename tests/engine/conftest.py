"""A tiny training config for the engine tests: 16 px synthetic shapes, a 16-channel two-level U-Net,
T = 100, batch 8, fp32 — a step takes a few milliseconds, so whole runs fit in unit tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

TINY = [
    "dataset.name=synthetic", "dataset.size=16", "dataset.count=64", "dataset.pad_to=0",
    "backbone.base_channels=16", "backbone.channel_mult=[1, 2]", "backbone.groups=8",
    "schedule.timesteps=100",
    "train.steps=12", "train.batch_size=8", "train.warmup_steps=2", "train.log_every=4",
    "train.sample_every=6", "train.checkpoint_every=6", "train.keep_checkpoints=2",
    "sample.steps=4", "sample.n=4", "run.device=cpu", "run.seed=3",
    "train.precision=fp32",  # "auto" is bf16 on CPUs with AMX; fp32 keeps results the same on every CPU
]


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """One intra-op thread: on the shared 2-core machine, OpenMP threads competing with other processes
    spin-wait and make tiny models much slower, not faster."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_config(base_dir: Path, *overrides: str):
    """TINY plus overrides; naming another dataset drops the synthetic dataset's own keys."""
    from workbench.config import load_config

    base = TINY
    if any(o.startswith("dataset.name=") for o in overrides):
        base = [o for o in TINY if not o.startswith("dataset.") or o.startswith("dataset.pad_to")]
    return load_config(None, base + [f"run.dir={base_dir}", *overrides], search_cwd=False)


class Recorder:
    """An on_event consumer that keeps every event."""

    def __init__(self, action=None):
        self.events = []
        self.action = action

    def __call__(self, event):
        self.events.append(event)
        if self.action is not None:
            self.action(event)

    def of(self, kind: str):
        return [e for e in self.events if e.kind == kind]


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def metric_losses(run) -> dict[int, float]:
    return {m["step"]: m["loss"] for m in jsonl(run.metrics_path)}


class StopAfter:
    """A stop_event whose is_set() turns true after `steps` polls (the engine polls once per step)."""

    def __init__(self, steps: int):
        self.steps, self.calls = steps, 0

    def is_set(self) -> bool:
        self.calls += 1
        return self.calls > self.steps
