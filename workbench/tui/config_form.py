"""The setup form: pick plugins and edit the main hyperparameters, validated as you type.

Every change re-resolves the whole configuration through workbench.config (the same checks `train` makes),
so what the form accepts is exactly what the engine will accept. The one-line ConfigError appears under the
field it names, or under the form when it names none.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Input, Label, Select, Static

from workbench.config import PLUGIN_SECTIONS, SCHEMA, Config, parse_value, resolve
from workbench.errors import ConfigError


@dataclass(frozen=True)
class Field:
    section: str
    key: str
    label: str
    plugin_kind: str = ""  # set for the `name` of a plugin section: a choice of installed components

    @property
    def id(self) -> str:
        return f"{self.section}-{self.key}".replace("_", "-")


FIELDS = (
    Field("dataset", "name", "Dataset", "dataset"),
    Field("backbone", "name", "Backbone", "backbone"),
    Field("backbone", "preset", "Backbone preset"),
    Field("schedule", "name", "Noise schedule", "schedule"),
    Field("sample", "name", "Sampler", "sampler"),
    Field("schedule", "timesteps", "Timesteps T"),
    Field("train", "steps", "Training steps"),
    Field("train", "batch_size", "Batch size"),
    Field("train", "lr", "Learning rate"),
    Field("train", "ema_decay", "EMA decay"),
    Field("train", "sample_every", "Sample every (steps)"),
    Field("train", "checkpoint_every", "Checkpoint every (steps)"),
    Field("sample", "steps", "Sampling steps"),
    Field("run", "name", "Run name (empty: timestamp)"),
    Field("run", "device", "Device"),
)


def error_field(message: str) -> tuple[str, str] | None:
    """(section, key) named at the start of a ConfigError ("[train] lr = 0.0 is out of range..."), if any."""
    match = re.match(r"\[(\w+)\] (\w+) =", message)
    return (match.group(1), match.group(2)) if match else None


class ConfigForm(VerticalScroll):
    """Holds the last valid `Config` in `.config`; `.error` is empty while the form is valid."""

    can_focus = False  # focus goes straight to the first field, not to the scrolling container

    class Changed(Message):
        def __init__(self, form: "ConfigForm"):
            super().__init__()
            self.form = form

    def __init__(self, config: Config, host, **kwargs):
        super().__init__(**kwargs)
        self.host = host
        self.base = config.as_dict()
        self.source = config.source
        self.config: Config = config
        self.error = ""

    def compose(self) -> ComposeResult:
        for pair in range(0, len(FIELDS), 2):
            with Horizontal(classes="field-row"):
                for field in FIELDS[pair: pair + 2]:
                    yield from self.compose_field(field)
        yield Static("", id="form-error")

    def compose_field(self, field: Field) -> ComposeResult:
        with Vertical(classes="field", id=f"field-{field.id}"):
            yield Label(field.label)
            value = self.base[field.section].get(field.key, "")
            if field.plugin_kind:
                names = self.host.registries[field.plugin_kind].names()
                yield Select([(n, n) for n in names], value=value if value in names else Select.NULL,
                             allow_blank=False, id=field.id, compact=True)
            else:
                yield Input("" if value is None else str(value), id=field.id, compact=True)
            yield Static("", classes="field-error", id=f"error-{field.id}")

    def on_mount(self) -> None:
        self.validate_form()
        self.query_one(f"#{FIELDS[0].id}").focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.validate_form()

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        self.validate_form()

    def raw_config(self) -> dict:
        raw = copy.deepcopy(self.base)
        for field in FIELDS:
            widget = self.query_one(f"#{field.id}")
            if isinstance(widget, Select):
                value = widget.value
                if field.key == "name" and value != raw[field.section].get("name"):
                    # another plugin: drop the old one's own keys so the new one's defaults apply
                    host_keys = SCHEMA[field.section]
                    raw[field.section] = {k: v for k, v in raw[field.section].items() if k in host_keys}
                raw[field.section][field.key] = value
            elif self.query_one(f"#field-{field.id}").display:
                text = widget.value.strip()
                default = SCHEMA.get(field.section, {}).get(field.key)
                keep_text = default is not None and isinstance(default.default, str)
                raw[field.section][field.key] = text if keep_text else parse_value(text)
        return raw

    def validate_form(self) -> None:
        self.show_plugin_fields()
        try:
            self.config = resolve(self.raw_config(), source=self.source, host=self.host)
            self.error = ""
        except ConfigError as exc:
            self.error = str(exc)
        target = error_field(self.error) if self.error else None
        placed = False
        for field in FIELDS:
            mine = bool(target) and target == (field.section, field.key)
            placed = placed or mine
            message = self.query_one(f"#error-{field.id}", Static)
            message.update(Text(self.error if mine else ""))
            message.display = mine
            self.query_one(f"#field-{field.id}").set_class(mine, "invalid")
        general = self.query_one("#form-error", Static)
        general.update(Text("" if placed else self.error))
        general.display = bool(self.error) and not placed
        self.post_message(self.Changed(self))

    def show_plugin_fields(self) -> None:
        """Plugin keys in the form (the backbone preset) only show when the chosen plugin has them."""
        for field in FIELDS:
            kind = PLUGIN_SECTIONS.get(field.section)
            if field.plugin_kind or field.section in SCHEMA and field.key in SCHEMA[field.section] or not kind:
                continue
            name = self.query_one(f"#{field.section}-name", Select).value
            registry = self.host.registries[kind]
            has_key = name in registry and field.key in registry.get(name).params
            box = self.query_one(f"#field-{field.id}")
            if has_key and not box.display:
                default = registry.get(name).params[field.key]
                self.query_one(f"#{field.id}", Input).value = str(default)
            box.display = has_key
