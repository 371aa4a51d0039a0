"""`ddpm-workbench eval` end to end: what it prints, and one line with exit 2 for each bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.evaluation.helpers import noise_images, write_npy
from workbench.cli import main

TINY_RUN = [
    "dataset.name=synthetic", "dataset.size=16", "dataset.count=64", "dataset.pad_to=0",
    "backbone.base_channels=8", "schedule.timesteps=20", "train.steps=2", "train.batch_size=8",
    "train.warmup_steps=0", "train.log_every=1", "train.sample_every=0", "train.checkpoint_every=0",
    "sample.steps=2", "sample.n=4", "run.device=cpu", "run.name=tiny",
]


pytestmark = pytest.mark.usefixtures("mean_pool_extractor")


@pytest.fixture
def reference_file(tmp_path) -> Path:
    return write_npy(tmp_path / "reference.npy", noise_images(300, seed=0))


def reference_args(path: Path) -> list[str]:
    return ["--set", "dataset.name=npy", "--set", f"dataset.path={path}", "--set", "dataset.pad_to=0",
            "--extractor", "mean-pool", "--quiet"]


def samples_npz(path: Path, images: np.ndarray) -> Path:
    np.savez(path, arr_0=images[..., None] if images.ndim == 3 else images)
    return path


def run_eval(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["eval", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_every_line_names_the_metric_n_and_extractor(tmp_path, reference_file, capsys):
    samples = samples_npz(tmp_path / "samples.npz", noise_images(200, seed=1))
    code, out, err = run_eval(capsys, "--samples", str(samples), *reference_args(reference_file))
    assert code == 0, err
    lines = out.strip().splitlines()
    assert [line.split()[0] for line in lines] == ["FD_mean-pool", "KD_mean-pool", "precision", "recall"]
    assert all("n=200" in line and "extractor=mean-pool" in line for line in lines)
    assert "+-" in lines[1]
    assert "biased upwards" in err  # n = 200 is far below 10,000


def test_a_set_scored_against_itself_is_zero_and_json_carries_every_number(tmp_path, reference_file, capsys):
    samples = samples_npz(tmp_path / "same.npz", np.load(reference_file))
    code, out, err = run_eval(capsys, "--samples", str(samples), "--json", *reference_args(reference_file))
    assert code == 0, err
    result = json.loads(out)
    assert abs(result["frechet"]) < 1e-6
    assert result["precision"] == result["recall"] == 1.0
    assert (result["n"], result["extractor"], result["frechet_label"]) == (300, "mean-pool", "FD_mean-pool")
    assert result["kid_std"] >= 0 and result["kid_subset"] == 300


def test_a_folder_of_pngs_scores_like_the_same_images_in_an_npz(tmp_path, reference_file, capsys):
    from PIL import Image

    images = noise_images(150, seed=2)
    folder = tmp_path / "pngs"
    folder.mkdir()
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{i:06d}.png")
    _, from_npz, _ = run_eval(capsys, "--samples", str(samples_npz(tmp_path / "s.npz", images)), "--json",
                              *reference_args(reference_file))
    code, from_folder, err = run_eval(capsys, "--samples", str(folder), "--json", *reference_args(reference_file))
    assert code == 0, err
    assert json.loads(from_folder)["frechet"] == pytest.approx(json.loads(from_npz)["frechet"], rel=1e-9)


def test_a_run_is_sampled_and_scored_against_its_own_dataset(tmp_path, capsys):
    from workbench.config import load_config
    from workbench.engine import train

    cfg = load_config(None, TINY_RUN + [f"run.dir={tmp_path / 'runs'}"], search_cwd=False)
    run = train(cfg)
    code, out, err = run_eval(capsys, "--run", str(run.path), "--n", "20", "--extractor", "mean-pool",
                              "--device", "cpu", "--json", "--quiet")
    assert code == 0, err
    result = json.loads(out)
    assert result["n"] == 20 and result["n_reference"] == 64 and "synthetic" in result["reference"]
    assert "2 steps" in result["samples"] and result["frechet"] > 0


def test_save_reference_writes_statistics_that_load_as_a_reference(tmp_path, reference_file, capsys):
    samples = samples_npz(tmp_path / "samples.npz", noise_images(200, seed=1))
    saved = tmp_path / "ref-stats.npz"
    code, first, err = run_eval(capsys, "--samples", str(samples), "--save-reference", str(saved), "--json",
                                *reference_args(reference_file))
    assert code == 0, err
    code, second, err = run_eval(capsys, "--samples", str(samples), "--reference", str(saved), "--json",
                                 "--extractor", "mean-pool", "--quiet")
    assert code == 0, err
    assert json.loads(second)["frechet"] == pytest.approx(json.loads(first)["frechet"], rel=1e-9)


# -- bad input: one line, exit 2, nothing already written lost ---------------------------------------


def one_line_error(capsys, *args: str, code: int = 2) -> str:
    got, out, err = run_eval(capsys, *args)
    assert got == code, err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    return err


@pytest.mark.parametrize("array, message", [
    (np.zeros((40, 16, 16, 1), np.float32), "float32; expected uint8"),
    (np.zeros((40, 16, 16), np.uint8), "expected (N, H, W, C)"),
    (np.zeros((40, 16, 12, 1), np.uint8), "expected square images"),
])
def test_an_npz_of_the_wrong_shape_or_dtype(tmp_path, reference_file, capsys, array, message):
    np.savez(tmp_path / "bad.npz", arr_0=array)
    assert message in one_line_error(capsys, "--samples", str(tmp_path / "bad.npz"), *reference_args(reference_file))


def test_a_folder_with_no_images(tmp_path, reference_file, capsys):
    (tmp_path / "empty").mkdir()
    assert "holds no .png images" in one_line_error(capsys, "--samples", str(tmp_path / "empty"),
                                                    *reference_args(reference_file))


def test_a_folder_of_mixed_sizes(tmp_path, reference_file, capsys):
    from PIL import Image

    folder = tmp_path / "mixed"
    folder.mkdir()
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(folder / "a.png")
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(folder / "b.png")
    err = one_line_error(capsys, "--samples", str(folder), *reference_args(reference_file))
    assert "mixes image sizes: a.png is 16x16" in err and "b.png is 32x32" in err


def test_a_reference_of_another_image_size(tmp_path, reference_file, capsys):
    samples = samples_npz(tmp_path / "big.npz", np.zeros((40, 32, 32), np.uint8))
    err = one_line_error(capsys, "--samples", str(samples), *reference_args(reference_file))
    assert "1x16x16 images; the samples are 1x32x32" in err


def test_fewer_samples_than_feature_dimensions(tmp_path, reference_file, capsys):
    samples = samples_npz(tmp_path / "few.npz", noise_images(10))
    err = one_line_error(capsys, "--samples", str(samples), *reference_args(reference_file))
    assert "10 samples are not more than the 16 feature dimensions" in err


def empty_run(tmp_path, name: str) -> None:
    (tmp_path / "runs" / name / "checkpoints").mkdir(parents=True)
    (tmp_path / "runs" / name / "config.toml").write_text("")


def test_a_run_with_no_checkpoint(tmp_path, reference_file, capsys):
    empty_run(tmp_path, "empty")
    err = one_line_error(capsys, "--run", "empty", "--dir", str(tmp_path / "runs"), *reference_args(reference_file),
                         code=1)
    assert "has no checkpoint yet" in err


def test_best_of_a_run_that_kept_none(tmp_path, reference_file, capsys):
    empty_run(tmp_path, "r")
    err = one_line_error(capsys, "--run", "r", "--best", "--dir", str(tmp_path / "runs"),
                         *reference_args(reference_file), code=1)
    assert "has no best checkpoint" in err and "train.keep_best" in err


def test_an_unknown_extractor(tmp_path, reference_file, capsys):
    samples = samples_npz(tmp_path / "s.npz", noise_images(40))
    err = one_line_error(capsys, "--samples", str(samples), "--extractor", "inceptoin")
    assert 'did you mean "inception"' in err


def test_an_extractor_that_cannot_take_the_images(tmp_path, reference_file, capsys):
    samples = samples_npz(tmp_path / "rgb.npz", np.zeros((40, 16, 16, 3), np.uint8))
    err = one_line_error(capsys, "--samples", str(samples), *reference_args(reference_file))
    assert "cannot score 3x16x16 images: grayscale only" in err


def test_a_failed_eval_leaves_an_existing_reference_file_alone(tmp_path, reference_file, capsys):
    saved = tmp_path / "keep.npz"
    saved.write_bytes(b"earlier work")
    samples = samples_npz(tmp_path / "few.npz", noise_images(10))
    one_line_error(capsys, "--samples", str(samples), "--save-reference", str(saved), *reference_args(reference_file))
    assert saved.read_bytes() == b"earlier work"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".keep")) == []


def test_nothing_to_score(capsys):
    assert "say what to score" in one_line_error(capsys)
