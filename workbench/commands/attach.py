"""`ddpm-workbench attach [RUN]`: open the workbench on an existing run, live or finished.

The whole history is replayed from the run directory (metrics, samples, checkpoints, warnings), then new
events follow as the engine writes them. This is how to get back to a run after quitting the TUI with
"leave it training", after a dropped SSH connection, or for a run started headless or under torchrun.
"""

from __future__ import annotations


def add_arguments(parser) -> None:
    from workbench.cli import add_config_arguments

    parser.add_argument("run", nargs="?", default="latest", metavar="RUN",
                        help="run name under --dir, path to a run directory, or 'latest' (default)")
    parser.add_argument("--dir", default=None, metavar="DIR",
                        help="folder that holds run directories (default: run.dir from the config, 'runs')")
    add_config_arguments(parser)


def run(args) -> int:
    from workbench.cli import load_config_from_args
    from workbench.engine.rundir import RunDirectory
    from workbench.tui.app import run_app

    config = load_config_from_args(args)
    run_dir = RunDirectory.resolve(args.run, args.dir or config.run.dir)
    return run_app(config, run=run_dir)
