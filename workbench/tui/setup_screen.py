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
        # q quits as on every screen, except while typing in a text field (ctrl+q always works)
        Binding("q,ctrl+q", "app.request_quit", "Quit", key_display="q"),
    ]

    def __init__(self, config: Config, host):
        super().__init__()
        self.config = config
        self.host = host

    def compose(self) -> ComposeResult:
        title = Text.from_markup(" [b reverse] ddpm-workbench [/] new run · [b]ctrl+r[/b] starts · settings from ")
        title.append(self.config.source)
        title.no_wrap, title.overflow = True, "ellipsis"  # one line at any width; a long path is cut at its end
        yield Static(title, id="setup-title")
        with Horizontal(id="setup-body"):
            yield ConfigForm(self.config, self.host, id="form")
            yield Static("", id="setup-info")
        yield Static("", id="setup-status")
        yield Footer(compact=True)

    def on_config_form_changed(self, event: ConfigForm.Changed) -> None:
        status = self.query_one("#setup-status", Static)
        form = event.form
        if form.error:
            status.update("[b red]fix the highlighted field to start[/]")
        else:
            cfg = form.config
            status.update(f"[green]ready:[/] {cfg.dataset.name} · {cfg.backbone.name} · {cfg.schedule.name} "
                          f"T={cfg.schedule.timesteps} · {run_length(cfg)} × {cfg.train.batch_size}")
        self.query_one("#setup-info", Static).update(self.describe_choices(form))
        self.refresh_bindings()

    def on_resize(self, event: Resize) -> None:
        """The notes on the chosen plugins only where there is room beside the form."""
        self.query_one("#setup-info").display = event.size.width >= 120

    def describe_choices(self, form: ConfigForm) -> Text:
        """Notes on the plugins chosen in the form (the last valid config's values where it is invalid)."""
        cfg = form.config
        text = Text()
        for section, kind in (("dataset", "dataset"), ("backbone", "backbone"), ("schedule", "schedule"),
                              ("sample", "sampler")):
            name = form.chosen(section)
            component = self.host.get(kind, name)
            text.append(f"{kind} ", style="dim")
            text.append(name + "\n", style="bold")
            if component.description:
                text.append(component.description + "\n")
            if component.reference:
                text.append(component.reference + "\n", style="italic dim")
            params = {k: v for k, v in getattr(cfg, section).params.items() if v not in (None, "", [])}
            if params and name == getattr(cfg, section).name:
                text.append(", ".join(f"{k}={v}" for k, v in params.items()) + "\n", style="dim")
            text.append("\n")
        images = cfg.train.steps * cfg.train.batch_size
        if cfg.train.minutes:
            text.append(f"about {cfg.train.minutes:g} minutes: the steps that fit, measured as it trains, at most "
                        f"{cfg.train.steps} × {cfg.train.batch_size} = {images:,} images\n", style="bold")
        else:
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


def run_length(cfg) -> str:
    """The run's length as the status line shows it: "1000 steps", or "10 min (≤ 3000 steps)" with a budget."""
    if cfg.train.minutes:
        return f"{cfg.train.minutes:g} min (≤ {cfg.train.steps} steps)"
    return f"{cfg.train.steps} steps"
