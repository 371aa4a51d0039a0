"""The other screens: installed plugins (with load failures), schedule comparison, samples browser."""

from __future__ import annotations

import math
import re

import pytest
from conftest import replayed, screen_text, wait_until
from standin_engine import write_history
from textual.widgets import DataTable, OptionList

from workbench.engine.rundir import RunDirectory
from workbench.plugin_host import get_host
from workbench.plugin_host.manager import PluginFailure
from workbench.tui.app import WorkbenchApp
from workbench.tui.plugins_screen import PluginsScreen
from workbench.tui.sample_view import SampleView
from workbench.tui.samples_screen import SamplesScreen
from workbench.tui.schedule_screen import ScheduleScreen, log_snr, schedule_betas
from workbench.tui.setup_screen import SetupScreen
from workbench.tui.snr_chart import SnrChart


def test_log_snr_matches_alpha_bar():
    betas = [0.1, 0.2, 0.5]
    alpha_bar = [0.9, 0.9 * 0.8, 0.9 * 0.8 * 0.5]
    assert log_snr(betas) == pytest.approx([math.log(a / (1 - a)) for a in alpha_bar])
    assert math.isnan(log_snr([0.5, 1.0])[1])  # alpha-bar 0: SNR 0, log undefined, left out of the plot


def test_schedule_betas_come_from_the_schedule_plugin(config):
    betas = schedule_betas(config, "linear", get_host())
    assert len(betas) == config.schedule.timesteps
    assert betas[0] == pytest.approx(1e-4) and betas[-1] == pytest.approx(0.02)  # Ho et al. 2020


async def test_plugins_screen_lists_components_and_load_failures(config):
    host = get_host()
    host.failures.append(PluginFailure("broken-plugin", "broken-dist 0.1", "failed to import broken: ImportError: nope"))
    app = WorkbenchApp(config, host=host)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, SetupScreen), what="setup view")
        await pilot.press("f2")
        assert isinstance(app.screen, PluginsScreen)
        components = app.screen.query_one("#components", DataTable)
        names = {components.get_row_at(i)[1] for i in range(components.row_count)}
        assert {"linear", "synthetic"} <= names
        failures = app.screen.query_one("#failures", DataTable)
        assert failures.get_row_at(0)[0] == "broken-plugin" and "ImportError: nope" in failures.get_row_at(0)[2]
        await pilot.press("escape")
        assert isinstance(app.screen, SetupScreen)


async def test_schedule_screen_draws_the_ticked_schedules(config):
    app = WorkbenchApp(config)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, SetupScreen), what="setup view")
        await pilot.press("f3")
        assert isinstance(app.screen, ScheduleScreen)
        chart = app.screen.query_one(SnrChart)
        await wait_until(pilot, lambda: set(chart.curves) == {"linear", "cosine"}, what="two curves")
        linear = chart.curves["linear"]
        assert len(linear) == 1000 and linear[0] > linear[500] > linear[-1]  # log-SNR falls with t
        assert "cosine" in screen_text(app)
        await pilot.press("escape")
        assert isinstance(app.screen, SetupScreen)


async def test_samples_browser_steps_through_the_grids(config):
    run = RunDirectory.create("runs", "browse")
    write_history(run, total_steps=300, sample_every=100)
    app = WorkbenchApp(config, run=run, watch_interval_s=0.05)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: replayed(app), what="the replayed history")
        await pilot.press("g")
        assert isinstance(app.screen, SamplesScreen)
        view = app.screen.query_one(SampleView)
        assert app.screen.query_one(OptionList).option_count == 3
        assert view.border_title.startswith("step 300")
        latest = view.image
        await pilot.press("up")
        await wait_until(pilot, lambda: view.border_title.startswith("step 200"), what="previous grid")
        assert view.image is not latest and view.image.size == latest.size
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, SamplesScreen), what="back to the run view")


async def test_ticked_and_unticked_schedules_differ_without_colour(config):
    app = WorkbenchApp(config)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, SetupScreen), what="setup view")
        await pilot.press("f3")
        await pilot.pause(0.2)
        boxes = dict((name, box) for box, name in re.findall(r"▐(.)▌ (\S+)", screen_text(app)))
        assert boxes["linear"] == boxes["cosine"] == "X"  # ticked
        assert boxes["quadratic"] == " "  # unticked: an empty box


async def test_a_custom_schedule_is_plotted_from_the_configured_values(tmp_path):
    from workbench.config import load_config

    config = load_config(None, ["schedule.name=custom", "schedule.timesteps=4", "schedule.betas=[0.1, 0.2, 0.3, 0.4]",
                                "sample.steps=4", f"run.dir={tmp_path}"])
    assert schedule_betas(config, "custom", get_host()) == pytest.approx([0.1, 0.2, 0.3, 0.4])


@pytest.mark.parametrize("key, screen", [("f2", PluginsScreen), ("f3", ScheduleScreen)])
async def test_q_quits_from_every_screen_and_escape_goes_back(config, key, screen):
    app = WorkbenchApp(config)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, SetupScreen), what="setup view")
        await pilot.press(key)
        assert isinstance(app.screen, screen)
        assert "Quit" in screen_text(app).splitlines()[-1]  # the footer names the quit key
        await pilot.press("escape")
        assert isinstance(app.screen, SetupScreen)
        assert "q Quit" in screen_text(app).splitlines()[-1]
        await pilot.press(key, "q")
        await pilot.pause(0.1)
    assert app.return_code == 0 and not app.is_running
