"""What the run view knows about one run, rebuilt from its events (no widgets, no threads).

The watcher feeds every event of a run directory into `RunModel.apply()`, the whole history first (that is
how `attach` shows a run from its beginning) and then what arrives. Widgets only read from it, so the same
model can be tested, and replayed, without a terminal.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from workbench.engine.events import (
    CheckpointSaved,
    Event,
    LengthSet,
    QualityMeasured,
    RunFailed,
    RunFinished,
    RunStarted,
    RunWarning,
    SamplesReady,
    StateChanged,
    StepMetrics,
)
from workbench.engine.rundir import LIVE_STATES  # the engine is expected alive and obeying controls


@dataclass(frozen=True)
class LogEntry:
    time: float
    level: str  # "info", "warning" or "error"
    text: str


@dataclass
class RunModel:
    """The state of one run as far as the UI knows it."""

    name: str = ""
    path: str = ""
    state: str = "starting"
    started: RunStarted | None = None
    metrics: StepMetrics | None = None
    total_steps: int = 0
    loss_steps: list[int] = field(default_factory=list)
    loss_values: list[float] = field(default_factory=list)
    samples: list[tuple[int, str]] = field(default_factory=list)  # (step, png path), oldest first
    checkpoints: list[tuple[int, str]] = field(default_factory=list)
    quality: list[QualityMeasured] = field(default_factory=list)  # train.eval_every results, oldest first
    log: list[LogEntry] = field(default_factory=list)
    failure: str = ""  # one line shown in the error banner; empty while nothing went wrong
    kept: str = ""     # what survives a failure
    version: int = 0   # bumped by every change, so views redraw only when something changed
    _smoothing: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def step(self) -> int:
        return self.metrics.step if self.metrics else (self.started.start_step if self.started else 0)

    @property
    def is_live(self) -> bool:
        """Whether controls make sense: the engine is (as far as we know) still there to obey them."""
        return self.state in LIVE_STATES and not self.failure

    @property
    def latest_sample(self) -> tuple[int, str] | None:
        return self.samples[-1] if self.samples else None

    # -- feeding -----------------------------------------------------------------------------------

    def apply(self, events: Iterable[Event]) -> None:
        for event in events:
            self._apply_one(event)
            self.version += 1

    def _apply_one(self, event: Event) -> None:
        if isinstance(event, StepMetrics):
            self.metrics = event
            if math.isfinite(event.loss) and event.loss > 0:
                self.loss_steps.append(event.step)
                self.loss_values.append(event.loss)
            if self.state == "starting":
                self.state = "running"
        elif isinstance(event, RunStarted):
            self.started = event
            self.total_steps = event.total_steps
            self.state = "running"
            self.failure, self.kept = "", ""  # a resumed run starts afresh
            where = f" from step {event.start_step}" if event.start_step else ""
            parts = [p for p in (event.backbone, event.dataset) if p]
            self._log(event, "info", f"started on {event.device}{where}" + (": " + "; ".join(parts) if parts else ""))
        elif isinstance(event, LengthSet):  # train.minutes decided how many steps fit
            self.total_steps = event.total_steps
            self._log(event, "info", event.summary())
        elif isinstance(event, SamplesReady):
            self.samples.append((event.step, str(locate(self.path, event.path))))
            self._log(event, "info", f"samples at step {event.step}")
        elif isinstance(event, CheckpointSaved):
            self.checkpoints.append((event.step, event.path))
            self._log(event, "info", f"checkpoint at step {event.step}: {event.path}")
        elif isinstance(event, QualityMeasured):
            self.quality.append(event)
            best = " (best)" if event.best_step == event.step else ""
            self._log(event, "info", f"{event.metric} {event.value:.4g}{best} at step {event.step}, n={event.n}, "
                                     f"{event.seconds:.0f} s")
        elif isinstance(event, RunWarning):
            at = f" (step {event.step})" if event.step >= 0 else ""
            self._log(event, "warning", event.message + at)
        elif isinstance(event, StateChanged):
            self.state = {"resumed": "running"}.get(event.state, event.state)
            at = f" at step {event.step}" if event.step >= 0 else ""
            self._log(event, "info", f"{event.state}{at}")
        elif isinstance(event, RunFinished):
            self.state = "stopped" if event.stopped_early else "finished"
            how = "stopped early" if event.stopped_early else "finished"
            self._log(event, "info", f"{how} at step {event.step}")
        elif isinstance(event, RunFailed):
            self.state = "failed"
            at = f" at step {event.step}" if event.step >= 0 else ""
            self.failure = f"run failed{at}: {event.message}"
            self.kept = event.kept or self._kept_guess()
            self._log(event, "error", self.failure + (f" (kept: {self.kept})" if self.kept else ""))

    def mark_process_gone(self, exit_code: int | None, log_tail: str = "") -> None:
        """The engine process ended (or vanished) while the run still looked live: say so, once."""
        if not self.is_live:
            return
        if exit_code == 0 and self.state == "stopping":
            self.state = "stopped"
            self.note("info", "the training process stopped")
            return
        self.state = "failed"
        how = f"exited with code {exit_code}" if exit_code is not None else "is no longer running"
        self.failure = f"the training process {how} before the run finished"
        if log_tail:
            self.failure += f": {log_tail}"
        self.kept = self._kept_guess()
        self._log(None, "error", self.failure + (f" (kept: {self.kept})" if self.kept else ""))
        self.version += 1

    def mark_not_live(self, state: str, why: str) -> None:
        """What the run directory says when it cannot vouch for a live engine (see RunDirectory.observed_state:
        "abandoned", "failed", "unknown", "deleted"): shown as that state, with controls disabled."""
        if self.state == state and self.failure:
            return
        self.state = state
        self.failure = f"run {state}: {why}"
        self.kept = "nothing" if state == "deleted" else self._kept_guess()
        self._log(None, "error", self.failure + (f" (kept: {self.kept})" if self.kept else ""))
        self.version += 1

    def note(self, level: str, text: str) -> None:
        """A line from the UI itself (a control sent, a worker failure) for the event log."""
        self._log(None, level, text)
        self.version += 1

    # -- derived series ----------------------------------------------------------------------------

    def smoothed_loss(self, factor: float) -> list[float]:
        """Exponential moving average of the loss, bias-corrected like TensorBoard's (factor 0: raw).

        Extended incrementally: a redraw costs the new values, not the whole history."""
        cache = self._smoothing
        if cache.get("factor") != factor:
            cache.clear()
            cache.update(factor=factor, values=[], avg=0.0, weight=0.0)
        out = cache["values"]
        avg, weight = cache["avg"], cache["weight"]
        for value in self.loss_values[len(out):]:
            avg = factor * avg + (1 - factor) * value
            weight = factor * weight + (1 - factor)
            out.append(avg / weight if weight else value)
        cache["avg"], cache["weight"] = avg, weight
        return out

    def _kept_guess(self) -> str:
        if self.checkpoints:
            step, path = self.checkpoints[-1]
            return f"checkpoint at step {step}: {path}"
        if self.samples:
            return f"{len(self.samples)} sample grid(s), no checkpoint"
        return ""

    def _log(self, event: Event | None, level: str, text: str) -> None:
        self.log.append(LogEntry(event.time if event is not None else time.time(), level, text))


def locate(run_path: str | Path, path: str) -> Path:
    """A file named in an event: absolute, relative to the working directory, or inside the run directory."""
    candidate = Path(path)
    if candidate.is_absolute() or candidate.exists() or not run_path:
        return candidate
    for inside in (Path(run_path) / candidate, Path(run_path) / "samples" / candidate.name):
        if inside.exists():
            return inside
    return candidate


def read_log_tail(path: Path, max_chars: int = 300) -> str:
    """The last non-empty line of a process log (e.g. a traceback's final line), shortened for one line."""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - 8192))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return ""
    last = lines[-1]
    return last if len(last) <= max_chars else last[: max_chars - 1] + "…"
