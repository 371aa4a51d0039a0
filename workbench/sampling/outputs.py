"""Output files that appear whole or not at all, checked before any work starts.

Sampling can take minutes, so every output path is checked (and a temporary file or folder is created next
to it, which is the only reliable writability test) *before* sampling begins. The result is written into the
temporary and `os.replace`d over the target at the very end; on any error, Ctrl-C or SIGTERM the
temporaries are removed, so no partial output is ever left behind.

    with OutputPlan() as plan:
        grid = plan.file("samples.png", suffixes=(".png",), option="--out")
        ...                                  # minutes of work
        grid.write_bytes(png)               # goes to the temporary
    # leaving the block without an exception publishes every output; with one, removes them all

An output folder that already exists (it must be empty: '.', a link to a folder, a folder whose parent we
cannot write) is kept as it is, mode and owner included: its temporary folder is made *inside* it, and at
the end the files are moved out of the temporary into it. While the plan is open, SIGTERM (and SIGHUP,
unless ignored) raises `Terminated`, a SystemExit with code 128 + the signal number, so the cleanup runs as
it does for Ctrl-C; while outputs are being published or removed, Ctrl-C and those signals wait until that
is done.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from workbench.errors import UsageError, WorkbenchError

# Signals whose default action kills the process without running any cleanup.
EXIT_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


class Terminated(SystemExit):
    """SIGTERM or SIGHUP while an OutputPlan was open. A SystemExit, so the process exits quietly with
    128 + the signal number (143 for SIGTERM, as a shell reports a killed command) once cleanup is done."""

    def __init__(self, signum: int):
        super().__init__(128 + signum)
        self.signum = signum


def _check_parent(path: Path, option: str) -> Path:
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        raise UsageError(f"{option} {str(path)!r}: folder {str(parent)!r} does not exist; create it first "
                         "or choose another path")
    if not parent.is_dir():
        raise UsageError(f"{option} {str(path)!r}: {str(parent)!r} is not a folder")
    return parent


def _reserve(parent: Path, name: str, create: Callable[[Path], None]) -> Path:
    """Create a new hidden temporary in `parent`. Unlike tempfile's 0600 files, the permissions follow
    the umask, so the published output looks like any other file the user writes."""
    for _ in range(100):
        temp = parent / f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        try:
            create(temp)
        except FileExistsError:
            continue
        return temp
    raise FileExistsError(f"no free temporary name beside {name!r}")


def _cannot_write(path: Path, option: str, exc: OSError) -> UsageError:
    reason = exc.strerror or type(exc).__name__
    return UsageError(f"{option} {str(path)!r} cannot be written ({reason}); choose a writable path")


class PendingFile:
    """One output file: a temporary beside `path` now, `path` itself after `publish()`."""

    def __init__(self, path: Path, temp: Path, option: str):
        self.path, self.temp, self.option = path, temp, option

    def write_bytes(self, data: bytes) -> None:
        with open(self.temp, "wb") as f:
            f.write(data)

    def write_with(self, writer: Callable) -> None:
        """`writer(binary_file)` fills the temporary (np.savez, PIL's save, ...)."""
        with open(self.temp, "wb") as f:
            writer(f)

    def publish(self) -> None:
        with open(self.temp, "rb+") as f:  # make the bytes durable before the rename makes them visible
            os.fsync(f.fileno())
        os.replace(self.temp, self.path)

    def discard(self) -> None:
        self.temp.unlink(missing_ok=True)


class _Clash(Exception):
    """The output folder changed while the files were being made."""


class PendingFolder:
    """One output folder of files, written into a temporary folder and published at the end.

    A new folder's temporary sits beside it and is renamed to it. An existing (empty) folder is never
    replaced: its temporary sits inside it, and publishing moves the files into it."""

    def __init__(self, path: Path, temp: Path, option: str):
        self.path, self.temp, self.option = path, temp, option
        self.kept = False  # True when publishing failed and the files were left in the temporary for the user

    def write_bytes(self, name: str, data: bytes) -> None:
        (self.temp / name).write_bytes(data)

    def publish(self) -> None:
        if not os.path.lexists(self.path):
            try:
                os.replace(self.temp, self.path)
                return
            except OSError:
                if not self.path.is_dir():  # still not there: a real failure
                    raise
        self._move_into_folder()

    def _move_into_folder(self) -> None:
        """Move the files into the existing folder `path`; never overwrite anything that appeared in it
        meanwhile. If they cannot all be moved, the ones moved go back and the temporary is kept."""
        names = sorted(os.listdir(self.temp))
        moved = []
        try:
            if not self.path.is_dir():
                raise _Clash("it is no longer a folder")
            clash = sorted(set(names) & set(os.listdir(self.path)))
            if clash:
                raise _Clash(f"{clash[0]!r} appeared in it meanwhile")
            for name in names:
                os.replace(self.temp / name, self.path / name)
                moved.append(name)
        except (OSError, _Clash) as exc:
            for name in moved:
                try:
                    os.replace(self.path / name, self.temp / name)
                except OSError:
                    pass
            self.kept = True
            reason = str(exc) if isinstance(exc, _Clash) else (exc.strerror or type(exc).__name__)
            raise WorkbenchError(f"{self.option} {str(self.path)!r}: the files could not be moved into it "
                                 f"({reason}); nothing there was overwritten, and they are kept in "
                                 f"{str(self.temp)!r}") from None
        try:
            self.temp.rmdir()
        except OSError:
            shutil.rmtree(self.temp, ignore_errors=True)

    def discard(self) -> None:
        if not self.kept:
            shutil.rmtree(self.temp, ignore_errors=True)


class _Signals:
    """The plan's signal handling (main thread only; elsewhere signals cannot be handled)."""

    def __init__(self) -> None:
        self.previous: dict[int, object] = {}
        self.deferring = False
        self.pending: int | None = None

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in EXIT_SIGNALS:
            if signal.getsignal(sig) is signal.SIG_DFL:  # an ignored SIGHUP (nohup) stays ignored
                self.previous[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        self.previous.clear()

    def _handle(self, signum, frame) -> None:
        if self.deferring:
            self.pending = self.pending or signum
            return
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise Terminated(signum)

    @contextmanager
    def deferred(self):
        """Ctrl-C and the exit signals wait until the block is done, then take effect (if it succeeded)."""
        own_sigint = (threading.current_thread() is threading.main_thread()
                      and signal.getsignal(signal.SIGINT) is signal.default_int_handler)
        if own_sigint:
            signal.signal(signal.SIGINT, self._handle)
        self.deferring, self.pending = True, None
        try:
            yield
        finally:
            self.deferring = False
            if own_sigint:
                signal.signal(signal.SIGINT, signal.default_int_handler)
        if self.pending is not None:
            if self.pending == signal.SIGINT:
                raise KeyboardInterrupt
            raise Terminated(self.pending)


class OutputPlan:
    """Every output of one command: reserved up front, published together, or all removed on failure."""

    def __init__(self) -> None:
        self.outputs: list[PendingFile | PendingFolder] = []
        self._signals = _Signals()

    def file(self, path: str | Path, *, suffixes: tuple[str, ...] = (), option: str = "--out") -> PendingFile:
        """Reserve output file `path` (overwritten at the end if it exists); UsageError if it cannot be."""
        path = Path(path)
        if suffixes and path.suffix.lower() not in suffixes:
            raise UsageError(f"{option} {str(path)!r} must end in {' or '.join(suffixes)}")
        if path.is_dir():
            raise UsageError(f"{option} {str(path)!r} is a folder; give a file name")
        self._check_unused(path, option)
        parent = _check_parent(path, option)
        if path.exists() and not os.access(path, os.W_OK):
            raise UsageError(f"{option} {str(path)!r} exists and is read-only; choose another path")
        try:
            temp = _reserve(parent, path.name, lambda p: os.close(os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)))
        except OSError as exc:
            raise _cannot_write(path, option, exc) from None
        pending = PendingFile(path, temp, option)
        self.outputs.append(pending)
        return pending

    def folder(self, path: str | Path, *, option: str = "--out") -> PendingFolder:
        """Reserve output folder `path`: it must not exist yet, or be an empty folder (its files are never
        mixed with others; the folder itself, or the folder a link points to, is kept as it is)."""
        path = Path(path)
        if path.is_symlink() and not path.exists():
            raise UsageError(f"{option} {str(path)!r} is a link to {os.readlink(path)!r}, which does not exist; "
                             "create that folder first or choose another path")
        if path.exists() and not path.is_dir():
            raise UsageError(f"{option} {str(path)!r} is a file; --format pngs writes a folder, give a folder name")
        self._check_unused(path, option)
        if path.is_dir():
            try:
                if any(path.iterdir()):
                    raise UsageError(f"{option} {str(path)!r} is a folder that is not empty; choose a new or "
                                     "empty folder")
                temp = _reserve(path, path.resolve().name or "out", lambda p: os.mkdir(p, 0o777))
            except OSError as exc:
                raise _cannot_write(path, option, exc) from None
        else:
            parent = _check_parent(path, option)
            try:
                temp = _reserve(parent, path.name, lambda p: os.mkdir(p, 0o777))
            except OSError as exc:
                raise _cannot_write(path, option, exc) from None
        pending = PendingFolder(path, temp, option)
        self.outputs.append(pending)
        return pending

    def _check_unused(self, path: Path, option: str) -> None:
        if any(out.path.resolve() == path.resolve() for out in self.outputs):
            raise UsageError(f"{option} {str(path)!r} is also used by another option; give each output its own path")

    def publish(self) -> None:
        for out in self.outputs:
            out.publish()
        self.outputs.clear()

    def discard(self) -> None:
        for out in self.outputs:
            out.discard()
        self.outputs.clear()

    def __enter__(self) -> "OutputPlan":
        self._signals.install()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        # BaseException included: Ctrl-C (KeyboardInterrupt) and SIGTERM (Terminated) must also clean up.
        try:
            if exc_type is None:
                try:
                    with self._signals.deferred():
                        self.publish()
                except BaseException:
                    self._discard_quietly()
                    raise
            else:
                self._discard_quietly()
        finally:
            self._signals.restore()

    def _discard_quietly(self) -> None:
        """Remove the temporaries; a second Ctrl-C or SIGTERM meanwhile does not stop that halfway."""
        try:
            with self._signals.deferred():
                self.discard()
        except (KeyboardInterrupt, Terminated):
            pass  # the exception already on its way out says why the command stops
