"""Config values that used to pass validation and fail later, or fail without saying how to fix them:
strings TOML reads as dates or numbers, a seed torch cannot take, run names that leave run.dir, and device
strings of the wrong form."""

from __future__ import annotations

import json

import pytest

from workbench.cli import main
from workbench.config import SEED_MAX, load_config
from workbench.errors import ConfigError


# Without the checks these would train: keep that short.
QUICK = ["--plain", "--set", "dataset.name=synthetic", "--set", "dataset.count=8", "--set", "train.steps=1",
         "--set", "train.batch_size=4", "--set", "sample.n=1", "--set", "sample.steps=1"]


def write(tmp_path, text):
    path = tmp_path / "c.toml"
    path.write_text(text)
    return path


def resolved(capsys, *sets) -> dict:
    assert main(["config", "--json", *[a for s in sets for a in ("--set", s)]]) == 0
    return json.loads(capsys.readouterr().out)["config"]


def one_error(capsys, argv) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and captured.err.startswith("error: ")
    return captured.err


# -- strings that TOML reads as something else ---------------------------------------------------------


@pytest.mark.parametrize("text", ["2024-01-01", "123", "1e3", "true", "12:30:00", "2024-01-01T10:00:00", "nan"])
def test_set_takes_the_text_as_typed_for_a_string_key(in_tmp_cwd, capsys, text):
    assert resolved(capsys, f"run.name={text}")["run"]["name"] == text


def test_set_takes_the_text_as_typed_for_a_plugin_string_key(in_tmp_cwd, capsys):
    assert resolved(capsys, "dataset.root=2024")["dataset"]["root"] == "2024"
    # keys of other types still get the parsed value, and a bool where bool is allowed stays a bool
    config = resolved(capsys, "train.steps=12", "dataset.flip=true", "run.seed=7")
    assert config["train"]["steps"] == 12 and config["dataset"]["flip"] is True and config["run"]["seed"] == 7


def test_set_text_for_a_key_with_choices_is_still_checked(in_tmp_cwd, capsys):
    err = one_error(capsys, ["config", "--set", "dataset.flip=1"])
    assert "[dataset] flip = '1' is not allowed; choose one of 'auto', true, false" in err


@pytest.mark.parametrize("line, expected", [
    ("[run]\nname = 2024-01-01\n",
     '[run] name = 2024-01-01 is a date; it must be a string: quote it, name = "2024-01-01"'),
    ("[run]\nname = 123\n", '[run] name = 123 is an integer; it must be a string: quote it, name = "123"'),
    ("[run]\nname = true\n", '[run] name = True is a boolean; it must be a string: quote it, name = "true"'),
    ("[run]\ndevice = 0\n", '[run] device = 0 is an integer; it must be a string: quote it, device = "0"'),
    ("[dataset]\nroot = 2024\n",
     '[dataset] root = 2024 is an integer; it must be a string: quote it, root = "2024"'),
])
def test_a_file_value_that_should_be_a_string_says_to_quote_it(tmp_path, line, expected):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, line))
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_a_list_for_a_string_key_is_still_refused(in_tmp_cwd, capsys):
    err = one_error(capsys, ["config", "--set", "run.name=[1, 2]"])
    assert "[run] name = [1, 2] is a list; it must be a string" in err


def test_the_resolved_config_with_text_from_set_round_trips(tmp_path, in_tmp_cwd):
    cfg = load_config(None, ["run.name=2024-01-01"])
    path = write(tmp_path, cfg.to_toml())
    assert load_config(path) == cfg


# -- run.seed ----------------------------------------------------------------------------------------------


def test_seed_is_limited_to_what_torch_takes(in_tmp_cwd, capsys):
    assert resolved(capsys, f"run.seed={SEED_MAX}")["run"]["seed"] == 2**63 - 1
    err = one_error(capsys, ["config", "--set", "run.seed=18446744073709551616"])
    assert "[run] seed = 18446744073709551616 is out of range; it must be <= 9223372036854775807" in err
    assert "out of range" in one_error(capsys, ["train", *QUICK, "--set", f"run.seed={2**63}"])


def test_the_largest_seed_seeds_torch():
    import torch

    torch.manual_seed(SEED_MAX)
    torch.Generator().manual_seed(SEED_MAX)


# -- run.name ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, problem", [
    ("../x", "contains a path separator"), ("a/b", "contains a path separator"),
    ("a\\b", "contains a path separator"), ("..", "contains '..'"),
    (".", "is run.dir itself"), ("x..y", "contains '..'"),
    ('"  "', "is blank"), ('"a\\tb"', "contains a control character"),
])
def test_run_names_must_be_one_folder_inside_run_dir(in_tmp_cwd, capsys, name, problem):
    err = one_error(capsys, ["config", "--set", f"run.name={name}"])
    assert "[run] name = " in err and problem in err
    assert "any characters except / and \\" in err and "leave it empty for a timestamp" in err


def test_run_names_refused_by_train_before_anything_is_written(in_tmp_cwd, capsys):
    assert "contains a path separator" in one_error(capsys, ["train", *QUICK, "--set", "run.name=../escaped"])
    assert not (in_tmp_cwd / "escaped").exists() and not (in_tmp_cwd / "runs").exists()


@pytest.mark.parametrize("name, problem", [
    ("x" * 256, "is 256 bytes long; file systems allow 255"), ("é" * 128, "is 256 bytes long"),
    ("a\udcff", "not valid UTF-8"),  # how Python hands over an undecodable byte of argv
])
def test_run_names_must_be_a_file_name_here_before_any_folder_exists(in_tmp_cwd, capsys, name, problem):
    assert problem in one_error(capsys, ["train", *QUICK, "--set", f"run.name={name}"])
    assert not (in_tmp_cwd / "runs").exists()


def test_a_255_byte_run_name_is_fine(in_tmp_cwd):
    assert load_config(None, ["run.name=" + "x" * 255]).run.name == "x" * 255


@pytest.mark.parametrize("name", ["exp-1", "my run", "a \"quoted\" name", "2024-01-01", "v1.2_b", "ünïcode", ""])
def test_ordinary_run_names_are_fine(in_tmp_cwd, name):
    assert load_config(None, [f"run.name={name}"] if name else []).run.name == name


# -- run.device -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("device", ["cuda:x", "gpu", "cuda0", "cuda:", "cuda:-1", "cpu:0", "tpu"])
def test_a_device_of_the_wrong_form_is_not_a_device(in_tmp_cwd, capsys, device):
    err = one_error(capsys, ["config", "--set", f"run.device={device}"])
    assert f"[run] device = '{device}' is not a device; use auto, cpu, cuda, cuda:N" in err
    assert "no CUDA GPU" not in err


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:0", "cuda:12", "CUDA:1", " cpu ", "mps"])
def test_devices_of_the_right_form_pass_the_config(in_tmp_cwd, device):
    # whether the GPU exists is for training to say (workbench.engine.distributed.resolve_device)
    assert load_config(None, [f"run.device=\"{device}\""]).run.device == device


# -- numbers: what the code that uses them accepts ---------------------------------------------------------


@pytest.mark.parametrize("setting, bound", [
    ("train.adam_beta1=1", "must be < 1.0"), ("train.adam_beta2=1.0", "must be < 1.0"),
    ("train.adam_beta1=-0.1", "must be >= 0.0"),
    ("train.steps=99999999999999999999", "must be <= 1000000000"),
    ("train.batch_size=100000000", "must be <= 65536"), ("train.keep_checkpoints=10000000", "<= 10000"),
    ("dataset.limit=99999999999999999999", "must be <= 9223372036854775807"),
    ("sample.steps=1000000", "<= 100000"),
])
def test_numbers_outside_what_the_code_accepts_are_refused_by_config(in_tmp_cwd, capsys, setting, bound):
    err = one_error(capsys, ["config", "--set", setting])
    assert "is out of range" in err and bound in err


@pytest.mark.parametrize("setting", ["train.adam_beta1=0", "train.adam_beta2=0.9999", "train.steps=1000000000"])
def test_numbers_at_the_edge_of_the_range_pass(in_tmp_cwd, setting):
    load_config(None, [setting])
