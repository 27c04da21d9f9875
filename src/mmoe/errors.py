"""Errors a user can cause. The CLI prints them as one line and exits non-zero.

Internal invariants use ``assert``; everything that bad input, a bad config or a damaged file can
trigger raises one of these, with a message that names the problem and the fix.
"""

from __future__ import annotations


class MmoeError(Exception):
    """Base class of every error caused by input rather than by a bug."""


class ConfigError(MmoeError):
    """The run configuration is invalid (unknown key, wrong type, inconsistent choice)."""


class DataError(MmoeError):
    """A data file is missing, unreadable, or does not match the configuration."""


class ArtifactError(MmoeError):
    """A run directory is missing a file, or a file in it is corrupt or of an unknown version."""


class OutputError(MmoeError):
    """An output path cannot be written (a directory, under a regular file, not permitted)."""


class MmoeWarning(UserWarning):
    """Something a user should know that does not stop the command (the CLI prints one line).

    Examples: categories never seen in training, an AUC that one-class labels leave undefined.
    """


class TrainingInterrupted(MmoeError):
    """Training stopped on a signal (SIGINT, SIGTERM) after writing a checkpoint.

    ``exit_code`` follows the shell's convention, 128 + the signal number (130 for Ctrl-C).
    """

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code
