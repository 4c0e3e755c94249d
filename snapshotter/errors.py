"""Exceptions the redgreen core raises for expected failures.

    RedgreenError            anything a user can fix; the CLI prints its message in one line
    ├── ConfigError          a bad option or config value (names the key)
    ├── WorkspaceError       not a working copy, missing, unreadable, VCS failed
    └── StorageError         the data directory cannot be written or read

Only the CLI turns these into ``click.ClickException``; library code raises them.
"""

from __future__ import annotations


class RedgreenError(Exception):
    """An expected failure with a message a person can act on."""


class ConfigError(RedgreenError):
    pass


class WorkspaceError(RedgreenError):
    pass


class StorageError(RedgreenError):
    pass
