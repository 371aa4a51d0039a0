"""The plugin host: built-ins, third-party entry points loaded one by one, failures recorded, not fatal."""

import importlib
import json
import os
import subprocess
import sys
import textwrap

import pytest

from workbench.errors import ConfigError
from workbench.plugin_host import PluginHost, hookimpl
from workbench.plugin_host.manager import PluginInfo

GOOD = '''
import torch
from workbench.plugin_host import hookimpl

@hookimpl
def register_schedules(register):
    register("flat", lambda timesteps, beta=0.01: torch.full((timesteps,), beta, dtype=torch.float64),
             params={"beta": 0.01}, description="constant betas")
'''


def make_distribution(root, dist, module, source, entry_name=None):
    """A real installed distribution on `root`: module file, dist-info with METADATA and entry_points.txt."""
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(f"[ddpm_workbench]\n{entry_name or module} = {module}\n")


@pytest.fixture
def site(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    yield tmp_path
    for name in [m for m in sys.modules if m.startswith("wbtest_")]:
        del sys.modules[name]


def test_builtins_register_through_the_same_hooks():
    host = PluginHost(load_entry_points=False)
    assert {p.origin for p in host.plugins.values()} == {"built-in"}
    assert "linear" in host.registries["schedule"]
    assert all(host.registries[kind] for kind in host.registries), "every kind has a built-in"


def test_a_good_third_party_plugin_is_loaded_with_its_distribution(site):
    make_distribution(site, "wbtest-good", "wbtest_good", GOOD)
    host = PluginHost(load_entry_points=True)
    info = host.plugins["wbtest_good"]
    assert (info.origin, info.version) == ("wbtest-good", "1.2.3")
    assert info.registered == {"schedule": ["flat"]}
    assert host.get("schedule", "flat").plugin == "wbtest_good"
    assert host.failures == []


FAILING = {
    "import": ("raise ImportError('needs numpy 9')", "failed to import wbtest_bad: ImportError: needs numpy 9"),
    "exit": ("import sys; sys.exit(3)", "failed to import wbtest_bad: SystemExit: 3"),
    "noncallable": (
        "from workbench.plugin_host import hookimpl\n@hookimpl\ndef register_schedules(register):\n"
        "    register('broken', 42)\n",
        "registered schedule 'broken' with a non-callable factory (int)"),
    "misspelled": (
        "from workbench.plugin_host import hookimpl\n@hookimpl\ndef register_schedule(register):\n    pass\n",
        "implements unknown hook 'register_schedule' (did you mean \"register_schedules\"?)"),
    "undecorated": (
        "def register_samplers(register):\n    pass\n",
        "defines 'register_samplers' without the @hookimpl decorator"),
    "raises": (
        "from workbench.plugin_host import hookimpl\n@hookimpl\ndef register_datasets(register):\n"
        "    raise RuntimeError('boom')\n",
        "register_datasets raised RuntimeError: boom"),
    "duplicate": (
        "from workbench.plugin_host import hookimpl\n@hookimpl\ndef register_schedules(register):\n"
        "    register('linear', lambda timesteps: None)\n",
        "schedule 'linear' is registered by both plugin 'schedules' and plugin 'wbtest_bad'"),
}


@pytest.mark.parametrize("case", sorted(FAILING))
def test_a_broken_plugin_is_recorded_and_everything_else_loads(site, case):
    source, expected = FAILING[case]
    make_distribution(site, "wbtest-bad", "wbtest_bad", source)
    make_distribution(site, "wbtest-good", "wbtest_good", GOOD)
    host = PluginHost(load_entry_points=True)
    assert len(host.failures) == 1
    failure = host.failures[0]
    assert failure.plugin == "wbtest_bad" and failure.distribution == "wbtest-bad 1.2.3"
    assert expected in failure.error
    assert "flat" in host.registries["schedule"], "the good plugin still loads"
    assert "linear" in host.registries["schedule"]
    assert host.get("schedule", "linear").plugin == "schedules", "a duplicate never replaces the first"


def test_environment_switches(site, monkeypatch):
    make_distribution(site, "wbtest-good", "wbtest_good", GOOD)
    monkeypatch.setenv("DDPM_WORKBENCH_NO_PLUGINS", "1")
    assert "wbtest_good" not in PluginHost().plugins
    monkeypatch.setenv("DDPM_WORKBENCH_NO_PLUGINS", "0")
    assert "wbtest_good" in PluginHost().plugins
    monkeypatch.setenv("DDPM_WORKBENCH_BLOCK_PLUGINS", "other, wbtest_good")
    assert "wbtest_good" not in PluginHost().plugins


def test_plugin_params_are_checked_with_did_you_mean():
    class Plugin:
        @hookimpl
        def register_schedules(self, register):
            register("steep", lambda timesteps, power=2.0: None, params={"power": 2.0},
                     validate=lambda p: None if p["power"] > 0 else (_ for _ in ()).throw(ValueError("power must be > 0")))

    host = PluginHost(load_entry_points=False)
    assert host.add_plugin(Plugin(), PluginInfo("steep-plugin", "test", "0", "test")) is None
    component = host.get("schedule", "steep")
    assert component.resolve_params({"power": 3}) == {"power": 3.0}
    with pytest.raises(ConfigError, match=r"unknown key 'powr' for schedule 'steep' \(did you mean \"power\"\?\)"):
        component.resolve_params({"powr": 3})
    with pytest.raises(ConfigError, match=r"power = 'x' is a string; it must be a number"):
        component.resolve_params({"power": "x"})
    with pytest.raises(ConfigError, match=r"\(plugin steep-plugin\) refused its parameters: power must be > 0"):
        component.resolve_params({"power": -1.0})


def test_invalid_names_are_refused():
    class Plugin:
        @hookimpl
        def register_samplers(self, register):
            register("Bad Name", lambda: None)

    host = PluginHost(load_entry_points=False)
    failure = host.add_plugin(Plugin(), PluginInfo("p", "test", "0", "test"))
    assert "invalid name 'Bad Name'" in failure.error


def test_cli_lists_a_broken_plugin_without_a_traceback(tmp_path):
    make_distribution(tmp_path, "wbtest-bad", "wbtest_bad", "raise ImportError('needs numpy 9')")
    make_distribution(tmp_path, "wbtest-good", "wbtest_good", GOOD)
    env = dict(os.environ, PYTHONPATH=str(tmp_path), DDPM_WORKBENCH_NO_PLUGINS="0", DDPM_WORKBENCH_BLOCK_PLUGINS="")
    out = subprocess.run([sys.executable, "-m", "workbench", "plugins", "--json"], capture_output=True, text=True,
                         env=env, cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr
    listing = json.loads(out.stdout)
    names = {p["name"]: p for p in listing["plugins"]}
    assert names["wbtest_good"]["origin"] == "wbtest-good"
    assert names["schedules"]["origin"] == "built-in"
    assert listing["failures"] == [{"plugin": "wbtest_bad", "distribution": "wbtest-bad 1.2.3",
                                    "error": "failed to import wbtest_bad: ImportError: needs numpy 9"}]
    # other commands still work, with a one-line warning
    out = subprocess.run([sys.executable, "-m", "workbench", "config", "--set", "schedule.name=flat"],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr
    assert 'name = "flat"' in out.stdout
    assert out.stderr.strip() == "warning: 1 plugin problem(s) (wbtest_bad); see `ddpm-workbench plugins`"
