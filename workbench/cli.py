"""The `ddpm-workbench` command line.

`ddpm-workbench` alone opens the TUI; each subcommand lives in `workbench.commands.<name>` as a module with
`HELP`, `add_arguments(parser)` and `run(args) -> int`. A subcommand whose module has not landed yet says
so in one line. Errors the user can fix (`WorkbenchError`) print one line and exit with their code (2 for
usage errors), never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from workbench import __version__
from workbench.errors import NotYetAvailable, UsageError, WorkbenchError

# subcommand -> the issue that brings it, for the "not available yet" message
SUBCOMMANDS = {
    "train": "the training engine",
    "sample": "sampling and export",
    "forward": "sampling and export",
    "schedules": "the diffusion core",
    "plugins": "the plugin host",
    "attach": "the TUI",
    "config": "the config loader",
}
TUI_MODULE = "workbench.commands.tui"


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
    """The module implementing subcommand `name`, or None when it has not landed yet."""
    module_name = TUI_MODULE if name == "tui" else f"workbench.commands.{name}"
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            return None
        raise


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="ddpm-workbench",
        description="Train and sample DDPM diffusion models. With no subcommand, opens the training workbench (TUI).",
    )
    parser.add_argument("--version", action="version", version=f"ddpm-workbench {__version__}")
    add_config_arguments(parser, root=True)
    tui = load_command("tui")
    if tui is not None:
        tui.add_arguments(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    for name, issue in SUBCOMMANDS.items():
        module = load_command(name)
        if module is None:
            p = sub.add_parser(name, help=f"(not available yet: lands with {issue})", add_help=False)
            p.set_defaults(missing=(name, issue))
        else:
            p = sub.add_parser(name, help=module.HELP, description=module.HELP)
            module.add_arguments(p)
            p.set_defaults(handler=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        parser = build_parser()
        args, extra = parser.parse_known_args(argv)
        if extra and not getattr(args, "missing", None):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        if getattr(args, "missing", None):
            name, issue = args.missing
            raise NotYetAvailable(f"`ddpm-workbench {name}` is not available yet: it lands with {issue}")
        handler = getattr(args, "handler", None)
        if handler is None:
            tui = load_command("tui")
            if tui is None:
                raise NotYetAvailable("the training workbench (TUI) is not available yet; "
                                      "use `ddpm-workbench train` or see --help")
            handler = tui.run
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


def load_config_from_args(args):
    """The validated config for a subcommand's --config/--set, with the plugin-failure warning."""
    from workbench.config import load_config

    warn_plugin_failures()
    return load_config(*config_arguments(args))


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
