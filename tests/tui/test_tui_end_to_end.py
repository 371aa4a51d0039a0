"""End to end: the TUI starts a real tiny training run, shows its first sample grid, and stops it."""

from __future__ import annotations

import importlib.util

import pytest
from conftest import wait_until

from workbench.config import load_config
from workbench.tui.app import WorkbenchApp
from workbench.tui.run_screen import RunScreen
from workbench.tui.sample_view import SampleView
from workbench.tui.samples_screen import SamplesScreen
from workbench.tui.setup_screen import SetupScreen

NEEDED = ("workbench.engine.trainer", "workbench.commands.train", "workbench_plugins.backbones",
          "workbench_plugins.datasets")
MISSING = [name for name in NEEDED if importlib.util.find_spec(name) is None]

TINY = ["dataset.name=synthetic", "dataset.count=64", "dataset.size=16", "backbone.preset=tiny",
        "train.steps=30", "train.batch_size=8", "train.log_every=5", "train.sample_every=10",
        "train.checkpoint_every=0", "train.warmup_steps=2", "sample.steps=4", "sample.n=4", "run.name=e2e"]


@pytest.mark.slow
@pytest.mark.skipif(bool(MISSING), reason=f"needs {', '.join(MISSING)} (not landed yet)")
async def test_a_real_tiny_run_from_the_setup_view(in_tmp_cwd):
    config = load_config(None, TINY + [f"run.dir={in_tmp_cwd / 'runs'}"])
    app = WorkbenchApp(config, watch_interval_s=0.1)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, SetupScreen), what="setup view")
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: isinstance(app.screen, RunScreen), what="run view")
        await wait_until(pilot, lambda: app.model.samples, timeout_s=240, what="the first sample grid")
        await wait_until(pilot, lambda: app.screen.query_one(SampleView).image is not None, what="grid drawn")
        assert not app.model.failure, app.model.failure
        if app.model.is_live:
            await pilot.press("s")
            await pilot.press("y")
        await wait_until(pilot, lambda: app.model.state in ("stopped", "finished"), timeout_s=120,
                         what="the run to stop")
        assert app.model.checkpoints  # stopping (or finishing) keeps a checkpoint
        assert not app.model.failure
        await pilot.press("g")  # the samples browser: the denoising progression of the last checkpoint
        assert isinstance(app.screen, SamplesScreen)
        await wait_until(pilot, lambda: app.screen.check_action("progression", ()) is True, what="checkpoint seen")
        await pilot.press("d")
        await wait_until(pilot, lambda: not app.screen.busy, timeout_s=240, what="the progression strip")
        assert "denoising progression" in app.screen.query_one(SampleView).border_title, app.model.log[-1]
    assert app.process is not None
    assert app.process.wait(timeout=60) == 0
