"""Config files that are not config files: refused in one line before parsing, and never a hang or a deep
recursion. A UTF-8 byte-order mark is accepted."""

from __future__ import annotations

import os
import threading

import pytest

from workbench.cli import main
from workbench.config import CONFIG_MAX_BYTES, load_config, nesting_depth


def one_error(capsys, argv) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and captured.err.startswith("error: "), captured.err
    return captured.err


def within_seconds(seconds, function):
    """Run `function` in a thread; fail (instead of hanging the suite) when it does not return in time."""
    result = {}
    thread = threading.Thread(target=lambda: result.update(value=function()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds} s"
    return result["value"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_is_refused_without_opening_it(tmp_path, capsys):
    fifo = tmp_path / "config.toml"
    os.mkfifo(fifo)
    err = within_seconds(10, lambda: one_error(capsys, ["config", "-c", str(fifo)]))
    assert "is a named pipe (FIFO), not a TOML file" in err


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero here")
def test_a_device_is_refused_without_reading_it(capsys):
    err = within_seconds(10, lambda: one_error(capsys, ["config", "-c", "/dev/zero"]))
    assert "'/dev/zero' is a device" in err


def test_dev_null_still_means_no_config_file():
    assert load_config(os.devnull).train.steps == load_config(None, search_cwd=False).train.steps


def test_a_folder_is_refused(tmp_path, capsys):
    assert "is a directory, not a TOML file" in one_error(capsys, ["config", "-c", str(tmp_path)])


def test_a_huge_file_is_refused_before_it_is_read(tmp_path, capsys):
    big = tmp_path / "big.toml"
    with open(big, "wb") as f:
        f.truncate(CONFIG_MAX_BYTES + 1)
    assert "a config file is at most 1,048,576 bytes" in one_error(capsys, ["config", "-c", str(big)])


def test_a_utf8_byte_order_mark_is_accepted(tmp_path):
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf[train]\nsteps = 7\n")
    assert load_config(path).train.steps == 7


def test_utf16_is_named(tmp_path, capsys):
    path = tmp_path / "u16.toml"
    path.write_bytes("[train]\nsteps = 7\n".encode("utf-16"))
    assert "is UTF-16" in one_error(capsys, ["config", "-c", str(path)])


@pytest.mark.parametrize("text, words", [
    ("a = " + "[" * 5000 + "]" * 5000, "nested 5000 deep"),
    ("a = " + "{b = " * 2000 + "1" + "}" * 2000, "nested 2000 deep"),
    ("[train]\nsteps = " + "9" * 5000, "cannot read this TOML"),
])
def test_inputs_that_made_the_parser_recurse_or_choke_are_one_line(tmp_path, capsys, text, words):
    path = tmp_path / "c.toml"
    path.write_text(text)
    assert words in within_seconds(20, lambda: one_error(capsys, ["config", "-c", str(path)]))


def test_deep_set_values_are_one_line(capsys):
    assert "nested more than 32 deep" in one_error(capsys, ["config", "--set", "train.lr=" + "[" * 5000])


def test_long_values_are_shortened_in_messages(capsys):
    err = one_error(capsys, ["config", "--set", "train.steps=" + "9" * 4000])
    assert len(err) < 600 and "(4,000 characters) is out of range" in err


def test_nesting_ignores_brackets_in_strings_and_comments():
    assert nesting_depth('a = "[[[[" # {{{{\nb = [[1], \'[[[\']\n[[t]]\nc = """\n[[[[\n"""') == 2
