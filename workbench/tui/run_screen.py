"""The run view: loss curve, throughput, the latest sample grid, sample quality (once a run measures it) and
the event log, with the run's controls.

Controls go to the engine through the run directory's control channel; the engine's replies come back as
events (StateChanged, SamplesReady, CheckpointSaved, RunFinished), so what the screen shows is always what
the engine did, not what was asked. Controls are greyed out once the run is over, failed or stale.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.events import Resize
from textual.screen import Screen
from textual.widgets import Footer

from workbench.tui.confirm_dialog import ConfirmDialog
from workbench.tui.event_log import EventLog
from workbench.tui.loss_chart import LossChart
from workbench.tui.quality_panel import QualityPanel
from workbench.tui.run_banner import RunBanner
from workbench.tui.run_model import RunModel
from workbench.tui.sample_view import SampleView
from workbench.tui.stats_panel import StatsPanel

CONTROL_ACTIONS = ("pause", "resume", "sample_now", "checkpoint_now", "stop_run")
COMPACT_WIDTH, COMPACT_HEIGHT = 110, 32
QUALITY_HEIGHT, QUALITY_HEIGHT_COMPACT, QUALITY_MIN_WIDTH = 12, 6, 30


class RunScreen(Screen):
    BINDINGS = [
        Binding("p", "pause", "Pause"),
        Binding("p", "resume", "Resume"),
        Binding("n", "sample_now", "Sample"),
        Binding("c", "checkpoint_now", "Checkpoint"),
        Binding("s", "stop_run", "Stop"),
        Binding("q", "app.request_quit", "Quit"),
        Binding("g", "app.show_samples", "Grids"),
        Binding("t", "app.show_schedules", "Schedules"),
        Binding("i", "app.show_plugins", "Plugins"),
    ]

    def __init__(self, model: RunModel, *, smoothing: float, renderer: str, attached: bool):
        super().__init__()
        self.model = model
        self.smoothing = smoothing
        self.renderer = renderer
        self.attached = attached
        self.shown_version = -1
        self.shown_sample: str | None = None
        self.shown_controls: tuple | None = None

    def compose(self) -> ComposeResult:
        yield RunBanner(id="banner")
        with Horizontal(id="main"):
            with Vertical(id="left"):
                yield LossChart(self.smoothing, id="loss")
                yield StatsPanel(id="stats")
            with Vertical(id="right"):
                yield SampleView(self.renderer, id="samples", empty_text="no samples yet\n(n: sample now)")
                yield QualityPanel(id="quality")
        yield EventLog(id="log")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#stats").border_title = "throughput"
        self.query_one("#samples").border_title = "samples"
        self.query_one("#log").border_title = "events"
        self.refresh_views(force=True)

    def on_resize(self, event: Resize) -> None:
        self.fit_layout(event.size.width, event.size.height)

    def fit_layout(self, width: int, height: int) -> None:
        """Collapse at small sizes: a shorter event log, and no sample panel below 60 columns."""
        compact = width < COMPACT_WIDTH or height < COMPACT_HEIGHT
        self.set_class(compact, "compact")
        log_height = 5 if compact else max(6, height // 6)
        self.query_one("#log").styles.height = log_height if height >= 20 else 0
        self.query_one(QualityPanel).styles.height = QUALITY_HEIGHT_COMPACT if compact else QUALITY_HEIGHT
        self.call_after_refresh(self.fit_samples)

    def fit_samples(self) -> None:
        """Give the sample panel a square-ish grid (2 columns per row of cells) in the height #main has, less
        the quality panel's when it shows (which needs QUALITY_MIN_WIDTH columns for its labels)."""
        main = self.query_one("#main")
        width, height = main.size
        if not height:
            return
        quality = self.query_one(QualityPanel)
        grid_height = height - (quality.styles.height.value if quality.display else 0)
        samples_width = min(int(width * 0.5), max(2, grid_height - 2) * 2 + 2)
        if quality.display:
            samples_width = max(samples_width, min(QUALITY_MIN_WIDTH, int(width * 0.5)))
        self.query_one("#right").styles.width = samples_width if width >= 60 else 0

    # -- drawing -----------------------------------------------------------------------------------

    def refresh_views(self, *, force: bool = False) -> None:
        model = self.model
        if not force and model.version == self.shown_version:
            return
        self.shown_version = model.version
        banner = self.query_one(RunBanner)
        had_failure = banner.has_class("failed")
        banner.update_from(model, attached=self.attached)
        if banner.has_class("failed") != had_failure:
            self.call_after_refresh(self.fit_samples)  # the banner grew: less height for the grid
        self.query_one(LossChart).update_from(model)
        self.query_one(StatsPanel).update_from(model)
        quality = self.query_one(QualityPanel)
        had_quality = quality.display
        quality.update_from(model)
        if quality.display != had_quality:
            self.call_after_refresh(self.fit_samples)  # the panel appeared: less height for the grid
        self.query_one(EventLog).update_from(model.log)
        latest = model.latest_sample
        if latest and latest[1] != self.shown_sample:
            image = self.app.sample_image(latest[1])
            if image is not None:
                self.shown_sample = latest[1]
                view = self.query_one(SampleView)
                view.show(image)
                view.border_title = f"samples · step {latest[0]}"
        controls = (model.state, model.is_live)
        if controls != self.shown_controls:  # the footer only changes with the state
            self.shown_controls = controls
            self.refresh_bindings()

    # -- controls ----------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        paused = self.model.state == "paused"
        if (action == "pause" and paused) or (action == "resume" and not paused):
            return False  # one key, two faces: the footer shows whichever applies
        if action in CONTROL_ACTIONS and not self.model.is_live:
            return None  # shown greyed out: the run is over
        if action == "stop_run" and self.model.state == "stopping":
            return None
        return True

    def send(self, command: str, note: str) -> None:
        self.app.send_control(command, note)
        self.refresh_views()

    def action_pause(self) -> None:
        self.send("pause", "pause requested")

    def action_resume(self) -> None:
        self.send("resume", "resume requested")

    def action_sample_now(self) -> None:
        self.send("sample", "sample grid requested")

    def action_checkpoint_now(self) -> None:
        self.send("checkpoint", "checkpoint requested")

    def action_stop_run(self) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                self.app.stop_run()
                self.refresh_views()

        self.app.push_screen(ConfirmDialog(f"Stop run {self.model.name}? A checkpoint is saved first.",
                                           yes="Stop", no="Keep training"), answered)
