"""`ddpm-workbench forward`: real images noised by one or several schedules, and the formula behind it."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

from workbench.cli import main
from workbench.pictures import PADDING

SIZE = 16
DATA = ["--set", "dataset.name=synthetic", "--set", f"dataset.size={SIZE}", "--set", "dataset.count=8",
        "--set", "dataset.pad_to=0", "--set", "schedule.timesteps=50"]


def test_q_sample_tiles_follow_ho_et_al_eq_4():
    from workbench.diffusion import GaussianDiffusion
    from workbench.sampling.forward import noised_tiles

    betas = torch.linspace(1e-4, 0.02, 50, dtype=torch.float64)
    alpha_bar = torch.cumprod(1 - betas, 0)
    images = torch.randint(0, 256, (2, 1, 4, 4), dtype=torch.uint8)
    noise = torch.randn(2, 1, 4, 4)
    tiles = noised_tiles(GaussianDiffusion(betas), images, noise, [0, 30, 49])
    assert tiles.shape == (2 * 4, 1, 4, 4) and tiles.dtype == torch.uint8
    assert torch.equal(tiles[0], images[0]) and torch.equal(tiles[4], images[1])  # the clean column
    x0 = images[1].double() / 127.5 - 1
    expected = alpha_bar[30].sqrt() * x0 + (1 - alpha_bar[30]).sqrt() * noise[1].double()
    expected = ((expected.clamp(-1, 1) + 1) * 127.5).round()
    assert (tiles[6].double() - expected).abs().max() <= 1  # float32 vs float64 rounding at .5


def test_default_timesteps_scale_with_t():
    from workbench.sampling.forward import default_timesteps

    assert default_timesteps(1000) == [0, 100, 250, 500, 750, 999]
    assert default_timesteps(50) == [0, 5, 12, 25, 38, 49]


def tile_at(picture, top, row, col):
    y, x = top + PADDING + row * (SIZE + PADDING), PADDING + col * (SIZE + PADDING)
    return picture[y:y + SIZE, x:x + SIZE]


def test_two_schedules_side_by_side(capsys, in_tmp_cwd):
    from workbench.sampling.layout import LINE_HEIGHT

    code = main(["forward", *DATA, "--schedules", "linear,cosine", "--timesteps", "0,10,49", "--n", "3",
                 "--scale", "1", "--out", "f.png"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.startswith("wrote f.png: 3 synthetic images at t = 0, 10, 49 under linear, cosine")
    picture = np.asarray(Image.open("f.png"))
    grid_w, grid_h = PADDING + 4 * (SIZE + PADDING), PADDING + 3 * (SIZE + PADDING)
    block_h = 2 * LINE_HEIGHT + grid_h  # title, column headings, grid
    assert picture.shape[0] == 2 * block_h + 6
    assert picture.shape[1] >= grid_w
    second = block_h + 6 + 2 * LINE_HEIGHT
    first = 2 * LINE_HEIGHT
    # same clean image in both blocks; at t=10 the cosine schedule has added less noise than it will at 49,
    # and the two schedules differ
    assert np.array_equal(tile_at(picture, first, 1, 0), tile_at(picture, second, 1, 0))
    assert not np.array_equal(tile_at(picture, first, 1, 2), tile_at(picture, second, 1, 2))
    clean = tile_at(picture, first, 1, 0).astype(float)
    for top in (first, second):
        errors = [np.abs(tile_at(picture, top, 1, c).astype(float) - clean).mean() for c in (1, 2, 3)]
        assert errors[0] < errors[1] < errors[2]  # more noise at every later timestep


def test_one_image_is_one_image(capsys, in_tmp_cwd):
    assert main(["forward", *DATA, "--n", "1", "--timesteps", "0,49", "--out", "f.png"]) == 0
    assert capsys.readouterr().out.startswith("wrote f.png: 1 synthetic image at t = 0, 49 under linear")


def test_the_configured_schedule_by_default_with_default_timesteps(capsys, in_tmp_cwd):
    assert main(["forward", *DATA, "--n", "2"]) == 0
    capsys.readouterr()
    picture = Image.open("forward.png")  # the default name; 16 px images are enlarged 4x by default
    assert picture.size[0] >= PADDING + 7 * (4 * SIZE + PADDING)


@pytest.mark.parametrize("args, fragment", [
    (["--timesteps", "0,50"], "--timesteps: 50 is outside 0..49"),
    (["--timesteps", "0,ten"], "'ten' is not a whole number"),
    (["--schedules", "linear,cosin"], 'no schedule \'cosin\' (did you mean "cosine"?); installed:'),
    (["--out", "nowhere/f.png"], "folder 'nowhere' does not exist"),
    (["--out", "f.jpg"], "must end in .png"),
])
def test_bad_input_is_one_line_and_leaves_nothing(capsys, in_tmp_cwd, args, fragment):
    assert main(["forward", *DATA, *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and fragment in err, err
    assert os.listdir(in_tmp_cwd) == []
