"""Throughput and progress: it/s, img/s, step of total, ETA, learning rate, grad norm, device and GPU."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from workbench.tui.run_model import RunModel


def format_duration(seconds: float) -> str:
    if seconds is None or seconds < 0 or seconds != seconds:
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def progress_bar(fraction: float, width: int) -> str:
    fraction = min(1.0, max(0.0, fraction))
    filled = int(round(fraction * width))
    return "█" * filled + "░" * (width - filled)


class StatsPanel(Widget):
    """A few lines of numbers from the latest StepMetrics and RunStarted.

    Fixed height and a plain `refresh()`: a redraw several times a second must not re-layout the screen."""

    DEFAULT_CSS = "StatsPanel { height: 7; }"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.model: RunModel | None = None

    def update_from(self, model: RunModel) -> None:
        self.model = model
        self.refresh()

    def render(self) -> Text:
        return self.describe(self.model, self.content_size.width or 40) if self.model else Text("")

    @staticmethod
    def describe(model: RunModel, width: int) -> Text:
        m, started = model.metrics, model.started
        total = model.total_steps or (started.total_steps if started else 0)
        step = model.step
        text = Text(no_wrap=True, overflow="ellipsis")
        percent = f" {100 * step / total:3.0f}%" if total else ""
        head = f"step {step}/{total or '?'}{percent}"
        eta = f"  ETA {format_duration(m.eta_s)}" if m and model.is_live else ""
        bar_width = max(0, min(30, width - len(head) - len(eta) - 2))
        text.append(head + " ", style="bold")
        if total and bar_width >= 5:
            text.append(progress_bar(step / total, bar_width), style="#5f87af")
        text.append(eta + "\n")
        if m:
            text.append(f"{m.it_per_s:.2f} it/s", style="bold")
            text.append(f" · {m.img_per_s:.0f} img/s\n")
            text.append(f"lr {m.lr:.2e} · grad norm {m.grad_norm:.3g}\n")
        else:
            text.append("waiting for the first metrics…\n\n", style="dim")
        device = started.device if started else "?"
        line = f"device {device}"
        if started and started.world_size > 1:
            line += f" ×{started.world_size}"
        if m and m.gpu_mem_bytes:
            line += f" · mem {m.gpu_mem_bytes / 2**30:.1f} GiB"
        if m and m.gpu_util >= 0:
            line += f" · util {m.gpu_util:.0f}%"
        if m and m.mfu >= 0:
            line += f" · MFU {100 * m.mfu:.1f}%"
        text.append(line + "\n")
        if started and started.backbone:
            text.append(started.backbone, style="dim")
        return text
