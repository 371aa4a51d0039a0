"""Starting a training run as its own process, so it outlives the TUI and a dropped SSH connection.

The engine runs as `python -m workbench train --config <file> --run-dir <dir> --plain` in a new session
(so the terminal's hang-up never reaches it), with its output in `<run dir>/train.log`. The TUI then only
watches the run directory, exactly as `ddpm-workbench attach` does.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from workbench.config import Config
from workbench.engine.rundir import RunDirectory

LAUNCH_CONFIG = "launch.toml"
PROCESS_LOG = "train.log"


def engine_command(config_file: Path, run_dir: Path) -> list[str]:
    return [sys.executable, "-m", "workbench", "train", "--config", str(config_file), "--run-dir", str(run_dir),
            "--plain"]


def launch_engine(config: Config) -> tuple[RunDirectory, subprocess.Popen]:
    """Create the run directory, write the resolved config next to it and start the engine process."""
    run = RunDirectory.create(config.run.dir, config.run.name)
    config_file = run.path / LAUNCH_CONFIG
    config_file.write_text(f"# written by the ddpm-workbench TUI from {config.source}\n" + config.to_toml(),
                           encoding="utf-8")
    with open(run.path / PROCESS_LOG, "ab") as log:
        process = subprocess.Popen(
            engine_command(config_file, run.path),
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own session: closing the terminal or SSH does not kill it
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    return run, process
