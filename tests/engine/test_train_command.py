"""`ddpm-workbench train`: output, one-line errors, resume, and a real SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.engine.conftest import TINY
from workbench.cli import main
from workbench.engine.checkpoint import load_checkpoint
from workbench.engine.rundir import RunDirectory, list_runs

REPO = Path(__file__).resolve().parents[2]


def sets(*extra: str) -> list[str]:
    args = []
    for item in [*TINY, *extra]:
        args += ["--set", item]
    return args


def test_plain_output_names_the_run_directory_at_start_and_end(in_tmp_cwd, capsys):
    assert main(["train", "--plain", *sets("train.steps=4", "train.sample_every=0")]) == 0
    out = capsys.readouterr().out.splitlines()
    run = list_runs("runs")[0]
    assert any(line.endswith(f"run directory: {run.path}") for line in out[:3])
    assert out[-1] == f"run directory: {run.path} (finished)"
    assert any("step 4/4 loss" in line and "img/s" in line for line in out)
    assert run.read_status()["state"] == "finished"


def test_plain_output_says_the_length_train_minutes_set_and_counts_to_it(in_tmp_cwd, capsys):
    assert main(["train", "--plain", *sets("train.steps=100000", "train.minutes=0.1", "train.sample_every=0",
                                           "train.checkpoint_every=0")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert any("training for up to 100000 steps (train.minutes = 0.1)" in line for line in out)
    note = next(line for line in out if "train.minutes = 0.1: " in line)
    total = int(note.split("training ")[1].split(" steps")[0])
    assert "s/step" in note and ", ends about " in note and total < 100000
    assert any(f"step {total}/{total} loss" in line for line in out)
    assert list_runs("runs")[0].read_status()["total_steps"] == total


def test_the_length_line_names_the_budget_speed_steps_and_end_time():
    from workbench.commands.train import describe
    from workbench.engine.events import LengthSet

    event = LengthSet(total_steps=700, minutes=11.0, seconds_per_step=0.95, step=30, eta_s=600.0,
                      time=time.mktime((2026, 1, 1, 12, 24, 0, 0, 0, -1)))
    assert describe(event) == "train.minutes = 11: 0.95 s/step, training 700 steps, ends about 12:34"


def test_resume_latest_continues_with_the_runs_own_config_and_more_steps(in_tmp_cwd, capsys):
    assert main(["train", "--plain", *sets("train.steps=4", "run.name=r")]) == 0
    # no TINY here: the run's own config.toml is the base, --set raises the step count
    assert main(["train", "--plain", "--resume", "latest", "--set", "train.steps=6"]) == 0
    out = capsys.readouterr().out
    assert "resuming at step 4 for 6 steps" in out
    assert load_checkpoint(Path("runs/r/checkpoints/latest.pt"))["step"] == 6


NO_DATASET = [item for item in TINY if not item.startswith("dataset.")]


@pytest.mark.parametrize("argv, expected", [
    (sets("train.lr=-1"), "error: [train] lr = -1.0 is out of range"),
    (sets("train.batch_size=6", "train.grad_accum=4"), "error: [train] batch_size = 6 is not divisible"),
    (sets() + ["--resume", "nosuchrun"], "error: run 'nosuchrun' not found"),
    (["--config", "missing.toml"], "error: config file 'missing.toml' does not exist"),
    ([a for item in NO_DATASET + ["dataset.name=npy", "dataset.path=nothing.npy"] for a in ("--set", item)],
     "error: array file nothing.npy does not exist"),
])
def test_user_errors_are_one_line_and_create_nothing(in_tmp_cwd, capsys, argv, expected):
    code = main(["train", *argv])
    err = capsys.readouterr().err.strip()
    assert code in (1, 2)
    assert err.startswith(expected) and "\n" not in err and "Traceback" not in err
    assert not Path("runs").exists()


def start_training(tmp_path, **popen):
    """A real `train` process with a tiny model, waiting until it has logged step 2; returns (process, run)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "workbench", "train", "--plain", "--run-dir", str(tmp_path / "run"),
               *sets("train.steps=100000", "train.sample_every=0", "train.checkpoint_every=0", "train.log_every=1")]
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, **popen)
    run = RunDirectory(tmp_path / "run")
    deadline = time.monotonic() + 120
    while run.read_status().get("step", 0) < 2:
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"training did not start: {process.communicate()}")
        time.sleep(0.2)
    return process, run


def assert_stopped_with_a_checkpoint(process, run) -> None:
    assert process.returncode == 0
    status = run.read_status()
    assert status["state"] == "stopped"
    assert load_checkpoint(run.latest_checkpoint)["step"] == status["step"] >= 2


@pytest.mark.slow
def test_sigterm_stops_with_a_checkpoint_and_exit_code_0(tmp_path):
    """A real process: SIGTERM after training started -> checkpoint at the current step, status stopped, exit 0."""
    process, run = start_training(tmp_path)
    try:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert_stopped_with_a_checkpoint(process, run)
    assert "SIGTERM: stopping after this step" in err
    assert out.strip().splitlines()[-1] == f"run directory: {run.path} (stopped)"


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGHUP], ids=["Ctrl-C", "hang-up"])
def test_a_stop_with_its_output_gone_still_writes_the_checkpoint(tmp_path, signum):
    """`train ... | head -2` then Ctrl-C, or an SSH session dropping: the pipes (or the terminal) are gone when
    the signal comes, and the stop notice cannot be printed. The run must still stop with its checkpoint."""
    process, run = start_training(tmp_path)
    try:
        process.stdout.close()
        process.stderr.close()
        process.send_signal(signum)
        process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert_stopped_with_a_checkpoint(process, run)
    assert not (run.path / "traceback.txt").exists()


@pytest.mark.slow
def test_under_nohup_a_hang_up_does_not_stop_training(tmp_path):
    process, run = start_training(tmp_path, preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
    try:
        process.send_signal(signal.SIGHUP)
        step = run.read_status()["step"]
        deadline = time.monotonic() + 60
        while run.read_status()["step"] < step + 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert process.poll() is None and run.read_status()["state"] == "running"
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert_stopped_with_a_checkpoint(process, run)


def test_resume_with_another_config_file_is_refused(in_tmp_cwd, capsys):
    assert main(["train", "--plain", *sets("train.steps=2", "run.name=r")]) == 0
    Path("other.toml").write_text("[train]\nbatch_size = 64\n")
    before = Path("runs/r/config.toml").read_text()
    capsys.readouterr()
    assert main(["train", "--resume", "r", "--config", "other.toml"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --resume continues run") and "leave out --config other.toml" in err
    assert err.count("\n") == 1 and Path("runs/r/config.toml").read_text() == before


def test_every_command_finds_runs_in_the_configs_run_dir_and_resume_takes_a_checkpoint(in_tmp_cwd, capsys):
    # ./workbench.toml moves the runs folder: train writes there, and sample and resume look there too
    Path("workbench.toml").write_text('[run]\ndir = "elsewhere"\n')
    assert main(["train", "--plain", *sets("train.steps=4", "train.checkpoint_every=2", "train.keep_checkpoints=3", "run.name=r",
                                           "run.dir=elsewhere")]) == 0
    assert main(["sample", "--run", "latest", "--n", "2", "--steps", "2", "--out", "grid.png", "--quiet"]) == 0
    assert Path("grid.png").is_file()
    # --resume RUN|CHECKPOINT: from the step-2 checkpoint, not the newest one
    step2 = Path("elsewhere/r/checkpoints/step_0000002.pt")
    assert main(["train", "--plain", "--resume", str(step2), "--set", "train.steps=5"]) == 0
    assert "resuming at step 2 for 5 steps" in capsys.readouterr().out
    assert load_checkpoint(Path("elsewhere/r/checkpoints/latest.pt"))["step"] == 5
    # a checkpoint file outside a run directory cannot be resumed: that is --init-from's job
    Path("loose.pt").write_bytes(step2.read_bytes())
    assert main(["train", "--plain", "--resume", "loose.pt"]) == 2
    assert "is not inside a run directory" in capsys.readouterr().err
