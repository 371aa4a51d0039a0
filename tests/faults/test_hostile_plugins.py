"""Hostile third-party plugins, installed as real dist-info entry points, cannot end or fool the host
silently: whatever they do, the user learns which plugin it was."""

from __future__ import annotations

import json

from tests.faults.helpers import cli, make_distribution, one_line_error, tiny_args
from workbench.plugin_host import PluginHost

EXIT_AT_IMPORT = "import os\nos._exit(7)\n"

HOOK_EXITS = '''
import sys
from workbench.plugin_host import hookimpl

@hookimpl
def register_schedules(register):
    sys.exit(4)
'''

FORWARD_EXITS = '''
import sys
import torch
from workbench.plugin_host import hookimpl


class Quitter(torch.nn.Module):
    def __init__(self, in_channels, out_channels, image_size, **kw):
        super().__init__()
        self.conv = torch.nn.Conv2d(in_channels, out_channels, 3, padding=1)

    def forward(self, x, t, y=None):
        if self.training:  # after set-up (which measures the model), in the middle of training
            sys.exit(3)
        return self.conv(x)


@hookimpl
def register_backbones(register):
    register("quitter", Quitter, description="calls sys.exit in forward")
'''


def test_a_plugin_that_calls_os_exit_at_import_is_named_and_skipped_next_time(tmp_path, site, monkeypatch):
    make_distribution(site, "wbfault-killer", "wbfault_killer", EXIT_AT_IMPORT)
    first = cli(tmp_path, "plugins", "--json", plugins=site, env_extra={"DDPM_WORKBENCH_PLUGIN_TRACE": "1"})
    assert first.returncode == 7  # nothing can speak at the moment of os._exit, except the opt-in trace ...
    assert "loading plugin 'wbfault_killer' (wbfault-killer 1.0)" in first.stderr
    monkeypatch.setenv("DDPM_WORKBENCH_CACHE_DIR", str(tmp_path / "cache"))  # the cache the subprocess used
    host = PluginHost()  # ... and the next start knows which plugin it was, and does not import it again
    (failure,) = host.failures
    assert failure.plugin == "wbfault_killer" and failure.distribution == "wbfault-killer 1.0"
    assert "ended while importing or registering plugin 'wbfault_killer'" in failure.error
    assert "linear" in host.registries["schedule"], "everything else loads"


def test_sys_exit_in_a_hook_is_a_recorded_failure(site):
    make_distribution(site, "wbfault-hook", "wbfault_hook", HOOK_EXITS)
    (failure,) = PluginHost().failures
    assert failure.plugin == "wbfault_hook" and "register_schedules raised SystemExit: 4" in failure.error


def test_sys_exit_in_a_backbones_forward_fails_the_run_and_names_the_plugin(tmp_path, site):
    make_distribution(site, "wbfault-quit", "wbfault_quit", FORWARD_EXITS)
    result = cli(tmp_path, "train", "--plain", *tiny_args("backbone.name=quitter", "train.steps=4", "run.dir=runs",
                                                         "run.name=q", unet=False), plugins=site)
    line = one_line_error(result, 1)
    assert "training failed at step 0: plugin 'wbfault_quit' (wbfault-quit 1.0) called sys.exit(3)" in line
    assert "kept: no checkpoint yet" in line
    status = json.loads((tmp_path / "runs" / "q" / "status.json").read_text())
    assert status["state"] == "failed"
    events = [json.loads(x) for x in (tmp_path / "runs" / "q" / "events.jsonl").read_text().splitlines()]
    assert events[-1]["kind"] == "failed" and "sys.exit(3)" in events[-1]["message"]


def test_sys_exit_while_a_plugin_builds_is_one_line_naming_it(tmp_path, site, capsys):
    from workbench.cli import main

    make_distribution(site, "wbfault-quit", "wbfault_quit", FORWARD_EXITS.replace("if self.training:", "if True:"))
    code = main(["train", "--plain", *tiny_args("backbone.name=quitter", "train.steps=4",
                                                f"run.dir={tmp_path / 'runs'}", unet=False)])
    err = capsys.readouterr().err
    assert (code, err.count("\n")) == (1, 1), err
    assert "error: plugin 'wbfault_quit' (wbfault-quit 1.0) called sys.exit(3)" in err
