"""Plugin components chosen by a config, and the one way their factories are called.

Resolve once: `workbench.config.resolve` looks each plugin section's `name` up in the plugin host (the one
place that falls back to the process-wide host) and validates the section's plugin keys against that
component. The resolved section keeps both: `cfg.schedule.component` (a `Component`) and
`cfg.schedule.params` (its validated parameters). The build functions, one per kind, take such a section
and never consult the host:

    build_schedule(cfg.schedule)            workbench.diffusion.schedule
    build_sampler(cfg.sample)               workbench.diffusion.sampling
    build_dataset(cfg.dataset, ...)         workbench.data.build
    build_backbone(cfg.backbone, ...)       workbench.backbones

The one error policy, for every kind and every plugin (built-in or third-party), is `call_factory`'s:

- a `WorkbenchError` the factory raises (ConfigError, DatasetError, ...) passes through unchanged: the plugin
  already said what the user can fix;
- a `ValueError` means the factory refused the parameters it was given: a one-line `ConfigError`
  "[section] <kind> '<name>' (plugin <plugin>) refused its parameters: <message>";
- anything else is a bug in the plugin: a one-line `PluginError` "<kind> '<name>' (plugin <plugin>) failed
  to build: <ExceptionType>: <first line>", chained to the original so a debugger still has the traceback.

What a factory returns is then checked by its kind's build function, whose errors name the plugin the same
way (`label`).
"""

from __future__ import annotations

from typing import Any

from workbench.errors import ConfigError, PluginError, WorkbenchError
from workbench.plugin_host.registry import Component


def label(component: Component) -> str:
    """How every message names a component: "schedule 'cosine' (plugin schedules)"."""
    return f"{component.kind} {component.name!r} (plugin {component.plugin})"


def chosen(section: Any) -> Component:
    """The component a resolved config section selected (see workbench.config.resolve)."""
    component = getattr(section, "component", None)
    if not isinstance(component, Component):
        raise TypeError(f"{section!r} is not a resolved plugin section; pass cfg.<section> of a resolved Config "
                        "(workbench.config.load_config or resolve)")
    return component


def call_factory(component: Component, *args: Any, section: str, at: str = "", **kwargs: Any) -> Any:
    """`component.factory(*args, **kwargs)` under the one error policy (see this module's docstring).

    `section` is the config section that selected it, for ConfigError; `at` says more about the call, for
    example " at timesteps = 20"."""
    try:
        return component.factory(*args, **kwargs)
    except WorkbenchError:
        raise
    except ValueError as exc:
        raise ConfigError(f"[{section}] {label(component)} refused its parameters{at}: {first_line(exc)}") from None
    except Exception as exc:  # noqa: BLE001 - a plugin's factory may raise anything; name the plugin
        raise PluginError(f"{label(component)} failed to build{at}: {describe_exception(exc)}") from exc


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else ""


def describe_exception(exc: BaseException) -> str:
    """"TypeName: first line of the message" (or just the type name when the message is empty)."""
    text = first_line(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
