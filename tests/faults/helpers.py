"""Shared pieces of the fault-injection suite: a tiny training config, real dist-info plugins, and running the
CLI in a subprocess the way a user would (so os._exit, SIGKILL and rlimits hit a real process)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

TINY = [
    "dataset.name=synthetic", "dataset.size=16", "dataset.count=64", "dataset.pad_to=0",
    "schedule.timesteps=100", "train.batch_size=8", "train.warmup_steps=2", "train.log_every=2",
    "train.keep_checkpoints=2", "sample.steps=4", "sample.n=4", "run.device=cpu", "run.seed=3",
    "train.precision=fp32",
]


TINY_UNET = ["backbone.base_channels=16", "backbone.channel_mult=[1, 2]", "backbone.groups=8"]


def tiny_args(*overrides: str, unet: bool = True) -> list[str]:
    """--set arguments of a tiny run (a step takes milliseconds); unet=False for another backbone."""
    return [a for s in [*TINY, *(TINY_UNET if unet else []), *overrides] for a in ("--set", s)]


def make_distribution(root: Path, dist: str, module: str, source: str) -> None:
    """A real installed distribution on `root`: module file, dist-info with METADATA and entry_points.txt."""
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[ddpm_workbench]\n{module} = {module}\n")


def environment(tmp_path: Path, plugins: Path | None = None) -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", DDPM_WORKBENCH_BLOCK_PLUGINS="",
               DDPM_WORKBENCH_CACHE_DIR=str(tmp_path / "cache"))
    env["DDPM_WORKBENCH_NO_PLUGINS"] = "0" if plugins else "1"
    if plugins:
        env["PYTHONPATH"] = os.pathsep.join([str(plugins), env.get("PYTHONPATH", "")])
    return env


def cli(tmp_path: Path, *argv: str, plugins: Path | None = None, timeout: float = 120,
        env_extra: dict | None = None, **popen):
    """Run `ddpm-workbench argv` in a subprocess in tmp_path; returns the CompletedProcess."""
    env = {**environment(tmp_path, plugins), **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "workbench", *argv], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=timeout, **popen)


def one_line_error(result, code: int = 1) -> str:
    """The process exited with `code` and said why in one `error:` line, without a traceback."""
    assert result.returncode == code, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr[-2000:]
    return errors[0]


def leftovers(folder: Path) -> list[str]:
    """Temporary files anywhere under `folder` (what an interrupted atomic write leaves)."""
    return sorted(str(p.relative_to(folder)) for p in Path(folder).rglob("*") if p.name.endswith(".tmp"))
