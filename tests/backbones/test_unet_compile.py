"""The U-Net under torch.compile (CPU inductor; needs a C compiler)."""

from __future__ import annotations

import shutil

import pytest
import torch

from workbench_plugins.backbones import build_unet

from .test_unet_model import inputs, randomize_zero_weights_


@pytest.mark.slow  # inductor generates and compiles C++ kernels: about a minute of CPU
@pytest.mark.skipif(shutil.which("gcc") is None and shutil.which("cc") is None, reason="no C compiler")
def test_tiny_preset_compiles_without_graph_breaks_and_matches_eager():
    # Forward only: compiling the backward graph too roughly triples the time, and graph breaks (the
    # thing a model can get wrong) already show in the forward.
    torch._dynamo.reset()
    model = randomize_zero_weights_(build_unet(1, 1, 32, preset="tiny")).eval()
    x, t = inputs(4, 1, 32)
    with torch.no_grad():
        expected = model(x, t)
        out = torch.compile(model, fullgraph=True)(x, t)  # fullgraph: a graph break raises
    assert torch.allclose(out, expected, atol=1e-4, rtol=1e-3)
