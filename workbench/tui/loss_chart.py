"""The live loss curve: raw and smoothed loss against step, on a log axis."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from workbench.tui.plot_canvas import Series, render_chart
from workbench.tui.run_model import RunModel

RAW_STYLE = "#5f87af"
SMOOTH_STYLE = "bold #ffaf00"


class LossChart(Widget):
    """Draws `RunModel.loss_values` (raw, dim) and their EMA (bright) with labelled axes."""

    DEFAULT_CSS = "LossChart { height: 1fr; }"

    def __init__(self, smoothing: float, **kwargs):
        super().__init__(**kwargs)
        self.smoothing = smoothing
        self.steps: list[int] = []
        self.raw: list[float] = []
        self.smoothed: list[float] = []
        self.total_steps = 0
        self.border_title = "loss (log scale)"

    def update_from(self, model: RunModel) -> None:
        self.steps = list(model.loss_steps)
        self.raw = list(model.loss_values)
        self.smoothed = model.smoothed_loss(self.smoothing)
        self.total_steps = model.total_steps
        if self.raw:
            subtitle = f"[{RAW_STYLE}]raw {self.raw[-1]:.4g}[/] · [{SMOOTH_STYLE}]smoothed {self.smoothed[-1]:.4g}[/]"
            if subtitle != self.border_subtitle:
                self.border_subtitle = subtitle
        self.refresh()

    def render(self) -> Text:
        width, height = self.content_size
        x_end = max(self.total_steps, self.steps[-1] if self.steps else 0)
        series = [Series(self.steps, self.raw, RAW_STYLE, "raw"), Series(self.steps, self.smoothed, SMOOTH_STYLE, "smoothed")]
        return render_chart(series, width, height, log_y=True, x_range=(0, x_end) if x_end else None,
                            empty_text="waiting for the first loss value…")
