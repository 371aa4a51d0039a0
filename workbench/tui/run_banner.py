"""The top line of the run view: run name and state; a red banner with the message when the run failed."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from workbench.tui.run_model import RunModel

STATE_STYLES = {
    "starting": "bold cyan", "running": "bold green", "paused": "bold yellow", "stopping": "bold yellow",
    "finished": "bold blue", "stopped": "bold blue", "failed": "bold red",
    "abandoned": "bold red", "unknown": "bold magenta", "deleted": "bold red",  # what readers see, never live
}


class RunBanner(Widget):
    """One line; three when the run failed (the message and what was kept). Re-layouts only then."""

    DEFAULT_CSS = "RunBanner { height: 1; }"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.text = Text("")

    def render(self) -> Text:
        return self.text

    def update_from(self, model: RunModel, *, attached: bool) -> None:
        text = Text(no_wrap=False)
        text.append(" ddpm-workbench ", style="bold reverse")
        text.append(f" run {model.name} ", style="bold")
        text.append(f" {model.state} ", style=STATE_STYLES.get(model.state, "bold") + " reverse")
        if attached:
            text.append("  attached", style="dim")
        if not model.is_live and not model.failure:
            text.append("  controls off: the run is over", style="dim")
        if model.failure:
            text.append("\n" + model.failure, style="bold red")
            text.append("\nkept: " + (model.kept or "nothing (no checkpoint was written)"), style="red")
            text.append(f"  ·  log: {model.path}/train.log", style="dim")
        failed = bool(model.failure)
        if failed != self.has_class("failed"):
            self.set_class(failed, "failed")
            self.styles.height = "auto" if failed else 1
        if text != self.text:
            self.text = text
            self.refresh()
