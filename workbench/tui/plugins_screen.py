"""Installed plugins, what each registered, and the plugins that failed to load (with why)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static


class PluginsScreen(Screen):
    BINDINGS = [Binding("escape,i,f2", "app.pop_screen", "Back"),
                Binding("q,ctrl+q", "app.request_quit", "Quit", key_display="q")]

    def __init__(self, host):
        super().__init__()
        self.host = host

    def compose(self) -> ComposeResult:
        listing = self.host.listing()
        yield Static(" [b reverse] plugins [/] installed components; third-party plugins come from the "
                     "entry-point group [b]ddpm_workbench[/b]", classes="screen-title")
        with VerticalScroll():
            components = DataTable(id="components", cursor_type="row", zebra_stripes=True)
            components.add_columns("kind", "name", "plugin", "description", "reference")
            for kind, registry in self.host.registries.items():
                for c in registry:
                    components.add_row(kind, c.name, c.plugin, c.description, c.reference)
            components.styles.height = "auto"
            yield components
            plugins = DataTable(id="plugins", cursor_type="row")
            plugins.add_columns("plugin", "version", "origin", "module")
            for p in listing["plugins"]:
                plugins.add_row(p["name"], p["version"], p["origin"], p["module"])
            plugins.styles.height = "auto"
            yield plugins
            failures = listing["failures"]
            if failures:
                yield Static(f"[b red]{len(failures)} plugin(s) failed to load[/]", classes="section-title")
                table = DataTable(id="failures")
                table.add_columns("plugin", "distribution", "error")
                for f in failures:
                    table.add_row(f["plugin"], f["distribution"], f["error"])
                table.styles.height = "auto"
                yield table
            else:
                yield Static("[green]no plugin failed to load[/]", id="failures", classes="section-title")
        yield Footer(compact=True)
