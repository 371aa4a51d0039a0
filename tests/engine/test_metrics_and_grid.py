"""The device-side metric window and the sample grid layout."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from workbench.pictures import make_grid, png_bytes, to_uint8
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


def test_grid_has_sqrt_n_columns_and_two_pixel_padding():
    images = torch.full((9, 1, 4, 4), -1.0)  # black tiles
    images[4] = 1.0  # the centre tile is white
    grid = make_grid(images)[:, :, 0]
    assert grid.shape == (2 + 3 * 6, 2 + 3 * 6) and grid.dtype == np.uint8
    assert (grid[8:12, 8:12] == 255).all()      # tile 4 is row 1, column 1
    assert (grid[2:6, 2:6] == 0).all() and (grid[14:18, 14:18] == 0).all()
    padding = np.ones_like(grid, dtype=bool)
    for r in range(3):
        for c in range(3):
            padding[2 + 6 * r:6 + 6 * r, 2 + 6 * c:6 + 6 * c] = False
    assert (grid[padding] == 128).all()


def test_grid_of_non_square_count_rounds_columns_up_and_png_keeps_pixels():
    images = torch.rand(10, 3, 5, 5) * 2 - 1
    grid = make_grid(images)
    assert grid.shape == (2 + 3 * 7, 2 + 4 * 7, 3)
    decoded = np.asarray(Image.open(io.BytesIO(png_bytes(grid))))
    assert np.array_equal(decoded, grid)


def test_to_uint8_maps_minus_one_to_0_and_one_to_255():
    assert to_uint8(torch.tensor([-1.0, 0.0, 1.0, 3.0])).tolist() == [0, 128, 255, 255]
