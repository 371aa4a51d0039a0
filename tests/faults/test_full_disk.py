"""A full disk (a tiny tmpfs, or a file-size limit where no tmpfs can be mounted): training, sampling and the
forward strip each end with one line naming the path, and leave no temporary file behind."""

from __future__ import annotations

import json

import pytest

from tests.faults.helpers import cli, leftovers, one_line_error, tiny_args

FULL = ("no space left on the device", "file-size limit")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("trained")
    result = cli(tmp_path, "train", "--plain", *tiny_args("train.steps=2", "run.dir=runs", "run.name=r"))
    assert result.returncode == 0, result.stderr[-2000:]
    return tmp_path / "runs" / "r" / "checkpoints" / "latest.pt"


def test_training_onto_a_full_disk_fails_in_one_line_and_leaves_no_temporary(tmp_path, small_disk):
    disk = small_disk(256 * 1024)  # config, status and metrics fit; a 3 MB checkpoint does not
    result = cli(tmp_path, "train", "--plain", *tiny_args("train.steps=4", "train.checkpoint_every=2",
                                                         f"run.dir={disk.folder}", "run.name=r"), **disk.popen)
    line = one_line_error(result, 1)
    assert "training failed at step 2: cannot write" in line and "step_0000002.pt" in line
    assert any(words in line for words in FULL), line
    assert leftovers(disk.folder) == []
    assert json.loads((disk.folder / "r" / "status.json").read_text())["state"] == "failed"


def test_a_new_run_on_a_disk_too_full_for_its_status_leaves_no_empty_temporary(tmp_path, small_disk):
    disk = small_disk(1024)
    result = cli(tmp_path, "train", "--plain", *tiny_args("train.steps=2", f"run.dir={disk.folder}", "run.name=r"),
                 **disk.popen)
    assert result.returncode in (1, 2) and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert leftovers(disk.folder) == []


# pngs: each 16x16 file is ~200 bytes, so under a file-size limit only a tiny one fails (a tmpfs rounds it
# up to one page, which the second file overflows)
@pytest.mark.parametrize("fmt, out, capacity", [("grid", "s.png", 4096), ("npz", "s.npz", 4096),
                                                ("pngs", "pngs", 100)])
def test_sample_onto_a_full_disk_is_one_line_and_writes_nothing(tmp_path, small_disk, checkpoint, fmt, out,
                                                                capacity):
    disk = small_disk(capacity)
    result = cli(tmp_path, "sample", "-q", "--checkpoint", str(checkpoint), "--n", "64", "--steps", "2",
                 "--format", fmt, "--out", str(disk.folder / out), **disk.popen)
    line = one_line_error(result, 1)
    assert str(disk.folder / out) in line and "kept: nothing" in line
    assert any(words in line for words in FULL), line
    assert sorted(p.name for p in disk.folder.iterdir() if p.name != "lost+found") == []


def test_forward_onto_a_full_disk_is_one_line(tmp_path, small_disk):
    disk = small_disk(4096)
    result = cli(tmp_path, "forward", "--set", "dataset.name=synthetic", "--set", "dataset.size=16", "--n", "8",
                 "--scale", "4", "--out", str(disk.folder / "f.png"), **disk.popen)
    line = one_line_error(result, 1)
    assert "f.png" in line and any(words in line for words in FULL), line
    assert list(disk.folder.iterdir()) == []
