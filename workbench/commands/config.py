"""`ddpm-workbench config`: print the resolved configuration."""

from __future__ import annotations

import json


def check_schedule(cfg) -> None:
    """Build the noise schedule exactly as `train` does, so that what only shows when the betas are made (a
    custom schedule's file or values, a schedule that fails at this T) is reported here too."""
    from workbench.diffusion import build_schedule

    build_schedule(cfg.schedule)


def add_arguments(parser) -> None:
    from workbench.cli import add_config_arguments

    add_config_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print JSON instead of TOML")


def run(args) -> int:
    from workbench.cli import load_config_from_args

    cfg = load_config_from_args(args)
    check_schedule(cfg)
    if args.json:
        print(json.dumps({"source": cfg.source, "config": cfg.as_dict()}, indent=2))
    else:
        print(f"# resolved from {cfg.source}")
        print(cfg.to_toml(), end="")
    return 0
