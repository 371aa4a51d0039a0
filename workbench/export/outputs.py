"""Output files that appear whole or not at all, checked before any work starts.

Sampling can take minutes, so every output path is checked (and a temporary file or folder is created next
to it, which is the only reliable writability test) *before* sampling begins. The result is written into the
temporary and `os.replace`d over the target at the very end; on any error or Ctrl-C the temporaries are
removed, so no partial output is ever left behind.

    with OutputPlan() as plan:
        grid = plan.file("samples.png", suffixes=(".png",), option="--out")
        ...                                  # minutes of work
        grid.write_bytes(png)               # goes to the temporary
    # leaving the block without an exception publishes every output; with one, removes them all
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path
from typing import Callable

from workbench.errors import UsageError


def _check_parent(path: Path, option: str) -> Path:
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        raise UsageError(f"{option} {str(path)!r}: folder {str(parent)!r} does not exist; create it first "
                         "or choose another path")
    if not parent.is_dir():
        raise UsageError(f"{option} {str(path)!r}: {str(parent)!r} is not a folder")
    return parent


def _reserve(parent: Path, name: str, create: Callable[[Path], None]) -> Path:
    """Create a new hidden temporary beside the target. Unlike tempfile's 0600 files, the permissions
    follow the umask, so the published output looks like any other file the user writes."""
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


class PendingFolder:
    """One output folder of files: written into a temporary folder beside `path`, renamed at the end."""

    def __init__(self, path: Path, temp: Path, option: str):
        self.path, self.temp, self.option = path, temp, option

    def write_bytes(self, name: str, data: bytes) -> None:
        (self.temp / name).write_bytes(data)

    def publish(self) -> None:
        if self.path.is_dir():  # checked empty up front; rmdir fails loudly if someone filled it since
            self.path.rmdir()
        os.replace(self.temp, self.path)

    def discard(self) -> None:
        shutil.rmtree(self.temp, ignore_errors=True)


class OutputPlan:
    """Every output of one command: reserved up front, published together, or all removed on failure."""

    def __init__(self) -> None:
        self.outputs: list[PendingFile | PendingFolder] = []

    def file(self, path: str | Path, *, suffixes: tuple[str, ...] = (), option: str = "--out") -> PendingFile:
        """Reserve output file `path` (overwritten at the end if it exists); UsageError if it cannot be."""
        path = Path(path)
        if suffixes and path.suffix.lower() not in suffixes:
            raise UsageError(f"{option} {str(path)!r} must end in {' or '.join(suffixes)}")
        if path.is_dir():
            raise UsageError(f"{option} {str(path)!r} is a folder; give a file name")
        if any(out.path.resolve() == path.resolve() for out in self.outputs):
            raise UsageError(f"{option} {str(path)!r} is also used by another option; give each output its own path")
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
        """Reserve output folder `path`: it must not exist yet, or be empty (its files are never mixed)."""
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise UsageError(f"{option} {str(path)!r} is a file; --format pngs writes a folder, give a folder name")
        if path.is_dir() and any(path.iterdir()):
            raise UsageError(f"{option} {str(path)!r} is a folder that is not empty; choose a new or empty folder")
        parent = _check_parent(path, option)
        try:
            temp = _reserve(parent, path.name, lambda p: os.mkdir(p, 0o777))
        except OSError as exc:
            raise _cannot_write(path, option, exc) from None
        pending = PendingFolder(path, temp, option)
        self.outputs.append(pending)
        return pending

    def publish(self) -> None:
        for out in self.outputs:
            out.publish()
        self.outputs.clear()

    def discard(self) -> None:
        for out in self.outputs:
            out.discard()
        self.outputs.clear()

    def __enter__(self) -> "OutputPlan":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        # BaseException included: Ctrl-C (KeyboardInterrupt) must also clean up.
        if exc_type is None:
            try:
                self.publish()
            except BaseException:
                self.discard()
                raise
        else:
            self.discard()
