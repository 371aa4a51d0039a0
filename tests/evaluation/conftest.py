"""Evaluation tests work on small feature sets and tiny images: one intra-op thread (see tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _single_thread(one_torch_thread):
    yield


@pytest.fixture
def mean_pool_extractor(monkeypatch, tmp_path):
    """The process-wide host with a cheap 16-d extractor ("mean-pool") beside the built-ins; a private cache."""
    from tests.evaluation.helpers import MeanPoolFeatures
    from workbench.plugin_host.manager import PluginHost, reset_host
    from workbench.plugin_host.registry import Component

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    host = PluginHost(load_entry_points=False)
    host.registries["feature_extractor"].add(Component("feature_extractor", "mean-pool", MeanPoolFeatures, "tests"))
    reset_host(host)
    return host
