"""Messages from the watcher thread to the UI (a thread may only `post_message`).

High-rate updates are coalesced: the watcher puts events in a `RunFeed` and posts `RunUpdated`, which may
replace an undelivered `RunUpdated`; the UI then drains everything the feed holds in one go, so no event is
lost however slowly the UI drains its queue.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from textual.message import Message

from workbench.engine.events import Event


@dataclass
class FeedBatch:
    events: list[Event] = field(default_factory=list)
    images: dict[str, Any] = field(default_factory=dict)  # png path -> decoded PIL image
    process_gone: bool = False
    exit_code: int | None = None
    log_tail: str = ""


class RunFeed:
    """Thread-safe hand-over of watched events from the watcher thread to the UI thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._batch = FeedBatch()

    def put(self, events: list[Event], images: dict[str, Any] | None = None) -> None:
        with self._lock:
            self._batch.events.extend(events)
            self._batch.images.update(images or {})

    def put_process_gone(self, exit_code: int | None, log_tail: str) -> None:
        with self._lock:
            self._batch.process_gone = True
            self._batch.exit_code = exit_code
            self._batch.log_tail = log_tail

    def drain(self) -> FeedBatch:
        with self._lock:
            batch, self._batch = self._batch, FeedBatch()
        return batch


class RunUpdated(Message):
    """New events (or the end of the engine process) are waiting in the feed."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, RunUpdated)
