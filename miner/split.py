"""The train/test split: by time, per host, so the test set is the future.

A model evaluated on the latest episodes of each host was trained only on
what came before them, as it would be in use.  For each host the kept
episodes are ordered by ``red_ended_at`` (ties by ``episode_id``) and the
last ``floor(n * fraction)`` go to ``test``, the rest to ``train``; episodes
that were not kept get no split.  The result depends only on the episodes,
so a rerun gives the same split.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace

from miner.record import Episode

TRAIN = "train"
TEST = "test"


def assign_splits(episodes: Sequence[Episode], test_fraction: float) -> list[Episode]:
    """``episodes`` in the same order, each with its split set."""
    per_host: dict[str | None, list[Episode]] = defaultdict(list)
    for episode in episodes:
        if episode.kept:
            per_host[episode.host].append(episode)
    splits: dict[str, str] = {}
    for kept in per_host.values():
        kept.sort(key=lambda e: (e.red_ended_at, e.episode_id))
        # the epsilon keeps 0.3 * 10 at 3 despite binary floating point
        n_test = math.floor(len(kept) * test_fraction + 1e-9)
        for index, episode in enumerate(kept):
            splits[episode.episode_id] = TEST if index >= len(kept) - n_test else TRAIN
    return [replace(e, split=splits.get(e.episode_id)) for e in episodes]
