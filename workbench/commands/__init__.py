"""One module per `ddpm-workbench` subcommand: `add_arguments(parser)` and `run(args) -> int` (its help line is in workbench.cli.COMMANDS)."""
