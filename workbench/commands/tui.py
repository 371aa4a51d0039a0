"""`ddpm-workbench` with no subcommand: open the training workbench (TUI). Its flag (--run-now) is a root-level
flag, defined in workbench.cli."""

from __future__ import annotations


def run(args) -> int:
    from workbench.cli import load_config_from_args
    from workbench.tui.app import run_app

    config = load_config_from_args(args)
    return run_app(config, run_now=bool(getattr(args, "run_now", False)))
