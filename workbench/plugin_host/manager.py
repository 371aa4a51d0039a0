"""Loading plugins: the built-ins, then each third-party entry point on its own.

A third-party plugin that fails to import, implements a hook that does not exist, raises inside a hook or
registers something invalid is recorded as a `PluginFailure`; everything else still loads. The built-in
plugins are part of this program, so a failure there is a bug and raises.

Environment switches (tests set the first so they never pick up what happens to be installed):
- `DDPM_WORKBENCH_NO_PLUGINS=1`: load no third-party plugins at all.
- `DDPM_WORKBENCH_BLOCK_PLUGINS=name1,name2`: skip the named entry points.
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Iterable

import pluggy

from workbench.errors import did_you_mean
from workbench.plugin_host import hookspecs
from workbench.plugin_host.crashes import ImportGuard
from workbench.plugin_host.registry import KINDS, NAME_PATTERN, Component, Registry

ENTRY_POINT_GROUP = "ddpm_workbench"
NO_PLUGINS_ENV = "DDPM_WORKBENCH_NO_PLUGINS"
BLOCK_PLUGINS_ENV = "DDPM_WORKBENCH_BLOCK_PLUGINS"

# Built-in plugin modules, registered through the same hooks a third party uses.
DEFAULT_PLUGINS = (
    "workbench_plugins.schedules",
    "workbench_plugins.samplers",
    "workbench_plugins.datasets",
    "workbench_plugins.backbones",
    "workbench_plugins.extractors",
)

HOOK_NAMES = tuple(KINDS.values())


@dataclass
class PluginInfo:
    name: str
    origin: str  # "built-in" or the distribution's name
    version: str
    module: str
    hooks: list[str] = field(default_factory=list)
    registered: dict[str, list[str]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "origin": self.origin,
            "version": self.version,
            "module": self.module,
            "hooks": sorted(self.hooks),
            "registered": {kind: sorted(names) for kind, names in self.registered.items()},
        }


@dataclass
class PluginFailure:
    plugin: str
    distribution: str
    error: str

    def as_dict(self) -> dict[str, str]:
        return {"plugin": self.plugin, "distribution": self.distribution, "error": self.error}

    def __str__(self) -> str:
        return f"plugin {self.plugin!r} ({self.distribution}): {self.error}"


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no", "off")


class PluginHost:
    """The plugin manager plus one registry per kind."""

    def __init__(self, *, load_entry_points: bool | None = None, blocked: Iterable[str] | None = None,
                 builtins: Iterable[str] = DEFAULT_PLUGINS):
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.registries = {kind: Registry(kind) for kind in KINDS}
        self.plugins: dict[str, PluginInfo] = {}
        self.failures: list[PluginFailure] = []
        if load_entry_points is None:
            load_entry_points = not env_flag(NO_PLUGINS_ENV)
        if blocked is None:
            blocked = [b.strip() for b in os.environ.get(BLOCK_PLUGINS_ENV, "").split(",") if b.strip()]
        self.blocked = set(blocked)

        from workbench import __version__

        for module_name in builtins:
            module = importlib.import_module(module_name)
            info = PluginInfo(module_name.rsplit(".", 1)[-1], "built-in", __version__, module_name)
            failure = self.add_plugin(module, info)
            if failure is not None:  # a bug in this program, not the user's doing
                raise RuntimeError(str(failure))
        if load_entry_points:
            self.load_entry_points()

    # -- loading -----------------------------------------------------------------------------------

    def load_entry_points(self) -> None:
        guard = None  # made on the first third-party plugin: nothing to do (no file touched) without one
        for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            if ep.name in self.blocked:
                continue
            dist = getattr(ep, "dist", None)
            dist_name = dist.metadata["Name"] if dist is not None else "unknown distribution"
            version = dist.version if dist is not None else "?"
            label = f"{dist_name} {version}"
            if ep.name in self.plugins:
                self.failures.append(PluginFailure(ep.name, label, f"a plugin named {ep.name!r} is already loaded"))
                continue
            guard = guard or ImportGuard()
            key = f"{dist_name}=={version}:{ep.name}"
            killed = guard.verdict(key)  # it ended an earlier process without a word (os._exit at import)
            if killed:
                self.failures.append(PluginFailure(ep.name, label, killed))
                continue
            with guard.importing(key, ep.name, label):
                try:
                    plugin = ep.load()
                except KeyboardInterrupt:
                    print(f"interrupted while importing plugin {ep.name!r} ({label})", file=sys.stderr)
                    raise
                except BaseException as exc:  # noqa: BLE001 - a plugin's import may raise anything, even SystemExit
                    self.failures.append(PluginFailure(ep.name, label,
                                                       f"failed to import {ep.value}: {describe(exc)}"))
                    continue
                info = PluginInfo(ep.name, dist_name, version, ep.value)
                failure = self.add_plugin(plugin, info)
            if failure is not None:
                self.failures.append(failure)

    def add_plugin(self, plugin: object, info: PluginInfo) -> PluginFailure | None:
        """Register one plugin and run its hooks; a failure is returned, never raised."""
        fail = lambda msg: PluginFailure(info.name, info.origin if info.origin == "built-in" else f"{info.origin} {info.version}", msg)  # noqa: E731
        try:
            self.pm.register(plugin, name=info.name)
        except (pluggy.PluginValidationError, ValueError) as exc:
            return fail(f"is not a valid plugin: {exc}")
        # pluggy only notices a misspelled hook at check_pending(), which would fail every plugin at once;
        # check this plugin alone so the loud failure names it.
        for caller in self.pm.get_hookcallers(plugin) or []:
            if not caller.has_spec():
                self.pm.unregister(plugin)
                return fail(f"implements unknown hook {caller.name!r}{did_you_mean(caller.name, HOOK_NAMES)}; "
                            f"hooks are: {', '.join(HOOK_NAMES)}")
        undecorated = [n for n in HOOK_NAMES if callable(getattr(plugin, n, None))
                       and self.pm.parse_hookimpl_opts(plugin, n) is None]
        if undecorated:
            self.pm.unregister(plugin)
            return fail(f"defines {undecorated[0]!r} without the @hookimpl decorator "
                        "(from workbench.plugin_host import hookimpl)")
        for caller_name in HOOK_NAMES:
            if self.pm.hook.__dict__.get(caller_name) is None:
                continue
            for impl in getattr(self.pm.hook, caller_name).get_hookimpls():
                if impl.plugin is not plugin:
                    continue
                kind = next(k for k, h in KINDS.items() if h == caller_name)
                info.hooks.append(caller_name)
                register, problems = self.register_callback(kind, info)
                try:
                    impl.function(register)
                except KeyboardInterrupt:
                    print(f"interrupted in plugin {info.name!r}'s {caller_name}", file=sys.stderr)
                    raise
                except BaseException as exc:  # noqa: BLE001 - SystemExit too: a plugin never ends the host
                    problems.append(f"{caller_name} raised {describe(exc)}")
                if problems:
                    # Keep what registered cleanly; report the rest.
                    self.plugins[info.name] = info
                    return fail("; ".join(problems))
        self.plugins[info.name] = info
        return None

    def register_callback(self, kind: str, info: PluginInfo):
        problems: list[str] = []

        def register(name, factory, *, params=None, description="", reference="", validate=None):
            if not isinstance(name, str) or not NAME_PATTERN.match(name):
                problems.append(f"registered a {kind} with an invalid name {name!r} (use lower-case letters, digits and '-')")
                return
            if not callable(factory):
                problems.append(f"registered {kind} {name!r} with a non-callable factory ({type(factory).__name__})")
                return
            if params is not None and not isinstance(params, dict):
                problems.append(f"registered {kind} {name!r} with params that are not a dict")
                return
            if validate is not None and not callable(validate):
                problems.append(f"registered {kind} {name!r} with a non-callable validate")
                return
            component = Component(kind, name, factory, info.name, dict(params or {}), description, reference, validate)
            try:
                self.registries[kind].add(component)
            except ValueError as exc:
                problems.append(str(exc))
                return
            info.registered.setdefault(kind, []).append(name)

        return register, problems

    # -- queries -----------------------------------------------------------------------------------

    def get(self, kind: str, name: str, *, section: str | None = None) -> Component:
        return self.registries[kind].get(name, section=section)

    def listing(self) -> dict[str, Any]:
        return {
            "plugins": [self.plugins[n].as_dict() for n in sorted(self.plugins)],
            "failures": [f.as_dict() for f in self.failures],
        }


def plugin_in_traceback(tb) -> str | None:
    """The innermost frame of `tb` that runs a third-party plugin's module, as "plugin 'name' (dist version)";
    None when no plugin code is on the stack (built-ins are part of this program). Loads no plugins."""
    if _HOST is None:
        return None
    modules = {info.module.split(":")[0]: info for info in _HOST.plugins.values() if info.origin != "built-in"}
    found = None
    while tb is not None:
        module = tb.tb_frame.f_globals.get("__name__", "")
        for prefix, info in modules.items():
            if module == prefix or module.startswith(prefix + "."):
                found = info
        tb = tb.tb_next
    return None if found is None else f"plugin {found.name!r} ({found.origin} {found.version})"


def describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


_HOST: PluginHost | None = None


def get_host() -> PluginHost:
    """The process-wide plugin host, loaded on first use."""
    global _HOST
    if _HOST is None:
        _HOST = PluginHost()
    return _HOST


def reset_host(host: PluginHost | None = None) -> None:
    """Replace the process-wide host (tests use this to register tiny plugins)."""
    global _HOST
    _HOST = host
