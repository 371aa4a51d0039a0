"""Evaluation tests work on small feature sets and tiny images: one intra-op thread (see tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _single_thread(one_torch_thread):
    yield
