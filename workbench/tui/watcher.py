"""The watcher: a thread that follows a run directory and hands what it finds to the UI.

It runs as a Textual thread worker and never touches widgets: it reads new lines with `RunWatcher`, decodes
the newest sample grid (so the UI thread never waits on PIL), puts both in a `RunFeed` and posts one
coalescing `RunUpdated`. About once a second it also checks that the engine process is still there.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Callable

from workbench.engine.events import SamplesReady
from workbench.engine.rundir import READER_STATES, RunDirectory, RunWatcher
from workbench.tui.messages import RunFeed
from workbench.tui.run_model import locate, read_log_tail

LIVENESS_EVERY_S = 1.0


def load_grid(path: str | Path) -> Any | None:
    """A sample grid PNG as an RGB PIL image, or None when it cannot be read (yet)."""
    from PIL import Image

    from workbench.pictures import native_pixels

    try:
        with Image.open(path) as image:
            return native_pixels(image).convert("RGB")  # an enlarged PNG back at its drawn size
    except (OSError, ValueError):
        return None


def process_gone(run: RunDirectory, process: Any | None) -> tuple[bool, int | None]:
    """(gone, exit code): from our own child process when we started it, else from status.json's pid."""
    if process is not None:
        code = process.poll()
        return code is not None, code
    # An unreadable status, a dead pid or a deleted folder: nothing vouches for a live engine any more.
    return run.is_alive() is False or run.observed_state()[0] in READER_STATES, None


def watch_run(run: RunDirectory, feed: RunFeed, notify: Callable[[], None], stop: threading.Event, *,
              interval_s: float = 0.2, process: Any | None = None) -> None:
    """Follow `run` until `stop` is set. `notify()` posts the coalescing message to the UI."""
    watcher = RunWatcher(run)
    gone_reported = deleted_reported = False
    next_liveness = 0.0
    while not stop.is_set():
        found = deliver(watcher, feed)
        now = time.monotonic()
        if not deleted_reported and now >= next_liveness:
            next_liveness = now + LIVENESS_EVERY_S
            if not gone_reported:
                gone, code = process_gone(run, process)
                if gone:
                    deliver(watcher, feed)  # the last events written just before the process ended
                    feed.put_process_gone(code, read_log_tail(run.path / "train.log"))
                    gone_reported = found = True
                    deleted_reported = not run.path.is_dir()
            elif not run.path.is_dir():  # ended earlier, its folder deleted since: the UI must say so too
                feed.put_process_gone(None, "")
                deleted_reported = found = True
        if found:
            notify()
        stop.wait(interval_s)


def deliver(watcher: RunWatcher, feed: RunFeed) -> bool:
    events = watcher.poll()
    if not events:
        return False
    images = {}
    grids = [e for e in events if isinstance(e, SamplesReady)]
    if grids:
        path = str(locate(watcher.run.path, grids[-1].path))
        image = load_grid(path)
        if image is not None:
            images[path] = image
    feed.put(events, images)
    return True
