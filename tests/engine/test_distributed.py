"""Two gloo ranks under the real torchrun against one process with the same global batch.

What must be equal for the loss curves to agree: the initial weights (same seed on every rank, and DDP
broadcasts rank 0's), the data of each global batch, and the (t, noise) paired with each sample of it (every
rank draws those of the whole global batch from the same generator and keeps its slice). The data part is
made trivially equal here by a dataset of identical images: each rank reads its own shard in its own order
(workbench.data's contract, tested there), so with distinct images the global batches would differ.
What remains is float summation order (DDP averages two 4-sample gradients instead of one 8-sample
gradient), hence a tolerance instead of bit equality.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.engine.conftest import jsonl, tiny_config
from workbench.engine import train

REPO = Path(__file__).resolve().parents[2]
TOLERANCE = 1e-5  # relative, per logged loss; measured differences are ~1e-7, step-to-step changes ~1e-2


def train_two_gloo_ranks(tmp_path, cfg) -> subprocess.CompletedProcess:
    """`ddpm-workbench train` of `cfg` under torchrun with 2 CPU ranks, into tmp_path/ddp; it must succeed."""
    (tmp_path / "ddp.toml").write_text(cfg.to_toml())
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "workbench", "train", "--config", str(tmp_path / "ddp.toml"), "--run-dir",
               str(tmp_path / "ddp"), "--plain"]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.mark.slow
def test_two_gloo_ranks_match_one_process_with_the_same_global_batch(tmp_path):
    image = np.zeros((16, 16), dtype=np.uint8)
    image[4:12, 5:11] = 220
    np.save(tmp_path / "same.npy", np.repeat(image[None], 16, axis=0))
    cfg = tiny_config(tmp_path / "runs", "dataset.name=npy", f"dataset.path={tmp_path / 'same.npy'}",
                      "train.steps=8", "train.log_every=1", "train.sample_every=0", "train.checkpoint_every=0",
                      "train.batch_size=8")
    done = train_two_gloo_ranks(tmp_path, cfg)

    single = train(cfg, run_dir=tmp_path / "single")
    two = [m for m in jsonl(tmp_path / "ddp" / "metrics.jsonl")]
    one = [m for m in jsonl(single.metrics_path)]
    assert [m["step"] for m in two] == [m["step"] for m in one] == list(range(1, 9))
    for a, b in zip(one, two):
        assert abs(a["loss"] - b["loss"]) <= TOLERANCE * abs(a["loss"]), (a["step"], a["loss"], b["loss"])
    losses = [m["loss"] for m in one]
    assert max(losses) - min(losses) > 1e-2  # the curve moves far more than the tolerance
    started = [e for e in jsonl(tmp_path / "ddp" / "events.jsonl") if e["kind"] == "started"][0]
    assert started["world_size"] == 2
    assert done.stdout.count("run directory:") == 2  # only rank 0 prints (start and end)


@pytest.mark.slow
def test_under_torchrun_rank_0_decides_train_minutes_and_every_rank_trains_to_it(tmp_path):
    """Rank 0 decides the length; the others get it with the control agreement at the next log step. A rank
    that missed it would train on to the cap and hang in its next collective (the timeout fails the test)."""
    cfg = tiny_config(tmp_path / "runs", "train.steps=100000", "train.minutes=0.2", "train.warmup_steps=20",
                      "train.log_every=5", "train.sample_every=0", "train.checkpoint_every=0")
    done = train_two_gloo_ranks(tmp_path, cfg)
    events = jsonl(tmp_path / "ddp" / "events.jsonl")
    lengths = [e for e in events if e["kind"] == "length"]
    finished = [e for e in events if e["kind"] == "finished"]
    assert len(lengths) == 1 and lengths[0]["total_steps"] < 100000
    assert finished[0]["step"] == lengths[0]["total_steps"] and not finished[0]["stopped_early"]
    assert "set train.steps = " in (tmp_path / "ddp" / "config.toml").read_text()
