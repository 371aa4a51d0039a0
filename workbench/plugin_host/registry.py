"""Registries of components (schedules, datasets, backbones, samplers, feature extractors) and their parameter
checks."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from workbench.errors import ConfigError, did_you_mean

# kind -> the hook that registers it and the config section that selects it
KINDS = {
    "schedule": "register_schedules",
    "dataset": "register_datasets",
    "backbone": "register_backbones",
    "sampler": "register_samplers",
    "feature_extractor": "register_feature_extractors",
}

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.+-]*$")


@dataclass(frozen=True)
class Component:
    """One registered thing: what users select by `name` in a config section."""

    kind: str
    name: str
    factory: Callable[..., Any]
    plugin: str
    params: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    reference: str = ""
    validate: Callable[[dict], None] | None = None

    def resolve_params(self, table: Mapping[str, Any], *, section: str | None = None) -> dict:
        """Check a config table's plugin keys against this component's parameters.

        Returns the defaults updated with `table`. Unknown keys, values of the wrong type and values the
        plugin's own `validate` refuses raise `ConfigError` naming section, key, value and the plugin.
        """
        section = section or self.kind
        resolved = dict(self.params)
        for key, value in table.items():
            if key not in self.params:
                allowed = ", ".join(sorted(self.params)) or "none"
                raise ConfigError(
                    f"[{section}] unknown key {key!r} for {self.kind} {self.name!r}"
                    f"{did_you_mean(key, self.params)}; its keys are: {allowed}"
                )
            resolved[key] = coerce_param(section, key, value, self.params[key])
        if self.validate is not None:
            try:
                self.validate(dict(resolved))
            except (ValueError, TypeError) as exc:
                raise ConfigError(
                    f"[{section}] {self.kind} {self.name!r} (plugin {self.plugin}) refused its parameters: {exc}"
                ) from None
        return resolved


def type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    if value is None:
        return "empty"
    return type(value).__name__


def coerce_param(section: str, key: str, value: Any, default: Any) -> Any:
    """`value` converted to the type of `default` where that is lossless (int -> float), else ConfigError.

    A default of None accepts any value (the plugin validates it).
    """
    if default is None:
        return value
    if isinstance(default, bool) or isinstance(value, bool):
        if isinstance(default, bool) and isinstance(value, bool):
            return value
    elif isinstance(default, float) and isinstance(value, (int, float)):
        return float(value)
    elif isinstance(default, int) and isinstance(value, int):
        return value
    elif isinstance(default, (list, tuple)) and isinstance(value, (list, tuple)):
        return type(default)(value)
    elif isinstance(default, type(value)) or isinstance(value, type(default)):
        return value
    raise ConfigError(
        f"[{section}] {key} = {value!r} is {type_name(value)}; it must be {type_name(default)} "
        f"(default {default!r})"
    )


class Registry:
    """Components of one kind, by name."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, Component] = {}

    def add(self, component: Component) -> None:
        existing = self._items.get(component.name)
        if existing is not None:
            raise ValueError(
                f"{self.kind} {component.name!r} is registered by both plugin {existing.plugin!r} "
                f"and plugin {component.plugin!r}"
            )
        self._items[component.name] = component

    def get(self, name: str, *, section: str | None = None) -> Component:
        try:
            return self._items[name]
        except KeyError:
            section = section or self.kind
            installed = ", ".join(sorted(self._items)) or "none"
            raise ConfigError(
                f"[{section}] name = {name!r}: no such {self.kind}{did_you_mean(name, self._items)}; "
                f"installed: {installed}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        return name in self._items

    def __iter__(self):
        return iter(self._items[name] for name in sorted(self._items))

    def __len__(self) -> int:
        return len(self._items)
