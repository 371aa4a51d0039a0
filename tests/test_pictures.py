"""Picture I/O: images in [-1, 1] -> uint8, tiled grids with padding, PNG bytes."""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image

from workbench.pictures import make_grid, png_bytes, to_uint8


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


def test_an_enlarged_grid_png_reads_back_at_its_native_pixels():
    from PIL import Image

    from workbench.pictures import native_pixels, png_bytes

    grid = np.random.default_rng(0).integers(0, 256, (10, 14, 3), dtype=np.uint8)
    data = png_bytes(grid, scale=4)
    with Image.open(io.BytesIO(data)) as image:
        assert image.size == (56, 40)  # each pixel a crisp 4x4 block
        big = np.asarray(image)
        assert (big[::4, ::4] == grid).all() and (big[3::4, 3::4] == grid).all()
        assert (np.asarray(native_pixels(image)) == grid).all()
    with Image.open(io.BytesIO(png_bytes(grid))) as image:  # scale 1: as before, nothing recorded
        assert image.size == (14, 10) and native_pixels(image) is image
