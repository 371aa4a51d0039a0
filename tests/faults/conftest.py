"""Fixtures of the fault suite: a small full file system made however this machine allows."""

from __future__ import annotations

import importlib
import os
import resource
import subprocess
import sys
import uuid
from pathlib import Path

import pytest


class SmallDisk:
    """A folder that holds at most about `capacity` bytes: a tmpfs of that size when this process may
    mount one (root on Linux), else an ordinary folder and a file-size rlimit (`ulimit -f`) for the child
    processes (pass `popen` to subprocess.run). Either way a write past the capacity fails with ENOSPC or
    EFBIG, as on a full disk."""

    def __init__(self, folder: Path, capacity: int, how: str):
        self.folder, self.capacity, self.how = folder, capacity, how

    @property
    def popen(self) -> dict:
        if self.how == "tmpfs":
            return {}
        limit = self.capacity

        def limit_file_size():
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        return {"preexec_fn": limit_file_size}


def try_tmpfs(folder: Path, capacity: int) -> bool:
    if os.name != "posix" or os.geteuid() != 0:
        return False
    folder.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={capacity}", f"wbfault-{uuid.uuid4().hex[:8]}",
                             str(folder)], capture_output=True)
    return result.returncode == 0


@pytest.fixture
def small_disk(tmp_path):
    """small_disk(capacity) -> SmallDisk; mounts are undone at the end of the test."""
    mounted = []

    def make(capacity: int) -> SmallDisk:
        folder = tmp_path / f"disk{len(mounted)}"
        if os.environ.get("DDPM_WORKBENCH_FAULTS_NO_TMPFS") != "1" and try_tmpfs(folder, capacity):
            mounted.append(folder)
            return SmallDisk(folder, capacity, "tmpfs")
        if not hasattr(resource, "RLIMIT_FSIZE"):
            pytest.skip("neither a tmpfs nor a file-size limit can be made here")
        folder.mkdir(parents=True, exist_ok=True)
        mounted.append(None)
        return SmallDisk(folder, capacity, "rlimit")

    yield make
    for folder in mounted:
        if folder is not None:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A folder on sys.path whose dist-info entry points this process's plugin host loads (in-process checks
    are much cheaper than a subprocess; whatever must kill a real process still runs in one)."""
    from workbench.plugin_host.manager import reset_host

    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv("DDPM_WORKBENCH_NO_PLUGINS", "0")
    monkeypatch.chdir(tmp_path)  # no ./workbench.toml of the repository
    importlib.invalidate_caches()
    reset_host()
    yield folder
    reset_host()
    for name in [m for m in sys.modules if m.startswith("wbfault_")]:
        del sys.modules[name]


@pytest.fixture(autouse=True)
def _one_torch_thread(one_torch_thread):
    """In-process training here uses one thread, like the engine tests (the machine has 2 shared cores)."""
