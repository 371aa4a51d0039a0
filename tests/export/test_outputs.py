"""All-or-nothing outputs, frame selection and per-image seeds: the pieces the commands are built from."""

from __future__ import annotations

import os

import pytest
import torch

from workbench.errors import UsageError
from workbench.export.outputs import OutputPlan
from workbench.export.progression import frame_steps
from workbench.export.seeding import starting_noise, stream_seed


def test_outputs_appear_only_when_the_block_succeeds(tmp_path):
    with OutputPlan() as plan:
        out = plan.file(tmp_path / "a.png", suffixes=(".png",))
        folder = plan.folder(tmp_path / "pngs")
        out.write_bytes(b"png")
        folder.write_bytes("0.png", b"x")
        assert not (tmp_path / "a.png").exists() and not (tmp_path / "pngs").exists()
    assert (tmp_path / "a.png").read_bytes() == b"png"
    assert os.listdir(tmp_path / "pngs") == ["0.png"]
    assert sorted(os.listdir(tmp_path)) == ["a.png", "pngs"]  # no temporaries left


def test_outputs_are_removed_on_any_error_ctrl_c_included(tmp_path):
    for error in (RuntimeError, KeyboardInterrupt):
        with pytest.raises(error):
            with OutputPlan() as plan:
                plan.file(tmp_path / "a.npz").write_bytes(b"partial")
                plan.folder(tmp_path / "pngs").write_bytes("0.png", b"x")
                raise error
        assert os.listdir(tmp_path) == []


def test_published_files_follow_the_umask_not_0600(tmp_path):
    old = os.umask(0o022)
    try:
        with OutputPlan() as plan:
            plan.file(tmp_path / "a.png").write_bytes(b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.png").stat().st_mode & 0o777 == 0o644


def test_the_same_path_for_two_outputs_is_refused(tmp_path):
    with pytest.raises(UsageError, match="also used by another option"):
        with OutputPlan() as plan:
            plan.file(tmp_path / "a.png")
            plan.file(tmp_path / "a.png", option="--strip")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("total, frames, expected", [
    (50, 5, [0, 12, 24, 37, 49]),
    (4, 40, [0, 1, 2, 3]),
    (1000, 2, [0, 999]),
    (10, 1, [0]),
])
def test_frames_are_evenly_spaced_with_first_and_last_step(total, frames, expected):
    assert frame_steps(total, frames) == expected


def test_each_image_has_its_own_noise_stream():
    whole = starting_noise(3, 0, 5, (1, 4, 4))
    tail = starting_noise(3, 2, 3, (1, 4, 4))
    assert torch.equal(whole[2:], tail)
    assert not torch.equal(whole[0], whole[1])
    assert not torch.equal(starting_noise(4, 0, 1, (1, 4, 4)), whole[:1])
    # nearby (seed, index) pairs do not collide, as seed * big + index would
    assert len({stream_seed(s, i) for s in range(20) for i in range(20)}) == 400
