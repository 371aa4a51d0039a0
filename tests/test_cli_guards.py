"""Bad input at the command line gets one line, never a traceback, a hang, or a silently different run:
the TUI without a terminal, an empty --config, `config` checking the schedule as `train` does, tables
that cut names and numbers, and a closed pipe."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.cli import main

REPO = Path(__file__).resolve().parents[1]
TUI_ADVICE = "for headless training use `ddpm-workbench train`"
ANSI = re.compile(r"\x1b\[[0-9;?]*[a-zA-Z]")


def workbench(*args, cwd, stdin=subprocess.DEVNULL, timeout=120, env=None):
    """`python -m workbench ARGS` with stdout and stderr piped (not a terminal)."""
    return subprocess.run([sys.executable, "-m", "workbench", *args], cwd=cwd, stdin=stdin, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})


def in_a_terminal(*args, cwd, columns=80, stdin_is_tty=True, timeout=120):
    """`python -m workbench ARGS` with stdout on a pseudo-terminal `columns` wide: (exit code, text on the
    terminal with colours removed, stderr)."""
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": str(columns), "LINES": "24", "TERM": "xterm-256color"}
    env.pop("FORCE_COLOR", None)
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen([sys.executable, "-m", "workbench", *args], cwd=cwd, env=env,
                            stdin=slave if stdin_is_tty else subprocess.DEVNULL, stdout=slave, stderr=subprocess.PIPE)
    os.close(slave)
    chunks = []
    try:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed its end
                break
            if not data:
                break
            chunks.append(data)
        proc.wait(timeout=timeout)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    text = ANSI.sub("", b"".join(chunks).decode("utf-8", "replace")).replace("\r\n", "\n")
    return proc.returncode, text, proc.stderr.read().decode()


# -- the TUI needs a terminal ------------------------------------------------------------------------


def make_run(cwd: Path, name: str = "base") -> None:
    from workbench.engine.rundir import RunDirectory

    run = RunDirectory.create(cwd / "runs", name)
    (run.path / "config.toml").write_text("[run]\n", encoding="utf-8")


@pytest.mark.parametrize("args", [[], ["--run-now", "--set", "dataset.name=synthetic", "--set", "train.steps=1"],
                                  ["attach", "base"]])
def test_the_tui_refuses_in_one_line_when_stdout_is_not_a_terminal(tmp_path, args):
    make_run(tmp_path)
    result = workbench(*args, cwd=tmp_path, timeout=60)
    assert result.returncode == 2
    assert result.stdout == ""  # no escape codes in the file
    assert result.stderr.startswith("error: the terminal UI needs a terminal (stdout is not one); ")
    assert TUI_ADVICE in result.stderr and result.stderr.count("\n") == 1
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["base"]  # --run-now started nothing


def test_the_tui_refuses_when_only_stdin_is_not_a_terminal(tmp_path):
    make_run(tmp_path)
    code, shown, err = in_a_terminal("attach", "base", cwd=tmp_path, stdin_is_tty=False, timeout=60)
    assert code == 2
    assert err.startswith("error: the terminal UI needs a terminal (stdin is not one); ") and TUI_ADVICE in err
    assert shown.strip() == ""


def test_config_errors_still_come_first(tmp_path):
    result = workbench("--set", "train.lr=0", cwd=tmp_path, timeout=60)
    assert result.returncode == 2 and result.stderr.startswith("error: [train] lr = 0.0 is out of range")


# -- --config '' -------------------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [["--config", "", "config"], ["config", "--config", ""], ["config", "-c", " "],
                                  ["schedules", "--config", ""]])
def test_an_empty_config_path_is_refused(in_tmp_cwd, capsys, argv):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: --config '': the config file path is empty; give a TOML file")
    assert captured.err.count("\n") == 1


def test_a_subcommand_config_still_wins_over_the_root_one(in_tmp_cwd, capsys):
    (in_tmp_cwd / "a.toml").write_text("[train]\nsteps = 7\n")
    assert main(["--config", "nope.toml", "config", "--config", "a.toml", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["config"]["train"]["steps"] == 7


# -- `config` builds the schedule, as `train` does ---------------------------------------------------


CUSTOM = ["--set", "schedule.name=custom"]


@pytest.mark.parametrize("sets, code, expected", [
    (["schedule.file=nope.npy"], 2, "error: [schedule] custom: file 'nope.npy' does not exist"),
    (["schedule.file=adir"], 2, "error: [schedule] custom: file 'adir' is a folder, not a file; give a .npy"),
    (["schedule.betas=[0.1, 0.2]"], 2, "error: [schedule] custom: betas holds 2 betas but timesteps = 1000"),
    (["schedule.betas=[0.1, 2.0]", "schedule.timesteps=2"], 1,
     "error: schedule 'custom' (plugin schedules) at timesteps = 2 is invalid: beta[1] = 2.0 is not in (0, 1]"),
])
def test_config_reports_what_train_would_refuse_about_the_schedule(in_tmp_cwd, capsys, sets, code, expected):
    (in_tmp_cwd / "adir").mkdir()
    argv = CUSTOM + [a for s in sets for a in ("--set", s)]
    assert main(["config", *argv]) == code
    err = capsys.readouterr().err
    assert err.startswith(expected) and err.count("\n") == 1
    from workbench.cli import build_parser, config_arguments
    from workbench.config import load_config
    from workbench.diffusion import build_schedule
    from workbench.errors import WorkbenchError

    with pytest.raises(WorkbenchError) as info:  # the very check `train` runs, with the same message
        build_schedule(load_config(*config_arguments(build_parser("config").parse_args(["config", *argv]))).schedule)
    assert f"error: {info.value}".startswith(expected) and info.value.exit_code == code


def test_config_accepts_a_valid_custom_schedule(in_tmp_cwd, capsys):
    import numpy as np

    np.save(in_tmp_cwd / "betas.npy", np.linspace(1e-4, 0.02, 50))
    assert main(["config", *CUSTOM, "--set", "schedule.file=betas.npy", "--set", "schedule.timesteps=50"]) == 0
    assert 'file = "betas.npy"' in capsys.readouterr().out


# -- tables: names and numbers are never cut ----------------------------------------------------------


BUILTIN_SCHEDULES = ["const", "cosine", "custom", "jsd", "linear", "quadratic", "scaled-linear", "sigmoid",
                     "sigmoid-beta", "warmup10", "warmup50"]


def schedule_numbers(cwd) -> dict[str, list[str]]:
    """Each schedule's alpha-bars and terminal SNR as the table prints them (4 and 3 significant digits)."""
    from workbench.commands.schedules import number

    listing = json.loads(workbench("schedules", "--json", cwd=cwd).stdout)
    return {row["name"]: [number(v) for v in row["alpha_bar"].values()] + [number(row["terminal_snr"], 3)]
            for row in listing["schedules"] if row["error"] is None}


def assert_schedule_rows_whole(text: str, numbers: dict[str, list[str]]) -> None:
    assert "…" not in text
    rows = {}
    for line in text.splitlines():
        words = line.split()
        if words and words[0] in BUILTIN_SCHEDULES:
            rows.setdefault(words[0], words)
    assert sorted(rows) == BUILTIN_SCHEDULES  # every name whole, at the start of its row
    for name, values in numbers.items():
        assert [w for w in rows[name] if w in values] == values, (name, rows[name])


def test_schedules_table_on_an_80_column_terminal(in_tmp_cwd):
    code, text, err = in_a_terminal("schedules", cwd=in_tmp_cwd, columns=80)
    assert code == 0, err
    assert max(len(line) for line in text.splitlines()) <= 80
    assert_schedule_rows_whole(text, schedule_numbers(in_tmp_cwd))
    assert "Rombach et al. 2022 (Stable Diffusion)" in text  # papers follow in a second table
    assert "custom: error: [schedule] schedule 'custom'" in " ".join(text.split())


def test_schedules_table_piped_is_one_full_table(in_tmp_cwd):
    result = workbench("schedules", cwd=in_tmp_cwd, env={"COLUMNS": "80"})
    assert result.returncode == 0
    assert_schedule_rows_whole(result.stdout, schedule_numbers(in_tmp_cwd))
    scaled = next(line for line in result.stdout.splitlines() if line.startswith("scaled-linear"))
    assert "schedules" in scaled and "Rombach et al. 2022 (Stable Diffusion)" in scaled


def test_schedules_table_at_the_largest_T_on_80_columns(in_tmp_cwd):
    code, text, _ = in_a_terminal("schedules", "--timesteps", "100000", cwd=in_tmp_cwd, columns=80)
    assert code == 0 and "…" not in text
    assert max(len(line) for line in text.splitlines()) <= 80
    names = {line.split()[0] for line in text.splitlines() if line.split()}
    assert set(BUILTIN_SCHEDULES) <= names


def test_schedule_numbers_are_short():
    from workbench.commands.schedules import number

    assert [number(v) for v in (0.9999, 0.006277, 4.036e-05, 0.0001102, 1.0, 0.0, 2.575e-07)] == \
        ["0.9999", "0.006277", "4.036e-5", "1.102e-4", "1", "0", "2.575e-7"]
    assert number(6.0333e-126, 3) == "6.03e-126"


@pytest.fixture
def third_party_plugin():
    """A plugin named and registered like the example plugin, whose origin the 80-column table cut short."""
    from workbench.plugin_host import hookimpl
    from workbench.plugin_host.manager import PluginHost, PluginInfo, reset_host

    class Plugin:
        @hookimpl
        def register_schedules(self, register):
            register("polynomial", lambda timesteps: None, description="x")

    def install(name="example", origin="ddpm-workbench-example-plugin", version="0.1.0"):
        host = PluginHost(load_entry_points=False)
        assert host.add_plugin(Plugin(), PluginInfo(name, origin, version, "tests")) is None
        reset_host(host)

    return install


def plugins_table(capsys, monkeypatch, terminal: bool) -> str:
    monkeypatch.setenv("COLUMNS", "80")
    if terminal:
        monkeypatch.setenv("TTY_COMPATIBLE", "1")  # rich: the captured stdout is a terminal...
        monkeypatch.setattr(sys.stdout, "isatty", lambda: True)  # ...and so it is for table_console
    assert main(["plugins"]) == 0
    return ANSI.sub("", capsys.readouterr().out)


@pytest.mark.parametrize("terminal", [True, False], ids=["80-column terminal", "piped"])
def test_plugins_table_never_cuts_names(third_party_plugin, capsys, monkeypatch, terminal):
    third_party_plugin()
    out = plugins_table(capsys, monkeypatch, terminal)
    assert "…" not in out
    if terminal:
        assert max(len(line) for line in out.splitlines()) <= 80
    words = out.split()
    for name in ("example", "ddpm-workbench-example-plugin", "0.1.0", "polynomial", "scaled-linear,",
                 "sigmoid-beta,", "dpm-solver++,", "heun", "fashion-mnist,"):
        assert name in words, name
    if not terminal:  # piped: one line per plugin
        row = next(line for line in out.splitlines() if " example " in line)
        assert "ddpm-workbench-example-plugin" in row and "schedule: polynomial" in row


def test_plugins_table_too_wide_for_the_terminal_folds_names_instead_of_cutting_them(
        third_party_plugin, capsys, monkeypatch):
    origin = "ddpm-workbench-example-plugin-with-a-distribution-name-longer-than-the-terminal-is-wide"
    third_party_plugin(origin=origin)
    out = plugins_table(capsys, monkeypatch, terminal=True)
    assert "…" not in out and max(len(line) for line in out.splitlines()) <= 80
    cells = [line.split("│")[3].strip() for line in out.splitlines() if line.count("│") == 5]
    assert origin in "".join(cells)  # the origin column, read top to bottom


# -- a closed pipe -------------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [["plugins", "--json"], ["config"], ["schedules"]])
def test_a_closed_pipe_is_not_a_traceback(tmp_path, args):
    """`ddpm-workbench plugins --json | head -1`: the reader is gone before everything is written."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = subprocess.run([sys.executable, "-m", "workbench", *args], cwd=tmp_path, stdout=write_end,
                                stderr=subprocess.PIPE, text=True, timeout=120,
                                env={**os.environ, "PYTHONPATH": str(REPO)})
    finally:
        os.close(write_end)
    assert result.stderr == ""
    assert result.returncode in (1, 141)  # 141 = 128 + SIGPIPE; rich's own handling exits with 1
