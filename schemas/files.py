"""Which of a dataset's Parquet files a query can read, checked before DuckDB sees them.

DuckDB reads a view's files in one query, so one unreadable file (a truncated
copy, a zero-byte file, a stray ``.parquet`` that is not Parquet, a file a
newer redgreen wrote) fails every query over the view.  So each file is
checked first, from its footer only (``pyarrow.parquet.read_metadata`` reads
the last bytes of the file, never a data page), and the views are built over
the files that pass:

- it is Parquet: it starts and ends with the magic bytes and its footer parses;
- its schema version, read from the footer's statistics of the
  ``schema_version`` column, is one this reader knows (:data:`schemas.v1.SCHEMA_VERSION`);
- it has the schema's required (non-nullable) columns, and every column it
  shares with the schema has a compatible type (a ``string`` where a
  ``timestamp`` belongs would turn the whole column into text).

Other files in the partition directories (``notes.txt``) are reported too;
a writer's temporaries (``.<name>.parquet.<hex>.tmp``, see
``snapshotter.roll``) are work in progress and are not.  What is set aside is
a :class:`Skipped`: the path and one line a person understands.

A data page can still be corrupt behind a good footer; :func:`read_problem`
reads a whole file to find such a one once a query has failed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from schemas.v1 import SCHEMA_VERSION

VERSION_COLUMN = "schema_version"
MAGIC = b"PAR1"

# a writer's temporary (snapshotter.roll): whole files appear under their final name only
_TEMPORARY = re.compile(r"^\..+\.[0-9a-f]{16}\.tmp$")


@dataclass(frozen=True)
class Skipped:
    """A file left out of the views, and why, in words."""

    path: Path
    reason: str

    def __str__(self) -> str:
        # one line, whatever characters the file name holds
        line = f"skipped {self.path}: {self.reason}"
        return line.replace("\r", "\\r").replace("\n", "\\n")


@dataclass(frozen=True)
class ViewFiles:
    """The files of one view: those a query can read, and those set aside."""

    root: Path
    pattern: str
    good: tuple[Path, ...]
    skipped: tuple[Skipped, ...]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _family(kind: pa.DataType) -> str:
    for name, test in (
        ("string", lambda t: pa.types.is_string(t) or pa.types.is_large_string(t)),
        ("binary", lambda t: pa.types.is_binary(t) or pa.types.is_large_binary(t)),
        ("integer", pa.types.is_integer),
        ("float", pa.types.is_floating),
        ("boolean", pa.types.is_boolean),
        ("timestamp", pa.types.is_timestamp),
        ("list", lambda t: pa.types.is_list(t) or pa.types.is_large_list(t)),
        ("struct", pa.types.is_struct),
    ):
        if test(kind):
            return name
    return str(kind)


def _type_problem(name: str, found: pa.DataType, expected: pa.DataType) -> str | None:
    """Why a column of type ``found`` cannot stand for ``expected``, or None."""
    family = _family(expected)
    if _family(found) != family:
        return f"column {name} is {found}, expected {expected}"
    if family == "list":
        return _type_problem(f"{name}[]", found.value_type, expected.value_type)
    if family == "struct":
        # a field one side lacks reads as NULL (union_by_name); shared ones must agree
        for i in range(found.num_fields):
            field = found.field(i)
            index = expected.get_field_index(field.name)
            if index >= 0:
                problem = _type_problem(
                    f"{name}.{field.name}", field.type, expected.field(index).type
                )
                if problem:
                    return problem
    return None


def _schema_problem(found: pa.Schema, expected: pa.Schema) -> str | None:
    missing = [f.name for f in expected if not f.nullable and found.get_field_index(f.name) < 0]
    if missing:
        return "not a redgreen file of this kind (no column " + ", ".join(missing) + ")"
    for field in found:
        index = expected.get_field_index(field.name)
        if index >= 0:
            problem = _type_problem(field.name, field.type, expected.field(index).type)
            if problem:
                return problem
    return None


def _versions(path: Path, metadata: pq.FileMetaData) -> tuple[int, int] | None:
    """The smallest and largest ``schema_version`` in the file, from its footer if it can."""
    names = [metadata.schema.column(i).path for i in range(metadata.num_columns)]
    if VERSION_COLUMN not in names or metadata.num_rows == 0:
        return None
    column = names.index(VERSION_COLUMN)
    low: int | None = None
    high: int | None = None
    for group in range(metadata.num_row_groups):
        chunk = metadata.row_group(group)
        if chunk.num_rows == 0:
            continue
        stats = chunk.column(column).statistics
        if stats is None or not stats.has_min_max:
            break
        low = stats.min if low is None else min(low, stats.min)
        high = stats.max if high is None else max(high, stats.max)
    else:
        return (low, high) if low is not None and high is not None else None
    # a writer without statistics: read the one small column
    values = pq.read_table(path, columns=[VERSION_COLUMN]).column(0)
    bounds = pc.min_max(values).as_py()
    return (bounds["min"], bounds["max"]) if bounds["min"] is not None else None


def _not_parquet(path: Path, size: int) -> str:
    with path.open("rb") as file:
        head = file.read(4)
    if head != MAGIC:
        return "not a Parquet file"
    return f"truncated or corrupt Parquet file ({size} bytes, no readable footer)"


class Checker:
    """Checks files against one schema; remembers the verdict on each footer's schema."""

    def __init__(self, schema: pa.Schema) -> None:
        self.schema = schema
        # files written by one writer carry byte-identical schemas: check each kind once
        self._verdicts: dict[bytes, str | None] = {}

    def problem(self, path: Path) -> str | None:
        """Why a query cannot read ``path`` as a file of this schema, or None."""
        try:
            size = path.stat().st_size
            if not path.is_file():
                return "not a file"
            if size == 0:
                return "empty file (0 bytes)"
            try:
                metadata = pq.read_metadata(path)
            except (pa.ArrowException, ValueError):
                return _not_parquet(path, size)
            versions = _versions(path, metadata)
            if versions is not None:
                low, high = versions
                if high > SCHEMA_VERSION:
                    return (
                        f"written by a newer redgreen (schema v{high});"
                        f" this one reads up to v{SCHEMA_VERSION}"
                    )
                if low < 1:
                    return f"unknown schema version {low}"
            return self._schema_verdict(metadata)
        except OSError as exc:
            return f"cannot read it ({exc.strerror or _first_line(exc)})"
        except (pa.ArrowException, ValueError, TypeError) as exc:
            return f"corrupt Parquet footer ({_first_line(exc)})"

    def _schema_verdict(self, metadata: pq.FileMetaData) -> str | None:
        key = (metadata.metadata or {}).get(b"ARROW:schema")
        if key is not None and key in self._verdicts:
            return self._verdicts[key]
        verdict = _schema_problem(metadata.schema.to_arrow_schema(), self.schema)
        if key is not None:
            self._verdicts[key] = verdict
        return verdict


def _strays(root: Path, pattern: str) -> list[Skipped]:
    """Files beside the Parquet files that are neither Parquet nor a writer's temporary."""
    suffix = Path(pattern).suffix
    directory_pattern = str(Path(pattern).parent)
    strays = []
    for directory in root.glob(directory_pattern):
        if not directory.is_dir():
            continue
        for path in directory.iterdir():
            if path.suffix == suffix or _TEMPORARY.match(path.name) or not path.is_file():
                continue
            strays.append(Skipped(path, f"not a {suffix} file"))
    return strays


def check_files(root: Path, pattern: str, schema: pa.Schema, *, strays: bool = False) -> ViewFiles:
    """The files under ``root`` matching ``pattern``, checked against ``schema``, sorted.

    ``strays``: also report other files in the directories the pattern names.
    """
    root = root.absolute()
    checker = Checker(schema)
    good: list[Path] = []
    skipped: list[Skipped] = _strays(root, pattern) if strays else []
    for path in sorted(root.glob(pattern)):
        problem = checker.problem(path)
        if problem is None:
            good.append(path)
        else:
            skipped.append(Skipped(path, problem))
    skipped.sort(key=lambda s: str(s.path))
    return ViewFiles(root, pattern, tuple(good), tuple(skipped))


def read_problem(path: Path) -> str | None:
    """Why reading all of ``path`` fails (a corrupt data page behind a good footer), or None."""
    try:
        pq.ParquetFile(path).read()
    except (OSError, pa.ArrowException, ValueError) as exc:
        return f"corrupt Parquet data ({_first_line(exc)})"
    return None
