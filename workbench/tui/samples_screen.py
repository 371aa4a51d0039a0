"""Browse the sample grids of a run over training steps."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Footer, OptionList, Static
from textual.widgets.option_list import Option

from workbench.tui.sample_view import SampleView


class SamplesScreen(Screen):
    BINDINGS = [Binding("escape,q,g,f4", "app.pop_screen", "Back")]

    def __init__(self, run_name: str, grids: list[tuple[int, str]], renderer: str):
        super().__init__()
        self.run_name = run_name
        self.grids = list(grids)
        self.renderer = renderer

    def compose(self) -> ComposeResult:
        yield Static(f" [b reverse] samples [/] run {self.run_name}: {len(self.grids)} grid(s) from fixed noise "
                     "with EMA weights; ↑/↓ to browse", classes="screen-title")
        with Horizontal():
            yield OptionList(*[Option(f"step {step}", id=str(i)) for i, (step, _) in enumerate(self.grids)],
                             id="grid-list")
            yield SampleView(self.renderer, id="grid", empty_text="this run has no sample grids yet")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one(OptionList).border_title = "steps"
        if self.grids:
            options = self.query_one(OptionList)
            options.highlighted = len(self.grids) - 1
            self.show(len(self.grids) - 1)

    def add_grids(self, grids: list[tuple[int, str]]) -> None:
        """Grids the engine wrote while this screen was open join the list."""
        options = self.query_one(OptionList)
        for index in range(len(self.grids), len(grids)):
            self.grids.append(grids[index])
            options.add_option(Option(f"step {grids[index][0]}", id=str(index)))

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        self.show(int(event.option.id))

    def show(self, index: int) -> None:
        step, path = self.grids[index]
        view = self.query_one(SampleView)
        view.show(self.app.sample_image(path))
        view.border_title = f"step {step} · {path}"
