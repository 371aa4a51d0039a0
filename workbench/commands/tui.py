"""`ddpm-workbench` with no subcommand: open the training workbench (TUI).

Root-level flags live here (the CLI calls `add_arguments` on the top-level parser)."""

from __future__ import annotations


def add_arguments(parser) -> None:
    parser.add_argument("--run-now", action="store_true",
                        help="skip the setup view and start training the configured run at once")


def run(args) -> int:
    from workbench.cli import load_config_from_args
    from workbench.tui.app import run_app

    config = load_config_from_args(args)
    return run_app(config, run_now=bool(getattr(args, "run_now", False)))
