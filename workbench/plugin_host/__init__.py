"""The plugin host: hookspecs, the plugin manager and the registries of components."""

from workbench.plugin_host.hookspecs import hookimpl, hookspec
from workbench.plugin_host.registry import KINDS, Component, Registry
from workbench.plugin_host.manager import PluginHost, get_host

__all__ = ["hookimpl", "hookspec", "KINDS", "Component", "Registry", "PluginHost", "get_host"]
