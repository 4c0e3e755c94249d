"""DuckDB view definitions over a redgreen dataset, as SQL text.

One place writes the ``CREATE VIEW`` statements that ``miner sql``, the miner
itself and the snapshotter's own checks run, and that ``miner sql
--print-views`` prints for any DuckDB client to paste.  Every Parquet read
passes ``union_by_name=true`` (a newer reader reads every older schema
version) and ``hive_partitioning=true`` (``date`` and ``host`` come from the
``date=YYYY-MM-DD/host=HOST`` directories, typed explicitly so that a host
named ``1234`` stays a string).

DuckDB refuses a glob that matches no file, so a view over a part of the
dataset with no file yet is written as an empty SELECT with the columns of
schema v1: an empty dataset gives working, empty views.  That choice is made
when the SQL is generated; print the views again once data exists.

One unreadable file fails every query over its view, so the files are checked
first (:mod:`schemas.files`).  When all pass, a view reads its glob (short SQL
a person can paste); when some are set aside, it reads the explicit list of
the others, and a comment names each file left out and why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from schemas import v1
from schemas.files import Skipped, ViewFiles, check_files

SNAPSHOTS_GLOB = "snapshots/*/*/*.parquet"
BLOBS_GLOB = "blobs/*/*/*.parquet"
EPISODES_FILE = "episodes.parquet"

# Hive partition columns, appended after the file's columns (as DuckDB does).
_HIVE_TYPES = "{'date': DATE, 'host': VARCHAR}"
_HIVE_COLUMNS = (("date", "DATE"), ("host", "VARCHAR"))

_PRIMITIVES: dict[pa.DataType, str] = {
    pa.string(): "VARCHAR",
    pa.large_string(): "VARCHAR",
    pa.int16(): "SMALLINT",
    pa.int32(): "INTEGER",
    pa.int64(): "BIGINT",
    pa.float64(): "DOUBLE",
    pa.bool_(): "BOOLEAN",
    pa.binary(): "BLOB",
    pa.large_binary(): "BLOB",
    pa.timestamp("us", tz="UTC"): "TIMESTAMP WITH TIME ZONE",
}


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def duckdb_type(arrow_type: pa.DataType) -> str:
    """The DuckDB type DuckDB gives a Parquet column of this Arrow type."""
    if arrow_type in _PRIMITIVES:
        return _PRIMITIVES[arrow_type]
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        return duckdb_type(arrow_type.value_type) + "[]"
    if pa.types.is_struct(arrow_type):
        fields = [
            f"{quote_identifier(arrow_type.field(i).name)} {duckdb_type(arrow_type.field(i).type)}"
            for i in range(arrow_type.num_fields)
        ]
        return "STRUCT(" + ", ".join(fields) + ")"
    raise TypeError(f"no DuckDB type for Arrow type {arrow_type}")


def _empty_select(schema: pa.Schema, hive: bool) -> str:
    columns = [(field.name, duckdb_type(field.type)) for field in schema]
    if hive:
        names = {name for name, _ in columns}
        columns += [(name, kind) for name, kind in _HIVE_COLUMNS if name not in names]
    select = ",\n  ".join(f"CAST(NULL AS {kind}) AS {quote_identifier(n)}" for n, kind in columns)
    return f"SELECT\n  {select}\nWHERE false"


def _read_parquet(source: str, hive: bool) -> str:
    # hive_types may only name partition columns the files really have
    types = f", hive_types={_HIVE_TYPES}" if hive else ""
    return (
        f"SELECT * FROM read_parquet({source}, union_by_name=true, hive_partitioning=true{types})"
    )


def _source(files: ViewFiles) -> str:
    """The glob when every file passed, else the list of those that did."""
    if not any(skipped.path.match(files.pattern) for skipped in files.skipped):
        return quote_literal(str(files.root / files.pattern))
    listed = ",\n  ".join(quote_literal(str(path)) for path in files.good)
    return f"[\n  {listed}\n]"


def _view_sql(name: str, files: ViewFiles, schema: pa.Schema, hive: bool) -> str:
    notes = "".join(f"-- {skipped}\n" for skipped in files.skipped)
    if files.good:
        body = _read_parquet(_source(files), hive)
    else:
        where = files.root / files.pattern
        body = f"-- no readable file matches {where}: an empty view\n" + _empty_select(schema, hive)
    return f"{notes}CREATE OR REPLACE VIEW {name} AS\n{body};\n"


def _snapshots_files(data_dir: Path) -> ViewFiles:
    return check_files(data_dir, SNAPSHOTS_GLOB, v1.SNAPSHOTS, strays=True)


def _blobs_files(data_dir: Path) -> ViewFiles:
    return check_files(data_dir, BLOBS_GLOB, v1.BLOBS, strays=True)


def _episodes_files(out_dir: Path) -> ViewFiles:
    return check_files(out_dir, EPISODES_FILE, v1.EPISODES)


def snapshots_view(data_dir: Path) -> str:
    """``snapshots``: every snapshot row of the dataset, with ``date`` and ``host``."""
    return _view_sql("snapshots", _snapshots_files(data_dir), v1.SNAPSHOTS, hive=True)


def blobs_view(data_dir: Path) -> str:
    """``blobs``: file contents by sha256; a blob may appear in several partitions."""
    return _view_sql("blobs", _blobs_files(data_dir), v1.BLOBS, hive=True)


def episodes_view(out_dir: Path) -> str:
    """``episodes``: the miner's output file in ``out_dir``."""
    return _view_sql("episodes", _episodes_files(out_dir), v1.EPISODES, hive=False)


# One row per diagnostic of each distinct build result, at the snapshot that first
# recorded it: the same result is repeated on every row recorded while it was the
# latest, so only its first row counts.  `position` is the diagnostic's place in its
# build (1 = first reported), so `WHERE position = 1` or `severity = 'error'` pick
# the build's leading error.
DIAGNOSTICS_VIEW = """\
CREATE OR REPLACE VIEW diagnostics AS
WITH builds AS (
  SELECT host, workspace, vcs, snapshot_id, ts, build
  FROM snapshots
  WHERE build IS NOT NULL
  QUALIFY row_number() OVER (
    PARTITION BY host, workspace, build.state_id, build.started_at, build.finished_at,
                 build.exit_code, hash(build.output)
    ORDER BY ts, snapshot_id
  ) = 1
),
flat AS (
  SELECT host, workspace, vcs, snapshot_id, ts, build,
         unnest(build.diagnostics) AS d,
         generate_subscripts(build.diagnostics, 1) AS position
  FROM builds
)
SELECT
  host, workspace, vcs, snapshot_id, ts,
  build.state_id AS state_id, build.status AS status, build.command AS command,
  build.exit_code AS exit_code, build.started_at AS started_at, build.finished_at AS finished_at,
  position, d.file AS file, d.line AS line, d.col AS col, d.severity AS severity,
  d.code AS code, d.message AS message
FROM flat;
"""


def diagnostics_view() -> str:
    """``diagnostics``: one row per parsed diagnostic of each distinct build result."""
    return DIAGNOSTICS_VIEW


@dataclass(frozen=True)
class DatasetViews:
    """Every view as one script, the files the views read, and those they leave out."""

    sql: str
    files: tuple[Path, ...]
    skipped: tuple[Skipped, ...]


def dataset_views(
    data_dir: Path, out_dir: Path | None = None, *, exclude: Sequence[Skipped] = ()
) -> DatasetViews:
    """Every view, in dependency order, over the files that pass the check.

    ``exclude``: files to leave out besides, with why (a corrupt data page a
    query met behind a footer that passed).
    """
    excluded = {skipped.path: skipped for skipped in exclude}
    parts = [
        ("snapshots", _snapshots_files(data_dir), v1.SNAPSHOTS, True),
        ("blobs", _blobs_files(data_dir), v1.BLOBS, True),
    ]
    if out_dir is not None:
        parts.append(("episodes", _episodes_files(out_dir), v1.EPISODES, False))
    sql: list[str] = []
    good: list[Path] = []
    skipped: list[Skipped] = []
    for name, files, schema, hive in parts:
        files = _without(files, excluded)
        sql.append(_view_sql(name, files, schema, hive))
        good.extend(files.good)
        skipped.extend(files.skipped)
        if name == "blobs":
            sql.append(diagnostics_view())
    return DatasetViews("\n".join(sql), tuple(good), tuple(skipped))


def _without(files: ViewFiles, excluded: Mapping[Path, Skipped]) -> ViewFiles:
    gone = [excluded[path] for path in files.good if path in excluded]
    if not gone:
        return files
    good = tuple(path for path in files.good if path not in excluded)
    skipped = sorted([*files.skipped, *gone], key=lambda s: str(s.path))
    return ViewFiles(files.root, files.pattern, good, tuple(skipped))


def all_views(data_dir: Path, out_dir: Path | None = None) -> str:
    """Every view, in dependency order, as one script."""
    return dataset_views(data_dir, out_dir).sql
