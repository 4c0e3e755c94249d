"""Benchmark episode detection: DuckDB window functions against a Python loop.

Generates a schema-v1 dataset of N snapshot rows (default 1,000,000; synthetic
streams of green, red and unusable builds, ``files`` empty so generation is
quick) as a few hive-partitioned Parquet files, then times

* ``miner.episodes.detect``: the real detection query (``miner/episodes.sql``)
  over the real ``snapshots`` view, and
* a naive baseline: fetch the usable rows in stream order and find episodes
  with a Python loop,

and prints rows per second for both, their ratio, and checks that both find
the same episodes.  Run it with::

    uv run python bench/bench_episodes.py [--rows 1000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import pyarrow as pa
import pyarrow.parquet as pq

from miner.dataset import Dataset
from miner.episodes import detect
from schemas.v1 import BUILD, FILE_ENTRY, SCHEMA_VERSION, SNAPSHOTS

HOSTS = 4
WORKSPACES_PER_HOST = 50
FILES = 4  # Parquet files, one per (date, host) partition
START_US = int(datetime(2024, 5, 1, tzinfo=UTC).timestamp() * 1_000_000)
STEP_US = 20_000_000

# build status of each row: a walk that stays green, breaks, stays red a while, then
# repairs; about a fifth of rows carry an unusable result
NEXT_IF_GREEN = (("green", 0.84), ("red", 0.03), ("unknown", 0.07), ("stale", 0.04))
NEXT_IF_RED = (("red", 0.55), ("green", 0.25), ("unknown", 0.10), ("timeout", 0.03))
T = TypeVar("T")


def _choose(rng: random.Random, table: tuple[tuple[str, float], ...]) -> str:
    roll = rng.random()
    for status, weight in table:
        roll -= weight
        if roll < 0:
            return status
    return "mismatch"  # a green or red result of another state, repeated on this row


def generate(data_dir: Path, rows: int, seed: int = 1) -> None:
    """Write ``rows`` snapshot rows as hive-partitioned Parquet files under ``data_dir``."""
    rng = random.Random(seed)
    streams = HOSTS * WORKSPACES_PER_HOST
    host, workspace, ts, sid, state, status, build_state = [], [], [], [], [], [], []
    last = ["green"] * streams
    for i in range(rows):
        stream = i % streams
        current = _choose(rng, NEXT_IF_GREEN if last[stream] == "green" else NEXT_IF_RED)
        if current in ("green", "red"):
            last[stream] = current
        state_id = f"state-{i}"
        if current == "mismatch":
            current, build_of = last[stream], f"state-{i - streams}"
        else:
            build_of = state_id
        host.append(f"host{stream % HOSTS}")
        workspace.append(f"/src/project{stream // HOSTS}")
        ts.append(START_US + (i // streams) * STEP_US)
        sid.append(f"{i:012d}")
        state.append(state_id)
        status.append(current)
        build_state.append(build_of)
    n = rows
    nulls = pa.nulls(n)
    build = pa.StructArray.from_arrays(
        [
            pa.array(status, pa.string()),
            pa.array(build_state, pa.string()),
            pa.array(["make"] * n, pa.string()),
            pa.array([0 if s == "green" else 1 for s in status], pa.int32()),
            nulls.cast(pa.timestamp("us", tz="UTC")),
            nulls.cast(pa.timestamp("us", tz="UTC")),
            pa.array([""] * n, pa.large_string()),
            pa.ListArray.from_arrays(
                pa.array([0] * (n + 1), pa.int32()),
                pa.array([], BUILD.field("diagnostics").type.value_type),
            ),
        ],
        fields=list(BUILD),
    )
    files = pa.ListArray.from_arrays(pa.array([0] * (n + 1), pa.int32()), pa.array([], FILE_ENTRY))
    table = pa.Table.from_arrays(
        [
            pa.array(sid, pa.string()),
            pa.array([SCHEMA_VERSION] * n, pa.int16()),
            pa.array(ts, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
            pa.array(host, pa.string()),
            pa.array(["dev"] * n, pa.string()),
            pa.array(workspace, pa.string()),
            pa.array(["git"] * n, pa.string()),
            pa.array(["b" * 40] * n, pa.string()),
            nulls.cast(pa.string()),
            pa.array(state, pa.string()),
            files,
            nulls.cast(pa.large_string()),
            pa.array([0] * n, pa.int32()),
            pa.array([0] * n, pa.int32()),
            build,
            pa.array(["state"] * n, pa.string()),
        ],
        schema=SNAPSHOTS,
    )
    for h in range(HOSTS):
        mask = pa.array([name == f"host{h}" for name in host])
        directory = data_dir / "snapshots" / "date=2024-05-01" / f"host=host{h}"
        directory.mkdir(parents=True, exist_ok=True)
        pq.write_table(table.filter(mask), directory / "part-0.parquet")


BASELINE_SQL = """
SELECT host, workspace, snapshot_id, build.status
FROM snapshots
WHERE build.state_id = state_id AND build.status IN ('green', 'red')
  AND reason IS DISTINCT FROM 'base'
ORDER BY host, workspace, ts, snapshot_id
"""


def python_episodes(dataset: Dataset) -> list[tuple[str, str]]:
    """The naive way: usable rows in stream order, episodes found by a Python loop."""
    episodes = []
    stream = None
    seen_green = False
    last_red = None
    for host, workspace, snapshot_id, status in dataset.con.execute(BASELINE_SQL).fetchall():
        if (host, workspace) != stream:
            stream, seen_green, last_red = (host, workspace), False, None
        if status == "red":
            last_red = snapshot_id if seen_green else None
        else:
            if last_red is not None:
                episodes.append((last_red, snapshot_id))
            seen_green, last_red = True, None
    return episodes


def sql_episodes(dataset: Dataset) -> list[tuple[str, str]]:
    return [(c.red_id, c.green_id) for c in detect(dataset.con)]


def best_of(repeat: int, run: Callable[[], T]) -> tuple[float, T]:
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - start)
    assert result is not None
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=1_000_000, help="snapshot rows to generate")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each method; best counts")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="redgreen-bench-") as tmp:
        data_dir = Path(tmp)
        start = time.perf_counter()
        generate(data_dir, args.rows, args.seed)
        print(f"generated {args.rows:,} snapshot rows in {time.perf_counter() - start:.1f} s")
        with Dataset(data_dir) as dataset:
            rows = dataset.snapshot_count()
            sql_time, sql_found = best_of(args.repeat, lambda: sql_episodes(dataset))
            py_time, py_found = best_of(args.repeat, lambda: python_episodes(dataset))
    if sorted(sql_found) != sorted(py_found):
        raise SystemExit(f"mismatch: SQL found {len(sql_found)}, Python found {len(py_found)}")
    print(f"episodes found: {len(sql_found):,} (both methods agree)")
    print(f"DuckDB window functions: {sql_time:6.3f} s  {rows / sql_time:>12,.0f} rows/s")
    print(f"Python loop baseline:    {py_time:6.3f} s  {rows / py_time:>12,.0f} rows/s")
    print(f"ratio: DuckDB is {py_time / sql_time:.1f}x the baseline's speed")


if __name__ == "__main__":
    main()
