"""Exceptions the miner raises for expected failures.

    RedgreenError                 (snapshotter.errors) anything a user can fix
    └── MinerError                the miner cannot do what was asked
        ├── DatasetError          the data directory is missing, empty or unreadable
        └── OutputError           the output directory cannot be created or written

Only ``miner.cli`` turns these into ``click.ClickException`` with a one-line message.
"""

from __future__ import annotations

from snapshotter.errors import RedgreenError


class MinerError(RedgreenError):
    pass


class DatasetError(MinerError):
    pass


class OutputError(MinerError):
    pass
