"""`ddpm-workbench plugins`: what is installed, where it came from, and what failed to load."""

from __future__ import annotations

import json

HELP = "list plugins with version, origin and what each registered, load failures included"


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
        from workbench.models import describe_registered_backbones

        listing["backbones"] = describe_registered_backbones(host)
    if args.json:
        print(json.dumps(listing, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title="ddpm-workbench plugins", title_justify="left")
    for column in ("plugin", "version", "origin", "registered"):
        table.add_column(column)
    for p in listing["plugins"]:
        registered = "\n".join(f"{kind}: {', '.join(names)}" for kind, names in sorted(p["registered"].items()))
        table.add_row(p["name"], p["version"], p["origin"], registered or "-")
    console.print(table)
    if args.describe:
        console.print(backbones_table(listing["backbones"]))
    if listing["failures"]:
        failed = Table(title="load failures", title_justify="left", title_style="bold red")
        for column in ("plugin", "distribution", "error"):
            failed.add_column(column)
        for f in listing["failures"]:
            failed.add_row(f["plugin"], f["distribution"], f["error"])
        console.print(failed)
    return 0


def backbones_table(rows):
    from rich.table import Table

    table = Table(title="backbones (forward FLOPs for one image; a training step is ~3x)", title_justify="left")
    for column, justify in (("backbone", "left"), ("preset", "left"), ("input", "right"), ("params", "right"),
                            ("GFLOPs/img", "right")):
        table.add_column(column, justify=justify)
    for r in rows:
        size = f"{r['in_channels']}x{r['image_size']}x{r['image_size']}"
        if "error" in r:
            table.add_row(r["backbone"], r["variant"] or "-", size, "[red]failed[/red]", r["error"])
        else:
            table.add_row(r["backbone"], r["variant"] or "-", size, f"{r['params']:,}",
                          f"{r['flops_per_image'] / 1e9:.2f}")
    return table
