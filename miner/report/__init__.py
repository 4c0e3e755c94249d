"""``miner report``: one self-contained HTML page about a miner run.

    OUT/episodes.parquet (+ the dataset's snapshot counts)
      -> miner.stats (the funnel) -> report.charts (plotly figures)
      -> report.examples (kept episodes) -> report.page (the HTML) -> OUT/report.html

The page opens from disk with no network.  It is written whole or not at
all (:func:`miner.output.atomic_write`).  This package imports plotly, which
takes a while to load, so only the ``report`` command imports it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import IO

from miner.describe_stage import read_episodes
from miner.output import atomic_write
from miner.report.page import render_page
from miner.stats import compute_stats
from schemas.files import Skipped

REPORT_FILE = "report.html"


def write_report(
    out_dir: Path,
    data_dir: Path | None = None,
    html: Path | None = None,
    *,
    strict: bool = False,
    on_skipped: Callable[[Skipped], None] | None = None,
) -> Path:
    """Write the report of ``out_dir``'s episodes to ``html`` (OUT/report.html); return it."""
    episodes = read_episodes(out_dir)
    stats = compute_stats(
        out_dir, data_dir, strict=strict, on_skipped=on_skipped, episodes=episodes
    )
    page = render_page(episodes, stats, title=str(out_dir)).encode("utf-8")
    target = html if html is not None else out_dir / REPORT_FILE

    def write(handle: IO[bytes]) -> None:
        handle.write(page)

    atomic_write(target, write)
    return target
