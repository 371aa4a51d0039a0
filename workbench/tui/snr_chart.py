"""log-SNR against t for several noise schedules, one colour each."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from workbench.tui.plot_canvas import Series, render_chart

PALETTE = ("#ffaf00", "#5fafff", "#87d75f", "#ff5f87", "#af87ff", "#5fd7d7", "#d7af87", "#ffffff")


class SnrChart(Widget):
    DEFAULT_CSS = "SnrChart { height: 1fr; width: 1fr; }"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.curves: dict[str, list[float]] = {}
        self.message = "computing…"
        self.border_title = "log SNR(t) = log(ᾱ_t / (1 − ᾱ_t))"

    def show(self, curves: dict[str, list[float]], message: str = "") -> None:
        self.curves = dict(curves)
        self.message = message or "select schedules on the left"
        legend = " ".join(f"[{PALETTE[i % len(PALETTE)]}]━ {name}[/]" for i, name in enumerate(self.curves))
        self.border_subtitle = legend
        self.refresh()

    def render(self) -> Text:
        width, height = self.content_size
        series = [Series(list(range(len(ys))), ys, PALETTE[i % len(PALETTE)], name)
                  for i, (name, ys) in enumerate(self.curves.items())]
        return render_chart(series, width, height, empty_text=self.message)
