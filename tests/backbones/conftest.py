"""Backbone tests run single-threaded: their tensors are small, and on a shared 2-core machine the
per-op thread hand-off costs more than the arithmetic (a 2-image forward: ~15 ms on 1 thread vs ~300 ms)."""

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
