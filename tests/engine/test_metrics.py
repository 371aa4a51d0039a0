"""The device-side metric window."""

from __future__ import annotations

import pytest
import torch

from workbench.engine.metrics import MetricWindow


def test_window_means_and_loss_per_timestep_quartile():
    window = MetricWindow(torch.device("cpu"), timesteps=100)
    window.add_step(torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([0, 30, 60, 99]), torch.tensor(2.0),
                    torch.tensor(True))
    window.add_step(torch.tensor([3.0, 0.0, 0.0, 0.0]), torch.tensor([10, 26, 74, 75]), torch.tensor(4.0),
                    torch.tensor(True))
    summary = window.read()
    assert summary.steps == 2 and summary.nonfinite_steps == 0
    assert summary.loss == pytest.approx(13 / 8)
    assert summary.grad_norm == pytest.approx(3.0)
    # quarters of [0, 100): [0,25) {1, 3}, [25,50) {2, 0}, [50,75) {3, 0}, [75,100) {4, 0}
    assert summary.loss_quartiles == pytest.approx((2.0, 1.0, 1.5, 2.0))
    assert window.read().steps == 0  # read() resets


def test_a_skipped_step_counts_only_as_non_finite():
    window = MetricWindow(torch.device("cpu"), timesteps=10)
    window.add_step(torch.tensor([1.0, 1.0]), torch.tensor([0, 9]), torch.tensor(1.0), torch.tensor(True))
    window.add_step(torch.tensor([float("nan"), 5.0]), torch.tensor([0, 9]), torch.tensor(float("nan")),
                    torch.tensor(False))
    summary = window.read()
    assert summary.steps == 2 and summary.nonfinite_steps == 1
    assert summary.loss == 1.0 and summary.grad_norm == 1.0
    assert summary.loss_quartiles[0] == 1.0 and summary.loss_quartiles[3] == 1.0


def test_window_state_round_trips():
    window = MetricWindow(torch.device("cpu"), timesteps=10)
    window.add_step(torch.tensor([2.0, 1.0, 3.0, 4.0]), torch.tensor([0, 3, 6, 9]), torch.tensor(1.0),
                    torch.tensor(True))
    other = MetricWindow(torch.device("cpu"), timesteps=10)
    other.load_state_dict(window.state_dict())
    assert other.read() == window.read()
