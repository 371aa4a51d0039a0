"""Errors a user can cause, and how they reach the terminal.

Anything the user can fix (a bad config value, a missing file, an unknown plugin) raises a subclass of
`WorkbenchError`. The CLI prints its message as one line, without a traceback, and exits with its code.
Bugs in the program stay ordinary exceptions and keep their tracebacks.
"""

from __future__ import annotations


class WorkbenchError(Exception):
    """A problem the user can fix. The message says what was wrong, where, and what to do."""

    exit_code = 1


class UsageError(WorkbenchError):
    """Bad command-line arguments or configuration (exit code 2, like argparse)."""

    exit_code = 2


class ConfigError(UsageError):
    """An invalid configuration file, key or value."""


class PluginError(WorkbenchError):
    """A plugin failed to load, registered something invalid, or returned something invalid."""


class DatasetError(WorkbenchError):
    """A dataset could not be found or read."""


class CheckpointError(WorkbenchError):
    """A checkpoint is missing, truncated, or does not match what was asked for."""


class WriteFailed(WorkbenchError):
    """A file could not be written (full disk, quota, read-only, no permission, file-size limit); the
    message names the path and what was kept. See workbench.files."""


class NonFiniteSamples(WorkbenchError):
    """A sampler or backbone produced NaN or inf pixels; nothing is written as if they were fine."""


class InteropError(WorkbenchError):
    """A model from or for another library (diffusers) cannot be read, mapped or written."""


def did_you_mean(word: str, choices) -> str:
    """' (did you mean "x"?)' for the closest choice, or '' when nothing is close."""
    import difflib

    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f' (did you mean "{match[0]}"?)' if match else ""
