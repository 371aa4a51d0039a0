"""`ddpm-workbench plugins`: what is installed, where it came from, and what failed to load."""

from __future__ import annotations

import json


def add_arguments(parser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--describe", action="store_true",
                        help="also build every backbone (each unet preset at its native size) and show its "
                             "parameters and forward FLOPs per image (a training step is ~3x)")


def run(args) -> int:
    from workbench.plugin_host import get_host

    host = get_host()
    listing = host.listing()
    if args.describe:
        from workbench.backbones import describe_registered_backbones

        listing["backbones"] = describe_registered_backbones(host)
    if args.json:
        print(json.dumps(listing, indent=2))
        return 0
    from rich.table import Table
    from rich.text import Text

    from workbench.cli import UNCUT_COLUMN, print_tables, table_console

    table = Table(title="ddpm-workbench plugins", title_justify="left")
    for column in ("plugin", "version", "origin"):
        table.add_column(column, **UNCUT_COLUMN)
    table.add_column("registered", overflow="fold")  # lists of names: wrapped between names, never cut
    for p in listing["plugins"]:
        registered = "\n".join(f"{kind}: {', '.join(names)}" for kind, names in sorted(p["registered"].items()))
        table.add_row(Text(p["name"]), Text(p["version"]), Text(p["origin"]), Text(registered or "-"))
    tables = [table]
    if args.describe:
        tables.append(backbones_table(listing["backbones"]))
    if listing["failures"]:
        failed = Table(title="load failures", title_justify="left", title_style="bold red")
        for column in ("plugin", "distribution"):
            failed.add_column(column, **UNCUT_COLUMN)
        failed.add_column("error", overflow="fold")
        for f in listing["failures"]:
            failed.add_row(Text(f["plugin"]), Text(f["distribution"]), Text(f["error"]))
        tables.append(failed)
    print_tables(table_console(*tables), *tables)
    return 0


def backbones_table(rows):
    from rich.table import Table
    from rich.text import Text

    from workbench.cli import UNCUT_COLUMN

    table = Table(title="backbones (forward FLOPs for one image; a training step is ~3x)", title_justify="left")
    for column, justify in (("backbone", "left"), ("preset", "left"), ("input", "right"), ("params", "right")):
        table.add_column(column, justify=justify, **UNCUT_COLUMN)
    table.add_column("GFLOPs/img", justify="right", overflow="fold")  # or the error
    for r in rows:
        size = f"{r['in_channels']}x{r['image_size']}x{r['image_size']}"
        if "error" in r:
            table.add_row(Text(r["backbone"]), Text(r["variant"] or "-"), size, "[red]failed[/red]",
                          Text(r["error"], justify="left"))
        else:
            table.add_row(r["backbone"], r["variant"] or "-", size, f"{r['params']:,}",
                          f"{r['flops_per_image'] / 1e9:.2f}")
    return table
