"""`ddpm-workbench schedules`: every installed noise schedule, with alpha-bar along the way and terminal SNR."""

from __future__ import annotations

import json


def add_arguments(parser) -> None:
    from workbench.cli import add_config_arguments

    add_config_arguments(parser)
    parser.add_argument("--timesteps", "-T", type=int, metavar="T", default=None,
                        help="number of diffusion steps to tabulate (default: schedule.timesteps of the config)")
    parser.add_argument("--json", action="store_true",
                        help="machine-readable output, with all T alpha-bars of every schedule")
    parser.add_argument("--values", metavar="NAME", default=None,
                        help="print only schedule NAME's T alpha-bars as {\"alpha_bars\": [...]}, the JSON a custom "
                             "schedule reads: ddpm-workbench schedules --values cosine > mine.json, edit it, then "
                             "--set schedule.name=custom --set schedule.file=mine.json")


def run(args) -> int:
    from workbench.cli import load_config_from_args
    from workbench.errors import UsageError

    cfg = load_config_from_args(args)
    timesteps = cfg.schedule.timesteps if args.timesteps is None else args.timesteps
    if timesteps < 2:
        raise UsageError(f"--timesteps {timesteps}: T must be at least 2")

    from workbench.diffusion import schedule_table
    from workbench.plugin_host import get_host

    # The configured schedule is shown with its configured parameters; the others with their defaults.
    rows = schedule_table(get_host(), timesteps=timesteps, zero_terminal_snr=cfg.schedule.zero_terminal_snr,
                          params={cfg.schedule.name: cfg.schedule.params})
    for row in rows:
        row["selected"] = row["name"] == cfg.schedule.name
    if args.values is not None:
        return print_values(rows, args.values)
    if args.json:
        print(json.dumps({"timesteps": timesteps, "zero_terminal_snr": cfg.schedule.zero_terminal_snr,
                          "schedules": rows}, indent=2))
        return 0
    print_table(rows, timesteps, cfg.schedule.zero_terminal_snr)
    return 0


def print_values(rows: list[dict], name: str) -> int:
    """One schedule's alpha-bars as the JSON file a custom schedule reads (its key says what the list holds)."""
    from workbench.errors import UsageError, did_you_mean

    row = next((r for r in rows if r["name"] == name), None)
    if row is None:
        names = [r["name"] for r in rows]
        raise UsageError(f"--values {name!r}: no such schedule{did_you_mean(name, names)}; schedules are: "
                         f"{', '.join(names)}")
    if row["error"]:
        raise UsageError(f"--values {name!r}: {row['error']}")
    print(json.dumps({"alpha_bars": row["alpha_bars"]}))
    return 0


def number(value: float, digits: int = 4) -> str:
    """`digits` significant digits in as few characters as possible: 0.9999, 0.006277, 4.036e-5, 1.102e-4."""
    import re

    def compact(text: str) -> str:
        mantissa, e, exponent = text.partition("e")
        if not e:
            return text
        if "." in mantissa:
            mantissa = mantissa.rstrip("0").rstrip(".")
        return f"{mantissa}e{int(exponent)}"

    fixed = compact(f"{value:.{digits}g}")
    if value == 0 or re.fullmatch(r"-?\d+(\.\d*)?e-?\d+", fixed):
        return fixed
    scientific = compact(f"{value:.{digits - 1}e}")
    return scientific if len(scientific) < len(fixed) else fixed


def print_table(rows: list[dict], timesteps: int, zero_terminal_snr: bool) -> None:
    """One table with the plugin and paper columns when it fits the terminal without cutting a name or a
    number; else the numbers in one table and the plugins and papers in a second. Piped, always the one
    table, as wide as it needs (see workbench.cli.table_console). Errors follow as lines. Names and
    numbers are never cut: on a terminal too narrow even for them, they fold onto more lines."""
    from rich import box
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    from workbench.cli import UNCUT_COLUMN, fits, print_tables, table_console
    from workbench.diffusion.schedule import table_indices

    indices = table_indices(timesteps)
    title = f"noise schedules at T = {timesteps}" + (", rescaled to zero terminal SNR" if zero_terminal_snr else "")
    caption = "alpha-bar at index 0 .. T-1 (0-based); * = the configured schedule"

    def make(numbers: bool, papers: bool, digits: int = 4) -> Table:
        table = Table(title=title if numbers else None, title_justify="left", caption=caption if numbers else None,
                      caption_justify="left", box=box.SIMPLE_HEAD, show_edge=False, padding=(0, 1, 0, 0),
                      pad_edge=False)
        table.add_column("schedule", **UNCUT_COLUMN)
        if papers:
            table.add_column("plugin", **UNCUT_COLUMN)
        if numbers:
            for label, index in indices.items():
                table.add_column(f"ᾱ[{label}]" if label != "T" else f"ᾱ[{index}]", justify="right",
                                 **UNCUT_COLUMN)
            table.add_column("SNR(T)", justify="right", **UNCUT_COLUMN)
        if papers:
            table.add_column("paper", overflow="fold")
        for row in rows:
            cells = [Text(row["name"] + (" *" if row["selected"] else ""))]
            if papers:
                cells.append(Text(row["plugin"]))
            if numbers and row["error"]:
                cells += ["-"] * (len(indices) + 1)
            elif numbers:
                cells += [number(row["alpha_bar"][label], digits) for label in indices]
                cells.append(number(row["terminal_snr"], 3))
            if papers:
                cells.append(Text(row["paper"]))
            table.add_row(*cells)
        return table

    errors = [Text(f"{row['name']}: error: {row['error']}", style="red") for row in rows if row["error"]]
    full = make(numbers=True, papers=True)
    console = table_console(full, *errors)
    if fits(console, full):
        console.print(Group(full, *errors))
        return
    # Too narrow: the numbers alone (with 3 significant digits if 4 do not fit), then plugins and papers.
    numbers = make(numbers=True, papers=False)
    if not fits(console, numbers):
        numbers = make(numbers=True, papers=False, digits=3)
    print_tables(console, numbers, Text(""), make(numbers=False, papers=True), *errors)
