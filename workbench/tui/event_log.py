"""The event log: started, samples, checkpoints, state changes, warnings and errors, one line each."""

from __future__ import annotations

import time

from rich.text import Text
from textual.widgets import RichLog

from workbench.tui.run_model import LogEntry

LEVEL_STYLES = {"info": "", "warning": "bold yellow", "error": "bold red"}


class EventLog(RichLog):
    """Appends new `LogEntry`s from the model; remembers how many it has shown."""

    DEFAULT_CSS = "EventLog { height: 6; }"

    def __init__(self, **kwargs):
        super().__init__(wrap=True, markup=False, max_lines=2000, **kwargs)
        self.shown = 0

    def update_from(self, entries: list[LogEntry]) -> None:
        for entry in entries[self.shown:]:
            line = Text(time.strftime("%H:%M:%S ", time.localtime(entry.time)), style="dim")
            line.append(entry.text, style=LEVEL_STYLES.get(entry.level, ""))
            self.write(line)
        if len(entries) > self.shown:
            self.scroll_end(animate=False, immediate=False)
        self.shown = len(entries)
