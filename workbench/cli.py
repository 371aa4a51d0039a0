"""The `ddpm-workbench` command line.

`ddpm-workbench` alone opens the TUI; each subcommand lives in `workbench.commands.<name>` as a module with
`add_arguments(parser)` and `run(args) -> int`, and its one-line help is in `COMMANDS` below, so `--help`
imports no command module and a command imports only its own. Errors the user can fix (`WorkbenchError`)
print one line and exit with their code (2 for usage errors), never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from workbench import __version__
from workbench.errors import UsageError, WorkbenchError

# subcommand -> its one-line help (the module is workbench.commands.<subcommand>)
COMMANDS = {
    "train": "train a model headless: progress on a terminal, plain log lines otherwise (works under torchrun)",
    "sample": "sample images from a trained run (PNG grid, PNG files or .npz), with optional denoising GIF/strip",
    "eval": "score samples, a folder of PNGs or a run: FID/KID (or a small classifier's distance), precision, recall",
    "forward": "write a PNG strip of dataset images noised at chosen timesteps, for one or several schedules",
    "schedules": "list the installed noise schedules with alpha-bar at 0, T/4, T/2, 3T/4, T and the terminal SNR",
    "plugins": "list plugins with version, origin and what each registered, load failures included",
    "attach": "reattach the workbench to a run (running or finished) and replay its whole history",
    "config": "print the resolved configuration (defaults, file and --set overrides, validated)",
    "import": "import a diffusers model (folder or Hub id such as google/ddpm-cifar10-32) as a run to sample or tune",
    "export": "export a run's model as a diffusers DDPMPipeline folder (safetensors, EMA weights)",
}
# subcommands whose module name differs from the command (`import` is a Python keyword)
COMMAND_MODULES = {"import": "import_"}
TUI_MODULE = "workbench.commands.tui"  # `ddpm-workbench` with no subcommand; also adds root-level flags


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but errors become a `UsageError` so they print like every other error."""

    def error(self, message):
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def add_config_arguments(parser: argparse.ArgumentParser, *, root: bool = False) -> None:
    """--config and --set, shared by every subcommand that reads a config.

    They work before or after the subcommand (`ddpm-workbench -c a.toml train --set train.lr=1e-4`): the
    root parser stores them apart, and `config_arguments(args)` merges the two."""
    prefix = "root_" if root else ""
    parser.add_argument("--config", "-c", metavar="FILE", dest=prefix + "config", default=None,
                        help="TOML config (default: ./workbench.toml if present, else the built-in defaults)")
    parser.add_argument("--set", "-s", dest=prefix + "overrides", action="append", metavar="SECTION.KEY=VALUE",
                        default=[],
                        help="override one config value, e.g. --set train.lr=1e-4 (repeatable)")


def load_command(name: str):
    """The module implementing subcommand `name` ("tui" for the workbench itself)."""
    if name == "tui":
        return importlib.import_module(TUI_MODULE)
    return importlib.import_module(f"workbench.commands.{COMMAND_MODULES.get(name, name)}")


def build_parser(command: str | None = None, *, add_help: bool = True) -> argparse.ArgumentParser:
    """The parser with every subcommand listed; only `command`'s module is imported and given its arguments."""
    parser = ArgumentParser(
        prog="ddpm-workbench", add_help=add_help,
        description="Train and sample DDPM diffusion models. With no subcommand, opens the training workbench (TUI).",
    )
    parser.add_argument("--version", action="version", version=f"ddpm-workbench {__version__}")
    add_config_arguments(parser, root=True)
    parser.add_argument("--run-now", action="store_true",
                        help="skip the setup view and start training the configured run at once")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    for name, help_text in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text, add_help=name == command)
        if name == command:
            module = load_command(name)
            module.add_arguments(p)
            p.set_defaults(handler=module.run)
    return parser


def chosen_command(argv: list[str] | None) -> str | None:
    """The subcommand named in `argv` (None for the workbench), found by a parser that knows no
    subcommand's own arguments (those are left over), so that only that command is imported."""
    probe = build_parser(add_help=False)  # `train --help` must reach the real parser of `train`
    try:
        args, _ = probe.parse_known_args(argv)
    except UsageError:
        return None  # the full parser reports it
    return args.command


def main(argv: list[str] | None = None) -> int:
    try:
        parser = build_parser(chosen_command(argv))
        args = parser.parse_args(argv)
        handler = getattr(args, "handler", None) or load_command("tui").run
        return int(handler(args) or 0)
    except WorkbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except SystemExit as exc:  # argparse's --help and signals exit on purpose; a plugin's sys.exit is a failure
        host = sys.modules.get("workbench.plugin_host.manager")  # not loaded (--help): no plugin ran; keep it fast
        who = None
        if host is not None and getattr(exc, "signum", None) is None:
            who = host.plugin_in_traceback(exc.__traceback__)
        if who is None:
            raise
        print(f"error: {who} called sys.exit({exc.code!r}); stopped, no output was written", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader went away (`ddpm-workbench plugins --json | head`): stop quietly, like other tools, and
        # keep Python from failing again while it flushes stdout at exit.
        point_at_devnull(sys.stdout)
        return 141  # 128 + SIGPIPE, what a shell reports for a command killed by a closed pipe


def point_at_devnull(*streams) -> None:
    """Send whatever is still written to `streams` (their file descriptors) to /dev/null: for output whose
    reader or terminal went away, so later writes and the interpreter's final flush cannot fail."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        for stream in streams:
            os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def warn_plugin_failures() -> None:
    """One line on stderr when third-party plugins failed to load, so a broken plugin is never silent."""
    from workbench.plugin_host import get_host

    failures = get_host().failures
    if failures:
        names = ", ".join(sorted({f.plugin for f in failures}))
        print(f"warning: {len(failures)} plugin problem(s) ({names}); see `ddpm-workbench plugins`", file=sys.stderr)


def config_arguments(args) -> tuple[str | None, list[str]]:
    """(--config, --set list) from both sides of the subcommand; the subcommand's --config wins."""
    path = getattr(args, "config", None)
    if path is None:  # an empty --config '' is kept, so that load_config refuses it
        path = getattr(args, "root_config", None)
    overrides = list(getattr(args, "root_overrides", None) or []) + list(getattr(args, "overrides", None) or [])
    return path, overrides


def add_runs_folder_arguments(parser, *, config: bool = True) -> None:
    """--dir and --config of a command that finds runs by name (sample, eval, export, import): the folder is
    --dir, else run.dir of the config (--config, ./workbench.toml, a root --set run.dir=...), the folder
    `train` writes to and `attach` reads."""
    parser.add_argument("--dir", default=None, metavar="DIR",
                        help="folder holding run directories (default: run.dir of the config, else runs)")
    if config:  # a command with add_config_arguments has its --config already
        parser.add_argument("--config", "-c", metavar="FILE", default=None,
                            help="the config whose run.dir holds the runs (default: ./workbench.toml if present)")


def runs_folder(args) -> str:
    """The folder of run directories for a command given `add_runs_folder_arguments` (see there)."""
    if args.dir is not None:
        return args.dir
    if getattr(args, "run", "") is None:  # sampling a --checkpoint or scoring --samples: no run is looked up
        return "runs"
    from workbench.config import load_config

    return load_config(*config_arguments(args)).run.dir


def load_config_from_args(args):
    """The validated config for a subcommand's --config/--set, with the plugin-failure warning."""
    from workbench.config import load_config

    warn_plugin_failures()
    return show_notes(load_config(*config_arguments(args)))


def show_notes(config):
    """Print what loading the config changed beyond what was asked (Config.notes) on stderr; returns it."""
    for note in config.notes:
        print(f"note: {note}", file=sys.stderr)
    return config


# Table columns of names, versions and numbers: never wrapped or cut short with "…"; folded onto more lines
# only when a terminal is too narrow even for them (piped output is as wide as it needs: table_console).
UNCUT_COLUMN = {"no_wrap": True, "overflow": "fold"}


def table_console(*renderables):
    """A rich Console for printing tables to stdout. On a terminal it has the terminal's width; redirected or
    piped there is no width to fit, so it is as wide as `renderables` need and nothing is cut or folded."""
    import io

    from rich.console import Console
    from rich.measure import Measurement

    console = Console()
    try:
        is_tty = sys.stdout.isatty()
    except (AttributeError, ValueError):
        is_tty = False
    if is_tty or not renderables:
        return console
    ruler = Console(width=100_000, file=io.StringIO())
    need = max(Measurement.get(ruler, ruler.options, r).maximum for r in renderables)
    return Console(width=max(need, console.width))


def fits(console, renderable) -> bool:
    """Whether `renderable` fits `console`'s width without cutting a word (names, numbers)."""
    from rich.measure import Measurement

    return Measurement.get(console, console.options.update_width(100_000), renderable).minimum <= console.width


def print_tables(console, *tables) -> None:
    """Print rich tables whose name and number columns are `no_wrap`. A table too wide for the terminal even
    so gets those columns folded onto more lines instead of cut short with "…"."""
    for table in tables:
        if not fits(console, table):
            for column in getattr(table, "columns", ()):
                column.no_wrap = False
                column.overflow = "fold"
        console.print(table)
