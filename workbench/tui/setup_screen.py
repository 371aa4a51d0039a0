"""The setup view: choose what to train and start it."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.events import Resize
from textual.screen import Screen
from rich.text import Text
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
        with Horizontal(id="setup-body"):
            yield ConfigForm(self.config, self.host, id="form")
            yield Static("", id="setup-info")
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
            self.query_one("#setup-info", Static).update(self.describe_choices(cfg))
        self.refresh_bindings()

    def on_resize(self, event: Resize) -> None:
        """The notes on the chosen plugins only where there is room beside the form."""
        self.query_one("#setup-info").display = event.size.width >= 120

    def describe_choices(self, cfg: Config) -> Text:
        text = Text()
        for section, kind in (("dataset", "dataset"), ("backbone", "backbone"), ("schedule", "schedule"),
                              ("sample", "sampler")):
            name = getattr(cfg, section).name
            component = self.host.get(kind, name)
            text.append(f"{kind} ", style="dim")
            text.append(name + "\n", style="bold")
            if component.description:
                text.append(component.description + "\n")
            if component.reference:
                text.append(component.reference + "\n", style="italic dim")
            params = {k: v for k, v in getattr(cfg, section).params.items() if v not in (None, "", [])}
            if params:
                text.append(", ".join(f"{k}={v}" for k, v in params.items()) + "\n", style="dim")
            text.append("\n")
        images = cfg.train.steps * cfg.train.batch_size
        text.append(f"{cfg.train.steps} steps × {cfg.train.batch_size} = {images:,} images seen\n", style="bold")
        text.append(f"run folder: {cfg.run.dir}/{cfg.run.name or '<timestamp>'}\n", style="dim")
        text.append("more keys: ddpm-workbench config shows every value", style="dim")
        return text

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
