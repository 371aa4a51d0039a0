"""Choices made before training: precision, batch split, seeds, device."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from workbench.engine import setup
from workbench.engine.distributed import resolve_device
from workbench.errors import ConfigError


def train_section(**kw):
    return SimpleNamespace(**{"precision": "auto", "channels_last": "auto", "batch_size": 64, "grad_accum": 1, **kw})


@pytest.mark.parametrize("amx, expected", [(True, "bf16"), (False, "fp32")])
def test_auto_precision_on_cpu_is_bf16_only_with_amx(monkeypatch, amx, expected):
    monkeypatch.setattr(setup, "cpu_has_amx", lambda: amx)
    precision = setup.resolve_precision(train_section(), torch.device("cpu"))
    assert precision.name == expected and precision.channels_last is False
    assert setup.resolve_precision(train_section(precision="fp16"), torch.device("cpu")).dtype == torch.float16
    assert setup.resolve_precision(train_section(channels_last=True), torch.device("cpu")).channels_last


@pytest.mark.parametrize("isa", ["AVX2", "avx512_core_bf16", "SSE41"])
def test_a_onednn_isa_cap_below_amx_means_no_amx(monkeypatch, isa):
    # bf16 autocast would then run emulated (several times slower than fp32): "auto" must pick fp32
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", isa)
    assert setup.cpu_has_amx() is False
    assert setup.resolve_precision(train_section(), torch.device("cpu")).name == "fp32"


def test_batch_is_split_over_ranks_then_micro_batches():
    assert setup.check_batch_sizes(train_section(batch_size=64, grad_accum=2), 4) == (16, 8)
    with pytest.raises(ConfigError, match="not divisible by the 3 ranks"):
        setup.check_batch_sizes(train_section(batch_size=64), 3)
    with pytest.raises(ConfigError, match="16 per rank, not divisible by grad_accum = 3"):
        setup.check_batch_sizes(train_section(batch_size=64, grad_accum=3), 4)


def test_derived_seeds_differ_by_purpose_and_follow_the_run_seed():
    assert setup.derived_seed(0, "noise") == setup.derived_seed(0, "noise")
    assert len({setup.derived_seed(0, "noise"), setup.derived_seed(0, "samples"), setup.derived_seed(1, "noise")}) == 3


def test_device_names():
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert resolve_device("auto") == torch.device("cpu")
        with pytest.raises(ConfigError, match="no CUDA GPU is available"):
            resolve_device("cuda")
    with pytest.raises(ConfigError, match="is not a device"):
        resolve_device("tpu")
    with pytest.raises(ConfigError, match="is not a device"):
        resolve_device("cuda:x")
    if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        with pytest.raises(ConfigError, match=r"'mps' but no Apple GPU \(MPS\) is available"):
            resolve_device("mps")
