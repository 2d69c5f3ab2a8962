"""The error types ptfunc raises for files and names, in one place.

Each is a standard exception type (``ValueError`` or ``OSError``) so that code catching
the usual types keeps working; the message names the file or name and what was wrong.
"""

from __future__ import annotations

__all__ = ["CheckpointError", "ConfigError", "HubError"]


class CheckpointError(ValueError):
    """A checkpoint file is truncated, corrupt or inconsistent (the message names the file)."""


class HubError(OSError):
    """A name could not be turned into files: unknown name, missing repo or file, gated
    repo without a token, offline with nothing cached. The message says which and how."""


class ConfigError(ValueError):
    """A config value is out of range or inconsistent (the message names the field, its
    value and what is allowed). Wrong types may raise ``TypeError`` instead."""
