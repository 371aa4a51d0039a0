"""Events the training engine publishes, and the small records behind them.

Every consumer (the headless progress display, the TUI, `attach`) sees the same immutable events. They
travel two ways: in-process through the engine's `on_event` callback, and through the run directory
(`events.jsonl` and `metrics.jsonl`, see workbench.engine.rundir), which is what lets a TUI attach to a run
started headless, under torchrun or by an earlier TUI. Each event is JSON-serialisable with `to_dict()` and
comes back with `event_from_dict()`; a sample grid travels as a PNG path (the in-process event also carries
the uint8 pixels so nobody re-reads the file).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar, Optional


@dataclass(frozen=True)
class Event:
    kind: ClassVar[str] = "event"
    time: float = field(default_factory=time.time, kw_only=True)

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.metadata.get("json", True)}
        data["kind"] = self.kind
        return data


@dataclass(frozen=True)
class RunStarted(Event):
    """Training began (or resumed at `start_step`)."""

    kind: ClassVar[str] = "started"
    run_dir: str
    total_steps: int
    start_step: int = 0
    device: str = "cpu"
    dataset: str = ""          # human description of the data in use, e.g. "embedded Fashion-MNIST sample"
    backbone: str = ""         # e.g. "unet (tiny), 1.4M parameters"
    parameters: int = 0
    flops_per_image: int = 0   # forward FLOPs for one image, counted from the model
    world_size: int = 1
    image_shape: tuple = ()    # (C, H, W) after preprocessing
    minutes: float = 0.0       # train.minutes: total_steps is a cap until a LengthSet says how many fit


@dataclass(frozen=True)
class StepMetrics(Event):
    """One log step's numbers (written every `train.log_every` steps; the only host-device sync)."""

    kind: ClassVar[str] = "metrics"
    step: int
    loss: float
    lr: float
    grad_norm: float
    it_per_s: float
    img_per_s: float
    elapsed_s: float
    eta_s: float
    loss_quartiles: tuple = ()   # mean loss for t in each quarter of [0, T)
    gpu_mem_bytes: int = 0       # peak allocated since the last log step (0 on CPU)
    gpu_util: float = -1.0       # percent, -1 when unknown
    mfu: float = -1.0            # model FLOPs utilisation, -1 when the peak is unknown


@dataclass(frozen=True)
class LengthSet(Event):
    """train.minutes set the run's length: `total_steps` steps fit the budget of `minutes` at the measured
    `seconds_per_step`; decided at `step`, expected to end `eta_s` seconds after this event."""

    kind: ClassVar[str] = "length"
    total_steps: int
    minutes: float
    seconds_per_step: float
    step: int = -1
    eta_s: float = float("nan")

    def summary(self) -> str:
        """"train.minutes = 10: 0.95 s/step, training 700 steps", as the progress display and the TUI say it."""
        return (f"train.minutes = {self.minutes:g}: {self.seconds_per_step:.3g} s/step, training "
                f"{self.total_steps} steps")


@dataclass(frozen=True)
class SamplesReady(Event):
    """A sample grid from the fixed noise with EMA weights was written."""

    kind: ClassVar[str] = "samples"
    step: int
    path: str
    # uint8 (H, W, C) numpy array; in-process only, never written to JSON
    image: Optional[Any] = field(default=None, compare=False, repr=False, metadata={"json": False})


@dataclass(frozen=True)
class CheckpointSaved(Event):
    kind: ClassVar[str] = "checkpoint"
    step: int
    path: str


@dataclass(frozen=True)
class QualityMeasured(Event):
    """Sample quality of the EMA model (train.eval_every): `metric` is the label of `value`, e.g. "FID" or
    "FD_fashion-classifier" (lower is better); `seconds` were spent sampling and scoring, outside img/s."""

    kind: ClassVar[str] = "quality"
    step: int
    metric: str
    value: float
    n: int
    extractor: str
    seconds: float
    best_step: int
    best_value: float
    kid: Optional[float] = None
    kid_std: Optional[float] = None


@dataclass(frozen=True)
class RunWarning(Event):
    kind: ClassVar[str] = "warning"
    message: str
    step: int = -1


@dataclass(frozen=True)
class StateChanged(Event):
    """paused / resumed / stopping, in reply to a control command."""

    kind: ClassVar[str] = "state"
    state: str
    step: int = -1


@dataclass(frozen=True)
class RunFinished(Event):
    kind: ClassVar[str] = "finished"
    step: int
    run_dir: str
    stopped_early: bool = False  # stopped by the user (Ctrl-C, SIGTERM, stop command) before train.steps


@dataclass(frozen=True)
class RunFailed(Event):
    kind: ClassVar[str] = "failed"
    message: str                 # one line: what went wrong
    kept: str = ""               # what survives, e.g. "checkpoint at step 1500: runs/x/checkpoints/latest.pt"
    step: int = -1


EVENT_TYPES: dict[str, type[Event]] = {
    cls.kind: cls
    for cls in (RunStarted, LengthSet, StepMetrics, SamplesReady, CheckpointSaved, QualityMeasured, RunWarning,
                StateChanged, RunFinished, RunFailed)
}


def event_from_dict(data: dict[str, Any]) -> Event:
    """The event a `to_dict()` came from (unknown keys are ignored, so newer writers stay readable)."""
    data = dict(data)
    cls = EVENT_TYPES.get(data.pop("kind", ""))
    if cls is None:
        raise ValueError(f"unknown event kind in {data!r}")
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items() if k in names}
    return cls(**kwargs)
