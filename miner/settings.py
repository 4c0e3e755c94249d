"""The miner's tunable limits, as one small value object.

Filters and the train/test split read their thresholds from here instead of
taking loose keyword arguments, so a run's behaviour is one printable value.
"""

from __future__ import annotations

from dataclasses import dataclass

from snapshotter.errors import ConfigError


@dataclass(frozen=True)
class MinerSettings:
    # a fix larger than either limit is not a focused repair (filter fix_too_large)
    max_fix_lines: int = 100
    max_fix_files: int = 10
    # share of each host's kept episodes, latest first, held out as the test split
    test_fraction: float = 0.1
    # total size of an episode's context: the files the fix touches always, then the
    # other files the red diagnostics name while they fit
    max_context_bytes: int = 64 * 1024

    def __post_init__(self) -> None:
        if self.max_fix_lines < 0 or self.max_fix_files < 0:
            raise ConfigError("fix limits must not be negative")
        if self.max_context_bytes < 0:
            raise ConfigError("max_context_bytes must not be negative")
        if not 0.0 <= self.test_fraction <= 1.0:
            raise ConfigError("test_fraction must be between 0 and 1")
