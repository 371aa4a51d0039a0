"""`ddpm-workbench sample`: every sampler into every format, seeds, batch sizes, EMA, and the progression."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageSequence

from tests.sampling.conftest import IMAGE_SIZE
from workbench.cli import main
from workbench.pictures import PADDING

SAMPLERS = ["ddpm", "ddim", "dpm-solver++", "heun"]


def sample(capsys, *args) -> str:
    code = main(["sample", "-q", *args])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def npz_images(capsys, checkpoint, path, *args) -> np.ndarray:
    sample(capsys, "--checkpoint", str(checkpoint), "--format", "npz", "--out", str(path), *args)
    with np.load(path) as data:
        return data["arr_0"]


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_each_sampler_writes_a_grid_a_folder_and_an_npz(capsys, tmp_path, tiny_checkpoint, sampler):
    common = ["--checkpoint", str(tiny_checkpoint), "--sampler", sampler, "--n", "5", "--steps", "4"]
    out = sample(capsys, *common, "--out", str(tmp_path / "grid.png"))
    assert "5 images" in out and sampler in out
    # 5 images -> rows of 3 (isqrt rounded up to fit), 2 rows, with 2-px padding around every tile
    tile = IMAGE_SIZE + PADDING
    assert Image.open(tmp_path / "grid.png").size == (PADDING + 3 * tile, PADDING + 2 * tile)

    sample(capsys, *common, "--format", "pngs", "--out", str(tmp_path / "pngs"))
    names = sorted(p.name for p in (tmp_path / "pngs").iterdir())
    assert names == [f"{i:06d}.png" for i in range(5)]
    single = Image.open(tmp_path / "pngs" / "000003.png")
    assert single.size == (IMAGE_SIZE, IMAGE_SIZE) and single.mode == "L"

    sample(capsys, *common, "--format", "npz", "--out", str(tmp_path / "s.npz"))
    with np.load(tmp_path / "s.npz") as data:
        assert data.files == ["arr_0"]  # an unconditional model has no labels
        images = data["arr_0"]
    assert images.shape == (5, IMAGE_SIZE, IMAGE_SIZE, 1) and images.dtype == np.uint8
    # the PNG files and the array hold the same pixels
    assert np.array_equal(np.asarray(single), images[3, :, :, 0])
    assert images.std() > 0


def test_the_same_seed_gives_identical_images_and_another_seed_different_ones(capsys, tmp_path, tiny_checkpoint):
    first = npz_images(capsys, tiny_checkpoint, tmp_path / "a.npz", "--sampler", "ddpm", "--n", "3", "--seed", "7")
    again = npz_images(capsys, tiny_checkpoint, tmp_path / "b.npz", "--sampler", "ddpm", "--n", "3", "--seed", "7")
    other = npz_images(capsys, tiny_checkpoint, tmp_path / "c.npz", "--sampler", "ddpm", "--n", "3", "--seed", "8")
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


@pytest.mark.parametrize("sampler", [["ddim"], ["dpm-solver++"], ["ddpm"], ["ddim", "--eta", "1"],
                                     ["heun", "--set", "spacing=karras"]], ids=" ".join)
def test_every_sampler_gives_the_same_images_at_any_batch_size(capsys, tmp_path, tiny_checkpoint, sampler):
    # in float32: under bf16 (the default on CPUs with AMX) a batch of 5 and of 2 round differently enough
    # for a deterministic sampler to end a few levels apart. ddpm and ddim with eta 1 add fresh noise at
    # every step: image i draws it from its own stream, so it does not depend on the batch either
    whole = npz_images(capsys, tiny_checkpoint, tmp_path / "a.npz", "--sampler", *sampler, "--n", "5",
                       "--batch-size", "5", "--precision", "fp32")
    pieces = npz_images(capsys, tiny_checkpoint, tmp_path / "b.npz", "--sampler", *sampler, "--n", "5",
                        "--batch-size", "2", "--precision", "fp32")
    # float32 convolutions over a batch of 5 and of 2 may round differently in the last bit; after
    # quantising to 0..255 at most a pixel here and there can differ by one level
    assert np.abs(whole.astype(int) - pieces.astype(int)).max() <= 1
    assert (whole != pieces).mean() < 0.01
    # and image 3 is image 3: the first images of a longer run are the images of a shorter one
    prefix = npz_images(capsys, tiny_checkpoint, tmp_path / "c.npz", "--sampler", *sampler, "--n", "2",
                        "--batch-size", "2", "--precision", "fp32")
    assert np.array_equal(prefix, pieces[:2])


def test_bf16_sampling_stays_close_to_float32(capsys, tmp_path, tiny_checkpoint):
    args = ("--sampler", "ddim", "--steps", "10", "--n", "4")
    full = npz_images(capsys, tiny_checkpoint, tmp_path / "a.npz", *args, "--precision", "fp32").astype(int)
    half = npz_images(capsys, tiny_checkpoint, tmp_path / "b.npz", *args, "--precision", "bf16").astype(int)
    assert not np.array_equal(full, half)  # bf16 really ran
    assert np.abs(full - half).mean() < 3  # and it is the same model: a few levels of 255 on average


def test_precision_auto_follows_the_training_rule():
    from workbench.engine.setup import cpu_has_amx
    from workbench.sampling.model import sampling_dtype

    cpu = torch.device("cpu")
    assert sampling_dtype("auto", cpu) == (torch.bfloat16 if cpu_has_amx() else None)
    assert sampling_dtype("fp32", cpu) is None
    assert sampling_dtype("bf16", cpu) == torch.bfloat16
    with pytest.raises(ValueError, match="fp16"):
        sampling_dtype("fp16", cpu)


def test_eta_reaches_the_sampler(capsys, tmp_path, tiny_checkpoint):
    args = ("--sampler", "ddim", "--n", "2", "--steps", "4")
    deterministic = npz_images(capsys, tiny_checkpoint, tmp_path / "a.npz", *args)
    stochastic = npz_images(capsys, tiny_checkpoint, tmp_path / "b.npz", *args, "--eta", "1.0")
    assert not np.array_equal(deterministic, stochastic)
    out = sample(capsys, "--checkpoint", str(tiny_checkpoint), *args, "--eta", "1.0", "--out", str(tmp_path / "g.png"))
    assert "eta 1.0" in out


def test_set_reaches_the_sampler(capsys, tmp_path, tiny_checkpoint):
    args = ("--sampler", "ddim", "--n", "2", "--steps", "4")
    leading = npz_images(capsys, tiny_checkpoint, tmp_path / "a.npz", *args)
    trailing = npz_images(capsys, tiny_checkpoint, tmp_path / "b.npz", *args, "--set", "spacing=trailing")
    assert not np.array_equal(leading, trailing)  # trailing starts at t = T-1, leading at t = 36
    out = sample(capsys, "--checkpoint", str(tiny_checkpoint), *args, "--set", "sample.spacing=trailing",
                 "--set", "eta=0.5", "--out", str(tmp_path / "g.png"))
    assert "eta 0.5, spacing trailing" in out


def test_ema_weights_by_default_and_raw_weights_with_no_ema(capsys, tmp_path, tiny_checkpoint):
    ema = npz_images(capsys, tiny_checkpoint, tmp_path / "a.npz", "--n", "2")
    raw = npz_images(capsys, tiny_checkpoint, tmp_path / "b.npz", "--n", "2", "--no-ema")
    assert not np.array_equal(ema, raw)
    assert "raw weights" in sample(capsys, "--checkpoint", str(tiny_checkpoint), "--n", "1", "--no-ema",
                                   "--out", str(tmp_path / "g.png"))


def test_a_run_is_found_by_name_by_path_and_as_latest(capsys, tmp_path, tiny_run):
    base = str(tiny_run.parent)
    outputs = []
    for spec in ("tiny", "latest", str(tiny_run)):
        path = tmp_path / f"{len(outputs)}.npz"
        sample(capsys, "--run", spec, "--dir", base, "--n", "2", "--format", "npz", "--out", str(path))
        outputs.append(np.load(path)["arr_0"])
    assert np.array_equal(outputs[0], outputs[1]) and np.array_equal(outputs[0], outputs[2])


def test_progress_bar_and_summary_go_to_the_right_streams(capsys, tmp_path, tiny_checkpoint):
    code = main(["sample", "--checkpoint", str(tiny_checkpoint), "--n", "2", "--out", str(tmp_path / "g.png")])
    out, err = capsys.readouterr()
    assert code == 0
    assert out.startswith(f"wrote {tmp_path / 'g.png'}: 2 images")
    assert "images" in err and "error" not in err  # the bar's last state, on stderr


@pytest.mark.parametrize("frames, steps, expected", [(3, 5, 4), (40, 5, 6), (1, 5, 2)])
def test_progression_gif_has_one_frame_per_chosen_step_plus_the_final_image(capsys, tmp_path, tiny_checkpoint,
                                                                            frames, steps, expected):
    gif = tmp_path / "p.gif"
    sample(capsys, "--checkpoint", str(tiny_checkpoint), "--n", "6", "--batch-size", "6", "--steps", str(steps),
           "--frames", str(frames), "--progression", str(gif), "--out", str(tmp_path / "g.png"))
    image = Image.open(gif)
    sizes = {f.size for f in ImageSequence.Iterator(image)}
    assert image.n_frames == expected
    assert len(sizes) == 1
    # two panels side by side (x_t, predicted x0), each a 2x2 grid of the 4 tracked images at 4x
    # (16 px images are enlarged 4x by default), under a heading line and the panel titles
    panel = PADDING + 2 * (4 * IMAGE_SIZE + PADDING)
    width, height = sizes.pop()
    assert width == 2 * panel + 6 and height == 2 * 14 + panel
    image.seek(image.n_frames - 1)
    assert image.info["duration"] > 80  # the final frame is held


def test_progression_strip_shows_x_t_and_predicted_x0_per_image(capsys, tmp_path, tiny_checkpoint):
    from workbench.sampling.layout import LINE_HEIGHT, text_width

    strip = tmp_path / "s.png"
    sample(capsys, "--checkpoint", str(tiny_checkpoint), "--n", "3", "--steps", "5", "--strip", str(strip),
           "--strip-columns", "4", "--progression-images", "2", "--scale", "1", "--out", str(tmp_path / "g.png"))
    picture = np.asarray(Image.open(strip))
    tile = IMAGE_SIZE + PADDING
    gutter = text_width("pred x0") + 2 * PADDING
    assert picture.shape == (LINE_HEIGHT + PADDING + 4 * tile, gutter + PADDING + 4 * tile)
    grid = picture[LINE_HEIGHT:, gutter:]
    first_noise = grid[PADDING:PADDING + IMAGE_SIZE, PADDING:PADDING + IMAGE_SIZE]
    final = grid[PADDING:PADDING + IMAGE_SIZE, PADDING + 3 * tile:PADDING + 3 * tile + IMAGE_SIZE]
    final_pred = grid[PADDING + tile:PADDING + tile + IMAGE_SIZE, PADDING + 3 * tile:PADDING + 3 * tile + IMAGE_SIZE]
    assert np.array_equal(final, final_pred)  # the last column is the finished image in both rows
    assert not np.array_equal(first_noise, final)
    # and the finished image is the first sample of the grid written alongside
    grid_png = np.asarray(Image.open(tmp_path / "g.png"))
    assert np.array_equal(final, grid_png[PADDING:PADDING + IMAGE_SIZE, PADDING:PADDING + IMAGE_SIZE])


def test_class_conditional_samples_carry_their_labels(capsys, tmp_path, conditional_checkpoint):
    sample(capsys, "--checkpoint", str(conditional_checkpoint), "--n", "5", "--format", "npz",
           "--out", str(tmp_path / "c.npz"))
    with np.load(tmp_path / "c.npz") as data:
        assert data["labels"].tolist() == [0, 1, 2, 0, 1]
        cycled = data["arr_0"]
    sample(capsys, "--checkpoint", str(conditional_checkpoint), "--n", "2", "--label", "2", "--format", "pngs",
           "--out", str(tmp_path / "pngs"))
    assert sorted(p.name for p in (tmp_path / "pngs").iterdir()) == ["000000_c2.png", "000001_c2.png"]
    # image 0 with label 2 is not image 0 with label 0: the label reaches the network
    assert not np.array_equal(np.asarray(Image.open(tmp_path / "pngs" / "000000_c2.png")), cycled[0, :, :, 0])
    code = main(["sample", "-q", "--checkpoint", str(conditional_checkpoint), "--label", "3",
                 "--out", str(tmp_path / "x.png")])
    assert code == 2 and "classes 0..2" in capsys.readouterr().err


def test_the_summary_says_1_image_and_1_step(capsys, tmp_path, tiny_checkpoint):
    out = sample(capsys, "--checkpoint", str(tiny_checkpoint), "--n", "1", "--steps", "1", "--sampler", "ddim",
                 "--out", str(tmp_path / "g.png"))
    assert out.startswith(f"wrote {tmp_path / 'g.png'}: 1 image, ddim 1 step, "), out


@pytest.mark.parametrize("seconds, rate", [(1000.0, "0.0010"), (30.0, "0.033"), (10.0, "0.1"), (0.5, "2.0"),
                                           (1e-4, "10000.0")])
def test_the_summary_rate_is_never_0_0(capsys, tmp_path, tiny_checkpoint, monkeypatch, seconds, rate):
    import workbench.commands.sample as command

    clock = iter([0.0, seconds])

    class FakeTime:
        @staticmethod
        def perf_counter():
            return next(clock)

    monkeypatch.setattr(command, "time", FakeTime)
    out = sample(capsys, "--checkpoint", str(tiny_checkpoint), "--n", "1", "--steps", "1",
                 "--out", str(tmp_path / "g.png"))
    assert f", {rate} images/s on cpu" in out, out
