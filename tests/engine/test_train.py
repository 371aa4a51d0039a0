"""End-to-end training on the tiny config: what lands in the run directory, what on_event sees, exact resume,
stopping, the control channel, and user errors that must leave nothing behind."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from tests.engine.conftest import Recorder, StopAfter, jsonl, metric_losses, tiny_config
from workbench.engine import train
from workbench.engine.checkpoint import load_checkpoint
from workbench.sampling.model import load_for_sampling
from workbench.engine.events import event_from_dict
from workbench.engine.rundir import RunDirectory, status_update
from workbench.errors import CheckpointError, DatasetError, UsageError
from workbench.pictures import native_pixels


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """One 12-step run shared by the read-only tests below."""
    base = tmp_path_factory.mktemp("runs")
    recorder = Recorder()
    run = train(tiny_config(base, "run.name=full"), on_event=recorder)
    return run, recorder


def test_run_directory_holds_config_metrics_samples_checkpoints_and_status(finished_run):
    run, _ = finished_run
    assert run.path.name == "full"
    assert "[train]" in run.config_path.read_text() and "steps = 12" in run.config_path.read_text()
    metrics = jsonl(run.metrics_path)
    assert [m["step"] for m in metrics] == [4, 8, 12]
    for m in metrics:
        for key in ("loss", "lr", "grad_norm", "img_per_s", "it_per_s"):
            assert np.isfinite(m[key]) and m[key] >= 0, key
        assert len(m["loss_quartiles"]) == 4
    assert [p.name for p in run.sample_grids()] == ["step_0000006.png", "step_0000012.png"]
    with Image.open(run.sample_grids()[-1]) as grid:
        # 4 samples of 16 px -> a 2x2 grid with 2 px padding around and between tiles, enlarged
        # sample.grid_scale = 4 times to be viewable outside the workbench
        assert grid.size == (4 * (2 + 2 * 18), 4 * (2 + 2 * 18)) and grid.mode == "L"
        assert native_pixels(grid).size == (2 + 2 * 18, 2 + 2 * 18)
    names = sorted(p.name for p in run.checkpoints_dir.iterdir())
    assert names == ["latest.pt", "step_0000006.pt", "step_0000012.pt"]
    status = run.read_status()
    assert status["state"] == "finished" and status["step"] == 12 and status["total_steps"] == 12


def status_from_events(run: RunDirectory) -> dict:
    """status.json as the events on disk say it should be: each event's `status_update`, in order."""
    status: dict = {}
    for event in sorted(run.history(), key=lambda e: e.time):
        update = status_update(event)
        if update is not None:
            state, fields = update
            status.update(fields, state=state or status.get("state", "running"))
    return status


def test_status_json_is_what_the_published_events_say(finished_run):
    run, _ = finished_run
    written = {k: v for k, v in run.read_status().items() if k not in ("pid", "host", "updated_at")}
    assert written == status_from_events(run)
    assert written["state"] == "finished" and written["last_checkpoint"].endswith("step_0000012.pt")


def test_events_reach_on_event_and_the_jsonl_files_alike(finished_run):
    run, recorder = finished_run
    kinds = [e.kind for e in recorder.events]
    assert kinds[0] == "started" and kinds[-1] == "finished"
    assert kinds.count("metrics") == 3 and kinds.count("samples") == 2 and kinds.count("checkpoint") == 2
    on_disk = sorted(run.history(), key=lambda e: e.time)
    assert [e.to_dict() for e in on_disk] == [e.to_dict() for e in recorder.events]
    started = recorder.of("started")[0]
    assert started.total_steps == 12 and started.image_shape == (1, 16, 16)
    assert started.parameters > 0 and started.flops_per_image > 0
    samples = recorder.of("samples")[-1]
    assert samples.image.dtype == np.uint8 and samples.image.shape == (38, 38, 1)  # pixels travel in-process
    assert "image" not in json.loads(run.events_path.read_text().splitlines()[-3])  # never into the JSONL


def test_sample_grids_come_from_the_same_fixed_noise(tmp_path):
    """With lr tiny, the EMA weights barely move, so grids from fixed noise are nearly identical; fresh noise
    each time would make them differ completely."""
    run = train(tiny_config(tmp_path, "train.lr=1e-9", "train.steps=4", "train.sample_every=2"))
    first, second = (np.asarray(Image.open(p), dtype=np.float32) for p in run.sample_grids())
    assert np.abs(first - second).mean() < 1.0


def test_checkpoint_has_everything_to_resume_and_loads_for_sampling(finished_run):
    run, _ = finished_run
    state = load_checkpoint(run.latest_checkpoint)
    assert state["step"] == 12 and state["config"]["train"]["steps"] == 12
    for key in ("model", "ema", "optimizer", "rng", "data_ranks", "metric_window"):
        assert state[key] is not None, key
    bundle = load_for_sampling(run="full", base_dir=run.path.parent)
    assert bundle.step == 12 and bundle.channels == 1 and bundle.image_size == 16 and bundle.ema
    assert not bundle.model.training
    ema_weight = next(iter(state["ema"].values()))
    assert torch.equal(next(iter(bundle.model.state_dict().values())), ema_weight)
    raw = load_for_sampling(checkpoint=str(run.latest_checkpoint), ema=False)
    assert torch.equal(next(iter(raw.model.state_dict().values())), next(iter(state["model"].values())))


def test_load_for_sampling_refuses_a_checkpoint_that_does_not_match_its_backbone(finished_run, tmp_path):
    run, _ = finished_run
    state = load_checkpoint(run.latest_checkpoint)
    state["config"]["backbone"]["base_channels"] = 32
    from workbench.engine.checkpoint import save_checkpoint

    save_checkpoint(tmp_path / "odd.pt", state)
    with pytest.raises(CheckpointError, match="does not match backbone 'unet'") as info:
        load_for_sampling(checkpoint=str(tmp_path / "odd.pt"))
    assert "\n" not in str(info.value)


def test_resume_continues_exactly_like_an_uninterrupted_run(tmp_path):
    """Stopped at step 5 (inside a log window, with dropout on) and resumed: the same losses after step 5,
    bit for bit, and the same final weights."""
    extra = ("train.steps=12", "train.log_every=2", "backbone.dropout=0.1", "train.sample_every=0",
             "train.checkpoint_every=0")
    whole = train(tiny_config(tmp_path / "a", *extra, "run.name=whole"))
    first = train(tiny_config(tmp_path / "b", *extra, "run.name=split"), stop_event=StopAfter(5))
    assert load_checkpoint(first.latest_checkpoint)["step"] == 5
    assert first.read_status()["state"] == "stopped"
    resumed = train(tiny_config(tmp_path / "b", *extra, "run.name=split"), resume="split")
    assert resumed.path == first.path
    expected = {s: v for s, v in metric_losses(whole).items() if s > 5}
    got = {s: v for s, v in metric_losses(resumed).items() if s > 5}
    assert got == expected and len(got) == 4
    a, b = load_checkpoint(whole.latest_checkpoint), load_checkpoint(resumed.latest_checkpoint)
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
        assert torch.equal(a["ema"][key], b["ema"][key]), key
    started = [e for e in map(event_from_dict, jsonl(resumed.events_path)) if e.kind == "started"]
    assert [e.start_step for e in started] == [0, 5]


def test_resume_refuses_a_config_that_changes_the_network(tmp_path):
    run = train(tiny_config(tmp_path, "train.steps=2", "run.name=r"))
    with pytest.raises(CheckpointError, match=r"\[backbone\] base_channels = 16 but the config says 32"):
        train(tiny_config(tmp_path, "train.steps=4", "backbone.base_channels=32"), resume="r")
    assert load_checkpoint(run.latest_checkpoint)["step"] == 2


def test_stop_event_writes_a_checkpoint_and_finishes_stopped(tmp_path):
    recorder = Recorder()
    run = train(tiny_config(tmp_path, "train.steps=1000"), on_event=recorder, stop_event=StopAfter(3))
    assert load_checkpoint(run.latest_checkpoint)["step"] == 3
    finished = recorder.of("finished")[0]
    assert finished.stopped_early and finished.step == 3
    assert [e.state for e in recorder.of("state")] == ["stopping"]


def test_control_channel_drives_sample_checkpoint_pause_resume_and_stop(tmp_path, monkeypatch):
    monkeypatch.setattr("workbench.engine.control.CONTROL_POLL_S", 0.0)
    holder = {}

    def drive(event):
        run = holder.setdefault("run", RunDirectory(event.run_dir) if event.kind == "started" else None)
        if event.kind == "started":
            run.send_control("sample")
            run.send_control("checkpoint")
            run.send_control("pause")
        if event.kind == "state":  # status.json is already written from the event the consumer sees
            holder.setdefault("status", []).append(run.read_status()["state"])
        if event.kind == "state" and event.state == "paused":
            run.send_control("resume")
        elif event.kind == "metrics" and event.step == 4:
            run.send_control("stop")

    recorder = Recorder(drive)
    run = train(tiny_config(tmp_path, "train.steps=1000", "train.sample_every=0", "train.checkpoint_every=0"),
                on_event=recorder)
    assert [e.step for e in recorder.of("samples")] == [0]
    assert [e.step for e in recorder.of("checkpoint")] == [0, 4]
    assert [(e.state, e.step) for e in recorder.of("state")] == [("paused", 0), ("resumed", 0), ("stopping", 4)]
    assert holder["status"] == ["paused", "running", "stopping"]
    assert recorder.of("finished")[0].stopped_early and run.read_status()["state"] == "stopped"
    assert list(run.control_dir.iterdir()) == []


def test_tensorboard_missing_is_a_warning_not_a_failure(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_tensorboard(name, *args, **kwargs):
        if name.startswith("torch.utils.tensorboard"):
            raise ImportError("No module named 'tensorboard'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    recorder = Recorder()
    train(tiny_config(tmp_path, "train.steps=2", "train.tensorboard=true"), on_event=recorder)
    assert any("tensorboard" in w.message.lower() for w in recorder.of("warning"))
    assert recorder.of("finished")


def test_user_errors_before_training_leave_no_run_directory(tmp_path):
    with pytest.raises(DatasetError):
        train(tiny_config(tmp_path, "dataset.name=npy", f"dataset.path={tmp_path / 'missing.npy'}"))
    assert not (tmp_path / "runs").exists() and list(tmp_path.iterdir()) == []


def test_an_existing_run_directory_is_not_overwritten_without_resume(finished_run):
    run, _ = finished_run
    before = {p: p.stat().st_mtime_ns for p in run.path.rglob("*")}
    with pytest.raises(UsageError, match=r"already holds .*checkpoints.*--resume"):
        train(tiny_config(run.path.parent), run_dir=run.path)
    assert {p: p.stat().st_mtime_ns for p in run.path.rglob("*")} == before


def test_run_dir_refuses_a_folder_of_other_files_and_a_file(tmp_path):
    mine = tmp_path / "project"
    (mine / "samples").mkdir(parents=True)
    (mine / "config.toml").write_text("mine")
    (mine / "samples" / "step_0000002.png").write_bytes(b"not ours")
    with pytest.raises(UsageError, match=r"already holds config.toml, samples; name a new or empty folder"):
        train(tiny_config(tmp_path, "train.steps=2"), run_dir=mine)
    assert (mine / "config.toml").read_text() == "mine" and sorted(p.name for p in mine.iterdir()) == [
        "config.toml", "samples"]
    a_file = tmp_path / "base.log"
    a_file.write_text("x")
    with pytest.raises(UsageError, match="is a file; name a new or empty folder"):
        train(tiny_config(tmp_path, "train.steps=2"), run_dir=a_file)


def test_run_dir_accepts_what_a_launcher_prepared(tmp_path):
    prepared = RunDirectory.create(tmp_path / "runs", "tui")  # empty subfolders, as the TUI makes them
    (prepared.path / "launch.toml").write_text("# the TUI's config\n")
    (prepared.path / "train.log").write_text("")
    train(tiny_config(tmp_path, "train.steps=2"), run_dir=prepared.path)
    assert prepared.read_status()["state"] == "finished" and prepared.latest_checkpoint.is_file()


def test_a_run_another_process_is_training_is_refused(tmp_path):
    import subprocess
    import sys

    train(tiny_config(tmp_path, "train.steps=2", "run.name=live", "train.checkpoint_every=1"))
    run = RunDirectory(tmp_path / "live")
    # a process whose command line names workbench stands in for the engine that owns the run
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "workbench"])
    try:
        status = run.read_status()
        run.status_path.write_text(json.dumps({**status, "state": "running", "pid": owner.pid}))
        events_before = run.events_path.read_bytes()
        for kwargs in ({"resume": "live"}, {"run_dir": run.path}):
            with pytest.raises(UsageError, match=f"being trained right now by process {owner.pid}; stop it first"):
                train(tiny_config(tmp_path, "train.steps=4"), **kwargs)
        assert run.events_path.read_bytes() == events_before
    finally:
        owner.kill()
        owner.wait()
    # once that process is gone the status is stale, and resuming goes ahead
    train(tiny_config(tmp_path, "train.steps=4"), resume="live")
    assert run.read_status()["state"] == "finished" and run.read_status()["step"] == 4


def test_an_abort_is_recorded_as_failed_in_status_and_events_alike(tmp_path):
    def second_ctrl_c(event):
        if event.kind == "metrics" and event.step >= 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(tmp_path, "train.steps=50", "run.name=aborted", "train.log_every=1"),
              on_event=Recorder(second_ctrl_c))
    run = RunDirectory(tmp_path / "aborted")
    failed = [e for e in jsonl(run.events_path) if e["kind"] == "failed"]
    assert len(failed) == 1 and "aborted by a second Ctrl-C" in failed[0]["message"]
    assert run.read_status()["state"] == "failed"
    assert run.read_status()["message"] == status_from_events(run)["message"] == failed[0]["message"]


def test_resume_with_a_run_dir_elsewhere_is_refused(tmp_path):
    train(tiny_config(tmp_path, "train.steps=2", "run.name=done"))
    with pytest.raises(UsageError, match="in its own directory; leave out --run-dir"):
        train(tiny_config(tmp_path, "train.steps=4"), resume="done", run_dir=tmp_path / "other")
    assert not (tmp_path / "other").exists()


def test_resuming_a_finished_run_says_how_to_train_longer(tmp_path):
    train(tiny_config(tmp_path, "train.steps=2", "run.name=done"))
    recorder = Recorder()
    train(tiny_config(tmp_path, "train.steps=2"), resume="done", on_event=recorder)
    assert any("raise it to train longer" in w.message for w in recorder.of("warning"))
    assert recorder.of("finished")[0].step == 2 and not recorder.of("metrics")
