"""`ddpm-workbench schedules`: every installed schedule, as a table or JSON, at the configured T."""

from __future__ import annotations

import json

import pytest

from tests.diffusion.test_schedules import BUILTIN
from workbench.cli import main


def run_json(capsys, *args) -> dict:
    assert main(["schedules", "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_json_lists_every_builtin_schedule(in_tmp_cwd, capsys):
    listing = run_json(capsys)
    rows = {row["name"]: row for row in listing["schedules"]}
    assert sorted(rows) == BUILTIN and listing["timesteps"] == 1000
    linear = rows["linear"]
    assert linear["selected"] and linear["plugin"] == "schedules" and linear["paper"].startswith("Ho et al. 2020")
    assert set(linear["alpha_bar"]) == {"0", "T/4", "T/2", "3T/4", "T"}
    assert linear["alpha_bar"]["0"] == pytest.approx(1 - 1e-4)
    assert linear["alpha_bar"]["T"] == pytest.approx(4.0358e-5, rel=1e-4)
    assert linear["terminal_snr"] == pytest.approx(4.0358e-5 / (1 - 4.0358e-5), rel=1e-4)
    assert rows["jsd"]["alpha_bar"]["T"] == 0.0 and rows["jsd"]["terminal_snr"] == 0.0
    # custom has no values by default: an error row, not a failed command
    assert rows["custom"]["alpha_bar"] is None and "give exactly one of" in rows["custom"]["error"]


def test_it_follows_the_config_timesteps_and_rescale(in_tmp_cwd, capsys):
    listing = run_json(capsys, "--set", "schedule.timesteps=40", "--set", "sample.steps=10",
                       "--set", "schedule.zero_terminal_snr=true", "--set", "schedule.name=cosine",
                       "--set", "schedule.s=0.1")
    rows = {row["name"]: row for row in listing["schedules"]}
    assert listing["timesteps"] == 40 and rows["cosine"]["selected"]
    assert all(row["terminal_snr"] == 0.0 for row in rows.values() if row["error"] is None)
    default_s = run_json(capsys, "--timesteps", "40", "--set", "schedule.zero_terminal_snr=true")
    cosine_default = {row["name"]: row for row in default_s["schedules"]}["cosine"]
    assert rows["cosine"]["alpha_bar"]["T/2"] != cosine_default["alpha_bar"]["T/2"]  # s = 0.1 was used


def test_a_schedule_failing_at_this_T_gets_an_error_row(in_tmp_cwd, capsys):
    rows = {row["name"]: row for row in run_json(capsys, "--timesteps", "100000")["schedules"]}
    assert "underflowed" in rows["const"]["error"] and rows["cosine"]["error"] is None


def test_the_table(in_tmp_cwd, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["schedules", "--timesteps", "8"]) == 0
    out = capsys.readouterr().out
    assert "noise schedules at T = 8" in out
    for name in BUILTIN:
        assert name in out
    assert "error: [schedule] schedule 'custom'" in out  # rich markup in messages is escaped


def test_values_round_trip_through_a_custom_schedule(in_tmp_cwd, capsys):
    # what `schedules --values` prints is a file the custom schedule reads, giving the same alpha-bars
    assert main(["schedules", "--values", "cosine", "--set", "schedule.timesteps=50", "--set", "sample.steps=10"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert list(printed) == ["alpha_bars"] and len(printed["alpha_bars"]) == 50
    (in_tmp_cwd / "mine.json").write_text(json.dumps(printed))
    listing = run_json(capsys, "--set", "schedule.timesteps=50", "--set", "sample.steps=10",
                       "--set", "schedule.name=custom", "--set", "schedule.file=mine.json")
    rows = {row["name"]: row for row in listing["schedules"]}
    assert rows["custom"]["alpha_bars"] == pytest.approx(rows["cosine"]["alpha_bars"], rel=1e-12)
    assert len(rows["linear"]["alpha_bars"]) == 50


def test_values_of_an_unknown_schedule_is_one_line(in_tmp_cwd, capsys):
    assert main(["schedules", "--values", "cosin"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --values 'cosin': no such schedule (did you mean \"cosine\"?)") and err.count("\n") == 1
