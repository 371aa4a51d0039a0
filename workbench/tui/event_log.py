"""The event log: started, samples, checkpoints, state changes, warnings and errors, one line each."""

from __future__ import annotations

import time

from rich.text import Text
from textual.events import Resize
from textual.widgets import RichLog

from workbench.tui.run_model import LogEntry

LEVEL_STYLES = {"info": "", "warning": "bold yellow", "error": "bold red"}


class EventLog(RichLog):
    """Appends new `LogEntry`s from the model; rewraps everything when its width changes."""

    DEFAULT_CSS = "EventLog { height: 6; scrollbar-gutter: stable; }"

    def __init__(self, **kwargs):
        super().__init__(wrap=True, markup=False, max_lines=2000, **kwargs)
        self.entries: list[LogEntry] = []
        self.shown = 0
        self.wrapped_at = 0

    @staticmethod
    def format(entry: LogEntry) -> Text:
        line = Text(time.strftime("%H:%M:%S ", time.localtime(entry.time)), style="dim")
        line.append(entry.text, style=LEVEL_STYLES.get(entry.level, ""))
        return line

    def update_from(self, entries: list[LogEntry]) -> None:
        self.entries = entries
        width = self.scrollable_content_region.width
        if width <= 0:
            return  # written on the first resize, when lines can be wrapped to the real width
        if width != self.wrapped_at:
            self.clear()
            self.shown, self.wrapped_at = 0, width
        for entry in entries[self.shown:]:
            self.write(self.format(entry), width=width)
        if len(entries) > self.shown:
            self.scroll_end(animate=False, immediate=False)
        self.shown = len(entries)

    def on_resize(self, event: Resize) -> None:
        self.update_from(self.entries)
