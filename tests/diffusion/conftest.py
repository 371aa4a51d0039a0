"""Diffusion tests work on tiny tensors: every test runs on one torch thread (see tests/conftest.py)."""

import pytest


@pytest.fixture(autouse=True)
def _single_thread(one_torch_thread):
    yield
