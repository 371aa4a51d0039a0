"""All-or-nothing outputs, frame selection and per-image seeds: the pieces the commands are built from."""

from __future__ import annotations

import os
import signal

import pytest
import torch

from workbench.errors import UsageError
from workbench.sampling.outputs import OutputPlan
from workbench.sampling.progression import frame_steps
from workbench.sampling.seeding import starting_noise, stream_seed


def test_outputs_appear_only_when_the_block_succeeds(tmp_path):
    with OutputPlan() as plan:
        out = plan.file(tmp_path / "a.png", suffixes=(".png",))
        folder = plan.folder(tmp_path / "pngs")
        out.write_bytes(b"png")
        folder.write_bytes("0.png", b"x")
        assert not (tmp_path / "a.png").exists() and not (tmp_path / "pngs").exists()
    assert (tmp_path / "a.png").read_bytes() == b"png"
    assert os.listdir(tmp_path / "pngs") == ["0.png"]
    assert sorted(os.listdir(tmp_path)) == ["a.png", "pngs"]  # no temporaries left


def test_outputs_are_removed_on_any_error_ctrl_c_included(tmp_path):
    for error in (RuntimeError, KeyboardInterrupt):
        with pytest.raises(error):
            with OutputPlan() as plan:
                plan.file(tmp_path / "a.npz").write_bytes(b"partial")
                plan.folder(tmp_path / "pngs").write_bytes("0.png", b"x")
                raise error
        assert os.listdir(tmp_path) == []


def test_published_files_follow_the_umask_not_0600(tmp_path):
    old = os.umask(0o022)
    try:
        with OutputPlan() as plan:
            plan.file(tmp_path / "a.png").write_bytes(b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.png").stat().st_mode & 0o777 == 0o644


def test_the_same_path_for_two_outputs_is_refused(tmp_path):
    with pytest.raises(UsageError, match="also used by another option"):
        with OutputPlan() as plan:
            plan.file(tmp_path / "a.png")
            plan.file(tmp_path / "a.png", option="--strip")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("total, frames, expected", [
    (50, 5, [0, 12, 24, 37, 49]),
    (4, 40, [0, 1, 2, 3]),
    (1000, 2, [0, 999]),
    (10, 1, [0]),
])
def test_frames_are_evenly_spaced_with_first_and_last_step(total, frames, expected):
    assert frame_steps(total, frames) == expected


def test_each_image_has_its_own_noise_stream():
    whole = starting_noise(3, 0, 5, (1, 4, 4))
    tail = starting_noise(3, 2, 3, (1, 4, 4))
    assert torch.equal(whole[2:], tail)
    assert not torch.equal(whole[0], whole[1])
    assert not torch.equal(starting_noise(4, 0, 1, (1, 4, 4)), whole[:1])
    # nearby (seed, index) pairs do not collide, as seed * big + index would
    assert len({stream_seed(s, i) for s in range(20) for i in range(20)}) == 400


def test_an_existing_empty_folder_is_filled_in_place_and_kept_as_it_is(tmp_path, monkeypatch):
    """'.', a link to a folder, a folder with its own mode: the folder is never replaced (which failed for
    '.' and links, and reset the mode), and no temporary is left inside it."""
    target = tmp_path / "target"
    target.mkdir(mode=0o700)
    target.chmod(0o700)
    (tmp_path / "link").symlink_to(target)
    inode = target.stat().st_ino
    monkeypatch.chdir(target)
    for path in (".", tmp_path / "link", target):
        with OutputPlan() as plan:
            folder = plan.folder(path)
            folder.write_bytes("0.png", b"x")
            assert os.listdir(target) == [folder.temp.name]  # the temporary sits inside the folder
        assert os.listdir(target) == ["0.png"]
        assert (target / "0.png").read_bytes() == b"x"
        assert target.stat().st_ino == inode and target.stat().st_mode & 0o777 == 0o700
        assert (tmp_path / "link").is_symlink()
        (target / "0.png").unlink()
    assert sorted(os.listdir(tmp_path)) == ["link", "target"]


def test_an_existing_folder_is_left_empty_on_error(tmp_path):
    (tmp_path / "out").mkdir()
    for error in (RuntimeError, KeyboardInterrupt):
        with pytest.raises(error):
            with OutputPlan() as plan:
                plan.folder(tmp_path / "out").write_bytes("0.png", b"x")
                raise error
        assert os.listdir(tmp_path / "out") == []


def test_files_that_appear_in_the_folder_meanwhile_are_never_overwritten_and_nothing_is_lost(tmp_path):
    from workbench.errors import WorkbenchError

    (tmp_path / "out").mkdir()
    with pytest.raises(WorkbenchError, match="'1.png' appeared in it meanwhile") as caught:
        with OutputPlan() as plan:
            folder = plan.folder(tmp_path / "out")
            folder.write_bytes("0.png", b"mine")
            folder.write_bytes("1.png", b"mine")
            (tmp_path / "out" / "1.png").write_bytes(b"theirs")
    assert (tmp_path / "out" / "1.png").read_bytes() == b"theirs"
    assert str(folder.temp) in str(caught.value)  # the images are kept there, and the message says where
    assert sorted(os.listdir(folder.temp)) == ["0.png", "1.png"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into any folder")
def test_an_empty_folder_in_a_read_only_parent(tmp_path):
    parent = tmp_path / "parent"
    (parent / "out").mkdir(parents=True)
    parent.chmod(0o555)
    try:
        with OutputPlan() as plan:
            plan.folder(parent / "out").write_bytes("0.png", b"x")
        assert os.listdir(parent / "out") == ["0.png"]
    finally:
        parent.chmod(0o755)


def test_sigterm_in_a_plan_removes_the_outputs_and_the_handler_is_restored_after(tmp_path):
    """The handler itself, called in-process (a real SIGTERM is tested on a real process in
    test_signals.py): it raises Terminated, a SystemExit with code 143, and the temporaries go."""
    from workbench.sampling.outputs import Terminated

    before = signal.getsignal(signal.SIGTERM)
    assert before is signal.SIG_DFL
    with pytest.raises(Terminated) as caught:
        with OutputPlan() as plan:
            plan.file(tmp_path / "a.png").write_bytes(b"partial")
            plan.folder(tmp_path / "pngs").write_bytes("0.png", b"x")
            handler = signal.getsignal(signal.SIGTERM)
            assert callable(handler)
            handler(signal.SIGTERM, None)
    assert isinstance(caught.value, SystemExit) and caught.value.code == 143
    assert os.listdir(tmp_path) == []
    assert signal.getsignal(signal.SIGTERM) is before


def test_an_ignored_sigterm_stays_ignored(tmp_path):
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        with OutputPlan() as plan:
            plan.file(tmp_path / "a.png").write_bytes(b"x")
            assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_signal_while_publishing_waits_until_the_outputs_are_in_place(tmp_path, monkeypatch):
    """Ctrl-C in the middle of moving files into an existing folder must not leave half of them there."""
    from workbench.sampling import outputs

    (tmp_path / "out").mkdir()
    real_replace = os.replace
    calls = []

    def replace_then_interrupt(src, dst):
        real_replace(src, dst)
        calls.append(dst)
        if len(calls) == 1:
            signal.getsignal(signal.SIGINT)(signal.SIGINT, None)  # what Python does when Ctrl-C arrives here

    monkeypatch.setattr(outputs.os, "replace", replace_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        with OutputPlan() as plan:
            folder = plan.folder(tmp_path / "out")
            for i in range(3):
                folder.write_bytes(f"{i}.png", b"x")
    assert sorted(os.listdir(tmp_path / "out")) == ["0.png", "1.png", "2.png"]  # all of them, then the Ctrl-C
