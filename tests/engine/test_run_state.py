"""What readers report about a run directory they cannot vouch for, and what resume cleans up after a kill."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

from workbench.engine.rundir import LIVE_STATES, READER_STATES, RunDirectory


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def with_status(tmp_path, **status) -> RunDirectory:
    run = RunDirectory.create(tmp_path, "r")
    run.status_path.write_text(json.dumps({"host": socket.gethostname(), **status}))
    return run


def test_a_live_status_whose_process_is_gone_and_never_checkpointed_is_abandoned(tmp_path):
    run = with_status(tmp_path, state="running", pid=dead_pid())
    state, why = run.observed_state()
    assert state == "abandoned" and "never wrote a checkpoint" in why


def test_with_a_checkpoint_it_is_failed_and_resumable(tmp_path):
    run = with_status(tmp_path, state="running", pid=dead_pid())
    run.checkpoint_path(6).write_bytes(b"x")
    state, why = run.observed_state()
    assert state == "failed" and "--resume" in why


def test_a_live_process_keeps_its_state(tmp_path):
    assert with_status(tmp_path, state="paused", pid=os.getpid()).observed_state() == ("paused", "")


def test_a_truncated_status_is_unknown_a_missing_one_starting_and_a_deleted_folder_deleted(tmp_path):
    run = with_status(tmp_path, state="running", pid=os.getpid())
    run.status_path.write_text(run.status_path.read_text()[:10])
    assert run.observed_state()[0] == "unknown"
    run.status_path.unlink()
    assert run.observed_state() == ("starting", ""), "not written yet: an engine that is starting"
    run.path.rename(tmp_path / "elsewhere")
    assert run.observed_state()[0] == "deleted"
    assert not set(READER_STATES) & set(LIVE_STATES)


def test_stale_temporaries_of_dead_processes_are_removed_and_live_ones_kept(tmp_path):
    run = RunDirectory.create(tmp_path, "r")
    dead = dead_pid()
    stale = [run.checkpoints_dir / f".step_0000006.pt.{dead}.tmp", run.checkpoints_dir / f".latest.pt.{dead}.tmp",
             run.path / f".status.json.{dead}.tmp"]
    live = run.checkpoints_dir / f".step_0000012.pt.{os.getpid()}.tmp"
    other = run.checkpoints_dir / "notes.tmp"
    for path in [*stale, live, other]:
        path.write_bytes(b"")
    assert sorted(run.remove_stale_temporaries()) == sorted(stale)
    assert live.exists() and other.exists()


def test_trimming_metrics_keeps_one_entry_per_step_up_to_the_checkpoint(tmp_path):
    run = RunDirectory.create(tmp_path, "r")
    lines = [json.dumps({"kind": "metrics", "step": s}) + "\n" for s in (2, 4, 6, 8)]
    run.metrics_path.write_text("".join(lines) + '{"kind": "metrics", "st')  # a half line from a kill
    assert run.trim_metrics_after(4) == 3
    assert [json.loads(x)["step"] for x in run.metrics_path.read_text().splitlines()] == [2, 4]
