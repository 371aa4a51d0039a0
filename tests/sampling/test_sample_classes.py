"""`sample --class NAME|INDEX|all` and `--guidance W` on a class-conditional run: names come from the checkpoint
(no dataset needed), the grid has one row per class, and bad requests are one line."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests.sampling.conftest import IMAGE_SIZE
from workbench.cli import main
from workbench.pictures import PADDING


def run_sample(capsys, *args) -> tuple[int, str, str]:
    code = main(["sample", "-q", *args])
    out, err = capsys.readouterr()
    return code, out, err


def sampled_npz(capsys, run, path, *args):
    code, out, err = run_sample(capsys, "--run", str(run), "--format", "npz", "--out", str(path), *args)
    assert code == 0, err
    with np.load(path) as data:
        return data["arr_0"], data["labels"].tolist(), out, err


def test_classes_by_name_and_index_sample_those_labels_in_class_order(capsys, tmp_path, conditional_run):
    images, labels, out, _ = sampled_npz(capsys, conditional_run, tmp_path / "a.npz",
                                         "--class", "ring", "--class", "0", "--n", "3")
    assert labels == [2, 2, 2, 0, 0, 0] and images.shape[0] == 6
    assert "ring, disk, guidance 2" in out  # the run's sample.guidance is the default
    _, labels, _, _ = sampled_npz(capsys, conditional_run, tmp_path / "b.npz", "--class", "all", "--n", "1")
    assert labels == [0, 1, 2, 3]
    _, labels, _, _ = sampled_npz(capsys, conditional_run, tmp_path / "c.npz", "--label", "3", "--n", "2")
    assert labels == [3, 3]  # the older --label is an alias


def test_guidance_changes_the_samples_and_1_is_the_plain_conditional_model(capsys, tmp_path, conditional_run):
    common = ("--class", "square", "--n", "2", "--sampler", "heun", "--steps", "3")
    plain, _, out, _ = sampled_npz(capsys, conditional_run, tmp_path / "w1.npz", *common, "--guidance", "1")
    guided, _, _, _ = sampled_npz(capsys, conditional_run, tmp_path / "w4.npz", *common, "--guidance", "4")
    again, _, _, _ = sampled_npz(capsys, conditional_run, tmp_path / "w4b.npz", *common, "--guidance", "4")
    assert "guidance 1," in out and not np.array_equal(plain, guided) and np.array_equal(guided, again)


def test_the_grid_has_one_row_per_class_with_its_name_in_a_left_gutter(capsys, tmp_path, conditional_run):
    code, _, err = run_sample(capsys, "--run", str(conditional_run), "--class", "plus", "--class", "disk",
                              "--n", "3", "--out", str(tmp_path / "g.png"))
    assert code == 0, err
    width, height = Image.open(tmp_path / "g.png").size
    tile = IMAGE_SIZE + PADDING
    assert height == PADDING + 2 * tile  # two rows of three
    assert width > PADDING + 3 * tile  # plus the gutter with the names
    gutter = np.asarray(Image.open(tmp_path / "g.png").convert("L"))[:, :width - (PADDING + 3 * tile)]
    assert (gutter < 128).any()  # text was drawn


@pytest.mark.parametrize("args, message", [
    (["--class", "hexagon"], "--class 'hexagon' is not a class of this model; classes: 0 disk, 1 square, 2 ring, "
                             "3 plus"),
    (["--class", "9"], "--class 9 is out of range; this model has classes 0..3"),
    (["--guidance", "-1"], "argument --guidance: '-1' must be a number >= 0"),
    (["--guidance", "nan"], "argument --guidance: 'nan' must be a number >= 0"),
])
def test_bad_classes_and_scales_are_one_line(capsys, tmp_path, conditional_run, args, message):
    code, _, err = run_sample(capsys, "--run", str(conditional_run), "--out", str(tmp_path / "x.png"), *args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "x.png").exists()


def test_classes_and_guidance_on_an_unconditional_model_are_one_line(capsys, tmp_path, tiny_checkpoint):
    for args in (["--class", "disk"], ["--guidance", "3"]):
        code, _, err = run_sample(capsys, "--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path / "x.png"),
                                  *args)
        assert code == 2 and "this model is not class-conditional" in err, err
        assert len(err.strip().splitlines()) == 1


def test_guiding_a_model_trained_without_label_dropout_warns(capsys, tmp_path, conditional_checkpoint):
    # conditional_checkpoint has classes but train.label_dropout = 0 and no stored class names (indices only)
    code, _, err = run_sample(capsys, "--checkpoint", str(conditional_checkpoint), "--class", "1", "--n", "1",
                              "--guidance", "3", "--out", str(tmp_path / "x.png"))
    assert code == 0 and err.count("\n") == 1
    assert err.startswith("warning: --guidance 3: this model was trained without label dropout")
    code, _, err = run_sample(capsys, "--checkpoint", str(conditional_checkpoint), "--class", "1", "--n", "1",
                              "--out", str(tmp_path / "y.png"))
    assert code == 0 and err == ""  # W = 1 needs no unconditional branch
    code, _, err = run_sample(capsys, "--checkpoint", str(conditional_checkpoint), "--class", "disk",
                              "--out", str(tmp_path / "z.png"))
    assert code == 2 and "0..2 (this checkpoint has no class names)" in err
