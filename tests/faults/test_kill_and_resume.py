"""SIGKILL at seeded random moments of a tiny training run, then resume: no checkpoint is ever half-written,
resume removes the dead process's temporaries, metrics.jsonl keeps one entry per step, and the run finishes.
A run killed before its first checkpoint is reported as abandoned and refused by --resume in one line."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time

import pytest
import torch

from tests.faults.helpers import cli, environment, leftovers, one_line_error, tiny_args

STEPS = 120
TRIES = 3  # kills per seed: each lands somewhere in the start-up, a step, a sample or a checkpoint write


def start_training(tmp_path, *extra):
    # metrics every 2 steps, checkpoints every 6: a kill between them leaves metrics a resume replays
    args = tiny_args(f"train.steps={STEPS}", "train.checkpoint_every=6", "train.sample_every=24",
                     "train.log_every=2", "run.dir=runs", "run.name=k")
    env = {**environment(tmp_path), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "workbench", "train", "--plain", *args, *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path)


def kill_after_training_starts(process, delay: float) -> bool:
    """SIGKILL `delay` seconds after the first step line; False when the process ended first."""
    for line in process.stdout:
        if " step " in line:
            break
    else:
        return False
    time.sleep(delay)
    if process.poll() is not None:
        return False
    process.send_signal(signal.SIGKILL)
    process.wait(30)
    return True


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_finishes_with_clean_files(tmp_path):
    rng = random.Random(16)
    run = tmp_path / "runs" / "k"
    kills = 0
    process = start_training(tmp_path)
    for attempt in range(TRIES):
        killed = kill_after_training_starts(process, rng.uniform(0.0, 0.6))
        process.stdout.close()
        if not killed:
            break
        kills += 1
        latest = run / "checkpoints" / "latest.pt"
        if latest.exists():  # never half a checkpoint, whenever the kill landed
            assert int(torch.load(latest, weights_only=True, map_location="cpu")["step"]) % 6 == 0
        else:
            resumed = cli(tmp_path, "train", "--plain", "--resume", str(run))
            assert "cannot be resumed" in one_line_error(resumed, 1)
            return  # killed before its first checkpoint: nothing to continue (covered below as well)
        process = start_training(tmp_path, "--resume", str(run))
    else:
        assert process.wait(120) == 0
    assert kills >= 1, "no kill landed during training; the run is too short for this machine"
    if process.poll() is None:
        assert process.wait(120) == 0
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "finished" and status["step"] == STEPS
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(steps) == len(set(steps)) and steps == sorted(steps), "one metrics entry per step"
    assert steps[-1] == STEPS
    assert leftovers(run) == []


def test_a_run_killed_before_its_first_checkpoint_is_abandoned_not_running(tmp_path, capsys):
    from workbench.cli import main
    from workbench.engine.rundir import RunDirectory

    process = start_training(tmp_path)
    for line in process.stdout:
        if line.startswith("run directory:"):
            break
    process.send_signal(signal.SIGKILL)
    process.wait(30)
    process.stdout.close()
    run = tmp_path / "runs" / "k"
    state, why = RunDirectory(run).observed_state()
    if (run / "checkpoints" / "latest.pt").exists():  # the machine was fast enough to write one meanwhile
        assert state == "failed"
        return
    assert json.loads((run / "status.json").read_text())["state"] in ("starting", "running")
    assert state == "abandoned" and "never wrote a checkpoint" in why
    assert main(["train", "--plain", "--resume", str(run)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot be resumed: its process" in err


def test_resume_removes_the_temporaries_a_killed_checkpoint_write_left(tmp_path):
    from workbench.config import load_config
    from workbench.engine.trainer import train

    cfg = load_config(None, [a for a in tiny_args("train.steps=4", "train.checkpoint_every=2",
                                                  f"run.dir={tmp_path / 'runs'}", "run.name=t") if a != "--set"],
                      search_cwd=False)
    run = train(cfg).path
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    stale = [run / "checkpoints" / f".step_0000006.pt.{gone.pid}.tmp",
             run / "checkpoints" / f".latest.pt.{gone.pid}.tmp"]
    for path in stale:
        path.write_bytes(b"\0" * 100)
    with (run / "metrics.jsonl").open("a") as f:  # what a run killed after logging step 6 would have left
        f.write(json.dumps({"kind": "metrics", "step": 6, "loss": 1.0, "time": 0}) + "\n")
    train(cfg.with_overrides(["train.steps=6"]), resume=str(run))
    assert leftovers(run) == []
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == 6
