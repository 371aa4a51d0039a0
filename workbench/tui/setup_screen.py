"""The setup view: choose what to train and start it."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Static

from workbench.config import Config
from workbench.tui.config_form import ConfigForm


class SetupScreen(Screen):
    BINDINGS = [
        Binding("ctrl+r", "start", "Start run", priority=True),
        Binding("f2", "app.show_plugins", "Plugins"),
        Binding("f3", "app.show_schedules", "Schedules"),
        Binding("ctrl+q", "app.request_quit", "Quit"),
    ]

    def __init__(self, config: Config, host):
        super().__init__()
        self.config = config
        self.host = host

    def compose(self) -> ComposeResult:
        yield Static(f" [b reverse] ddpm-workbench [/] new run · settings from {self.config.source} · "
                     "[b]ctrl+r[/b] starts", id="setup-title")
        yield ConfigForm(self.config, self.host, id="form")
        yield Static("", id="setup-status")
        yield Footer(compact=True)

    def on_config_form_changed(self, event: ConfigForm.Changed) -> None:
        status = self.query_one("#setup-status", Static)
        if event.form.error:
            status.update("[b red]fix the highlighted field to start[/]")
        else:
            cfg = event.form.config
            status.update(f"[green]ready:[/] {cfg.dataset.name} · {cfg.backbone.name} · {cfg.schedule.name} "
                          f"T={cfg.schedule.timesteps} · {cfg.train.steps} steps × {cfg.train.batch_size}")
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "start" and self.query_one(ConfigForm).error:
            return None
        return True

    def action_start(self) -> None:
        form = self.query_one(ConfigForm)
        if form.error:
            self.app.bell()
            return
        self.app.start_run(form.config)
