"""Evaluation during training: the metric reaches metrics.jsonl and the events, best.pt follows the best
value, and `sample --best` / `eval --best` use it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workbench.cli import main

TINY = [
    "dataset.name=synthetic", "dataset.size=16", "dataset.count=64", "dataset.pad_to=0",
    "backbone.base_channels=8", "schedule.timesteps=20", "train.steps=6", "train.batch_size=8",
    "train.warmup_steps=0", "train.log_every=2", "train.sample_every=0", "train.checkpoint_every=0",
    "sample.steps=2", "sample.n=4", "run.device=cpu", "run.name=quality",
    "train.eval_every=2", "train.eval_samples=20", "train.eval_extractor=mean-pool",
]


pytestmark = pytest.mark.usefixtures("mean_pool_extractor")


def train_tiny(tmp_path: Path, *extra: str) -> Path:
    from workbench.config import load_config
    from workbench.engine import train

    cfg = load_config(None, TINY + [f"run.dir={tmp_path / 'runs'}", *extra], search_cwd=False)
    return Path(train(cfg).path)


def quality_lines(run: Path) -> list[dict]:
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [line for line in lines if line["kind"] == "quality"]


def test_eval_every_writes_the_metric_and_keeps_the_best_checkpoint(tmp_path):
    import torch

    run = train_tiny(tmp_path)
    measured = quality_lines(run)
    assert [m["step"] for m in measured] == [2, 4, 6]
    assert all(m["metric"] == "FD_mean-pool" and m["n"] == 20 and m["seconds"] > 0 for m in measured)
    best = min(measured, key=lambda m: m["value"])
    assert measured[-1]["best_step"] == best["step"] and measured[-1]["best_value"] == best["value"]
    state = torch.load(run / "checkpoints" / "best.pt", weights_only=True)
    assert state["step"] == best["step"]
    status = json.loads((run / "status.json").read_text())
    assert status["quality"] == {"metric": "FD_mean-pool", "value": measured[-1]["value"], "step": 6,
                                 "best_value": best["value"], "best_step": best["step"]}
    assert state["quality_best"] == {"step": best["step"], "value": best["value"], "metric": "FD_mean-pool"}


def test_keep_best_false_keeps_no_best_checkpoint(tmp_path):
    run = train_tiny(tmp_path, "train.keep_best=false")
    assert len(quality_lines(run)) == 3
    assert not (run / "checkpoints" / "best.pt").exists()


def test_auto_is_off_on_a_cpu(tmp_path):
    run = train_tiny(tmp_path, "train.eval_every=-1")
    assert quality_lines(run) == []


def test_too_few_eval_samples_is_one_line_before_anything_is_written(tmp_path):
    from workbench.errors import ConfigError

    with pytest.raises(ConfigError, match=r"eval_samples = 16 is not more than the 16 feature dimensions"):
        train_tiny(tmp_path, "train.eval_samples=16")
    assert not (tmp_path / "runs").exists()


def test_sample_and_eval_take_the_best_checkpoint(tmp_path, capsys):
    import torch

    run = train_tiny(tmp_path)
    best_step = torch.load(run / "checkpoints" / "best.pt", weights_only=True)["step"]
    out = tmp_path / "best.npz"
    assert main(["sample", "--run", str(run), "--best", "--n", "4", "--steps", "2", "--format", "npz",
                 "--out", str(out), "--quiet", "--device", "cpu"]) == 0
    assert f"weights of step {best_step} " in capsys.readouterr().out
    assert main(["eval", "--run", str(run), "--best", "--n", "20", "--extractor", "mean-pool", "--device", "cpu",
                 "--json", "--quiet"]) == 0
    assert f"of step {best_step} " in json.loads(capsys.readouterr().out)["samples"]


def test_best_survives_a_resume(tmp_path):
    from workbench.config import load_config
    from workbench.engine import train

    run = train_tiny(tmp_path)
    first_best = quality_lines(run)[-1]["best_value"]
    cfg = load_config(None, TINY + [f"run.dir={tmp_path / 'runs'}", "train.steps=8"], search_cwd=False)
    train(cfg, resume=str(run))
    measured = quality_lines(run)
    assert [m["step"] for m in measured] == [2, 4, 6, 8]
    assert measured[-1]["best_value"] <= first_best
