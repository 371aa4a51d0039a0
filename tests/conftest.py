"""Shared test setup.

Third-party plugins installed on the machine must not leak into tests, so entry-point loading is off
unless a test turns it on; each test also gets a fresh process-wide plugin host.
"""

from __future__ import annotations

import os

import pytest

os.environ["DDPM_WORKBENCH_NO_PLUGINS"] = "1"
os.environ.setdefault("DDPM_WORKBENCH_BLOCK_PLUGINS", "")


def pytest_collection_modifyitems(config, items):
    """Tests marked `cuda` need a CUDA device: skipped here (CI, the CPU machines), run by bench/gpu_check.sh."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (bench/gpu_check.sh runs these on a GPU)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def fresh_plugin_host():
    from workbench.plugin_host.manager import reset_host

    reset_host()
    yield
    reset_host()


@pytest.fixture
def one_torch_thread():
    """One intra-op thread for tests of tiny tensors: there torch's thread hand-off costs more than the
    arithmetic, and on a shared 2-core machine two spinning OpenMP threads made such tests 20-50x slower.
    Test folders made of such tests use it for every test (see their conftest.py)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def in_tmp_cwd(tmp_path, monkeypatch):
    """Run in an empty folder, so a ./workbench.toml or ./runs of the repository is never picked up."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
