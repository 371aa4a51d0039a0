"""The config loader: defaults, files, --set overrides, and one-line errors for every kind of bad input."""

from pathlib import Path

import pytest

from workbench.config import SCHEMA, load_config, parse_value
from workbench.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path, text):
    path = tmp_path / "c.toml"
    path.write_text(text)
    return path


def test_shipped_workbench_toml_equals_the_built_in_defaults():
    assert load_config(REPO / "workbench.toml") == load_config(None, search_cwd=False)


def test_shipped_workbench_toml_documents_every_host_key():
    text = (REPO / "workbench.toml").read_text()
    for section, keys in SCHEMA.items():
        assert f"[{section}]" in text
        for key in keys:
            assert f"\n{key} =" in text, f"workbench.toml does not document [{section}] {key}"


def test_defaults_without_a_file(in_tmp_cwd):
    cfg = load_config()
    assert cfg.source == "built-in defaults"
    assert cfg.train.lr == SCHEMA["train"]["lr"].default
    assert cfg.schedule.timesteps == 1000


def test_cwd_workbench_toml_is_picked_up(in_tmp_cwd):
    (in_tmp_cwd / "workbench.toml").write_text("[train]\nsteps = 7\n")
    cfg = load_config()
    assert cfg.train.steps == 7 and cfg.source == "workbench.toml"


def test_set_overrides_parse_toml_values_and_bare_strings(tmp_path):
    cfg = load_config(write(tmp_path, "[train]\nlr = 1e-3\n"),
                      ["train.lr=3e-4", "train.compile=true", "run.name=my run", "train.steps=12"])
    assert cfg.train.lr == pytest.approx(3e-4)
    assert cfg.train.compile is True
    assert cfg.run.name == "my run"
    assert cfg.train.steps == 12


def test_int_is_accepted_for_a_float_key(tmp_path):
    assert load_config(write(tmp_path, "[train]\nlr = 1\n")).train.lr == 1.0


def test_plugin_params_are_resolved_into_the_section(in_tmp_cwd):
    cfg = load_config()
    assert "preset" in cfg.backbone.params
    assert cfg.backbone.preset == cfg.backbone.params["preset"]


@pytest.mark.parametrize(
    "text, overrides, expected",
    [
        ("[run]\nseed = = 3\n", [], "invalid TOML: Invalid value (at line 2, column 8)"),
        ("[trian]\nsteps = 3\n", [], 'unknown config section [trian] (did you mean "train"?)'),
        ("[train]\nlrr = 3\n", [], "[train] unknown key 'lrr' (did you mean \"lr\"?)"),
        ("[train]\nsteps = \"many\"\n", [], "[train] steps = 'many' is a string; it must be an integer"),
        ("[train]\nsteps = 1.5\n", [], "[train] steps = 1.5 is a number; it must be an integer"),
        ("[train]\nsteps = 0\n", [], "[train] steps = 0 is out of range; it must be >= 1"),
        ("[train]\nlr = 0.0\n", [], "[train] lr = 0.0 is out of range; it must be > 0.0"),
        ("[train]\nlr = nan\n", [], "[train] lr = nan must be a finite number"),
        ("[train]\noptimizer = \"sgd\"\n", [], "[train] optimizer = 'sgd' is not allowed; choose one of 'adam', 'adamw'"),
        ("[train]\ncompile = 1\n", [], "[train] compile = 1 is an integer; it must be a boolean"),
        ("[dataset]\nflip = \"sometimes\"\n", [], "[dataset] flip = 'sometimes' is not allowed"),
        ("[schedule]\nname = \"linaer\"\n", [], "[schedule] name = 'linaer': no such schedule (did you mean \"linear\"?); installed:"),
        ("[schedule]\nbeta_ned = 0.1\n", [], "[schedule] unknown key 'beta_ned' (did you mean \"beta_end\"?)"),
        ("train = 3\n", [], "'train' must be a section ([train]), not an integer"),
        ("", ["train.lr"], "--set 'train.lr': expected section.key=value"),
        ("", ["lr=3"], "--set 'lr=3': expected section.key=value"),
        ("", ["sample.steps=2000"], "[sample] steps = 2000 is more than [schedule] timesteps = 1000"),
    ],
)
def test_bad_input_is_one_clear_line(tmp_path, text, overrides, expected):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), overrides)
    message = str(info.value)
    assert expected in message
    assert "\n" not in message


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="config file '.*nope.toml' does not exist"):
        load_config(tmp_path / "nope.toml")


def test_parse_value():
    assert parse_value("1e-4") == 1e-4
    assert parse_value("[1, 2]") == [1, 2]
    assert parse_value('"x"') == "x"
    assert parse_value("cosine") == "cosine"


def test_config_round_trips_through_toml(tmp_path, in_tmp_cwd):
    cfg = load_config(None, ["train.lr=5e-5", "run.name=a \"quoted\" name"])
    path = tmp_path / "resolved.toml"
    path.write_text(cfg.to_toml())
    assert load_config(path) == cfg


def test_config_is_read_only(in_tmp_cwd):
    cfg = load_config()
    with pytest.raises(AttributeError):
        cfg.train.lr = 1.0


def test_default_sampling_steps_follow_a_shorter_schedule_but_explicit_ones_are_checked(in_tmp_cwd):
    assert load_config(None, ["schedule.timesteps=20"]).sample.steps == 20
    with pytest.raises(ConfigError, match=r"\[sample\] steps = 30 is more than \[schedule\] timesteps = 20"):
        load_config(None, ["schedule.timesteps=20", "sample.steps=30"])


def test_picking_another_plugin_with_set_drops_the_files_keys_of_the_old_one(tmp_path):
    path = tmp_path / "workbench.toml"
    path.write_text('[schedule]\nname = "linear"\nbeta_start = 0.0002\n[backbone]\nname = "unet"\npreset = "tiny"\n')
    cfg = load_config(path, ["schedule.name=cosine", "schedule.s=0.01"])
    assert cfg.schedule.name == "cosine" and cfg.schedule.params == {"s": 0.01, "max_beta": 0.999}
    assert cfg.notes == ["[schedule] name = 'cosine' replaces 'linear': its keys beta_start were dropped "
                         "(set the new plugin's own keys with --set)"]
    # naming the same plugin again keeps the file's keys, and so does a file without a name
    same = load_config(path, ["schedule.name=linear"])
    assert same.schedule.params["beta_start"] == 0.0002 and same.notes == []
    # an unknown key for the plugin the user picked is still an error
    with pytest.raises(ConfigError, match="unknown key 'beta_end'"):
        load_config(path, ["schedule.name=cosine", "schedule.beta_end=0.03"])


def test_the_note_about_dropped_keys_reaches_stderr(tmp_path, monkeypatch, capsys):
    from workbench.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "workbench.toml").write_text('[schedule]\nname = "linear"\nbeta_end = 0.03\n')
    assert main(["config", "--set", "schedule.name=cosine"]) == 0
    assert capsys.readouterr().err == ("note: [schedule] name = 'cosine' replaces 'linear': its keys beta_end "
                                       "were dropped (set the new plugin's own keys with --set)\n")


def test_the_default_run_has_a_time_budget_that_a_step_count_of_your_own_turns_off(tmp_path):
    shipped = Path(__file__).resolve().parents[1] / "workbench.toml"
    assert (load_config(None, search_cwd=False).train.minutes, load_config(shipped).train.minutes) == (10, 10)
    # --set train.steps asks for that many steps, over the defaults and over the shipped file alike
    assert load_config(None, ["train.steps=50"], search_cwd=False).train.minutes == 0
    assert load_config(shipped, ["train.steps=50"]).train.minutes == 0
    both = load_config(shipped, ["train.steps=50", "train.minutes=2"])
    assert (both.train.steps, both.train.minutes) == (50, 2)
    assert load_config(shipped, ["train.lr=1e-4"]).train.minutes == 10  # other keys leave the budget alone
    # a file of yours (or a run's config.toml from before train.minutes existed) that gives steps alone
    mine = tmp_path / "mine.toml"
    mine.write_text("[train]\nsteps = 300\n")
    assert (load_config(mine).train.steps, load_config(mine).train.minutes) == (300, 0)
    mine.write_text("[train]\nsteps = 300\nminutes = 4\n")
    assert load_config(mine).train.minutes == 4
