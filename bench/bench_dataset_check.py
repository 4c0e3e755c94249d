"""The cost of checking a dataset's files before DuckDB reads them.

Writes N small snapshots files (one row each, the real schema, as an hourly
roll writes them), then times the footer check of every file
(``schemas.views.dataset_views``) beside DuckDB's own ``count(*)`` over the
same glob, which reads every footer too.

    uv run python bench/bench_dataset_check.py [--files 2000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from miner.synthetic import SyntheticDataset
from schemas.v1 import SNAPSHOTS
from schemas.views import SNAPSHOTS_GLOB, dataset_views


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=2000)
    files = parser.parse_args().files
    with tempfile.TemporaryDirectory() as directory:
        data = Path(directory)
        ds = SyntheticDataset()
        w = ds.workspace()
        w.start({"a.py": b"x = 1\n"})
        w.snapshot("green")
        row = pa.Table.from_pylist(ds.rows[:1], schema=SNAPSHOTS)
        for n in range(files):
            part = data / "snapshots" / f"date=2024-{1 + n // 500 % 12:02d}-01" / f"host=h{n % 5}"
            part.mkdir(parents=True, exist_ok=True)
            pq.write_table(row, part / f"{n}.parquet", compression="zstd")
        start = time.perf_counter()
        views = dataset_views(data)
        check = time.perf_counter() - start
        assert not views.skipped
        start = time.perf_counter()
        duckdb.sql(
            f"SELECT count(*) FROM read_parquet('{data / SNAPSHOTS_GLOB}',"
            " union_by_name=true, hive_partitioning=true)"
        ).fetchall()
        query = time.perf_counter() - start
    print(
        f"{files} files: check {check * 1000:.0f} ms ({check / files * 1e6:.0f} us a file),"
        f" DuckDB count(*) over the same files {query * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
