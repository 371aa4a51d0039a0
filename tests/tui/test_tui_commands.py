"""`ddpm-workbench` (the TUI command with --run-now) and `ddpm-workbench attach [RUN]`."""

from __future__ import annotations

import pytest
from standin_engine import write_history

import workbench.tui.app as tui_app
from workbench.cli import build_parser, main
from workbench.engine.rundir import RunDirectory


@pytest.fixture
def opened(monkeypatch):
    """Replace the app's entry point: record how it would have been opened."""
    calls = []

    def fake_run_app(config, *, run=None, run_now=False):
        calls.append({"config": config, "run": run, "run_now": run_now})
        return 0

    monkeypatch.setattr(tui_app, "run_app", fake_run_app)
    return calls


def test_run_now_is_a_root_flag(in_tmp_cwd, opened):
    assert build_parser().parse_args(["--run-now"]).run_now is True
    assert main(["--run-now", "--set", "train.steps=9"]) == 0
    assert opened[0]["run_now"] is True and opened[0]["config"].train.steps == 9
    assert main([]) == 0
    assert opened[1]["run_now"] is False and opened[1]["run"] is None


def test_a_bad_config_fails_before_the_app_opens(in_tmp_cwd, opened, capsys):
    assert main(["--set", "train.lr=0"]) == 2
    assert "error: [train] lr = 0.0 is out of range" in capsys.readouterr().err
    assert opened == []


def test_attach_finds_latest_by_name_and_by_path(in_tmp_cwd, opened):
    write_history(RunDirectory.create("runs", "first"))
    write_history(RunDirectory.create("runs", "second"))
    assert main(["attach"]) == 0
    assert opened[-1]["run"].name == "second"  # latest
    assert main(["attach", "first"]) == 0
    assert opened[-1]["run"].name == "first"
    assert main(["attach", str(in_tmp_cwd / "runs" / "first")]) == 0
    assert opened[-1]["run"].path == in_tmp_cwd / "runs" / "first"


def test_attach_uses_dir_or_the_configured_runs_folder(in_tmp_cwd, opened):
    write_history(RunDirectory.create("elsewhere", "exp"))
    assert main(["attach", "exp", "--dir", "elsewhere"]) == 0
    assert opened[-1]["run"].name == "exp"
    assert main(["attach", "--set", "run.dir=elsewhere"]) == 0
    assert opened[-1]["run"].name == "exp"


def test_attach_to_a_missing_run_is_a_one_line_error(in_tmp_cwd, opened, capsys):
    assert main(["attach"]) == 2
    assert "no runs found in 'runs'" in capsys.readouterr().err
    write_history(RunDirectory.create("runs", "only"))
    assert main(["attach", "onyl"]) == 2
    err = capsys.readouterr().err
    assert "run 'onyl' not found" in err and "only" in err
    assert opened == []
