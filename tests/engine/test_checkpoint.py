"""Checkpoint files: atomic replacement, rotation, safe loading and one-line errors."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

from workbench.config import resolve
from workbench.engine import checkpoint as ckpt
from workbench.engine.distributed import Distributed
from workbench.engine.setup import build_training_run
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


# -- the training-state codec -----------------------------------------------------------------------

V1_KEYS = {"format", "version", "step", "config", "channels", "image_size", "out_channels", "model", "ema",
           "optimizer", "scaler", "lr_schedule", "rng", "data_ranks", "metric_window", "world_size", "elapsed_s"}
# Added since, still version 1: readers .get them, so a checkpoint without them loads as before.
OPTIONAL_KEYS = {"quality_best", "class_names"}


# Written by the engine as it was at commit 94c2e01, before the codec moved here (a 3-step run: synthetic 8 px
# data, a unet of base_channels 4, T = 10, fp32 on the CPU). Any later version-1 writer must stay loadable.
V1_FILE = Path(__file__).parent / "data" / "checkpoint_v1.pt"


@pytest.fixture
def training_run(tmp_path):
    from tests.engine.conftest import tiny_config

    cfg = tiny_config(tmp_path)
    return lambda resume=None: build_training_run(cfg, Distributed(), torch.device("cpu"), resume)


def test_the_codec_writes_exactly_the_version_1_keys(training_run):
    run = training_run()
    state = ckpt.encode_training_state(run, 3, data_ranks=[run.data.state_dict()],
                                       rng_ranks=[ckpt.rank_rng_state(run.device)], elapsed_s=2.0)
    assert set(state) == V1_KEYS | OPTIONAL_KEYS and (state["format"], state["version"]) == (ckpt.FORMAT, 1)


def test_a_checkpoint_written_before_the_change_restores_every_piece():
    from workbench.engine.setup import ResumePoint

    state = ckpt.load_checkpoint(V1_FILE)
    assert state["version"] == 1 and set(state) == V1_KEYS
    cfg = resolve(state["config"], source="v1 checkpoint")
    run = build_training_run(cfg, Distributed(), torch.device("cpu"), ResumePoint(None, V1_FILE, state))
    assert (run.step, run.start_step, run.last_log_step, run.last_checkpoint) == (3, 3, 3, (3, V1_FILE))
    assert run.elapsed_before == state["elapsed_s"] > 0
    for key, value in state["model"].items():
        assert torch.equal(run.model.state_dict()[key], value), key
    for key, value in state["ema"].items():
        assert torch.equal(run.ema.state_dict()[key], value), key
    assert run.data.state_dict() == state["data_ranks"][0]
    assert torch.equal(run.noise_generator.get_state(), state["rng"]["noise"])
    assert torch.equal(run.window.values, state["metric_window"]["values"])


def test_a_run_checkpointed_before_the_change_trains_on(tmp_path):
    from tests.engine.conftest import Recorder
    from workbench.engine import train

    folder = tmp_path / "v1" / "checkpoints"
    folder.mkdir(parents=True)
    shutil.copy(V1_FILE, folder / "latest.pt")
    cfg = resolve(ckpt.load_checkpoint(V1_FILE)["config"]).with_overrides([f"run.dir={tmp_path}", "train.steps=5"])
    (tmp_path / "v1" / "config.toml").write_text(cfg.to_toml())
    recorder = Recorder()
    train(cfg, resume="v1", on_event=recorder)
    assert recorder.of("started")[0].start_step == 3 and recorder.of("finished")[0].step == 5
    resumed = ckpt.load_checkpoint(folder / "latest.pt")
    assert resumed["step"] == 5 and set(resumed) == V1_KEYS | OPTIONAL_KEYS
