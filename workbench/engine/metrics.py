"""Training metrics kept on the device between log steps, throughput, and MFU.

Speed rule: the host reads from the device only at the log cadence. Every step adds its numbers to one
small device tensor (`MetricWindow.add_step`, a handful of tiny kernels, no sync); `MetricWindow.read`
copies that tensor to the host once per log step.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

# slots of the window vector
LOSS_SUM, LOSS_COUNT, GRAD_NORM_SUM, STEPS, NONFINITE_STEPS = range(5)
QUARTILE_SUM = 5          # 4 slots: loss sum for t in each quarter of [0, T)
QUARTILE_COUNT = 9        # 4 slots: samples in each quarter
WINDOW_SIZE = 13

# Peak dense bf16 tensor FLOP/s of known GPUs (vendor data sheets), for MFU; matched against the device name.
PEAK_BF16_FLOPS = (
    ("H200", 989e12),
    ("H100 PCIe", 756e12),
    ("H100", 989e12),      # SXM
    ("GH200", 989e12),
    ("B200", 2250e12),
    ("A100", 312e12),
    ("A800", 312e12),
    ("L40S", 362e12),
    ("L40", 181e12),
    ("L4", 121e12),
    ("A10G", 70e12),
    ("A10", 125e12),
    ("RTX 4090", 165e12),
    ("RTX 3090", 71e12),
    ("A6000", 155e12),
)


def peak_flops(device: torch.device) -> float | None:
    """Peak bf16 FLOP/s of this GPU, or None when unknown (and always on CPU)."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, flops in PEAK_BF16_FLOPS:
        if key in name:
            return flops
    return None


@dataclass(frozen=True)
class WindowSummary:
    steps: int
    loss: float
    grad_norm: float
    nonfinite_steps: int
    loss_quartiles: tuple[float, ...]


class MetricWindow:
    """Sums over the steps since the last log step, on the device."""

    def __init__(self, device: torch.device, timesteps: int):
        self.device, self.timesteps = device, timesteps
        self.values = torch.zeros(WINDOW_SIZE, dtype=torch.float32, device=device)
        self._zeros4 = torch.zeros(4, dtype=torch.float32, device=device)

    @torch.no_grad()
    def add_step(self, losses: torch.Tensor, t: torch.Tensor, grad_norm: torch.Tensor, finite: torch.Tensor) -> None:
        """losses (B,) per-sample loss, t (B,) their timesteps, grad_norm the pre-clip norm, finite a bool
        scalar: whether this step was applied. A skipped step adds only to NONFINITE_STEPS."""
        losses = torch.where(finite, losses.detach().float(), 0.0)
        kept = finite.float()
        quarter = (t.long() * 4 // self.timesteps).clamp_(0, 3)
        step = torch.stack([losses.sum(), kept * losses.numel(),
                            torch.where(finite, grad_norm.detach().float(), 0.0), torch.ones_like(kept), 1.0 - kept])
        self.values[:5] += step
        self.values[QUARTILE_SUM:QUARTILE_SUM + 4] += self._zeros4.index_add(0, quarter, losses)
        self.values[QUARTILE_COUNT:QUARTILE_COUNT + 4] += self._zeros4.index_add(0, quarter, kept.expand_as(losses))

    def read(self, reduce=None) -> WindowSummary:
        """Copy the sums to the host (the sync point), reset them, and return the window's means.
        `reduce(tensor)` sums the vector over ranks in place first (torchrun)."""
        if reduce is not None:
            reduce(self.values)
        v = self.values.tolist()
        self.values.zero_()
        applied = v[STEPS] - v[NONFINITE_STEPS]
        quartiles = tuple(v[QUARTILE_SUM + i] / v[QUARTILE_COUNT + i] if v[QUARTILE_COUNT + i] else float("nan")
                          for i in range(4))
        return WindowSummary(
            steps=int(round(v[STEPS])),
            loss=v[LOSS_SUM] / v[LOSS_COUNT] if v[LOSS_COUNT] else float("nan"),
            grad_norm=v[GRAD_NORM_SUM] / applied if applied else float("nan"),
            nonfinite_steps=int(round(v[NONFINITE_STEPS])),
            loss_quartiles=quartiles,
        )

    def state_dict(self) -> dict:
        return {"values": self.values.detach().cpu().clone()}

    def load_state_dict(self, state: dict) -> None:
        self.values.copy_(state["values"].to(self.values.device))


class Throughput:
    """Speed over the time spent training (previews, evaluations, checkpoint and pause time excluded): it/s
    and img/s of each log window (`lap`), and seconds per step averaged over all steady training so far
    (`seconds_per_step`, from `mark_steady` on: the steps before it warm up kernels and caches), which the
    ETA and the time budget use. `clock` is injectable for tests."""

    def __init__(self, clock=time.perf_counter):
        self.clock = clock
        self.window_start = clock()
        self.excluded = 0.0
        self.steady_start: float | None = None  # clock at mark_steady
        self.steady_steps_before = 0            # steps counted before mark_steady
        self.steady_excluded = 0.0

    def exclude(self, seconds: float) -> None:
        """Time spent on something other than training (sampling, checkpoints, pauses) in this window."""
        self.excluded += seconds
        if self.steady_start is not None:
            self.steady_excluded += seconds

    def lap(self, steps: int, images: int) -> tuple[float, float]:
        """(it/s, img/s) since the last lap; call right after the log step's sync."""
        now = self.clock()
        seconds = max(now - self.window_start - self.excluded, 1e-9)
        self.window_start, self.excluded = now, 0.0
        return steps / seconds, images / seconds

    def mark_steady(self, steps_done: int) -> None:
        """Steady training starts now, after `steps_done` steps of this process (call after a device sync)."""
        self.steady_start, self.steady_steps_before, self.steady_excluded = self.clock(), steps_done, 0.0

    def steady(self, steps_done: int) -> tuple[int, float]:
        """(steps, seconds) of steady training until now, `steps_done` steps of this process in all."""
        if self.steady_start is None:
            return 0, 0.0
        seconds = max(self.clock() - self.steady_start - self.steady_excluded, 0.0)
        return max(steps_done - self.steady_steps_before, 0), seconds

    def seconds_per_step(self, steps_done: int) -> float | None:
        """Seconds per step averaged over all steady training so far; None before a steady step."""
        steps, seconds = self.steady(steps_done)
        return seconds / steps if steps > 0 and seconds > 0 else None


def sync_device(device: torch.device) -> None:
    """Wait until `device` has finished the work queued so far (a no-op off CUDA, where work is synchronous);
    timing a step or a network call needs it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def gpu_memory_peak(device: torch.device) -> int:
    """Peak allocated bytes since the last call (0 off GPU)."""
    if device.type != "cuda":
        return 0
    peak = torch.cuda.max_memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    return int(peak)


def gpu_utilization(device: torch.device) -> float:
    if device.type != "cuda":
        return -1.0
    try:
        return float(torch.cuda.utilization(device))
    except Exception:  # noqa: BLE001 - needs pynvml / NVML; unknown is fine
        return -1.0
