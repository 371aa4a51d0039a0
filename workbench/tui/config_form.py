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
from textual import events
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


# What users change between runs. Plugin keys (preset, root, file) show only while the chosen plugin has them.
FIELDS = (
    Field("dataset", "name", "Dataset", "dataset"),
    Field("dataset", "root", "Dataset root (empty: search)"),
    Field("backbone", "name", "Backbone", "backbone"),
    Field("backbone", "preset", "Backbone preset"),
    Field("schedule", "name", "Noise schedule", "schedule"),
    Field("schedule", "file", "Schedule file (.npy/.txt/.csv/.json)"),
    Field("schedule", "timesteps", "Timesteps T"),
    Field("sample", "name", "Sampler", "sampler"),
    Field("train", "prediction", "Prediction target"),
    Field("train", "precision", "Precision"),
    Field("train", "steps", "Training steps (most)"),
    Field("train", "minutes", "Time budget, minutes (0: off)"),
    Field("train", "batch_size", "Batch size"),
    Field("train", "lr", "Learning rate"),
    Field("train", "ema_decay", "EMA decay"),
    Field("train", "sample_every", "Sample every (steps)"),
    Field("train", "checkpoint_every", "Checkpoint every (steps)"),
    Field("sample", "steps", "Sampling steps"),
    Field("sample", "guidance", "Guidance scale (1: off)"),
    Field("backbone", "num_classes", "Classes (auto; empty: none)"),
    Field("train", "label_dropout", "Label dropout (0.1: CFG)"),
    Field("run", "name", "Run name (empty: timestamp)"),
    Field("run", "device", "Device"),
)


def error_field(message: str) -> tuple[str, str | None] | None:
    """(section, key) named at the start of a ConfigError ("[train] lr = 0.0 is out of range..."), or
    (section, None) when it names only a section ("[schedule] schedule 'custom' ... refused its parameters")."""
    match = re.match(r"\[(\w+)\] (\w+) =", message)
    if match:
        return match.group(1), match.group(2)
    match = re.match(r"\[(\w+)\] ", message)
    return (match.group(1), None) if match else None


def choices_of(field: Field) -> tuple[str, ...]:
    """The allowed values of a host key with a fixed set of text choices (prediction, precision), else ()."""
    spec = SCHEMA.get(field.section, {}).get(field.key)
    if spec is None or spec.also or not isinstance(spec.default, str):
        return ()
    return tuple(spec.choices)


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
            names = self.host.registries[field.plugin_kind].names() if field.plugin_kind else choices_of(field)
            if names:
                yield Select([(n, n) for n in names], value=value if value in names else Select.NULL,
                             allow_blank=False, id=field.id, compact=True)
            else:
                yield Input("" if value is None else str(value), id=field.id, compact=True)
            yield Static("", classes="field-error", id=f"error-{field.id}")

    def on_mount(self) -> None:
        self.validate_form()
        self.query_one(f"#{FIELDS[0].id}").focus()

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        # a class, not :focus-within, which Textual does not re-apply to the label when focus moves
        for box in self.query(".field"):
            box.set_class(event.widget in box.walk_children(), "editing")

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
            elif self.query_one(f"#field-{field.id}").visible:
                text = widget.value.strip()
                if not text and not self.takes_text(field) and field.key not in SCHEMA[field.section]:
                    raw[field.section].pop(field.key, None)  # an emptied plugin key: the plugin's default
                else:
                    raw[field.section][field.key] = text if self.takes_text(field) else parse_value(text)
        return raw

    def validate_form(self) -> None:
        self.show_plugin_fields()
        try:
            self.config = resolve(self.raw_config(), source=self.source, host=self.host)
            self.error = ""
        except ConfigError as exc:
            self.error = str(exc)
        target = self.error_target(error_field(self.error)) if self.error else None
        placed = False
        for field in FIELDS:
            mine = target is field
            placed = placed or mine
            message = self.query_one(f"#error-{field.id}", Static)
            message.update(Text(self.error if mine else ""))
            message.display = mine
            self.query_one(f"#field-{field.id}").set_class(mine, "invalid")
        general = self.query_one("#form-error", Static)
        general.update(Text("" if placed else self.error))
        general.display = bool(self.error) and not placed
        self.post_message(self.Changed(self))

    def takes_text(self, field: Field) -> bool:
        """Whether a typed value is kept as text (run name, dataset root, schedule file) or read as TOML."""
        spec = SCHEMA.get(field.section, {}).get(field.key)
        if spec is not None:
            return isinstance(spec.default, str)
        registry = self.host.registries[PLUGIN_SECTIONS[field.section]]
        name = self.chosen(field.section)
        return name in registry and isinstance(registry.get(name).params.get(field.key), str)

    def error_target(self, named: tuple[str, str | None] | None) -> Field | None:
        """The field an error belongs under: the key it names, or for an error about a whole plugin section
        (its plugin refused its parameters) that plugin's first key in the form, else the plugin choice."""
        if named is None:
            return None
        section, key = named
        shown = [f for f in FIELDS if f.section == section and self.query_one(f"#field-{f.id}").visible]
        if key is not None:
            return next((f for f in shown if f.key == key), None)
        return next((f for f in shown if not f.plugin_kind and f.key not in SCHEMA[section]),
                    next((f for f in shown if f.plugin_kind), None))

    def chosen(self, section: str) -> str:
        """The plugin chosen in the form for `section` (valid or not)."""
        return str(self.query_one(f"#{section}-name", Select).value)

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
            if has_key and not box.visible:
                default = registry.get(name).params[field.key]
                self.query_one(f"#{field.id}", Input).value = "" if default is None else str(default)
            box.visible = has_key  # keeps its place, so the rows stay in columns
