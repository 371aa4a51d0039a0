"""SIGTERM (e.g. `kill`, a job scheduler's time limit) cleans up like Ctrl-C: real processes, real signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DATA = ["--set", "dataset.name=synthetic", "--set", "dataset.size=32", "--set", "dataset.count=1000",
        "--set", "dataset.pad_to=0", "--set", "schedule.timesteps=50"]


def temporaries(*folders: Path) -> list[str]:
    return [name for folder in folders for name in os.listdir(folder) if name.endswith(".tmp")]


def test_sigterm_while_working_leaves_nothing_behind_and_exits_143(tmp_path, tiny_checkpoint):
    """Three commands at once (to share the start-up time): a grid, PNGs into an existing empty folder, and
    a forward strip. Each gets SIGTERM once its temporary exists, i.e. while it is working."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    sample = [sys.executable, "-m", "workbench", "sample", "-q", "--checkpoint", str(tiny_checkpoint),
              "--n", "100000", "--steps", "50"]
    folders = {"grid": tmp_path / "grid", "pngs": tmp_path / "pngs", "forward": tmp_path / "forward"}
    for folder in folders.values():
        folder.mkdir()
    (tmp_path / "pngs" / "out").mkdir(mode=0o700)
    (tmp_path / "pngs" / "out").chmod(0o700)
    commands = {
        "grid": sample + ["--out", "keep.png"],
        "pngs": sample + ["--format", "pngs", "--out", "out"],
        "forward": [sys.executable, "-m", "workbench", "forward", *DATA, "--n", "1000", "--schedules",
                    "linear,cosine", "--out", "fw.png"],
    }
    where = {"grid": [folders["grid"]], "pngs": [folders["pngs"], folders["pngs"] / "out"], "forward": [folders["forward"]]}
    processes = {name: subprocess.Popen(command, cwd=folders[name], env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
                 for name, command in commands.items()}
    try:
        deadline = time.monotonic() + 60
        waiting = set(processes)
        while waiting:
            for name in sorted(waiting):
                assert processes[name].poll() is None, (name, processes[name].communicate())
                if temporaries(*where[name]):
                    processes[name].send_signal(signal.SIGTERM)
                    waiting.discard(name)
            assert time.monotonic() < deadline, f"{sorted(waiting)} did not start in time"
            time.sleep(0.05)
        results = {name: process.communicate(timeout=60) for name, process in processes.items()}
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
    for name, process in processes.items():
        assert process.returncode == 128 + signal.SIGTERM, (name, process.returncode, results[name])
        assert "Traceback" not in results[name][1], results[name][1]
    assert os.listdir(folders["grid"]) == []
    assert os.listdir(folders["pngs"]) == ["out"] and os.listdir(folders["pngs"] / "out") == []
    assert (folders["pngs"] / "out").stat().st_mode & 0o777 == 0o700
    assert os.listdir(folders["forward"]) == []
