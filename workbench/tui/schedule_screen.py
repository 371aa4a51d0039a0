"""Compare noise schedules: log-SNR against t for the schedules ticked on the left.

alpha-bar comes from `workbench.diffusion.build_schedule` (the same code training uses, zero-terminal-SNR
rescaling included). Computing imports torch, so it runs in a thread worker.
"""

from __future__ import annotations

import math

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from rich.segment import Segment
from textual.strip import Strip
from textual.widgets import Footer, SelectionList, Static
from textual.widgets._toggle_button import ToggleButton

from workbench.config import Config, resolve
from workbench.tui.snr_chart import SnrChart


def schedule_betas(config: Config, name: str, host) -> list[float]:
    """float64 betas of schedule `name` at the config's timesteps, as the engine would build them: with the
    config's own parameters for the configured schedule (a custom schedule's file or values), else defaults."""
    raw = config.as_dict()
    if name != config.schedule.name:
        raw["schedule"] = {"name": name, "timesteps": config.schedule.timesteps,
                           "zero_terminal_snr": config.schedule.zero_terminal_snr}
    from workbench.diffusion import build_schedule

    betas = build_schedule(resolve(raw, source=config.source, host=host).schedule)
    return [float(b) for b in betas]


def log_snr(betas: list[float]) -> list[float]:
    """log(alpha_bar / (1 - alpha_bar)) with alpha_bar_t = prod_{s<=t} (1 - beta_s) (Ho et al. 2020, eq. 4)."""
    out, alpha_bar = [], 1.0
    for beta in betas:
        alpha_bar *= 1.0 - beta
        out.append(math.log(alpha_bar / (1.0 - alpha_bar)) if 0.0 < alpha_bar < 1.0 else float("nan"))
    return out


class TickList(SelectionList):
    """A SelectionList whose unticked boxes are empty, so ticked and unticked differ without colour (tmux,
    monochrome terminals); Textual draws the same X in both and only changes its colour."""

    def render_line(self, y: int) -> Strip:
        strip = super().render_line(y)
        index = self.scroll_offset.y + y
        if index >= self.option_count or self.get_option_at_index(index).value in self.selected:
            return strip
        segments = list(strip)
        if len(segments) > 1 and segments[1].text == ToggleButton.BUTTON_INNER:
            segments[1] = Segment(" " * len(segments[1].text), segments[1].style)
            return Strip(segments, strip.cell_length)
        return strip


class ScheduleScreen(Screen):
    BINDINGS = [Binding("escape,t,f3", "app.pop_screen", "Back"),
                Binding("q,ctrl+q", "app.request_quit", "Quit", key_display="q")]

    def __init__(self, config: Config, host):
        super().__init__()
        self.config = config
        self.host = host
        self.cache: dict[str, list[float]] = {}

    def compose(self) -> ComposeResult:
        names = self.host.registries["schedule"].names()
        current = self.config.schedule.name
        yield Static(f" [b reverse] schedules [/] T = {self.config.schedule.timesteps}; space ticks a schedule",
                     classes="screen-title")
        with Horizontal():
            ticked = {current, "linear", "cosine"}
            yield TickList(*[(n, n, n in ticked) for n in names], id="schedule-list")
            yield SnrChart(id="snr")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one(SelectionList).border_title = "schedules"
        self.recompute()

    def on_selection_list_selected_changed(self, event: SelectionList.SelectedChanged) -> None:
        self.recompute()

    def recompute(self) -> None:
        self.compute(list(self.query_one(SelectionList).selected))

    @work(thread=True, exclusive=True, exit_on_error=False, group="schedules")
    def compute(self, names: list[str]) -> None:
        curves, problems = {}, []
        for name in names:
            if name not in self.cache:
                try:
                    self.cache[name] = log_snr(schedule_betas(self.config, name, self.host))
                except Exception as exc:  # noqa: BLE001 - a plugin may raise anything; show it, keep going
                    problems.append(f"{name}: {exc}" if name == self.config.schedule.name else
                                    f"{name} needs parameters to plot: choose it in the setup view or the config "
                                    f"([schedule] name = \"{name}\" with its keys) ({exc})")
                    continue
            curves[name] = self.cache[name]
        self.app.call_from_thread(self.query_one(SnrChart).show, curves, "; ".join(problems))
