"""RunModel: what the run view knows, rebuilt from events."""

from __future__ import annotations

import math

import pytest

from workbench.engine.events import (
    CheckpointSaved,
    LengthSet,
    RunFailed,
    RunFinished,
    RunStarted,
    SamplesReady,
    StateChanged,
    StepMetrics,
)
from workbench.tui.run_model import RunModel, read_log_tail


def metrics(step, loss):
    return StepMetrics(step=step, loss=loss, lr=1e-4, grad_norm=1.0, it_per_s=1.0, img_per_s=8.0,
                       elapsed_s=step, eta_s=100 - step)


def test_smoothed_loss_is_the_bias_corrected_ema():
    model = RunModel()
    model.apply([metrics(1, 1.0), metrics(2, 3.0), metrics(3, 2.0)])
    factor = 0.5
    # EMA with zero start, divided by (1 - factor**n): TensorBoard's debiased smoothing
    expected, avg = [], 0.0
    for n, value in enumerate([1.0, 3.0, 2.0], start=1):
        avg = factor * avg + (1 - factor) * value
        expected.append(avg / (1 - factor**n))
    assert model.smoothed_loss(factor) == pytest.approx(expected)
    assert model.smoothed_loss(0.0) == [1.0, 3.0, 2.0]
    assert model.smoothed_loss(factor)[0] == 1.0  # no pull towards zero at the start


def test_non_finite_losses_stay_out_of_the_curve_but_update_the_numbers():
    model = RunModel()
    model.apply([metrics(1, 0.5), metrics(2, math.nan), metrics(3, math.inf)])
    assert model.loss_values == [0.5]
    assert model.metrics.step == 3


def test_states_follow_the_engine():
    model = RunModel(name="r", path="/tmp/r")
    model.apply([RunStarted(run_dir="/tmp/r", total_steps=100)])
    assert model.state == "running" and model.is_live and model.total_steps == 100
    model.apply([StateChanged(state="paused", step=5)])
    assert model.state == "paused" and model.is_live
    model.apply([StateChanged(state="resumed", step=5)])
    assert model.state == "running"
    model.apply([RunFinished(step=100, run_dir="/tmp/r", stopped_early=True)])
    assert model.state == "stopped" and not model.is_live


def test_a_length_set_by_train_minutes_replaces_the_total_and_the_stats_follow():
    from workbench.tui.stats_panel import StatsPanel

    model = RunModel(name="r", path="/tmp/r")
    model.apply([RunStarted(run_dir="/tmp/r", total_steps=100_000), metrics(25, 0.5),
                 LengthSet(total_steps=700, minutes=11.0, seconds_per_step=0.95, step=30, eta_s=640.0)])
    assert model.total_steps == 700 and model.started.total_steps == 100_000
    assert "train.minutes = 11: 0.95 s/step, training 700 steps" in model.log[-1].text
    assert "step 25/700" in StatsPanel.describe(model, 80).plain  # the loss chart's x-axis reads total_steps too


def test_failure_keeps_message_and_what_survives():
    model = RunModel(path="/tmp/r")
    model.apply([RunStarted(run_dir="/tmp/r", total_steps=100),
                 CheckpointSaved(step=50, path="/tmp/r/checkpoints/step_0000050.pt"),
                 RunFailed(message="loss became NaN", step=60)])
    assert not model.is_live
    assert model.failure == "run failed at step 60: loss became NaN"
    assert model.kept == "checkpoint at step 50: /tmp/r/checkpoints/step_0000050.pt"
    assert model.log[-1].level == "error"


def test_a_vanished_process_is_a_failure_only_while_the_run_looked_live():
    live = RunModel()
    live.apply([RunStarted(run_dir="x", total_steps=10), SamplesReady(step=5, path="x/s.png")])
    live.mark_process_gone(-9, "Killed")
    assert live.state == "failed"
    assert "exited with code -9" in live.failure and "Killed" in live.failure
    assert live.kept == "1 sample grid(s), no checkpoint"

    done = RunModel()
    done.apply([RunStarted(run_dir="x", total_steps=10), RunFinished(step=10, run_dir="x")])
    done.mark_process_gone(0)
    assert done.state == "finished" and not done.failure

    stopping = RunModel()
    stopping.apply([RunStarted(run_dir="x", total_steps=10), StateChanged(state="stopping")])
    stopping.mark_process_gone(0)
    assert stopping.state == "stopped" and not stopping.failure


def test_sample_paths_relative_to_the_run_directory_are_found(tmp_path):
    (tmp_path / "samples").mkdir()
    (tmp_path / "samples" / "step_0000010.png").write_bytes(b"")
    model = RunModel(path=str(tmp_path))
    model.apply([SamplesReady(step=10, path="samples/step_0000010.png")])
    assert model.latest_sample == (10, str(tmp_path / "samples" / "step_0000010.png"))


def test_log_tail_is_the_last_non_empty_line(tmp_path):
    log = tmp_path / "train.log"
    log.write_text("Traceback...\n  File x\nRuntimeError: boom\n\n")
    assert read_log_tail(log) == "RuntimeError: boom"
    assert read_log_tail(tmp_path / "missing.log") == ""


def test_smoothing_extended_as_values_arrive_equals_smoothing_all_at_once():
    grown, whole = RunModel(), RunModel()
    values = [0.9, 0.5, 0.7, 0.2, 0.3, 0.25]
    for i, v in enumerate(values[:3]):
        grown.apply([metrics(i, v)])
    first = list(grown.smoothed_loss(0.8))
    for i, v in enumerate(values[3:], start=3):
        grown.apply([metrics(i, v)])
    whole.apply([metrics(i, v) for i, v in enumerate(values)])
    assert grown.smoothed_loss(0.8) == pytest.approx(whole.smoothed_loss(0.8))
    assert grown.smoothed_loss(0.8)[:3] == pytest.approx(first)
    assert grown.smoothed_loss(0.5) == pytest.approx(whole.smoothed_loss(0.5))  # another factor: recomputed


def test_quality_measurements_are_kept_in_order_and_logged():
    from workbench.engine.events import QualityMeasured
    from workbench.tui.run_model import RunModel

    model = RunModel()
    model.apply([QualityMeasured(step=100, metric="FID", value=30.0, n=10000, extractor="inception", seconds=12.0,
                                 best_step=100, best_value=30.0),
                 QualityMeasured(step=200, metric="FID", value=35.0, n=10000, extractor="inception", seconds=11.0,
                                 best_step=100, best_value=30.0)])
    assert [q.step for q in model.quality] == [100, 200]
    assert "FID 30 (best) at step 100, n=10000, 12 s" in model.log[0].text
    assert "(best)" not in model.log[1].text


def test_the_quality_panel_shows_the_best_and_the_latest():
    from workbench.engine.events import QualityMeasured
    from workbench.tui.quality_panel import QualityPanel
    from workbench.tui.run_model import RunModel

    model = RunModel(total_steps=300)
    values = [50.0, 20.0, 25.0]
    model.apply([QualityMeasured(step=100 * (i + 1), metric="KID", value=v, n=1000, extractor="inception",
                                 seconds=3.0, best_step=200 if i else 100, best_value=min(values[:i + 1]))
                 for i, v in enumerate(values)])
    small = QualityPanel.describe(model, 26, 4).plain.splitlines()
    assert small[0] == "KID" and small[2] == "best 20 @ 200" and small[3] == "last 25 @ 300 · 3 s"
    assert small[1] == "█▁▂"  # lowest is best, highest worst
    tall = QualityPanel.describe(model, 40, 10).plain
    assert "┤" in tall and "best 20 @ 200" in tall  # a chart with an axis once there is room
