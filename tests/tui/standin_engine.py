"""A scripted stand-in for the training engine: real run-directory files, a real control channel.

It writes the same files the engine writes (status.json, metrics.jsonl, events.jsonl, sample PNGs, checkpoint
files) on a schedule and obeys pause/resume/sample/checkpoint/stop, so the TUI can be driven end to end
without torch. Use `ScriptedEngine` as a thread inside a test, run this file as a process
(`python tests/tui/standin_engine.py RUN_DIR --steps 400`) when a test needs a process it can kill, or
`write_history()` for a finished run with fixed timestamps (snapshots).
"""

from __future__ import annotations

import argparse
import math
import threading
import time
from pathlib import Path

from PIL import Image, ImageDraw

from workbench.engine.events import (
    CheckpointSaved,
    QualityMeasured,
    RunFailed,
    RunFinished,
    RunStarted,
    RunWarning,
    SamplesReady,
    StateChanged,
    StepMetrics,
)
from workbench.engine.rundir import RunDirectory

T0 = 1_700_000_000.0  # fixed clock for deterministic histories (2023-11-14 22:13:20 UTC)


def loss_at(step: int) -> float:
    """A plausible, deterministic loss curve with some wiggle."""
    return 0.6 * math.exp(-step / 120) + 0.04 + 0.01 * math.sin(step * 0.7) ** 2


def sample_grid(step: int, tiles: int = 4, tile: int = 16) -> Image.Image:
    """A deterministic 4x4 grid whose blobs sharpen as `step` grows."""
    image = Image.new("RGB", (tiles * tile + tiles + 1, tiles * tile + tiles + 1), (40, 40, 40))
    draw = ImageDraw.Draw(image)
    for i in range(tiles * tiles):
        x = 1 + (i % tiles) * (tile + 1)
        y = 1 + (i // tiles) * (tile + 1)
        shade = 60 + (i * 37 + step) % 190
        draw.rectangle([x, y, x + tile - 1, y + tile - 1], fill=(20, 20, 30))
        r = 2 + (i + step // 10) % 6
        cx, cy = x + tile // 2, y + tile // 2
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=(shade, 255 - shade, (shade * 3) % 255))
    return image


def prepare(run: RunDirectory, total_steps: int) -> None:
    for sub in (run.samples_dir, run.checkpoints_dir, run.control_dir):
        sub.mkdir(parents=True, exist_ok=True)
    run.write_config(f'[run]\nname = "{run.name}"\n\n[train]\nsteps = {total_steps}\n')


def write_samples(run: RunDirectory, step: int, clock: float) -> SamplesReady:
    path = run.sample_path(step)
    sample_grid(step).save(path)
    return SamplesReady(step=step, path=str(path), time=clock)


def write_checkpoint(run: RunDirectory, step: int, clock: float) -> CheckpointSaved:
    path = run.checkpoint_path(step)
    path.write_bytes(b"stand-in checkpoint")
    run.latest_checkpoint.write_bytes(b"stand-in checkpoint")
    return CheckpointSaved(step=step, path=str(path), time=clock)


def metrics(step: int, total: int, clock: float, log_every: int) -> StepMetrics:
    return StepMetrics(step=step, loss=loss_at(step), lr=2e-4 * min(1.0, step / 50), grad_norm=0.5 + 10 / (10 + step),
                       it_per_s=12.5, img_per_s=800.0, elapsed_s=step / 12.5, eta_s=(total - step) / 12.5,
                       loss_quartiles=(), time=clock)


def started(run: RunDirectory, total: int, clock: float) -> RunStarted:
    return RunStarted(run_dir=str(run.path), total_steps=total, device="cpu", dataset="stand-in shapes (64 images)",
                      backbone="stand-in (tiny), 0.1M parameters", parameters=100_000, image_shape=(3, 16, 16),
                      time=clock)


def write_history(run: RunDirectory, *, total_steps: int = 300, log_every: int = 10, sample_every: int = 100,
                  checkpoint_every: int = 150, end: str = "finished", eval_every: int = 0) -> None:
    """A whole run at once with fixed timestamps; `end` is "finished", "failed" or "stale" (no ending).
    With `eval_every`, a quality measurement every that many steps (best at 80% of the run, then worse)."""
    prepare(run, total_steps)
    clock = T0
    run.append_event(started(run, total_steps, clock))
    best = (-1, math.inf)
    for step in range(log_every, total_steps + 1, log_every):
        clock += 1.0
        run.append_event(metrics(step, total_steps, clock, log_every))
        if eval_every and step % eval_every == 0:
            value = 8.0 + 60.0 * (1 - step / total_steps) ** 2 + 40.0 * max(0.0, step / total_steps - 0.8)
            best = min(best, (step, value), key=lambda b: b[1])
            run.append_event(QualityMeasured(step=step, metric="FD_fashion-classifier", value=value, n=1000,
                                             extractor="fashion-classifier", seconds=4.0, best_step=best[0],
                                             best_value=best[1], time=clock + 0.05))
        if step % sample_every == 0:
            run.append_event(write_samples(run, step, clock + 0.1))
        if step % checkpoint_every == 0:
            run.append_event(write_checkpoint(run, step, clock + 0.2))
        if step == total_steps // 2:
            run.append_event(RunWarning(message="loss spiked to 3.2 (1 step), continuing", step=step, time=clock + 0.3))
        if end == "failed" and step == total_steps - 3 * log_every:
            run.append_event(RunFailed(message="CUDA out of memory while sampling (tried to allocate 2.0 GiB)",
                                       kept=f"checkpoint at step {checkpoint_every}: "
                                            f"{run.checkpoint_path(checkpoint_every)}",
                                       step=step, time=clock + 0.5))
            run.write_status("failed", step=step, total_steps=total_steps)
            return
    if end == "finished":
        run.append_event(RunFinished(step=total_steps, run_dir=str(run.path), time=clock + 1))
        run.write_status("finished", step=total_steps, total_steps=total_steps)
    else:  # stale: the status still says running, but the recorded pid no longer exists
        run.write_status("running", step=total_steps, total_steps=total_steps)
        status = run.read_status()
        status["pid"] = dead_pid()
        run.status_path.write_text(__import__("json").dumps(status))


def dead_pid() -> int:
    import subprocess
    import sys

    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


class ScriptedEngine(threading.Thread):
    """Trains nothing, on a schedule: one log step every `tick_s` seconds, obeying the control channel."""

    def __init__(self, run: RunDirectory, *, total_steps: int = 400, log_every: int = 10, tick_s: float = 0.05,
                 sample_every: int = 0, fail_at: int | None = None):
        super().__init__(daemon=True)
        self.rundir, self.total, self.log_every, self.tick_s = run, total_steps, log_every, tick_s
        self.sample_every, self.fail_at = sample_every, fail_at
        self.received: list[str] = []
        self.halt = threading.Event()  # ends the thread without writing anything (a "crash")

    def emit(self, event) -> None:
        self.rundir.append_event(event)

    def run(self) -> None:
        prepare(self.rundir, self.total)
        self.rundir.write_status("running", step=0, total_steps=self.total)
        self.emit(started(self.rundir, self.total, time.time()))
        step, paused = 0, False
        while step < self.total and not self.halt.is_set():
            for command in self.rundir.take_control():
                self.received.append(command)
                if command == "pause" and not paused:
                    paused = True
                    self.rundir.write_status("paused", step=step)
                    self.emit(StateChanged(state="paused", step=step))
                elif command == "resume" and paused:
                    paused = False
                    self.rundir.write_status("running", step=step)
                    self.emit(StateChanged(state="resumed", step=step))
                elif command == "sample":
                    self.emit(write_samples(self.rundir, step, time.time()))
                elif command == "checkpoint":
                    self.emit(write_checkpoint(self.rundir, step, time.time()))
                elif command == "stop":
                    self.emit(StateChanged(state="stopping", step=step))
                    self.emit(write_checkpoint(self.rundir, step, time.time()))
                    self.emit(RunFinished(step=step, run_dir=str(self.rundir.path), stopped_early=True))
                    self.rundir.write_status("stopped", step=step)
                    return
            if paused:
                self.halt.wait(self.tick_s)
                continue
            step += self.log_every
            self.emit(metrics(step, self.total, time.time(), self.log_every))
            if self.sample_every and step % self.sample_every == 0:
                self.emit(write_samples(self.rundir, step, time.time()))
            if self.fail_at is not None and step >= self.fail_at:
                self.emit(RunFailed(message="loss became NaN at step %d; lower train.lr" % step, step=step))
                self.rundir.write_status("failed", step=step)
                return
            self.rundir.write_status("running", step=step)
            self.halt.wait(self.tick_s)
        if not self.halt.is_set():
            self.emit(write_checkpoint(self.rundir, step, time.time()))
            self.emit(RunFinished(step=step, run_dir=str(self.rundir.path)))
            self.rundir.write_status("finished", step=step)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--tick", type=float, default=0.05)
    parser.add_argument("--sample-every", type=int, default=100)
    args = parser.parse_args()
    engine = ScriptedEngine(RunDirectory(Path(args.run_dir)), total_steps=args.steps, tick_s=args.tick,
                            sample_every=args.sample_every)
    engine.run()


if __name__ == "__main__":
    main()
