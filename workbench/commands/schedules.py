"""`ddpm-workbench schedules`: every installed noise schedule, with alpha-bar along the way and terminal SNR."""

from __future__ import annotations

import json

HELP = "list the installed noise schedules with alpha-bar at 0, T/4, T/2, 3T/4, T and the terminal SNR"


def add_arguments(parser) -> None:
    from workbench.cli import add_config_arguments

    add_config_arguments(parser)
    parser.add_argument("--timesteps", "-T", type=int, metavar="T", default=None,
                        help="number of diffusion steps to tabulate (default: schedule.timesteps of the config)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def run(args) -> int:
    from workbench.cli import load_config_from_args
    from workbench.errors import UsageError

    cfg = load_config_from_args(args)
    timesteps = cfg.schedule.timesteps if args.timesteps is None else args.timesteps
    if timesteps < 2:
        raise UsageError(f"--timesteps {timesteps}: T must be at least 2")

    from workbench.diffusion import schedule_table

    # The configured schedule is shown with its configured parameters; the others with their defaults.
    rows = schedule_table(timesteps=timesteps, zero_terminal_snr=cfg.schedule.zero_terminal_snr,
                          params={cfg.schedule.name: cfg.schedule.params})
    for row in rows:
        row["selected"] = row["name"] == cfg.schedule.name
    if args.json:
        print(json.dumps({"timesteps": timesteps, "zero_terminal_snr": cfg.schedule.zero_terminal_snr,
                          "schedules": rows}, indent=2))
        return 0
    print_table(rows, timesteps, cfg.schedule.zero_terminal_snr)
    return 0


def print_table(rows: list[dict], timesteps: int, zero_terminal_snr: bool) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from workbench.diffusion.schedule import table_indices

    indices = table_indices(timesteps)
    title = f"noise schedules at T = {timesteps}" + (", rescaled to zero terminal SNR" if zero_terminal_snr else "")
    table = Table(title=title, title_justify="left",
                  caption="alpha-bar at index 0 .. T-1 (0-based); * = the configured schedule", caption_justify="left")
    table.add_column("schedule")
    table.add_column("plugin")
    for label, index in indices.items():
        table.add_column(f"ᾱ[{label}]" if label != "T" else f"ᾱ[{index}]", justify="right")
    table.add_column("SNR(T)", justify="right")
    table.add_column("paper")
    for row in rows:
        name = escape(row["name"]) + (" *" if row["selected"] else "")
        paper = escape(row["paper"])
        if row["error"]:
            dashes = ["-"] * (len(indices) + 1)
            table.add_row(name, escape(row["plugin"]), *dashes, f"{paper}\n[red]error: {escape(row['error'])}[/red]")
            continue
        values = [f"{row['alpha_bar'][label]:.4g}" for label in indices]
        table.add_row(name, escape(row["plugin"]), *values, f"{row['terminal_snr']:.3g}", paper)
    Console().print(table)
