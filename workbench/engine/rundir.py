"""The run directory: the durable record of one training run, and its control channel.

Layout (everything a UI shows can be rebuilt from it, which is what makes `attach` work for runs started
headless, under torchrun, or by a TUI that has since quit):

    runs/<name>/
      config.toml          the resolved config the run uses
      status.json          state, step, total steps, pid, host, ... (replaced atomically)
      metrics.jsonl        one StepMetrics (or QualityMeasured) per line
      events.jsonl         every other event (started, samples, checkpoint, warning, state, finished, failed)
      samples/step_XXXXXXX.png   sample grids from fixed noise with EMA weights
      checkpoints/step_XXXXXXX.pt, latest.pt and best.pt (the best sample quality, train.keep_best)
      control/             commands for the engine: one file per command (pause, resume, sample,
                           checkpoint, stop), written by a UI, consumed and deleted by the engine

Only rank 0 writes here. Lines are appended and flushed whole, so a reader never sees a partial line
except at the very end of a file, which `RunWatcher` holds back until it is complete.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from pathlib import Path
from typing import Any, Iterable

from workbench.engine.events import (CheckpointSaved, Event, LengthSet, QualityMeasured, RunFailed, RunFinished,
                                     RunStarted, SamplesReady, StateChanged, StepMetrics, event_from_dict)
from workbench.errors import UsageError
from workbench.files import append_line, atomic_write_bytes, atomic_write_text  # noqa: F401 - re-exported

CONTROL_COMMANDS = ("pause", "resume", "sample", "checkpoint", "stop")
LIVE_STATES = ("starting", "running", "paused", "stopping")  # the engine is alive and obeys control commands
# What readers report besides STATES (never written by the engine; see RunDirectory.observed_state):
# "abandoned": status says live, but its process is gone and it never wrote a checkpoint;
# "unknown": status.json cannot be read (truncated, damaged; it is replaced atomically, so a live engine never
# leaves it so); "deleted": the folder is gone. A status.json not written yet reads as "starting".
READER_STATES = ("abandoned", "unknown", "deleted")
LAUNCHER_FILES = ("launch.toml", "train.log")  # what a launcher (the TUI) writes before the engine starts




class RunDirectory:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    # -- naming ------------------------------------------------------------------------------------

    @classmethod
    def create(cls, base_dir: str | Path, name: str = "") -> "RunDirectory":
        """A new run directory under `base_dir`: `name`, or a timestamp; never reuses an existing one."""
        base = Path(base_dir)
        stem = name or time.strftime("%Y%m%d-%H%M%S")
        candidate, n = base / stem, 1
        while candidate.exists():
            n += 1
            candidate = base / f"{stem}-{n}"
        try:
            candidate.mkdir(parents=True)
        except OSError as exc:
            raise UsageError(f"cannot create run directory {str(candidate)!r}: {exc.strerror}; "
                             "set run.dir to a writable folder") from None
        run = cls(candidate)
        try:
            for sub in (run.samples_dir, run.checkpoints_dir, run.control_dir):
                sub.mkdir(exist_ok=True)
        except OSError as exc:
            shutil.rmtree(candidate, ignore_errors=True)  # never leave an empty run folder behind
            raise UsageError(f"cannot create run directory {str(candidate)!r}: {exc.strerror}; "
                             "set run.dir to a writable folder") from None
        return run

    @classmethod
    def resolve(cls, spec: str | Path | None, base_dir: str | Path = "runs") -> "RunDirectory":
        """`latest` (or None), a run name under `base_dir`, a path to a run directory, or a path to one of a
        run's checkpoints (`runs/x/checkpoints/step_0000500.pt`: that run)."""
        base = Path(base_dir)
        checkpoint_run = cls.of_checkpoint(spec)
        if checkpoint_run is not None:
            return checkpoint_run
        if spec in (None, "", "latest"):
            runs = list_runs(base)
            if not runs:
                raise UsageError(f"no runs found in {str(base)!r}; start one with `ddpm-workbench train` "
                                 "or name a run directory")
            return runs[-1]
        for candidate in (Path(spec), base / str(spec)):
            if (candidate / "status.json").is_file() or (candidate / "config.toml").is_file():
                return cls(candidate)
        names = ", ".join(r.path.name for r in list_runs(base)[-5:]) or "none"
        raise UsageError(f"run {str(spec)!r} not found (looked for {str(spec)!r} and {str(base / str(spec))!r}); "
                         f"recent runs in {str(base)!r}: {names}")

    @classmethod
    def of_checkpoint(cls, spec: str | Path | None) -> "RunDirectory | None":
        """The run a checkpoint file belongs to (<run>/checkpoints/<file>.pt), or None when `spec` is not one."""
        if spec is None or not str(spec).endswith(".pt") or not Path(spec).is_file():
            return None
        run = cls(Path(spec).resolve().parent.parent)
        if Path(spec).resolve().parent.name != "checkpoints" or not (
                run.config_path.is_file() or run.status_path.is_file()):
            raise UsageError(f"checkpoint {str(spec)!r} is not inside a run directory (<run>/checkpoints/); "
                             "to start a new run from its weights use `train --init-from`, to sample it use "
                             "`sample --checkpoint`")
        return run

    # -- paths -------------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.path.name

    config_path = property(lambda self: self.path / "config.toml")
    status_path = property(lambda self: self.path / "status.json")
    metrics_path = property(lambda self: self.path / "metrics.jsonl")
    events_path = property(lambda self: self.path / "events.jsonl")
    samples_dir = property(lambda self: self.path / "samples")
    checkpoints_dir = property(lambda self: self.path / "checkpoints")
    control_dir = property(lambda self: self.path / "control")

    def sample_path(self, step: int) -> Path:
        return self.samples_dir / f"step_{step:07d}.png"

    def checkpoint_path(self, step: int) -> Path:
        return self.checkpoints_dir / f"step_{step:07d}.pt"

    @property
    def latest_checkpoint(self) -> Path:
        return self.checkpoints_dir / "latest.pt"

    @property
    def best_checkpoint(self) -> Path:
        """The checkpoint of the best sample-quality evaluation (train.eval_every, train.keep_best)."""
        return self.checkpoints_dir / "best.pt"

    # -- writing (rank 0 only) ---------------------------------------------------------------------

    def write_config(self, toml_text: str) -> None:
        atomic_write_text(self.config_path, toml_text)

    def append_event(self, event: Event) -> None:
        target = self.metrics_path if isinstance(event, (StepMetrics, QualityMeasured)) else self.events_path
        append_line(target, json.dumps(event.to_dict(), separators=(",", ":")) + "\n")

    def record(self, event: Event) -> None:
        """Append `event` and update status.json from it (`status_update`): one call per change, so the
        status always says what the last event says."""
        self.append_event(event)
        update = status_update(event)
        if update is not None:
            state, fields = update
            self.write_status(state or self.read_status().get("state", "running"), **fields)

    def write_status(self, state: str, **fields: Any) -> None:
        """Replace status.json; fields not given keep their previous values."""
        status = self.read_status()
        status.update(fields)
        status.update(state=state, pid=os.getpid(), host=socket.gethostname(), updated_at=time.time())
        atomic_write_text(self.status_path, json.dumps(status, indent=2) + "\n")

    # -- reading -----------------------------------------------------------------------------------

    def read_status(self) -> dict[str, Any]:
        try:
            return json.loads(self.status_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def observed_state(self) -> tuple[str, str]:
        """(state, why) as a reader should report it: never a live state for a run whose status cannot be
        read, whose process is gone (on this host), or whose folder was deleted. `why` is "" when the
        status file's state stands as written."""
        if not self.path.is_dir():
            return "deleted", f"the run directory {str(self.path)!r} no longer exists"
        try:
            status = json.loads(self.status_path.read_text(encoding="utf-8"))
            state = status["state"]
        except FileNotFoundError:  # not written yet: the engine (or a launcher) is still starting
            return "starting", ""
        except (OSError, ValueError, KeyError, TypeError):
            return "unknown", f"{str(self.status_path)!r} cannot be read (truncated or damaged)"
        if state not in LIVE_STATES or self.is_alive() is not False:
            return str(state), ""
        pid = status.get("pid")
        if self.latest_checkpoint.exists() or any(self.checkpoints_dir.glob("step_*.pt")):
            return "failed", f"its process {pid} is no longer running; resume from its last checkpoint with --resume"
        return "abandoned", f"its process {pid} is no longer running and it never wrote a checkpoint"

    def remove_stale_temporaries(self) -> list[Path]:
        """Delete `.NAME.<pid>.tmp` files (checkpoints, status, grids) left by processes of this host that are
        gone (SIGKILL during a write); returns what was removed. A live process's temporaries stay."""
        removed = []
        for folder in (self.path, self.checkpoints_dir, self.samples_dir, self.control_dir):
            try:
                entries = list(folder.iterdir())
            except OSError:
                continue
            for entry in entries:
                parts = entry.name.rsplit(".", 2)
                if not (entry.name.startswith(".") and len(parts) == 3 and parts[2] == "tmp" and parts[1].isdigit()):
                    continue
                pid = int(parts[1])
                if pid == os.getpid() or _pid_alive(pid):
                    continue
                try:
                    entry.unlink()
                    removed.append(entry)
                except OSError:
                    pass
        return removed

    def trim_metrics_after(self, step: int) -> int:
        """Drop metrics.jsonl lines of steps after `step` (a resume from `step` logs them again), so the file
        has one entry per step; returns how many were dropped. Readers need not de-duplicate."""
        try:
            lines = self.metrics_path.read_bytes().splitlines(keepends=True)
        except FileNotFoundError:
            return 0
        kept = []
        for line in lines:
            if not line.endswith(b"\n"):
                continue  # a half-written last line of a killed process
            try:
                if int(json.loads(line)["step"]) > step:
                    continue
            except (ValueError, KeyError, TypeError):
                pass  # not ours to judge: keep it (RunWatcher skips lines it cannot read)
            kept.append(line)
        if len(kept) != len(lines):
            atomic_write_bytes(self.metrics_path, b"".join(kept), kept="metrics.jsonl as it was")
        return len(lines) - len(kept)

    def is_alive(self) -> bool | None:
        """Whether the process that owns this run still runs: True/False on this host, None elsewhere."""
        status = self.read_status()
        if status.get("host") != socket.gethostname() or "pid" not in status:
            return None
        try:
            os.kill(int(status["pid"]), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def live_owner(self) -> int | None:
        """The pid of another process on this host that is training into this run now, else None.

        Its status must say it is live and name a process that still exists and runs ddpm-workbench (a
        stale status whose pid was reused by something else does not count). Hosts other than this one
        cannot be checked."""
        status = self.read_status()
        if status.get("state") not in LIVE_STATES or self.is_alive() is not True:
            return None
        pid = int(status["pid"])
        if pid == os.getpid():
            return None
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return pid  # no /proc (macOS) or not ours to read: trust the status
        return pid if b"workbench" in command else None

    def entries_a_new_run_would_overwrite(self) -> list[str]:
        """What is here besides what `create` and a launcher leave for a new run (empty subfolders, the
        launcher's config and log); hidden temporaries aside."""
        found = []
        for entry in sorted(self.path.iterdir()) if self.path.is_dir() else []:
            if entry.name.startswith(".") or entry.name in LAUNCHER_FILES:
                continue
            if entry in (self.samples_dir, self.checkpoints_dir, self.control_dir) and not any(entry.iterdir()):
                continue
            found.append(entry.name)
        return found

    def history(self) -> list[Event]:
        """Every event recorded so far, metrics and others, in time order."""
        return RunWatcher(self).poll()

    def sample_grids(self) -> list[Path]:
        return sorted(self.samples_dir.glob("step_*.png"))

    # -- control channel ---------------------------------------------------------------------------

    def send_control(self, command: str) -> None:
        if command not in CONTROL_COMMANDS:
            raise ValueError(f"unknown control command {command!r}; one of {', '.join(CONTROL_COMMANDS)}")
        self.control_dir.mkdir(exist_ok=True)
        atomic_write_text(self.control_dir / f"{time.time_ns()}-{command}", command + "\n")

    def take_control(self) -> list[str]:
        """Commands sent since the last call, oldest first; each is consumed (deleted)."""
        try:
            entries = sorted(os.listdir(self.control_dir))
        except FileNotFoundError:
            return []
        commands = []
        for entry in entries:
            if entry.startswith("."):
                continue
            command = entry.split("-", 1)[-1]
            try:
                os.unlink(self.control_dir / entry)
            except FileNotFoundError:
                continue
            if command in CONTROL_COMMANDS:
                commands.append(command)
        return commands


class RunWatcher:
    """Follows a run directory's event files and returns the events added since the last `poll()`."""

    def __init__(self, run: RunDirectory):
        self.run = run
        self._offsets = {run.metrics_path: 0, run.events_path: 0}

    def poll(self) -> list[Event]:
        events: list[Event] = []
        for path in self._offsets:
            events.extend(self._read_new(path))
        events.sort(key=lambda e: e.time)
        return events

    def _read_new(self, path: Path) -> Iterable[Event]:
        try:
            with open(path, "rb") as f:
                f.seek(self._offsets[path])
                chunk = f.read()
        except FileNotFoundError:
            return []
        end = chunk.rfind(b"\n") + 1  # hold back an incomplete last line
        self._offsets[path] += end
        events = []
        for raw in chunk[:end].splitlines():
            try:
                events.append(event_from_dict(json.loads(raw)))
            except (ValueError, TypeError):
                continue  # a line from a newer or broken writer: skip it rather than stop watching
        return events


STATE_OF_CHANGE = {"paused": "paused", "resumed": "running", "stopping": "stopping"}


def status_update(event: Event) -> tuple[str | None, dict[str, Any]] | None:
    """What `event` changes in status.json: (the new state, or None to keep it; the fields it sets), or None
    when it changes nothing (warnings)."""
    if isinstance(event, RunStarted):
        return "running", {"step": event.start_step, "total_steps": event.total_steps, "started_at": event.time,
                           "device": event.device, "world_size": event.world_size, "run_dir": event.run_dir,
                           "message": ""}
    if isinstance(event, LengthSet):  # train.minutes decided the run's length
        return None, {"total_steps": event.total_steps}
    if isinstance(event, StepMetrics):
        return None, {"step": event.step, "loss": event.loss, "img_per_s": event.img_per_s, "eta_s": event.eta_s}
    if isinstance(event, SamplesReady):
        return None, {"step": event.step, "last_sample": event.path}
    if isinstance(event, CheckpointSaved):
        return None, {"step": event.step, "last_checkpoint": event.path, "checkpoint_step": event.step}
    if isinstance(event, QualityMeasured):
        return None, {"quality": {"metric": event.metric, "value": event.value, "step": event.step,
                                  "best_value": event.best_value, "best_step": event.best_step}}
    if isinstance(event, StateChanged):
        return STATE_OF_CHANGE.get(event.state, event.state), {"step": event.step}
    if isinstance(event, RunFinished):
        return ("stopped" if event.stopped_early else "finished"), {"step": event.step, "message": ""}
    if isinstance(event, RunFailed):
        return "failed", {"step": event.step, "message": event.message, "kept": event.kept}
    return None


def check_training_target(given: RunDirectory | None, resumed: RunDirectory | None) -> None:
    """Before a trainer builds or writes anything: refuse a run another process is training into right now,
    a --run-dir (`given`) that is a file or holds someone else's files, and --run-dir with --resume elsewhere."""
    run = given or resumed
    pid = run.live_owner() if run is not None else None
    if pid is not None:
        raise UsageError(f"run {str(run.path)!r} is being trained right now by process {pid}; stop it first "
                         f"(Ctrl-C there, `kill -TERM {pid}`, or s in the TUI), or watch it with "
                         f"`ddpm-workbench attach {run.path}`")
    if given is None:
        return
    if given.path.exists() and not given.path.is_dir():
        raise UsageError(f"--run-dir {str(given.path)!r} is a file; name a new or empty folder")
    if resumed is not None and given.path.resolve() != resumed.path.resolve():
        raise UsageError(f"--resume continues run {str(resumed.path)!r} in its own directory; leave out "
                         f"--run-dir {str(given.path)!r}")
    taken = given.entries_a_new_run_would_overwrite() if resumed is None else []
    if taken:
        shown = ", ".join(taken[:4]) + (", ..." if len(taken) > 4 else "")
        again = f" (to continue the run there: --resume {given.path})" if given.latest_checkpoint.exists() else ""
        raise UsageError(f"--run-dir {str(given.path)!r} already holds {shown}; name a new or empty folder, "
                         f"so nothing there is overwritten{again}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def list_runs(base_dir: str | Path) -> list[RunDirectory]:
    """Run directories under `base_dir`, oldest first (by creation of their config)."""
    base = Path(base_dir)
    if not base.is_dir():
        return []
    runs = [RunDirectory(p) for p in base.iterdir() if p.is_dir() and (p / "config.toml").exists()]
    return sorted(runs, key=lambda r: (r.config_path.stat().st_mtime, r.name))
