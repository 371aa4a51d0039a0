"""Text snapshots of the main screens at 80x24 and 160x48 (half-block images, fixed data and clock).

The committed files under tests/tui/snapshots/ are what a person sees, minus colours. After an intended
change, regenerate them with `UPDATE_TUI_SNAPSHOTS=1 python -m pytest tests/tui/test_tui_snapshots.py` and
read the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import replayed, screen_text, wait_until
from standin_engine import write_history

from workbench.config import load_config
from workbench.engine.rundir import RunDirectory
from workbench.plugin_host import PluginHost
from workbench.tui.app import WorkbenchApp
from workbench.tui.setup_screen import SetupScreen

SNAPSHOTS = Path(__file__).with_name("snapshots")
SIZES = [(80, 24), (160, 48)]


def check_snapshot(name: str, text: str) -> None:
    path = SNAPSHOTS / f"{name}.txt"
    if os.environ.get("UPDATE_TUI_SNAPSHOTS") or not path.exists():
        SNAPSHOTS.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
        if not os.environ.get("UPDATE_TUI_SNAPSHOTS"):
            pytest.fail(f"snapshot {path.name} did not exist; written now, check it and commit it")
    expected = path.read_text(encoding="utf-8")
    assert text == expected, f"screen differs from {path} (UPDATE_TUI_SNAPSHOTS=1 to accept)\n{text}"


async def settled_text(pilot, app) -> str:
    """The screen once two redraws in a row look the same."""
    previous = None
    for _ in range(40):
        await pilot.pause(0.1)
        text = screen_text(app)
        if text == previous:
            return text
        previous = text
    return previous


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
async def test_setup_view(in_tmp_cwd, size):
    host = PluginHost(load_entry_points=False, builtins=("snapshot_plugins",))
    config = load_config(None, ["run.dir=runs"], host=host)
    app = WorkbenchApp(config, host=host)
    async with app.run_test(size=size) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, SetupScreen), what="setup view")
        check_snapshot(f"setup_{size[0]}x{size[1]}", await settled_text(pilot, app))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
async def test_run_view_of_a_finished_run(config, size):
    run = RunDirectory.create("runs", "snap")
    write_history(run)
    app = WorkbenchApp(config, run=run, watch_interval_s=0.05)
    async with app.run_test(size=size) as pilot:
        await wait_until(pilot, lambda: replayed(app), what="the replayed history")
        check_snapshot(f"run_finished_{size[0]}x{size[1]}", await settled_text(pilot, app))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
async def test_run_view_with_sample_quality(config, size):
    """train.eval_every results: the quality panel under the samples, loss and throughput left intact."""
    run = RunDirectory.create("runs", "quality")
    write_history(run, eval_every=30)
    app = WorkbenchApp(config, run=run, watch_interval_s=0.05)
    async with app.run_test(size=size) as pilot:
        await wait_until(pilot, lambda: replayed(app), what="the replayed history")
        text = await settled_text(pilot, app)
        assert "best 10.4 @ 240" in text and "FD_fashion-classifier" in text, text
        assert "throughput" in text and "loss (log scale)" in text
        check_snapshot(f"run_quality_{size[0]}x{size[1]}", text)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
async def test_run_view_of_a_failed_run(config, size):
    run = RunDirectory.create("runs", "oom")
    write_history(run, end="failed")
    app = WorkbenchApp(config, run=run, watch_interval_s=0.05)
    async with app.run_test(size=size) as pilot:
        await wait_until(pilot, lambda: replayed(app, "run failed at step"), what="the replayed failure")
        check_snapshot(f"run_failed_{size[0]}x{size[1]}", await settled_text(pilot, app))


async def test_quit_dialog(config):
    from standin_engine import ScriptedEngine

    run = RunDirectory.create("runs", "live")
    engine = ScriptedEngine(run, total_steps=100_000, tick_s=3600)  # one step, then waits
    engine.start()
    app = WorkbenchApp(config, run=run, watch_interval_s=0.05)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_until(pilot, lambda: app.model and app.model.metrics is not None, what="first metrics")
            await pilot.press("q")
            await wait_until(pilot, lambda: "Leave training" in screen_text(app), what="the quit dialog")
            text = screen_text(app)
            assert "Stop run" in text and "reattach later with ddpm-workbench" in text
            await pilot.press("escape")
    finally:
        engine.halt.set()
