"""The miner's tunable limits, as one small value object.

Filters and the train/test split read their thresholds from here instead of
taking loose keyword arguments, so a run's behaviour is one printable value.

``fix_exclude`` names the files that are never part of a fix: lock files and
vendored trees change with a fix (a dependency bumped, a vendored copy
refreshed) but are not what a developer writes, and would swamp the diff.  A
pattern is matched like the snapshotter's capture excludes, against the file
name and against the whole workspace-relative path; a pattern ending in ``/``
matches a directory of that name anywhere in the path (``vendor/`` takes
``vendor/x.go`` and ``app/vendor/y.go``).  The defaults are
:data:`DEFAULT_FIX_EXCLUDES`; ``miner run --fix-exclude`` adds to them and
``--no-default-fix-exclude`` starts from none.  The config file's ``[miner]``
section can set every field (``snapshotter.config.MinerSection``); the flags win.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from snapshotter.errors import ConfigError

LOCK_FILES: tuple[str, ...] = (
    "Cargo.lock",
    "package-lock.json",
    "npm-shrinkwrap.json",
    "yarn.lock",
    "pnpm-lock.yaml",
    "bun.lockb",
    "poetry.lock",
    "uv.lock",
    "Pipfile.lock",
    "pdm.lock",
    "Gemfile.lock",
    "composer.lock",
    "go.sum",
    "go.work.sum",
    "flake.lock",
    "mix.lock",
    "pubspec.lock",
    "Podfile.lock",
    "Package.resolved",
    "packages.lock.json",
    "gradle.lockfile",
    "conan.lock",
    "MODULE.bazel.lock",
    "dune.lock/",  # dune package management locks into a directory
)
# Directories that hold other people's code, checked in.  external/ is left out on
# purpose: many projects keep their own code there.
VENDORED_TREES: tuple[str, ...] = (
    "vendor/",
    "third_party/",
    "third-party/",
    "thirdparty/",
    "node_modules/",
)
DEFAULT_FIX_EXCLUDES: tuple[str, ...] = LOCK_FILES + VENDORED_TREES

# how the train/test split holds episodes out (miner.split)
SPLIT_BY_TIME = "time"
SPLIT_BY_DEVELOPER = "developer"
SPLIT_MODES = (SPLIT_BY_TIME, SPLIT_BY_DEVELOPER)


def matches_glob(path: str, pattern: str) -> bool:
    """Whether the workspace-relative ``path`` matches one ``fix_exclude`` pattern."""
    if pattern.endswith("/"):
        directories = path.split("/")[:-1]
        return any(fnmatch.fnmatchcase(d, pattern[:-1]) for d in directories)
    name = path.rsplit("/", 1)[-1]
    return fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(path, pattern)


@dataclass(frozen=True)
class MinerSettings:
    # a fix larger than either limit is not a focused repair (filter fix_too_large)
    max_fix_lines: int = 100
    max_fix_files: int = 10
    # share of the kept episodes held out as the test split: each host's latest
    # (split_by "time"), or whole developers (split_by "developer")
    test_fraction: float = 0.1
    split_by: str = SPLIT_BY_TIME
    # total size of an episode's context: the files the fix touches always, then the
    # other files the red diagnostics name while they fit
    max_context_bytes: int = 64 * 1024
    # files removed from every fix (and its context) before diffs and filters
    fix_exclude: tuple[str, ...] = DEFAULT_FIX_EXCLUDES

    def __post_init__(self) -> None:
        if self.max_fix_lines < 0 or self.max_fix_files < 0:
            raise ConfigError("fix limits must not be negative")
        if self.max_context_bytes < 0:
            raise ConfigError("max_context_bytes must not be negative")
        if not 0.0 <= self.test_fraction <= 1.0:
            raise ConfigError("test_fraction must be between 0 and 1")
        if self.split_by not in SPLIT_MODES:
            raise ConfigError(
                f"split_by must be one of {', '.join(SPLIT_MODES)}, got {self.split_by!r}"
            )
        if any(not isinstance(p, str) or not p.strip("/") for p in self.fix_exclude):
            raise ConfigError("fix_exclude patterns must be non-empty glob strings")

    def excluded_from_fix(self, path: str) -> bool:
        """Whether ``path`` is left out of every fix (a lock file, a vendored tree...)."""
        return any(matches_glob(path, pattern) for pattern in self.fix_exclude)
