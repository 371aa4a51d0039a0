"""`ddpm-workbench train`: train headless, with a progress display on a terminal and plain lines elsewhere.

Ctrl-C, SIGTERM or a hang-up (SIGHUP, unless `nohup` ignores it) stops after the current step with a
checkpoint (exit 0); a second Ctrl-C aborts. Output that goes away (a closed pipe, a dropped terminal) never
stops training: the run directory is the record. Under `torchrun --nproc-per-node N -m workbench train ...`
every rank runs this command; only rank 0 prints.
"""

from __future__ import annotations

import math
import os
import signal
import sys
import threading
import time


def add_arguments(parser) -> None:
    from workbench.cli import add_config_arguments

    add_config_arguments(parser)
    parser.add_argument("--resume", metavar="RUN|CHECKPOINT",
                        help="continue a run (its name under run.dir, a path, or 'latest') from its newest "
                             "checkpoint, or from one of its checkpoint files (runs/x/checkpoints/step_N.pt), "
                             "with its own config plus any --set")
    parser.add_argument("--init-from", metavar="RUN|CHECKPOINT",
                        help="start a new run from another run's (EMA) weights or a checkpoint file, imported runs "
                             "included: fresh optimizer, step 0, own directory; the source's config is the base "
                             "(change the dataset, steps, lr... with --set), and the network must be the same")
    parser.add_argument("--run-dir", metavar="PATH",
                        help="write into this directory instead of a new one under run.dir")
    parser.add_argument("--plain", action="store_true", help="plain log lines even on a terminal")


def load_training_config(args, initial=None):
    """The config to train with. With --resume, the run's own config.toml is the base (unless --config
    names another file), so `--resume latest --set train.steps=20000` continues the same run longer. With
    --init-from, the source's stored config is (see `fine_tuning_config`)."""
    from workbench.cli import config_arguments, load_config_from_args, show_notes
    from workbench.config import load_config
    from workbench.engine.rundir import RunDirectory

    if initial is not None and not config_arguments(args)[0]:
        return show_notes(fine_tuning_config(initial, config_arguments(args)[1]))
    if not args.resume:
        return load_config_from_args(args)
    path, overrides = config_arguments(args)
    base = load_config(path, overrides)
    run = RunDirectory.resolve(args.resume, base.run.dir)
    if run.config_path.is_file():
        if path:
            from workbench.errors import UsageError

            raise UsageError(f"--resume continues run {str(run.path)!r} with its own config.toml; leave out "
                             f"--config {path} and change single values with --set (e.g. --set train.steps=20000)")
        return show_notes(load_config(run.config_path, overrides))
    if path:
        return base
    from workbench.errors import CheckpointError

    raise CheckpointError(f"run {str(run.path)!r} has no config.toml; pass --config with the settings it was "
                          "trained with")


def fine_tuning_config(initial, overrides: list[str]):
    """The config of a run started with --init-from: the source's stored config as a new run (named by
    --set run.name, else a timestamp), with the --set overrides. A --set that picks another plugin
    (`dataset.name=image-folder`) drops the source's keys of the plugin it replaces (apply_overrides)."""
    from workbench.config import apply_overrides, resolve, without_budget_if_steps_given

    raw = without_budget_if_steps_given({section: dict(values) for section, values in initial.config.items()})
    raw.setdefault("run", {})["name"] = ""
    notes = apply_overrides(raw, overrides)
    cfg = resolve(raw, source=f"--init-from {initial.checkpoint} and --set")
    cfg.notes = notes
    return cfg


def run(args) -> int:
    started = time.perf_counter()  # train.minutes counts from here: before torch, data and model load
    from workbench.engine.trainer import train

    initial = None
    if args.init_from:
        from workbench.cli import config_arguments
        from workbench.config import load_config
        from workbench.engine.initial_weights import read_initial_weights
        from workbench.errors import UsageError

        if args.resume:
            raise UsageError("--resume continues a run and --init-from starts a new one from its weights; "
                             "give one of them")
        initial = read_initial_weights(args.init_from, load_config(*config_arguments(args)).run.dir)
    cfg = load_training_config(args, initial)
    rank = int(os.environ.get("RANK", "0"))
    show = rank == 0
    fancy = show and not args.plain and sys.stdout.isatty()
    display = SafeDisplay(RichDisplay() if fancy else PlainDisplay(enabled=show))
    stop_event = threading.Event()
    restore = install_stop_signals(stop_event, display)
    try:
        if show and initial is not None:
            display.line(f"starting from the {'EMA' if initial.ema else 'raw'} weights of step {initial.step} "
                         f"in {initial.checkpoint}")
        run_dir = train(cfg, on_event=display.handle, resume=args.resume, run_dir=args.run_dir,
                        stop_event=stop_event, init_from=initial, started=started)
    finally:
        restore()
        display.close()
    if show:
        state = run_dir.read_status().get("state", "finished")
        display.line(f"run directory: {run_dir.path} ({state})")
    return 0


def install_stop_signals(stop_event: threading.Event, display) -> callable:
    """SIGINT/SIGTERM/SIGHUP -> stop after this step with a checkpoint; a second Ctrl-C aborts at once.

    SIGHUP is what a dropped SSH session sends: the run stops with a checkpoint instead of dying with the
    steps since the last one. Under `nohup` (SIGHUP ignored) it stays ignored and training goes on."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    interrupts = {"count": 0}

    def on_signal(signum, frame):
        if signum == signal.SIGINT:
            interrupts["count"] += 1
            if interrupts["count"] > 1:
                raise KeyboardInterrupt
        if not stop_event.is_set():
            stop_event.set()  # first: nothing below may keep the run from stopping cleanly
            name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
            try:  # the signal may land inside a print to the same stream (a reentrant write raises)
                display.note(f"{name}: stopping after this step and writing a checkpoint "
                             "(Ctrl-C again to abort without one)")
            except Exception:  # noqa: BLE001 - the stop is already under way; a lost note is harmless
                pass

    wanted = [signal.SIGINT, signal.SIGTERM]
    if hasattr(signal, "SIGHUP") and signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:
        wanted.append(signal.SIGHUP)
    previous = {sig: signal.signal(sig, on_signal) for sig in wanted}

    def restore():
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore


# -- displays --------------------------------------------------------------------------------------


def duration(seconds: float) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def describe(event) -> str | None:
    """One line for an event (None for those the progress bar shows)."""
    kind = event.kind
    if kind == "started":
        verb = f"resuming at step {event.start_step}" if event.start_step else "training"
        steps = f"up to {event.total_steps} steps (train.minutes = {event.minutes:g})" if event.minutes else \
            f"{event.total_steps} steps"
        return (f"{verb} for {steps} on {event.device} (x{event.world_size}): {event.backbone}; "
                f"data: {event.dataset}\nrun directory: {event.run_dir}")
    if kind == "length":
        return length_line(event)
    if kind == "samples":
        return f"step {event.step}: samples {event.path}"
    if kind == "checkpoint":
        return f"step {event.step}: checkpoint {event.path}"
    if kind == "quality":
        best = "best so far" if event.best_step == event.step else f"best {event.best_value:.4g} at step {event.best_step}"
        return (f"step {event.step}: {event.metric} {event.value:.4g} ({best}), n={event.n}, "
                f"extractor {event.extractor}, {event.seconds:.1f} s")
    if kind == "warning":
        return f"warning: {event.message}"
    if kind == "state":
        return f"step {event.step}: {event.state}"
    if kind == "finished":
        how = "stopped early" if event.stopped_early else "finished"
        return f"{how} at step {event.step}"
    if kind == "failed":
        return f"failed at step {event.step}: {event.message} (kept: {event.kept})"
    return None


def length_line(event) -> str:
    """train.minutes = 11: 0.95 s/step, training 700 steps, ends about 12:34"""
    ends = ""
    if event.eta_s is not None and math.isfinite(event.eta_s):
        ends = ", ends about " + time.strftime("%H:%M", time.localtime(event.time + event.eta_s))
    return event.summary() + ends


def metrics_line(event, total: int) -> str:
    return (f"step {event.step}/{total} loss {event.loss:.4f} lr {event.lr:.2e} grad {event.grad_norm:.3f} "
            f"{event.img_per_s:.1f} img/s {event.it_per_s:.2f} it/s eta {duration(event.eta_s)}"
            + (f" mfu {event.mfu:.1%}" if event.mfu >= 0 else ""))


class SafeDisplay:
    """Wraps a display so that output which went away (a closed pipe: `train | head`; a terminal gone with
    its SSH session) silences it instead of failing the run. Stdout and stderr then point at /dev/null, so
    later writes and the interpreter's final flush cannot fail either."""

    def __init__(self, display):
        self.display = display
        self.silenced = False

    def _call(self, method: str, *args) -> None:
        if self.silenced:
            return
        try:
            getattr(self.display, method)(*args)
        except (OSError, ValueError):  # BrokenPipeError, EIO from a hung-up tty, write to a closed file
            self.silence()

    def handle(self, event) -> None:
        self._call("handle", event)

    def note(self, message: str) -> None:
        self._call("note", message)

    def line(self, text: str) -> None:
        self._call("line", text)

    def close(self) -> None:
        self._call("close")

    def silence(self) -> None:
        from workbench.cli import point_at_devnull

        self.silenced = True
        point_at_devnull(sys.stdout, sys.stderr)


class PlainDisplay:
    """Plain lines on stdout, flushed (for logs, pipes, `nohup`, the TUI's train.log)."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.total = 0

    def handle(self, event) -> None:
        if not self.enabled:
            return
        if event.kind in ("started", "length"):
            self.total = event.total_steps
        line = metrics_line(event, self.total) if event.kind == "metrics" else describe(event)
        if line:
            print(f"{time.strftime('%H:%M:%S')} {line}", flush=True)

    def note(self, message: str) -> None:
        if self.enabled:
            print(message, file=sys.stderr, flush=True)

    def line(self, text: str) -> None:
        print(text, flush=True)

    def close(self) -> None:
        pass


class RichDisplay:
    """A rich progress bar (step, loss, img/s, ETA) with event lines printed above it."""

    def __init__(self):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.console = Console()
        self.progress = Progress(
            TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss [cyan]{task.fields[loss]}"), TextColumn("{task.fields[speed]}"),
            TimeElapsedColumn(), TextColumn("eta {task.fields[eta]}"),
            console=self.console, refresh_per_second=4, transient=False)
        self.task = None

    def handle(self, event) -> None:
        if event.kind == "started":
            self.console.print(describe(event))
            self.progress.start()
            self.task = self.progress.add_task("train", total=event.total_steps, completed=event.start_step,
                                               loss="-", speed="-", eta="?")
            return
        if event.kind == "length" and self.task is not None:
            self.progress.update(self.task, total=event.total_steps)
        if event.kind == "metrics" and self.task is not None:
            self.progress.update(self.task, completed=event.step, loss=f"{event.loss:.4f}",
                                 speed=f"{event.img_per_s:.1f} img/s", eta=duration(event.eta_s))
            return
        line = describe(event)
        if line:
            style = "yellow" if event.kind == "warning" else "red" if event.kind == "failed" else None
            self.progress.console.print(line, style=style, markup=False, highlight=False)

    def note(self, message: str) -> None:
        self.progress.console.print(message, style="yellow", markup=False, highlight=False)

    def line(self, text: str) -> None:
        print(text, flush=True)

    def close(self) -> None:
        self.progress.stop()
