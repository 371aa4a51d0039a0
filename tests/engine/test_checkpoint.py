"""Checkpoint files: atomic replacement, rotation, safe loading and one-line errors."""

from __future__ import annotations

import os

import pytest
import torch

from workbench.engine import checkpoint as ckpt
from workbench.errors import CheckpointError, WriteFailed


def state(step: int) -> dict:
    return {"format": ckpt.FORMAT, "version": ckpt.VERSION, "step": step, "config": {},
            "model": {"w": torch.full((3,), float(step))}}


def test_save_then_load_round_trips_tensors_and_plain_data(tmp_path):
    path = tmp_path / "a.pt"
    ckpt.save_checkpoint(path, {**state(7), "rng": {"noise": torch.Generator().get_state()}, "list": [1, "x"]})
    loaded = ckpt.load_checkpoint(path)
    assert loaded["step"] == 7 and loaded["list"] == [1, "x"]
    assert torch.equal(loaded["model"]["w"], torch.full((3,), 7.0))
    assert [p.name for p in tmp_path.iterdir()] == ["a.pt"]  # no temporary file left behind


def test_a_crash_mid_write_leaves_the_previous_checkpoint_loadable(tmp_path, monkeypatch):
    path = tmp_path / "latest.pt"
    ckpt.save_checkpoint(path, state(1))

    def dies_half_way(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a zip")  # what a kill during torch.save leaves in the temporary file
        raise KeyboardInterrupt  # e.g. the second Ctrl-C

    monkeypatch.setattr(torch, "save", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_checkpoint(path, state(2))
    monkeypatch.undo()
    assert ckpt.load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["latest.pt"]


def test_a_kill_between_write_and_rename_also_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "latest.pt"
    ckpt.save_checkpoint(path, state(1))
    monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(OSError("killed")))
    with pytest.raises(WriteFailed, match="latest.pt.*kept: the previous latest.pt"):
        ckpt.save_checkpoint(path, state(2))
    monkeypatch.undo()
    assert ckpt.load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["latest.pt"], "the temporary is removed"


def test_run_checkpoints_keep_the_last_k_step_files_plus_latest(tmp_path):
    for step in (10, 20, 30, 40):
        ckpt.save_run_checkpoint(tmp_path, step, state(step), keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest.pt", "step_0000030.pt", "step_0000040.pt"]
    assert ckpt.load_checkpoint(tmp_path / "latest.pt")["step"] == 40
    # latest.pt survives the deletion of the step file it was made from
    ckpt.prune_checkpoints(tmp_path, keep=0)
    assert ckpt.load_checkpoint(tmp_path / "latest.pt")["step"] == 40


class NotATensor:
    pass


def test_loading_refuses_pickled_python_objects(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({**state(1), "payload": NotATensor()}, path)
    with pytest.raises(CheckpointError, match="refusing to unpickle") as info:
        ckpt.load_checkpoint(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("damage", ["missing", "truncated", "text", "directory", "foreign"])
def test_bad_files_are_one_line_checkpoint_errors_naming_the_file(tmp_path, damage):
    path = tmp_path / "x.pt"
    if damage == "truncated":
        ckpt.save_checkpoint(path, state(1))
        path.write_bytes(path.read_bytes()[:200])
    elif damage == "text":
        path.write_text("hello")
    elif damage == "directory":
        path.mkdir()
    elif damage == "foreign":
        torch.save({"weights": torch.ones(2)}, path)
    with pytest.raises(CheckpointError) as info:
        ckpt.load_checkpoint(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    expected = {"missing": "does not exist", "truncated": "truncated", "text": "truncated",
                "directory": "is a directory", "foreign": "not a ddpm-workbench checkpoint"}[damage]
    assert expected in message


@pytest.mark.parametrize("damage", ["truncated", "text"])
def test_a_damaged_checkpoint_points_to_an_intact_one_beside_it(tmp_path, damage):
    for step in (2, 4):
        ckpt.save_checkpoint(tmp_path / f"step_{step:07d}.pt", state(step))
    latest = tmp_path / "latest.pt"
    ckpt.save_checkpoint(latest, state(6))
    latest.write_bytes(latest.read_bytes()[:300] if damage == "truncated" else b"# some notes, not a checkpoint\n")
    with pytest.raises(CheckpointError) as info:
        ckpt.load_checkpoint(latest)
    message = str(info.value)
    assert "truncated or not a checkpoint" in message and "\n" not in message
    assert f"step_0000004.pt beside it looks intact: sample with --checkpoint {tmp_path / 'step_0000004.pt'}" in message


def test_find_run_checkpoint_explains_a_run_without_one(tmp_path):
    from workbench.engine.rundir import RunDirectory

    run = RunDirectory.create(tmp_path, "empty")
    run.write_config("[run]\n")
    with pytest.raises(CheckpointError, match="has no checkpoint yet"):
        ckpt.find_run_checkpoint("empty", tmp_path)
    with pytest.raises(CheckpointError, match="not found"):
        ckpt.find_run_checkpoint("nope", tmp_path)
    ckpt.save_checkpoint(run.checkpoints_dir / "step_0000005.pt", state(5))
    assert ckpt.find_run_checkpoint("latest", tmp_path).name == "step_0000005.pt"
