"""Every control of the run view, driven with Pilot against the scripted stand-in engine.

The stand-in writes real run-directory files and reads the real control channel; the app watches them with
the real watcher thread. Nothing here trains a model.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from conftest import replayed, screen_text, wait_until
from standin_engine import ScriptedEngine, write_history

from workbench.engine.rundir import RunDirectory
from workbench.tui.app import WorkbenchApp
from workbench.tui.confirm_dialog import ConfirmDialog
from workbench.tui.event_log import EventLog
from workbench.tui.quit_dialog import QuitDialog
from workbench.tui.run_screen import RunScreen
from workbench.tui.sample_view import SampleView

STANDIN = Path(__file__).with_name("standin_engine.py")


def live_app(config, tmp_path, **engine_kw):
    run = RunDirectory.create(tmp_path / "runs", "live")
    engine = ScriptedEngine(run, **engine_kw)
    engine.start()
    return WorkbenchApp(config, run=run, watch_interval_s=0.05), engine


def run_screen(app) -> RunScreen:
    return next(s for s in app.screen_stack if isinstance(s, RunScreen))


async def test_pause_resume_sample_checkpoint(config, tmp_path):
    app, engine = live_app(config, tmp_path, total_steps=100_000, tick_s=0.05)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: app.model and app.model.metrics is not None, what="first metrics")
        await pilot.press("p")
        await wait_until(pilot, lambda: app.model.state == "paused", what="paused state")
        paused_at = app.model.step
        await pilot.pause(0.3)
        assert app.model.step == paused_at  # the stand-in really stopped stepping
        assert "paused" in screen_text(app)
        await pilot.press("p")  # the same key now resumes
        await wait_until(pilot, lambda: app.model.state == "running" and app.model.step > paused_at,
                         what="resumed stepping")
        await pilot.press("n")
        await wait_until(pilot, lambda: app.model.samples, what="a sample grid")
        await wait_until(pilot, lambda: app.screen.query_one(SampleView).image is not None, what="grid drawn")
        await pilot.press("c")
        await wait_until(pilot, lambda: app.model.checkpoints, what="a checkpoint")
        assert engine.received == ["pause", "resume", "sample", "checkpoint"]
        engine.halt.set()


async def test_stop_asks_then_checkpoints_and_stops(config, tmp_path):
    app, engine = live_app(config, tmp_path, total_steps=100_000)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: app.model and app.model.metrics is not None, what="first metrics")
        await pilot.press("s")
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("n")  # keep training
        assert not isinstance(app.screen, ConfirmDialog) and engine.received == []
        await pilot.press("s")
        await pilot.press("y")
        await wait_until(pilot, lambda: app.model.state == "stopped", what="stopped state")
        assert engine.received == ["checkpoint", "stop"]
        assert app.model.checkpoints  # saved before stopping
        screen = run_screen(app)
        for action in ("pause", "sample_now", "checkpoint_now", "stop_run"):
            assert screen.check_action(action, ()) is None  # greyed out: the run is over
        await pilot.press("n")
        await pilot.pause(0.2)
        assert engine.received == ["checkpoint", "stop"]  # disabled keys send nothing


async def test_quit_can_leave_the_run_training(config, tmp_path):
    app, engine = live_app(config, tmp_path, total_steps=100_000)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: app.model and app.model.metrics is not None, what="first metrics")
        await pilot.press("q")
        assert isinstance(app.screen, QuitDialog)
        await pilot.press("escape")
        assert isinstance(app.screen, RunScreen)
        await pilot.press("q")
        await pilot.press("l")
        await wait_until(pilot, lambda: not app.is_running, what="the app to exit")
    assert engine.is_alive() and engine.received == []
    assert "keeps training in the background" in app.exit_note and "ddpm-workbench attach" in app.exit_note
    engine.halt.set()


async def test_quit_can_stop_the_run(config, tmp_path):
    app, engine = live_app(config, tmp_path, total_steps=100_000)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: app.model and app.model.metrics is not None, what="first metrics")
        await pilot.press("ctrl+q")
        assert isinstance(app.screen, QuitDialog)
        await pilot.press("s")
        await wait_until(pilot, lambda: not app.is_running, what="the app to exit")
    engine.join(5)
    assert engine.received == ["checkpoint", "stop"]
    assert RunDirectory(engine.rundir.path).read_status()["state"] == "stopped"


async def test_quit_on_a_finished_run_asks_nothing(config, tmp_path):
    run = RunDirectory.create(tmp_path / "runs", "done")
    write_history(run)
    app = WorkbenchApp(config, run=run, watch_interval_s=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: replayed(app), what="the replayed history")
        await pilot.press("q")
        await wait_until(pilot, lambda: not app.is_running, what="the app to exit")


async def test_attach_replays_the_whole_history(config, tmp_path):
    run = RunDirectory.create(tmp_path / "runs", "done")
    write_history(run, total_steps=300, log_every=10, sample_every=100, checkpoint_every=150)
    app = WorkbenchApp(config, run=run, watch_interval_s=0.05)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: replayed(app), what="the replayed history")
        assert app.model.loss_steps == list(range(10, 301, 10))
        assert [s for s, _ in app.model.samples] == [100, 200, 300]
        assert [s for s, _ in app.model.checkpoints] == [150, 300]
        await wait_until(pilot, lambda: "finished at step 300" in screen_text(app), what="redraw")
        text = screen_text(app)
        assert "finished at step 300" in text and "samples · step 300" in text
        logged = "\n".join(strip.text for strip in app.screen.query_one(EventLog).lines)
        assert "loss spiked" in logged and "checkpoint at step 150" in logged


async def test_a_failed_run_shows_its_message_and_what_was_kept(config, tmp_path):
    app, engine = live_app(config, tmp_path, total_steps=1000, fail_at=60)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: app.model and app.model.state == "failed", what="failed state")
        await wait_until(pilot, lambda: "loss became NaN" in screen_text(app), what="failure banner")
        # The banner's second line (what was kept) can land on the next refresh.
        await wait_until(pilot, lambda: "kept:" in screen_text(app), what="what was kept, in the banner")
        assert run_screen(app).check_action("pause", ()) is None


async def test_a_killed_engine_process_is_shown_as_a_failure(config, tmp_path):
    run = RunDirectory.create(tmp_path / "runs", "killed")
    log = open(run.path / "train.log", "wb")
    process = subprocess.Popen([sys.executable, str(STANDIN), str(run.path), "--steps", "100000"],
                               stdout=log, stderr=subprocess.STDOUT)
    app = WorkbenchApp(config, watch_interval_s=0.05, launcher=lambda cfg: (run, process), run_now=True)
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_until(pilot, lambda: app.model and app.model.metrics is not None, timeout_s=60,
                             what="first metrics from the stand-in process")
            os.kill(process.pid, signal.SIGKILL)
            await wait_until(pilot, lambda: app.model.state == "failed", what="failure after the kill")
            assert "exited with code -9" in app.model.failure
            await wait_until(pilot, lambda: "exited with code -9" in screen_text(app), what="failure banner")
    finally:
        if process.poll() is None:
            process.kill()
        log.close()


async def test_a_stale_run_is_shown_as_such_with_controls_off(config, tmp_path):
    run = RunDirectory.create(tmp_path / "runs", "stale")
    write_history(run, end="stale")
    app = WorkbenchApp(config, run=run, watch_interval_s=0.05)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: app.model and app.model.failure, what="stale detection")
        assert "no longer running" in app.model.failure
        assert run_screen(app).check_action("checkpoint_now", ()) is None


async def test_a_failing_worker_becomes_a_visible_error(config, tmp_path):
    run = RunDirectory.create(tmp_path / "runs", "done")
    write_history(run)
    app = WorkbenchApp(config, run=run, watch_interval_s=0.05)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: replayed(app), what="the replayed history")

        def broken():
            raise RuntimeError("disk on fire")

        app.run_worker(broken, name="test worker", thread=True, exit_on_error=False)
        # if this times out, say what the log and the screen held (it once raced the history replay, which
        # pushed the error line out of view before `replayed` was waited for)
        try:
            await wait_until(pilot, lambda: any("disk on fire" in e.text for e in app.model.log), what="error entry")
            assert app.is_running
            await wait_until(pilot, lambda: "disk on fire" in screen_text(app), what="error on screen")
        except AssertionError as exc:
            log = [e.text for e in app.model.log][-6:] if app.model else None
            raise AssertionError(f"{exc}\nlast log entries: {log}\nscreen:\n{screen_text(app)}") from None


async def test_a_drawing_error_is_shown_not_fatal(config, tmp_path, monkeypatch):
    run = RunDirectory.create(tmp_path / "runs", "done")
    write_history(run)

    def broken(self, *, force=False):
        raise ValueError("bad pixel")

    app = WorkbenchApp(config, run=run, watch_interval_s=0.05)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: replayed(app), what="the replayed history")
        monkeypatch.setattr(RunScreen, "refresh_views", broken)
        app.redraw()
        assert app.is_running
        assert any("redrawing failed: ValueError: bad pixel" in e.text for e in app.model.log)


async def test_a_dead_run_with_a_truncated_status_is_not_shown_as_running(config, tmp_path):
    run = RunDirectory.create(tmp_path / "runs", "truncated")
    write_history(run, end="stale")
    text = run.status_path.read_text()
    run.status_path.write_text(text[: len(text) // 2])  # cut mid-write by a full disk or an editor
    app = WorkbenchApp(config, run=run, watch_interval_s=0.05)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: app.model and app.model.failure, what="unreadable status detected")
        assert app.model.state == "unknown" and not app.model.is_live
        assert "cannot be read" in app.model.failure
        assert run_screen(app).check_action("pause", ()) is None
        await pilot.press("p")
        await pilot.pause(0.2)
        assert list(run.control_dir.iterdir()) == [], "no pause request written into a dead run"


async def test_a_deleted_run_directory_is_shown_as_deleted(config, tmp_path):
    import shutil

    app, engine = live_app(config, tmp_path, total_steps=100_000, tick_s=0.05)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: app.model and app.model.metrics is not None, what="first metrics")
        engine.halt.set()
        engine.join(5)
        shutil.rmtree(app.run_dir.path)
        await wait_until(pilot, lambda: app.model.state == "deleted", what="deleted state")
        assert not app.model.is_live and "no longer exists" in app.model.failure
        assert run_screen(app).check_action("checkpoint_now", ()) is None
