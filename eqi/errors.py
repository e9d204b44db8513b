"""Exception hierarchy of eqi and the exit codes the command line maps them to.

Every error a user can cause derives from :class:`EqiError` and carries a message that names the
problem and what to do about it.  The CLI prints that message (no traceback) and exits with
``exit_code``.
"""

from __future__ import annotations

__all__ = [
    "EqiError",
    "ConfigError",
    "InputError",
    "AOIError",
    "SourceError",
    "NoScenesError",
    "ScalingError",
    "BandError",
    "ThermalSourceError",
    "TaskFailedError",
    "LockHeldError",
    "AssetReadError",
]

EXIT_OK = 0
EXIT_TASKS_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_LOCKED = 75


class EqiError(Exception):
    """Base class: a problem the user can fix; ``exit_code`` is what the CLI returns."""

    exit_code: int = EXIT_BAD_INPUT


class ConfigError(EqiError):
    """A run configuration or command-line value is invalid."""


class InputError(EqiError):
    """An input file is missing, unreadable or malformed."""


class AOIError(InputError):
    """An area of interest is empty, invalid, lacks a CRS, or touches no data."""


class SourceError(EqiError):
    """A catalog (STAC API, archive) cannot be reached or answered with an error."""


class NoScenesError(SourceError):
    """A search returned no scenes for the region, period and collections asked for."""


class ScalingError(InputError):
    """The scale/offset of an item's bands cannot be determined from its own metadata."""


class BandError(InputError):
    """A band or collection is unknown, or an item lacks a band the run needs."""


class ThermalSourceError(ConfigError):
    """RSEI was requested without a thermal (LST) source and no explicit alternative."""


class TaskFailedError(EqiError):
    """One or more tasks of a run failed; the others were completed."""

    exit_code = EXIT_TASKS_FAILED


class LockHeldError(EqiError):
    """Another eqi run holds the lock on the output folder."""

    exit_code = EXIT_LOCKED


class AssetReadError(InputError):
    """A scene's asset cannot be read (missing, truncated, corrupt, or its server keeps failing);
    the message names the item, the asset and the file."""
