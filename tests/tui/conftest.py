"""Fixtures for driving the TUI: a fixed clock zone, stand-in runs, and a helper to wait on the app."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # standin_engine, snapshot helpers


@pytest.fixture(autouse=True)
def utc_clock(monkeypatch):
    """Event-log times print in UTC, so snapshots do not depend on the machine's zone."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.delenv("TZ", raising=False)
    time.tzset()


@pytest.fixture
def config(in_tmp_cwd):
    from workbench.config import load_config

    return load_config(None, ["run.dir=runs"])


async def wait_until(pilot, predicate, timeout_s: float = 30.0, what: str = "condition") -> None:
    """Let the app run until `predicate()` holds; fail with `what` when it never does."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)


def replayed(app, ending: str = "finished at step") -> bool:
    """True once the run's recorded history has reached the app's model, up to its `ending` log entry.

    The state alone is not enough: the app shows the status file's state ("finished") at once, before
    the watcher's first batch replays the events, and that batch may land after anything a test does next.
    """
    return app.model is not None and any(entry.text.startswith(ending) for entry in app.model.log)


def screen_text(app) -> str:
    """The current screen as plain text, one line per terminal row (colours dropped)."""
    import io

    from rich.console import Console

    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True, color_system="truecolor",
                      record=True, legacy_windows=False, safe_box=False)
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    lines = console.export_text(styles=False).split("\n")[:height]
    return "\n".join(line.rstrip() for line in lines) + "\n"


os.environ.setdefault("TEXTUAL_ANIMATIONS", "none")
