"""The workbench app: setup view, run view, and the browsers, around one watched run directory.

Threads: a thread worker follows the run directory (workbench.tui.watcher) and only posts messages; the UI
drains them into a `RunModel` and redraws at `ui.refresh_hz`. Training itself always runs in another
process (workbench.tui.launcher), so quitting the app, or losing the terminal, never stops it unless asked.
"""

from __future__ import annotations

import sys
import threading
from functools import partial
from pathlib import Path
from typing import Any, Callable

from textual.app import App
from textual.binding import Binding
from textual.worker import Worker, WorkerState

from workbench.config import Config
from workbench.engine.rundir import RunDirectory
from workbench.errors import WorkbenchError
from workbench.tui.messages import RunFeed, RunUpdated
from workbench.tui.quit_dialog import LEAVE, STOP, QuitDialog
from workbench.tui.run_model import RunModel
from workbench.tui.run_screen import RunScreen
from workbench.tui.watcher import load_grid, watch_run

IMAGE_CACHE_SIZE = 64


class WorkbenchApp(App):
    CSS_PATH = "workbench.tcss"
    TITLE = "ddpm-workbench"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS = [Binding("ctrl+q", "request_quit", "Quit", show=False, priority=True)]

    def __init__(self, config: Config, *, host=None, run: RunDirectory | None = None, run_now: bool = False,
                 launcher: Callable[[Config], tuple[RunDirectory, Any]] | None = None,
                 renderer: str = "halfblock", renderer_note: str = "", watch_interval_s: float = 0.2):
        super().__init__()
        if host is None:
            from workbench.plugin_host import get_host

            host = get_host()
        self.config = config
        self.host = host
        self.initial_run = run
        self.run_now = run_now
        if launcher is None:
            from workbench.tui.launcher import launch_engine as launcher
        self.launcher = launcher
        self.renderer = renderer
        self.renderer_note = renderer_note
        self.watch_interval_s = watch_interval_s
        self.run_dir: RunDirectory | None = None
        self.process: Any | None = None
        self.model: RunModel | None = None
        self.feed = RunFeed()
        self.stop_watching = threading.Event()
        self.images: dict[str, Any] = {}
        self.exit_note = ""
        self.reported: set[str] = set()
        self.plugins_screen = None

    def on_mount(self) -> None:
        if self.initial_run is not None:
            self.watch_run(self.initial_run, None, attached=True)
        elif self.run_now:
            self.start_run(self.config)
        else:
            from workbench.tui.setup_screen import SetupScreen

            self.push_screen(SetupScreen(self.config, self.host))

    # -- the run -----------------------------------------------------------------------------------

    def start_run(self, config: Config) -> None:
        """Launch the engine process for `config` and switch to the run view."""
        try:
            run, process = self.launcher(config)
        except (WorkbenchError, OSError) as exc:
            self.notify(f"could not start the run: {exc}", severity="error", timeout=10)
            if self.screen_stack and not self.is_setup_shown():
                from workbench.tui.setup_screen import SetupScreen

                self.push_screen(SetupScreen(config, self.host))
            return
        self.config = config
        self.watch_run(run, process, attached=False)

    def is_setup_shown(self) -> bool:
        from workbench.tui.setup_screen import SetupScreen

        return any(isinstance(s, SetupScreen) for s in self.screen_stack)

    def watch_run(self, run: RunDirectory, process: Any | None, *, attached: bool) -> None:
        self.run_dir, self.process = run, process
        model = self.model = RunModel(name=run.name, path=str(run.path))
        status = run.read_status()
        model.state = status.get("state", "starting")
        model.total_steps = int(status.get("total_steps", 0) or 0)
        if process is None:  # attached: only a readable status of a live process makes the run look live
            state, why = run.observed_state()
            if why:
                model.mark_not_live(state, why)
        screen = RunScreen(model, smoothing=self.config.ui.loss_smoothing, renderer=self.renderer, attached=attached)
        if self.is_setup_shown():
            self.switch_screen(screen)
        else:
            self.push_screen(screen)
        self.run_worker(partial(watch_run, run, self.feed, lambda: self.post_message(RunUpdated()),
                                self.stop_watching, interval_s=self.watch_interval_s, process=process),
                        name="run watcher", group="watch", thread=True, exit_on_error=False)
        self.set_interval(1.0 / self.config.ui.refresh_hz, self.redraw, name="redraw")

    def on_run_updated(self, message: RunUpdated) -> None:
        batch = self.feed.drain()
        if self.model is None:
            return
        self.model.apply(batch.events)
        self.remember_images(batch.images)
        if self.renderer_note:  # after the replayed history, so the log stays in time order
            self.model.note("info", f"sample images: {self.renderer} ({self.renderer_note})")
            self.renderer_note = ""
        if batch.process_gone:
            state, why = self.run_dir.observed_state() if self.run_dir is not None else ("", "")
            if state == "deleted" or (why and self.process is None):
                self.model.mark_not_live(state, why)
            else:
                self.model.mark_process_gone(batch.exit_code, batch.log_tail)
        if batch.process_gone or any(e.kind in ("failed", "finished", "state") for e in batch.events):
            self.redraw()  # state changes show at once; metrics wait for the next tick

    def redraw(self) -> None:
        from workbench.tui.samples_screen import SamplesScreen

        try:
            for screen in self.screen_stack:
                if isinstance(screen, RunScreen):
                    screen.refresh_views()
                elif isinstance(screen, SamplesScreen) and self.model is not None:
                    screen.add_grids(self.model.samples)
        except Exception as exc:  # noqa: BLE001 - a drawing bug must not take the run view down
            self.report_failure("redrawing", exc)

    def remember_images(self, images: dict[str, Any]) -> None:
        self.images.update(images)
        while len(self.images) > IMAGE_CACHE_SIZE:
            self.images.pop(next(iter(self.images)))

    def sample_image(self, path: str) -> Any | None:
        if path not in self.images:
            image = load_grid(path)
            if image is None:
                return None
            self.remember_images({path: image})
        return self.images[path]

    def send_control(self, command: str, note: str) -> None:
        if self.run_dir is None or self.model is None:
            return
        if not self.model.is_live:  # a dead run's control folder is never written into
            self.model.note("warning", f"{command!r} not sent: the run is {self.model.state}, not live")
            return
        try:
            self.run_dir.send_control(command)
        except (OSError, WorkbenchError) as exc:
            self.model.note("error", f"could not send {command!r} to the engine: {exc}")
            return
        self.model.note("info", note)

    def stop_run(self) -> None:
        """Stop with a checkpoint first: the engine handles control commands in order."""
        self.send_control("checkpoint", "checkpoint requested")
        self.send_control("stop", "stop requested")

    # -- one place for worker failures -------------------------------------------------------------

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            self.report_failure(event.worker.name or "background task", event.worker.error)

    def report_failure(self, what: str, error: BaseException) -> None:
        """Worker failures and drawing errors: a line in the event log and a notification, once each."""
        text = f"{what} failed: {type(error).__name__}: {error}"
        if text in self.reported:
            return
        self.reported.add(text)
        if self.model is not None:
            self.model.note("error", text)
        self.notify(text, severity="error", timeout=15)

    # -- screens and quitting ----------------------------------------------------------------------

    def action_show_plugins(self) -> None:
        from workbench.tui.plugins_screen import PluginsScreen

        if not isinstance(self.screen, PluginsScreen):
            if self.plugins_screen is None:  # built once: the installed plugins do not change while we run
                self.plugins_screen = PluginsScreen(self.host)
            self.push_screen(self.plugins_screen)

    def action_show_schedules(self) -> None:
        from workbench.tui.schedule_screen import ScheduleScreen

        if not isinstance(self.screen, ScheduleScreen):
            config = self.screen.query_one("ConfigForm").config if self.is_setup_current() else self.config
            self.push_screen(ScheduleScreen(config, self.host))

    def is_setup_current(self) -> bool:
        from workbench.tui.setup_screen import SetupScreen

        return isinstance(self.screen, SetupScreen)

    def action_show_samples(self) -> None:
        from workbench.tui.samples_screen import SamplesScreen

        if self.model is None or isinstance(self.screen, SamplesScreen):
            return
        grids = list(self.model.samples)
        if not grids and self.run_dir is not None:
            grids = [(int(p.stem.split("_")[-1]), str(p)) for p in self.run_dir.sample_grids()]
        self.push_screen(SamplesScreen(self.model.name, grids, self.renderer, self.model.path))

    async def action_quit(self) -> None:
        self.action_request_quit()

    def action_request_quit(self) -> None:
        if self.model is None or not self.model.is_live:
            self.finish()
            return

        def answered(choice: str | None) -> None:
            if choice == STOP:
                self.stop_run()
                self.finish(f"asked run {self.model.name} to stop (checkpoint first); its record is in "
                            f"{self.model.path}")
            elif choice == LEAVE:
                self.finish(f"run {self.model.name} keeps training in the background; reattach with: "
                            f"ddpm-workbench attach {reattach_spec(self.model.path, self.config.run.dir)}")

        self.push_screen(QuitDialog(self.model.name), answered)

    def finish(self, note: str = "") -> None:
        self.exit_note = note
        self.stop_watching.set()
        self.exit()

    def on_unmount(self) -> None:
        self.stop_watching.set()


def reattach_spec(path: str, base_dir: str) -> str:
    """How to name a run on the `attach` command line: its name when under the runs folder, else its path."""
    run_path = Path(path)
    return run_path.name if run_path.parent.resolve() == Path(base_dir).resolve() else str(run_path)


def run_app(config: Config, *, run: RunDirectory | None = None, run_now: bool = False) -> int:
    """Open the workbench in this terminal (setup, `--run-now` or attached to `run`)."""
    from workbench.tui import require_terminal
    from workbench.tui.image_render import choose_renderer

    require_terminal()

    renderer, why = choose_renderer(config.ui.image_renderer, is_tty=sys.stdout.isatty())
    if renderer != "halfblock":
        import textual_image.widget  # noqa: F401 - asks the terminal about cell size before Textual starts
    app = WorkbenchApp(config, run=run, run_now=run_now, renderer=renderer, renderer_note=why)
    app.run()
    if app.exit_note:
        print(app.exit_note)
    return int(app.return_code or 0)
