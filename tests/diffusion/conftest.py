"""The diffusion tests work on tiny tensors, where torch's intra-op threads only fight over the CPU with
whatever else runs (a 1000-step sampler test took 20x longer under load); run them on one thread."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
