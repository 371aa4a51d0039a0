"""workbench.tui"""

from __future__ import annotations

import sys

from workbench.errors import UsageError


def require_terminal(stdin=None, stdout=None) -> None:
    """Refuse, in one line, to open the TUI when stdin or stdout is not a terminal.

    Textual would write escape codes into a redirected stdout and wait forever for keys from a stdin that
    is not a terminal (and `--run-now` would start a run in the background nobody can see)."""
    for name, stream in (("stdout", stdout or sys.stdout), ("stdin", stdin or sys.stdin)):
        try:
            is_tty = stream is not None and stream.isatty()
        except (AttributeError, ValueError):  # closed, or not a real stream
            is_tty = False
        if not is_tty:
            raise UsageError(f"the terminal UI needs a terminal ({name} is not one); for headless training use "
                             "`ddpm-workbench train`, to follow a run use `ddpm-workbench attach` in a terminal "
                             "or read RUN/metrics.jsonl")
