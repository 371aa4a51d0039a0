"""train.minutes on real (tiny) runs: the decided length is what config.toml, status.json, the checkpoint and
the events say, a resume trains to it, and without a budget (or with a cap that fits) nothing changes.
No assertion depends on how fast this machine is: the budgets are either far too small for the cap or far
larger than the cap needs."""

from __future__ import annotations

import pytest

from tests.engine.conftest import Recorder, StopAfter, jsonl, metric_losses, tiny_config
from workbench.config import load_config
from workbench.engine import train
from workbench.engine.checkpoint import load_checkpoint
from workbench.engine.events import LengthSet, event_from_dict
from workbench.engine.optim import lr_for_config
from workbench.engine.rundir import RunDirectory

CAP = 100_000  # far more steps than 6 s allow at any speed
# warmup 20: the decision (10 timed steps after the first 3, or a quarter of the budget) comes before it ends, so the
# cosine schedule is exactly that of a run configured with the decided steps
SHORT = ["train.minutes=0.1", f"train.steps={CAP}", "train.warmup_steps=20", "train.log_every=5",
         "train.sample_every=0", "train.checkpoint_every=0"]


@pytest.fixture(scope="module")
def budget_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("runs")
    recorder = Recorder()
    run = train(tiny_config(base, "run.name=short", *SHORT), on_event=recorder)
    return base, run, recorder


def test_a_tiny_budget_sets_fewer_steps_than_the_cap_and_the_run_ends_there(budget_run):
    _, run, recorder = budget_run
    lengths = recorder.of("length")
    assert len(lengths) == 1
    decided = lengths[0].total_steps
    assert lengths[0].step < decided < CAP and lengths[0].minutes == 0.1 and lengths[0].seconds_per_step > 0
    assert recorder.of("finished")[0].step == decided and not recorder.of("finished")[0].stopped_early
    assert [m["step"] for m in jsonl(run.metrics_path)][-1] == decided


def test_config_toml_status_and_checkpoint_say_the_decided_length(budget_run):
    _, run, recorder = budget_run
    decided = recorder.of("length")[0].total_steps
    text = run.config_path.read_text()
    assert f"# train.minutes = 0.1 set train.steps = {decided} (" in text and "s/step measured)" in text
    stored = load_config(run.config_path, search_cwd=False)
    assert stored.train.steps == decided and stored.train.minutes == 0
    assert run.read_status()["total_steps"] == decided
    checkpoint = load_checkpoint(run.latest_checkpoint)
    assert checkpoint["step"] == decided
    assert checkpoint["config"]["train"]["steps"] == decided and checkpoint["config"]["train"]["minutes"] == 0


def test_the_learning_rate_follows_the_schedule_of_the_decided_length(budget_run):
    _, run, recorder = budget_run
    decided = load_config(run.config_path, search_cwd=False)
    metrics = jsonl(run.metrics_path)
    for m in metrics:
        assert m["lr"] == lr_for_config(m["step"] - 1, decided.train)
    # the schedule ends at the decided length (the last logged step may sit a little before the cosine's end,
    # and a slow or busy machine may decide on fewer steps than the warmup)
    assert lr_for_config(decided.train.steps, decided.train) == pytest.approx(1e-3 * 0.1, rel=1e-6)


def test_the_length_event_is_on_disk_and_attach_rebuilds_the_total(budget_run):
    _, run, recorder = budget_run
    decided = recorder.of("length")[0].total_steps
    on_disk = [e for e in run.history() if isinstance(e, LengthSet)]
    assert [e.to_dict() for e in on_disk] == [recorder.of("length")[0].to_dict()]
    assert event_from_dict(on_disk[0].to_dict()) == on_disk[0]
    from workbench.tui.run_model import RunModel

    model = RunModel()
    model.apply(run.history())
    assert model.total_steps == decided and model.step == decided


def test_a_resume_of_a_decided_run_trains_no_further(budget_run):
    base, run, recorder = budget_run
    decided = recorder.of("length")[0].total_steps
    before = run.metrics_path.read_text()
    resumed = Recorder()
    cfg = load_config(run.config_path, [f"run.dir={base}"], search_cwd=False)
    train(cfg, resume=str(run.path), on_event=resumed)
    assert resumed.of("started")[0].start_step == decided and resumed.of("started")[0].total_steps == decided
    assert not resumed.of("length") and not resumed.of("metrics")
    assert run.metrics_path.read_text() == before
    assert "set train.steps" in run.config_path.read_text()  # the note outlives the resume


def test_a_run_stopped_before_the_decision_decides_afresh_on_resume(tmp_path):
    first = Recorder()
    run = train(tiny_config(tmp_path, "run.name=early", *SHORT), on_event=first, stop_event=StopAfter(4))
    assert not first.of("length") and first.of("finished")[0].stopped_early
    assert load_config(run.config_path, search_cwd=False).train.minutes == 0.1
    second = Recorder()
    train(load_config(run.config_path, search_cwd=False), resume=str(run.path), on_event=second)
    length = second.of("length")[0]
    assert length.step > 4 and 4 < length.total_steps < CAP
    assert second.of("finished")[0].step == length.total_steps


def test_no_budget_and_a_budget_whose_cap_fits_train_the_same_bit_for_bit(tmp_path):
    """train.minutes = 0 is the old behaviour; a 10-minute budget for 16 tiny steps keeps the cap (decided at
    step 13: 10 timed steps, past the 2-step warmup). Both measure a preview call and a checkpoint's
    serialisation for the ETA: neither may change the training."""
    steps = ["train.steps=16"]
    plain = train(tiny_config(tmp_path, "run.name=plain", *steps))
    budget = Recorder()
    capped = train(tiny_config(tmp_path, "run.name=capped", *steps, "train.minutes=10"), on_event=budget)
    assert [e.total_steps for e in budget.of("length")] == [16]
    assert metric_losses(capped) == metric_losses(plain) and len(metric_losses(plain)) == 4
    assert load_config(capped.config_path, search_cwd=False).train.steps == 16
    assert "set train.steps = 16" in capped.config_path.read_text()
    assert "train.minutes" not in plain.config_path.read_text().split("[run]")[0]


def test_the_eta_is_logged_and_reaches_zero_at_the_end(budget_run):
    _, run, _ = budget_run
    etas = [m["eta_s"] for m in jsonl(run.metrics_path)]
    assert all(e >= 0 for e in etas) and etas[-1] < etas[0]


def test_status_total_steps_follows_the_length_event(tmp_path):
    from workbench.engine.rundir import status_update

    assert status_update(LengthSet(total_steps=700, minutes=11.0, seconds_per_step=0.95)) == (None, {"total_steps": 700})
    run = RunDirectory(tmp_path / "r")
    run.path.mkdir()
    run.write_status("running", total_steps=1000)
    run.record(LengthSet(total_steps=700, minutes=11.0, seconds_per_step=0.95))
    assert run.read_status()["total_steps"] == 700 and run.read_status()["state"] == "running"


def test_before_the_decision_the_eta_is_that_of_the_budget_not_of_the_cap(budget_run):
    _, run, recorder = budget_run
    decided_at = recorder.of("length")[0].step
    early = [m for m in jsonl(run.metrics_path) if m["step"] <= decided_at]
    assert early, "the first log step should come before the decision (log_every = 5, 10 timed steps needed)"
    # the cap's ETA would be ~100,000 steps' worth (hours); the budget leaves 6 s
    assert all(0 <= m["eta_s"] < 60 for m in early), [m["eta_s"] for m in early]
