"""One policy for every file the workbench writes: whole or not at all, and one line when the disk says no.

Checkpoints, status.json, metrics and events, sample grids, npz files, PNG folders, GIFs and forward strips all
go through here. An OSError from the file system (a full disk, a quota, a read-only mount, no permission, the
file-size limit of `ulimit -f`) becomes a `WriteFailed`: one line naming the path, the reason in plain words,
and what was kept, with exit code 1. Temporary files are removed on every error path, so a full disk never
leaves a 0-byte `.status.json.<pid>.tmp` behind.

    atomic_write_bytes(path, data, kept="the previous status")   # temp + fsync + os.replace
    with writing(path, kept="..."):                              # any other write
        ...
"""

from __future__ import annotations

import errno
import os
from contextlib import contextmanager
from pathlib import Path

from workbench.errors import WriteFailed

# errno -> what it means for the user, in words (strerror is terse and platform-worded)
REASONS = {
    errno.ENOSPC: "no space left on the device (the disk is full)",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EFBIG: "the file is larger than the file-size limit (ulimit -f) allows",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EIO: "an input/output error on the device",
    errno.ENOENT: "its folder no longer exists",
    errno.ENOTDIR: "a part of the path is not a folder",
    errno.EISDIR: "it is a folder",
    errno.ENAMETOOLONG: "the name is too long for the file system",
}

# What torch.save raises (a RuntimeError, not an OSError) when its zip writer hits a full disk.
TORCH_WRITE_FAILURES = ("unexpected pos", "PytorchStreamWriter failed", "enforce fail at inline_container")


def reason(exc: BaseException) -> str:
    """What went wrong with a write, in words."""
    code = getattr(exc, "errno", None)
    if code in REASONS:
        return REASONS[code]
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    if is_torch_write_failure(exc):
        return "the write stopped short (usually: no space left on the device)"
    return type(exc).__name__


def is_torch_write_failure(exc: BaseException) -> bool:
    return isinstance(exc, RuntimeError) and any(s in str(exc) for s in TORCH_WRITE_FAILURES)


def write_failed(path: str | Path, exc: BaseException, kept: str = "") -> WriteFailed:
    """The one-line error for a failed write of `path`."""
    message = f"cannot write {str(path)!r}: {reason(exc)}"
    message += f"; kept: {kept}" if kept else ""
    code = getattr(exc, "errno", None)
    if code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) or is_torch_write_failure(exc):
        message += "; free some space (or raise the limit) and try again"
    elif code in (errno.EROFS, errno.EACCES, errno.EPERM):
        message += "; choose a writable folder"
    return WriteFailed(message)


@contextmanager
def writing(path: str | Path, *, kept: str = "", cleanup: Path | None = None):
    """Turn an OSError (or torch's short write) inside the block into a `WriteFailed` for `path`; remove the
    temporary `cleanup` on any way out but success."""
    try:
        yield
    except BaseException as exc:
        if cleanup is not None:
            remove_quietly(cleanup)
        if isinstance(exc, OSError) or is_torch_write_failure(exc):
            raise write_failed(path, exc, kept) from None
        raise


def remove_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def temp_path(path: Path) -> Path:
    """The temporary beside `path` that this process writes before renaming it over `path`."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def atomic_write_bytes(path: str | Path, data: bytes, *, kept: str = "") -> None:
    """Write via a temporary file in the same folder and os.replace, so readers see old or new, never half.
    Any failure removes the temporary and raises `WriteFailed` naming `path` (and `kept`, or the old file)."""
    path = Path(path)
    tmp = temp_path(path)
    with writing(path, kept=kept or (f"the previous {path.name}" if path.exists() else "nothing"), cleanup=tmp):
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)


def atomic_write_text(path: str | Path, text: str, *, kept: str = "") -> None:
    atomic_write_bytes(path, text.encode("utf-8"), kept=kept)


def append_line(path: str | Path, line: str, *, kept: str = "") -> None:
    """Append one whole line (a reader holds back an incomplete last line, so a short write is harmless)."""
    with writing(path, kept=kept or "the lines before it"):
        with open(path, "a", encoding="utf-8") as f:
            f.write(line)
