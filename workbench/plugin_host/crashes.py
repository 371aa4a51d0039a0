"""Knowing which third-party plugin killed the process while it was being loaded.

A plugin that calls `os._exit` (or segfaults) at import ends the process before any `except` or `atexit`
can run, so no message can be printed at that moment. Instead, while each third-party plugin is imported and
its hooks run, a small marker file names it (`loading-<pid>.json` in the user's cache folder, removed right
after). The next process that loads plugins finds a marker whose process is gone: that plugin killed it. The
verdict is kept by distribution name and version (`killed.json`), and that plugin is then skipped and shown
as a failure (in `ddpm-workbench plugins` and the one-line warning of every command) until its version
changes or the verdict file is deleted.

Cost: a file write and an unlink per third-party plugin per start (microseconds); nothing without one.
`DDPM_WORKBENCH_PLUGIN_TRACE=1` also prints `loading plugin NAME (dist version)` on stderr before each.
"""

from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path

CACHE_DIR_ENV = "DDPM_WORKBENCH_CACHE_DIR"
TRACE_ENV = "DDPM_WORKBENCH_PLUGIN_TRACE"


def cache_dir() -> Path:
    """Where plugin verdicts live: $DDPM_WORKBENCH_CACHE_DIR, else $XDG_CACHE_HOME or ~/.cache, /ddpm-workbench."""
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ddpm-workbench"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


class ImportGuard:
    """Markers around each third-party plugin's import and hooks, and the verdicts they led to."""

    def __init__(self, folder: Path | None = None):
        self.folder = (folder or cache_dir()) / "plugins"
        self.trace = os.environ.get(TRACE_ENV, "").strip() not in ("", "0")
        self._verdicts: dict[str, str] | None = None

    @property
    def verdicts_path(self) -> Path:
        return self.folder / "killed.json"

    def verdicts(self) -> dict[str, str]:
        """key -> why it is skipped; markers left by processes that died are turned into verdicts first."""
        if self._verdicts is None:
            self._verdicts = self._read_verdicts()
            found = self._collect_dead_markers()
            if found:
                self._verdicts.update(found)
                self._write_verdicts()
        return self._verdicts

    def verdict(self, key: str) -> str | None:
        return self.verdicts().get(key)

    @contextmanager
    def importing(self, key: str, plugin: str, label: str):
        """Leave a marker naming `plugin` while the block runs (removed on any way out that Python sees)."""
        if self.trace:
            print(f"loading plugin {plugin!r} ({label})", file=sys.stderr, flush=True)
        marker = self.folder / f"loading-{os.getpid()}.json"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            marker.write_text(json.dumps({"key": key, "plugin": plugin, "label": label, "pid": os.getpid()}))
        except OSError:
            marker = None  # no writable cache: plugins still load, only the post-mortem is lost
        try:
            yield
        finally:
            if marker is not None:
                try:
                    marker.unlink()
                except OSError:
                    pass

    # -- files -------------------------------------------------------------------------------------

    def _read_verdicts(self) -> dict[str, str]:
        try:
            data = json.loads(self.verdicts_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def _write_verdicts(self) -> None:
        from workbench.files import atomic_write_text
        from workbench.errors import WriteFailed

        try:
            atomic_write_text(self.verdicts_path, json.dumps(self._verdicts, indent=2) + "\n")
        except WriteFailed:
            pass  # the verdict still holds for this process

    def _collect_dead_markers(self) -> dict[str, str]:
        found = {}
        try:
            markers = sorted(self.folder.glob("loading-*.json"))
        except OSError:
            return found
        for marker in markers:
            try:
                record = json.loads(marker.read_text(encoding="utf-8"))
                pid = int(record["pid"])
                key, plugin = str(record["key"]), str(record["plugin"])
            except (OSError, ValueError, KeyError, TypeError):
                marker.unlink(missing_ok=True)
                continue
            if pid_alive(pid) and pid != os.getpid():
                continue  # another process is loading plugins right now
            found[key] = (f"skipped: process {pid} ended while importing or registering plugin {plugin!r} "
                          "(os._exit or a crash inside it); it is skipped until its version changes - delete "
                          f"{self.verdicts_path} to try it again")
            try:
                marker.unlink()
            except OSError:
                pass
        return found
