"""One module per `ddpm-workbench` subcommand: `HELP`, `add_arguments(parser)`, `run(args) -> int`."""
