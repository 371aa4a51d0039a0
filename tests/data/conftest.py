"""Fixtures for the dataset tests: an isolated search path where no dataset exists and nothing downloads."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from workbench_plugins.datasets import standard


class DownloadRecorder:
    """Stands in for torchvision's download: records each call, and fails unless told what to write."""

    def __init__(self):
        self.calls: list[tuple[str, Path, tuple[bool, ...]]] = []
        self.writer = None

    def __call__(self, class_name: str, target: Path, splits: tuple[bool, ...]) -> None:
        self.calls.append((class_name, target, splits))
        if self.writer is None:
            raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nTried http://example.invalid, got:\n"
                               "<urlopen error [Errno -2] Name or service not known>")
        self.writer(class_name, target)


@pytest.fixture
def places(tmp_path, monkeypatch):
    """No dataset anywhere: empty cache and system folders, no $DDPM_WORKBENCH_DATA, and a download that
    never touches the network. Returns the folders so a test can put data in them."""
    cache_home = tmp_path / "xdg-cache"
    system = tmp_path / "usr-share-datasets"
    system.mkdir()
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache_home))
    monkeypatch.delenv("DDPM_WORKBENCH_DATA", raising=False)
    monkeypatch.setattr("workbench.data.locations.SYSTEM_DATA_DIRS", (system,))
    recorder = DownloadRecorder()
    monkeypatch.setattr(standard, "download_with_torchvision", recorder)
    return SimpleNamespace(cache=cache_home / "ddpm-workbench", system=system, download=recorder, tmp=tmp_path)
