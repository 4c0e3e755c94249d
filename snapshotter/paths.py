"""Where redgreen keeps its files: the one place that decides it.

XDG base directories, with ``REDGREEN_DATA_DIR`` and ``REDGREEN_CONFIG`` as
overrides (tests point them at a temporary folder).  The data directory is
created private to the user (0700): it holds people's working trees.
"""

from __future__ import annotations

import os
from pathlib import Path

from snapshotter.errors import StorageError

APP = "redgreen"
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def _xdg(variable: str, fallback: str) -> Path:
    value = os.environ.get(variable)
    return Path(value) if value else Path.home() / fallback


def default_data_dir() -> Path:
    override = os.environ.get("REDGREEN_DATA_DIR")
    if override:
        return Path(override)
    return _xdg("XDG_DATA_HOME", ".local/share") / APP


def default_config_file() -> Path:
    override = os.environ.get("REDGREEN_CONFIG")
    if override:
        return Path(override)
    return _xdg("XDG_CONFIG_HOME", ".config") / APP / "config.toml"


def default_state_dir() -> Path:
    return _xdg("XDG_STATE_HOME", ".local/state") / APP


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) and make it 0700, whatever the umask."""
    try:
        path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
        if path.stat().st_mode & 0o777 != PRIVATE_DIR_MODE:
            path.chmod(PRIVATE_DIR_MODE)
    except OSError as exc:
        raise StorageError(f"cannot create data directory {path}: {exc.strerror}") from exc
    return path


def snapshots_dir(data_dir: Path) -> Path:
    return data_dir / "snapshots"


def blobs_dir(data_dir: Path) -> Path:
    return data_dir / "blobs"


def spool_dir(data_dir: Path) -> Path:
    return data_dir / "spool"
