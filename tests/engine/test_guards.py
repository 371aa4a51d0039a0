"""Non-finite losses are skipped, then rolled back to the last good checkpoint; failures are recorded."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tests.engine.conftest import Recorder, jsonl, tiny_config
from workbench.engine import train
from workbench.engine.checkpoint import load_checkpoint
from workbench.engine.trainer import TrainingFailed


class Poisoned(nn.Module):
    """Wraps a backbone; training-mode forward calls numbered in `bad_calls` (0-based) return NaN."""

    def __init__(self, net: nn.Module, bad_calls):
        super().__init__()
        self.net = net
        self.bad_calls = set(bad_calls)
        self.calls = 0

    def forward(self, x, t, y=None):
        out = self.net(x, t, y)
        if self.training:
            self.calls += 1
            if self.calls - 1 in self.bad_calls:
                return out * float("nan")
        return out


@pytest.fixture
def poison(monkeypatch):
    """poison(calls) makes the next backbone the engine builds return NaN on those training steps."""
    import workbench.backbones as backbones

    real = backbones.build_backbone

    def arm(bad_calls):
        monkeypatch.setattr(backbones, "build_backbone",
                            lambda *a, **kw: Poisoned(real(*a, **kw), bad_calls))

    return arm


def adam_steps(state: dict) -> int:
    return int(next(iter(state["optimizer"]["state"].values()))["step"])


def test_non_finite_steps_are_skipped_with_a_warning(tmp_path, poison):
    poison({4, 5})  # steps 5 and 6
    recorder = Recorder()
    run = train(tiny_config(tmp_path, "train.log_every=2", "train.sample_every=0", "train.checkpoint_every=0"),
                on_event=recorder)
    warnings = recorder.of("warning")
    assert [(w.step, w.message) for w in warnings] == [
        (6, "2 of the last 2 steps had a non-finite loss or gradient and were skipped")]
    state = load_checkpoint(run.latest_checkpoint)
    assert adam_steps(state) == 12 - 2  # the optimizer never applied the two bad steps
    assert all(torch.isfinite(v).all() for v in state["model"].values())
    assert all(m["loss"] == m["loss"] for m in jsonl(run.metrics_path) if m["step"] != 6)
    assert recorder.of("finished") and run.read_status()["state"] == "finished"


def test_three_bad_log_windows_restore_the_last_good_checkpoint(tmp_path, poison):
    poison(range(6, 12))  # steps 7..12 = three whole log windows of 2 steps
    recorder = Recorder()
    run = train(tiny_config(tmp_path, "train.steps=14", "train.log_every=2", "train.sample_every=0",
                            "train.checkpoint_every=4"), on_event=recorder)
    restored = [w for w in recorder.of("warning") if "restored" in w.message]
    assert len(restored) == 1 and "restored the checkpoint of step 8" in restored[0].message
    steps = [m.step for m in recorder.of("metrics")]
    assert steps == [2, 4, 6, 8, 10, 12, 10, 12, 14]  # back to step 8, then on to the end
    assert recorder.of("finished")[0].step == 14
    # the step-8 checkpoint holds 6 applied updates (7 and 8 were skipped); steps 9..14 add 6 more
    assert adam_steps(load_checkpoint(run.latest_checkpoint)) == 6 + 6


def test_persistent_nan_without_a_checkpoint_fails_the_run_in_one_line(tmp_path, poison):
    poison(range(0, 1000))
    recorder = Recorder()
    with pytest.raises(TrainingFailed) as info:
        train(tiny_config(tmp_path, "train.log_every=2", "train.checkpoint_every=0"), on_event=recorder)
    assert "\n" not in str(info.value) and "no checkpoint to go back to" in str(info.value)
    failed = recorder.of("failed")[0]
    assert failed.step == 6 and "lower train.lr" in failed.message
    run_dir = tmp_path / sorted(p.name for p in tmp_path.iterdir())[0]
    from workbench.engine.rundir import RunDirectory

    assert RunDirectory(run_dir).read_status()["state"] == "failed"
    assert not (run_dir / "checkpoints" / "latest.pt").exists()  # never a checkpoint of broken weights


def test_an_error_mid_training_emits_run_failed_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    from workbench.data.batches import InMemoryBatches
    from workbench.errors import DatasetError

    real = InMemoryBatches.next_batch
    calls = {"n": 0}

    def flaky(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 9:
            raise DatasetError("dataset 'synthetic': the disk went away")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(InMemoryBatches, "next_batch", flaky)
    recorder = Recorder()
    with pytest.raises(TrainingFailed, match="the disk went away"):
        train(tiny_config(tmp_path, "train.checkpoint_every=6"), on_event=recorder)
    failed = recorder.of("failed")[0]
    assert failed.step == 8 and failed.kept.startswith("checkpoint at step 6: ")


def test_settings_known_to_be_slow_on_a_cpu_say_so_with_the_measured_factor(monkeypatch):
    import torch

    import workbench.engine.setup as setup
    from workbench.config import load_config
    from workbench.engine.setup import resolve_precision
    from workbench.engine.trainer import slow_choices

    cpu = torch.device("cpu")

    def problems(precision: str, amx: bool) -> list[str]:
        monkeypatch.setattr(setup, "cpu_has_amx", lambda: amx)
        train = load_config(None, [f"train.precision={precision}"], search_cwd=False).train
        return slow_choices(train, resolve_precision(train, cpu), cpu)

    assert problems("bf16", amx=False) == [
        'train.precision = "bf16" on a CPU without AMX is emulated: about 4.5x slower than fp32 (measured on a '
        '2-core AVX2 CPU); use "auto" (fp32 here)']
    assert problems("bf16", amx=True) == [] and problems("auto", amx=False) == [] and problems("fp32", amx=False) == []
    assert "about 4.6x slower than fp32" in problems("fp16", amx=True)[0]
    assert slow_choices(load_config(None, ["train.precision=fp16"], search_cwd=False).train, None,
                        torch.device("cuda")) == []
