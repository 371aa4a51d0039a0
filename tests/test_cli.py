"""The command line: dispatch, one-line errors with exit code 2, config printing, plugin listing."""

import json
import os
import subprocess
import sys

import pytest

from workbench.cli import COMMANDS, main


def run_cli(*args, cwd):
    env = dict(os.environ, DDPM_WORKBENCH_NO_PLUGINS="1")
    return subprocess.run([sys.executable, "-m", "workbench", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=120)


def test_every_subcommand_is_in_the_help(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


def test_config_prints_resolved_toml_with_overrides_on_both_sides(capsys, in_tmp_cwd):
    assert main(["--set", "train.lr=3e-4", "config", "--set", "train.steps=5"]) == 0
    out = capsys.readouterr().out
    assert "lr = 0.0003\n" in out and "steps = 5\n" in out
    assert out.startswith("# resolved from built-in defaults")


def test_config_json(capsys, in_tmp_cwd):
    assert main(["config", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["config"]["schedule"]["timesteps"] == 1000


def test_plugins_json_lists_builtins(capsys):
    assert main(["plugins", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    origins = {p["name"]: p["origin"] for p in listing["plugins"]}
    assert {"schedules", "samplers", "datasets", "backbones"} <= set(origins)
    assert listing["failures"] == []


@pytest.mark.parametrize(
    "args, expected",
    [
        (["config", "--config", "missing.toml"], "error: config file 'missing.toml' does not exist"),
        (["config", "--set", "train.steps=-1"], "error: [train] steps = -1 is out of range"),
        (["nonsense"], "error: ddpm-workbench: argument COMMAND: invalid choice: 'nonsense'"),
        (["config", "--bogus"], "error: ddpm-workbench: unrecognized arguments: --bogus"),
    ],
)
def test_usage_errors_are_one_line_with_exit_code_2(capsys, in_tmp_cwd, args, expected):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(expected), err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_malformed_toml_names_line_and_column(tmp_path):
    (tmp_path / "workbench.toml").write_text("[train]\nlr = 1e-4\nsteps = 10 20\n")
    out = run_cli("config", cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.startswith("error: workbench.toml: invalid TOML:")
    assert "line 3" in out.stderr and "Traceback" not in out.stderr


def test_help_imports_no_command_and_a_command_imports_only_its_own():
    # --help must stay quick, and a command must not pay for the others' imports.
    code = ("import sys, contextlib, io; from workbench.cli import main\n"
            "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()): main(sys.argv[1:])\n"
            "print(sorted(m for m in sys.modules if m.startswith('workbench.commands.')), 'torch' in sys.modules)")
    help_only = subprocess.run([sys.executable, "-c", code, "--help"], capture_output=True, text=True, timeout=120)
    assert help_only.stdout.strip() == "[] False", help_only.stderr
    train_help = subprocess.run([sys.executable, "-c", code, "train", "--help"], capture_output=True, text=True,
                                timeout=120)
    assert train_help.stdout.strip() == "['workbench.commands.train'] False", train_help.stderr


def test_a_subcommands_help_lists_its_own_options(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--set", "train.lr=1e-4", "sample", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: ddpm-workbench sample") and "--checkpoint" in out


def test_help_loads_no_plugin_machinery():
    # argparse's --help exits with SystemExit; telling it apart from a plugin's sys.exit must cost nothing.
    code = ("import sys; from workbench.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('pluggy' in sys.modules, 'torch' in sys.modules, file=sys.stderr)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stderr.strip() == "False False", out.stderr
