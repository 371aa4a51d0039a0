"""The setup view: plugin choices, validation as you type, the start key, and --run-now."""

from __future__ import annotations

from conftest import screen_text, wait_until
from standin_engine import ScriptedEngine
from textual.widgets import Input, Select, Static

from workbench.config import load_config
from workbench.engine.rundir import RunDirectory
from workbench.errors import UsageError
from workbench.tui.app import WorkbenchApp
from workbench.tui.config_form import ConfigForm
from workbench.tui.run_screen import RunScreen
from workbench.tui.setup_screen import SetupScreen


class FakeLauncher:
    """Records the configs it is asked to start and runs the stand-in engine for them."""

    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.configs = []
        self.engines = []

    def __call__(self, config):
        self.configs.append(config)
        run = RunDirectory.create(self.tmp_path / "runs", f"launched{len(self.configs)}")
        engine = ScriptedEngine(run, total_steps=100_000)
        engine.start()
        self.engines.append(engine)
        return run, None

    def halt(self):
        for engine in self.engines:
            engine.halt.set()


async def type_into(pilot, app, widget_id: str, text: str) -> None:
    field = app.screen.query_one(f"#{widget_id}", Input)
    field.focus()
    field.value = ""
    await pilot.press(*list(text))


def error_under(app, widget_id: str) -> str:
    """The error shown under a field: empty when there is none, and it must really be on screen."""
    message = app.screen.query_one(f"#error-{widget_id}", Static)
    text = str(message.render())
    assert message.display == bool(text)
    return text


async def test_the_form_starts_from_the_config_and_its_overrides(in_tmp_cwd, tmp_path):
    config = load_config(None, ["train.steps=123", "schedule.name=cosine", "run.dir=runs"])
    app = WorkbenchApp(config, launcher=FakeLauncher(tmp_path))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, SetupScreen), what="setup view")
        assert app.screen.query_one("#train-steps", Input).value == "123"
        assert app.screen.query_one("#schedule-name", Select).value == "cosine"
        names = [str(option[0]) for option in app.screen.query_one("#dataset-name", Select)._options]
        assert "synthetic" in names and "fashion-mnist" in names  # from the plugin registry
        samplers = [str(option[0]) for option in app.screen.query_one("#sample-name", Select)._options]
        assert {"ddpm", "ddim", "dpm-solver++", "heun"} <= set(samplers)  # every registered sampler, heun too


async def test_errors_appear_under_the_field_as_you_type(config, tmp_path):
    launcher = FakeLauncher(tmp_path)
    app = WorkbenchApp(config, launcher=launcher)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, SetupScreen), what="setup view")
        form = app.screen.query_one(ConfigForm)
        await type_into(pilot, app, "train-lr", "0")
        assert "[train] lr = 0" in error_under(app, "train-lr") and "out of range" in error_under(app, "train-lr")
        await pilot.pause(0.1)
        assert "[train] lr = 0.0 is out of range" in screen_text(app)  # visible, under the field
        assert app.screen.check_action("start", ()) is None
        await pilot.press("ctrl+r")
        assert launcher.configs == []  # an invalid form starts nothing
        await pilot.press(".", "0", "0", "1")
        assert error_under(app, "train-lr") == "" and form.error == ""
        assert form.config.train.lr == 0.001
        await type_into(pilot, app, "train-batch-size", "lots")
        assert "[train] batch_size = 'lots' is a string; it must be an integer" in error_under(app, "train-batch-size")
        await type_into(pilot, app, "train-batch-size", "16")
        await type_into(pilot, app, "sample-steps", "5000")  # more than the 1000 timesteps
        assert "is more than [schedule] timesteps" in error_under(app, "sample-steps")
        await type_into(pilot, app, "schedule-timesteps", "8000")  # fixing the other key clears it
        assert error_under(app, "sample-steps") == "" and form.error == ""


async def test_class_conditioning_label_dropout_and_guidance_are_set_up_in_the_form(config, tmp_path):
    app = WorkbenchApp(config, launcher=FakeLauncher(tmp_path))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, SetupScreen), what="setup view")
        form = app.screen.query_one(ConfigForm)
        assert app.screen.query_one("#backbone-num-classes", Input).value == ""  # the preset's: none
        await type_into(pilot, app, "backbone-num-classes", "auto")
        await type_into(pilot, app, "train-label-dropout", "0.1")
        await type_into(pilot, app, "sample-guidance", "3")
        assert form.error == ""
        assert (form.config.backbone.params["num_classes"], form.config.train.label_dropout,
                form.config.sample.guidance) == ("auto", 0.1, 3.0)
        await type_into(pilot, app, "backbone-num-classes", "many")
        assert "num_classes = 'many' must be an integer >= 0" in form.error
        await type_into(pilot, app, "sample-guidance", "-1")
        await type_into(pilot, app, "backbone-num-classes", "")  # emptied: back to the preset's none
        await pilot.pause(0.1)
        assert "[sample] guidance = -1" in error_under(app, "sample-guidance")
        await type_into(pilot, app, "sample-guidance", "1")
        assert form.error == "" and form.config.backbone.params["num_classes"] is None


async def test_choosing_another_plugin_drops_the_old_plugins_keys(config, tmp_path):
    app = WorkbenchApp(config, launcher=FakeLauncher(tmp_path))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, SetupScreen), what="setup view")
        form = app.screen.query_one(ConfigForm)
        assert "beta_start" in form.config.schedule.params  # linear's own key
        app.screen.query_one("#schedule-name", Select).value = "cosine"
        await pilot.pause(0.1)
        assert form.error == ""
        assert form.config.schedule.name == "cosine" and "beta_start" not in form.config.schedule.params


async def test_the_start_key_launches_the_edited_config(config, tmp_path):
    launcher = FakeLauncher(tmp_path)
    app = WorkbenchApp(config, launcher=launcher, watch_interval_s=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, SetupScreen), what="setup view")
        await type_into(pilot, app, "train-steps", "77")
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: isinstance(app.screen, RunScreen), what="run view")
        assert [c.train.steps for c in launcher.configs] == [77]
        assert not any(isinstance(s, SetupScreen) for s in app.screen_stack)
        await wait_until(pilot, lambda: app.model.metrics is not None, what="metrics from the launched run")
    launcher.halt()


async def test_run_now_skips_the_setup_view(config, tmp_path):
    launcher = FakeLauncher(tmp_path)
    app = WorkbenchApp(config, launcher=launcher, run_now=True, watch_interval_s=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, RunScreen), what="run view")
        assert launcher.configs == [config]
        assert not any(isinstance(s, SetupScreen) for s in app.screen_stack)
    launcher.halt()


async def test_a_launch_failure_is_shown_and_the_setup_stays(config):
    def failing(cfg):
        raise UsageError("cannot create run directory 'runs/x': Permission denied; set run.dir to a writable folder")

    app = WorkbenchApp(config, launcher=failing)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, SetupScreen), what="setup view")
        await pilot.press("ctrl+r")
        await pilot.pause(0.1)
        assert isinstance(app.screen, SetupScreen)
        assert any("Permission denied" in str(n.message) for n in app._notifications)


async def test_the_form_sets_prediction_precision_and_a_custom_schedule_file(config, tmp_path):
    import numpy as np

    np.save(tmp_path / "betas.npy", np.linspace(1e-4, 0.02, 1000))
    app = WorkbenchApp(config, launcher=FakeLauncher(tmp_path))
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, SetupScreen), what="setup view")
        form = app.screen.query_one(ConfigForm)
        assert not app.screen.query_one("#field-schedule-file").visible  # linear has no file key
        app.screen.query_one("#train-prediction", Select).value = "v"
        app.screen.query_one("#train-precision", Select).value = "fp32"
        app.screen.query_one("#schedule-name", Select).value = "custom"
        await pilot.pause(0.1)
        assert app.screen.query_one("#field-schedule-file").visible
        # custom without values: the plugin's complaint sits under its file field, not at the bottom
        assert "refused its parameters" in error_under(app, "schedule-file")
        info = app.screen.query_one("#setup-info", Static)
        await wait_until(pilot, lambda: "schedule custom" in str(info.render()), what="the side panel on custom")
        await type_into(pilot, app, "schedule-file", str(tmp_path / "betas.npy"))
        await pilot.pause(0.1)
        assert form.error == "", form.error
        cfg = form.config
        assert (cfg.train.prediction, cfg.train.precision) == ("v", "fp32")
        assert cfg.schedule.name == "custom" and cfg.schedule.params["file"] == str(tmp_path / "betas.npy")


async def test_q_in_a_text_field_types_and_on_a_choice_quits(config, tmp_path):
    app = WorkbenchApp(config, launcher=FakeLauncher(tmp_path))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, SetupScreen), what="setup view")
        await type_into(pilot, app, "run-name", "q")
        assert app.screen.query_one("#run-name", Input).value == "q" and app.is_running
        app.screen.query_one("#dataset-name", Select).focus()
        await pilot.press("q")
        await pilot.pause(0.1)
    assert not app.is_running
