"""The quality panel: the sample-quality metric over training steps (train.eval_every), its best value and
step, and the latest. Hidden until the first evaluation, so runs without one keep their layout.

Small sizes get one sparkline row; taller panels a Braille chart with axes. Lower is better for every
metric shown here (FID, KID and their counterparts in other feature spaces).
"""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from workbench.tui.plot_canvas import Series, format_number, render_chart
from workbench.tui.run_model import RunModel

LINE_STYLE = "bold #87d787"
BEST_STYLE = "bold #ffaf00"
SPARKS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float], width: int, best_index: int) -> Text:
    """The last `width` values as bars, lowest value lowest; the best one highlighted."""
    shown = values[-width:]
    offset = len(values) - len(shown)
    lo, hi = min(shown), max(shown)
    text = Text(no_wrap=True, overflow="crop")
    for i, value in enumerate(shown):
        level = 0 if hi <= lo else round((value - lo) / (hi - lo) * (len(SPARKS) - 1))
        text.append(SPARKS[level], style=BEST_STYLE if i + offset == best_index else LINE_STYLE)
    return text


class QualityPanel(Widget):
    """Reads `RunModel.quality` (QualityMeasured events)."""

    DEFAULT_CSS = "QualityPanel { height: 6; padding: 0 1; }"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.model: RunModel | None = None
        self.border_title = "quality"

    def update_from(self, model: RunModel) -> None:
        self.model = model
        self.display = bool(model.quality)
        if model.quality:
            subtitle = f"n={model.quality[-1].n}"
            if subtitle != self.border_subtitle:
                self.border_subtitle = subtitle
        self.refresh()

    def render(self) -> Text:
        if not self.model or not self.model.quality:
            return Text("")
        width, height = self.content_size
        return self.describe(self.model, width or 28, height or 4)

    @staticmethod
    def describe(model: RunModel, width: int, height: int) -> Text:
        points = model.quality
        last = points[-1]
        steps = [p.step for p in points]
        values = [p.value for p in points]
        best_index = max((i for i, p in enumerate(points) if p.step == last.best_step), default=len(points) - 1)
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(f"{last.metric}\n", style="bold")
        chart_rows = max(1, height - 3)
        if chart_rows >= 4 and len(points) > 1:
            chart = render_chart([Series(steps, values, LINE_STYLE, last.metric)], width, chart_rows,
                                 x_range=(0, max(model.total_steps, steps[-1])))
            text.append_text(chart)
            text.append("\n")
        else:
            text.append_text(sparkline(values, width, best_index))
            text.append("\n" * chart_rows)
        text.append("best ", style="dim")
        text.append(f"{format_value(last.best_value)}", style=BEST_STYLE)
        text.append(f" @ {last.best_step}\n", style="dim")
        text.append("last ", style="dim")
        text.append(f"{format_value(last.value)}")
        text.append(f" @ {last.step} · {last.seconds:.0f} s", style="dim")
        return text


def format_value(value: float) -> str:
    return f"{value:.4g}" if abs(value) >= 1e-3 or value == 0 else format_number(value)
