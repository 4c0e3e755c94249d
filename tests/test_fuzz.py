"""Fuzzing with hypothesis: the diff code, the diagnostics parsers and the Parquet readers.

Each test bounds its examples (``max_examples``) and the time of each one
(``deadline``): a hang or a quadratic blow-up fails as a deadline error, and
the whole file runs in well under a minute.  The Parquet fuzzing works on real
files: bytes written to disk and read back through the file check, DuckDB and
``miner run``.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from miner import pipeline
from miner.dataset import Dataset
from miner.errors import MinerError
from miner.states import ContentRef, UnrebuildableError, diff_states
from miner.synthetic import SyntheticDataset
from schemas import v1
from schemas.files import Checker, check_files
from snapshotter.diagnostics import PARSERS, parse_diagnostics
from snapshotter.diagnostics.output import clean
from snapshotter.textdiff import Side, file_diff, is_binary

# --- diffs ----------------------------------------------------------------------------------

# few distinct lines, so the two sides share lines and the matcher has work to do
LINES = st.sampled_from([b"a\n", b"b\n", b"\n", b"  x = 1\n", b"c", b"\xc3\xa9\n", b"\t\n"])
TEXT = st.lists(LINES, max_size=40).map(b"".join)
PATHS = st.text(min_size=1, max_size=30).filter(lambda p: "\0" not in p)

_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@$")


def apply(old: bytes, diff: str) -> bytes:
    """Apply a one-file unified diff to ``old`` (UTF-8 text), as ``patch`` would."""
    lines = old.decode().splitlines(keepends=True)
    body = diff.splitlines(keepends=True)
    result: list[str] = []
    taken = 0
    last_kind = ""
    for line in body[next(i for i, x in enumerate(body) if x.startswith("@@")) :]:
        hunk = _HUNK.match(line.rstrip("\n"))
        if hunk:
            start = int(hunk[1]) - (0 if hunk[2] == "0" else 1)
            result += lines[taken:start]
            taken = start
        elif line.startswith("\\"):  # "\ No newline at end of file": for the line before
            if last_kind in " +":
                result[-1] = result[-1].removesuffix("\n")
        else:
            last_kind, text = line[0], line[1:]
            if last_kind in " -":
                assert lines[taken].removesuffix("\n") == text.removesuffix("\n")
                taken += 1
            if last_kind in " +":
                result.append(text)
    result += lines[taken:]
    return "".join(result).encode()


@settings(max_examples=300, deadline=timedelta(milliseconds=500))
@given(TEXT, TEXT, PATHS)
def test_a_text_diff_turns_old_into_new(old: bytes, new: bytes, path: str) -> None:
    diff = file_diff(path, Side(old), Side(new))
    if old == new:
        assert diff.text == ""
        return
    lines = diff.text.splitlines()
    body = lines[next(n for n, line in enumerate(lines) if line.startswith("@@")) :]
    assert diff.added == sum(line.startswith("+") for line in body)
    assert diff.removed == sum(line.startswith("-") for line in body)
    assert apply(old, diff.text) == new


@settings(max_examples=300, deadline=timedelta(milliseconds=500))
@given(
    st.one_of(st.none(), st.binary(max_size=300)),
    st.one_of(st.none(), st.binary(max_size=300)),
    PATHS,
    st.booleans(),
    st.booleans(),
)
def test_any_bytes_diff_without_error(
    old: bytes | None, new: bytes | None, path: str, link: bool, opaque: bool
) -> None:
    diff = file_diff(path, Side(old, is_link=link), Side(new, opaque=opaque))
    assert diff.text == "" or diff.text.startswith("diff --git ")
    assert diff.text == "" or diff.text.endswith("\n")
    binary = opaque or any(c is not None and is_binary(c) for c in (old, new))
    assert ("Binary files " in diff.text) == (binary and bool(diff.text))


@settings(max_examples=5, deadline=timedelta(seconds=3))
@given(st.integers(0, 3))
def test_a_large_diff_of_repeated_lines_stays_fast(shift: int) -> None:
    # 5,000 near-identical lines each side: the matcher's worst case without autojunk
    old = b"".join(b"x = %d\n" % (i % 7) for i in range(5000))
    new = b"".join(b"x = %d\n" % ((i + shift) % 7) for i in range(5000))
    file_diff("big.py", Side(old), Side(new))


HASHES = st.sampled_from(["h1", "h2", "h3", "h4"])
REFS = st.one_of(
    st.just(ContentRef(None)),
    st.builds(ContentRef, HASHES),
    st.builds(ContentRef, st.one_of(st.none(), HASHES), st.sampled_from(["binary", "excluded"])),
)


@settings(max_examples=300, deadline=timedelta(milliseconds=500))
@given(
    st.dictionaries(PATHS, st.tuples(REFS, REFS), max_size=5),
    st.dictionaries(HASHES, st.binary(max_size=200), max_size=4),
)
def test_the_miners_state_diff_never_fails_but_for_a_missing_blob(
    pairs: dict[str, tuple[ContentRef, ContentRef]], contents: dict[str, bytes]
) -> None:
    try:
        diff = diff_states(pairs, contents)
    except UnrebuildableError as exc:
        assert "is not in blobs" in str(exc)
        return
    assert diff.paths == sorted(diff.paths)
    assert diff.added + diff.removed >= 0
    assert all(change.diff.text.startswith("diff --git ") for change in diff.changes)


# --- diagnostics ----------------------------------------------------------------------------

NUMBERS = st.one_of(st.integers(0, 20).map(str), st.integers(0, 10**30).map(str))
LOCATION_LINES = st.builds(
    "{}:{}:{}: {}: {}".format,
    st.sampled_from(["a.c", "src/x.py", "/ws/m.ml", "../up.rs", "", "C:\\w\\x.ts"]),
    NUMBERS,
    NUMBERS,
    st.sampled_from(["error", "warning", "note", "fatal error", "Error", "err"]),
    st.text(max_size=20),
)
BUILD_LINES = st.one_of(
    LOCATION_LINES,
    st.builds('File "{}", line {}, in f'.format, st.text(max_size=10), NUMBERS),
    st.builds("{}({},{}): error TS{}: x".format, st.text(max_size=8), NUMBERS, NUMBERS, NUMBERS),
    st.builds(
        "error[E{}]: {}\n  --> {}:{}:{}".format,
        NUMBERS,
        st.text(max_size=8),
        st.text(max_size=8),
        NUMBERS,
        NUMBERS,
    ),
    st.text(max_size=60),
)
OUTPUTS = st.lists(BUILD_LINES, max_size=30).map("\n".join)


@settings(max_examples=300, deadline=timedelta(milliseconds=1000))
@given(OUTPUTS)
def test_no_output_makes_a_parser_raise_or_overflow_a_column(output: str) -> None:
    out = clean(output)
    for parser in PARSERS.values():  # each parser directly: parse_diagnostics hides raises
        for found in parser(out):
            assert 0 <= found.start < found.end <= len(out.lines)
    for failed in (False, True):
        diagnostics = parse_diagnostics(output, Path("/ws"), failed=failed)
        # the line and col columns are int32: a value that does not fit would fail the roll
        pa.array(diagnostics, type=v1.DIAGNOSTIC)
        if failed and output.strip():
            assert any(d["severity"] == "error" for d in diagnostics)


# --- Parquet readers ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """The bytes of a real snapshots file and a real blobs file with one episode."""
    data = tmp_path_factory.mktemp("fuzz") / "data"
    ds = SyntheticDataset()
    w = ds.workspace()
    w.start({"calc.py": b"def f():\n    return 1\n"})
    w.snapshot("green")
    w.write("calc.py", b"def f()\n    return 1\n")
    w.snapshot("red", "calc.py:1:8: error: expected ':'\n")
    w.write("calc.py", b"def f():\n    return 2\n")
    w.snapshot("green")
    ds.write(data)
    return {
        kind: next((data / kind).glob("*/*/*.parquet")).read_bytes()
        for kind in ("snapshots", "blobs")
    }


@pytest.fixture
def scratch() -> Iterator[Path]:
    # one directory per example: hypothesis runs many examples in one test call
    with tempfile.TemporaryDirectory() as directory:
        yield Path(directory)


def _fresh(root: Path) -> Path:
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    return root


@settings(max_examples=300, deadline=timedelta(milliseconds=500))
@given(st.binary(max_size=2000))
def test_random_bytes_are_skipped_never_raised(random: bytes) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "x.parquet"
        path.write_bytes(random)
        # random bytes hardly ever form a footer; if they do it must still be a verdict
        problem = Checker(v1.SNAPSHOTS).problem(path)
        assert problem is None or (problem.strip() == problem and "\n" not in problem)


MUTATIONS = st.one_of(
    st.tuples(st.just("cut"), st.floats(0, 1), st.just(0)),
    st.tuples(st.just("flip"), st.floats(0, 1), st.integers(1, 255)),
)


@settings(
    max_examples=40,
    deadline=timedelta(seconds=5),
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(st.sampled_from(["snapshots", "blobs"]), st.lists(MUTATIONS, min_size=1, max_size=3))
def test_a_damaged_real_file_is_skipped_or_mined_never_a_crash(
    real_files: dict[str, bytes],
    scratch: Path,
    kind: str,
    mutations: list[tuple[str, float, int]],
) -> None:
    raw = bytearray(real_files[kind])
    for action, where, value in mutations:
        at = int(where * (len(raw) - 1)) if raw else 0
        if action == "cut":
            del raw[at:]
        elif raw:
            raw[at] ^= value
    data = _fresh(scratch / "data")
    for name, content in real_files.items():
        directory = data / name / "date=2024-05-01" / "host=laptop"
        directory.mkdir(parents=True)
        (directory / "good.parquet").write_bytes(content)
    damaged = data / kind / "date=2024-05-01" / "host=laptop" / "damaged.parquet"
    damaged.write_bytes(bytes(raw))

    checked = check_files(
        data, f"{kind}/*/*/*.parquet", v1.SNAPSHOTS if kind == "snapshots" else v1.BLOBS
    )
    assert {s.path for s in checked.skipped} <= {damaged}
    try:
        with Dataset(data) as dataset:
            assert dataset.snapshot_count() >= 3
        summary = pipeline.run(data, _fresh(scratch / "out"))
    except MinerError as exc:
        # allowed: a one-line error; what was never allowed is any other exception
        assert "\n" not in str(exc)
        return
    assert summary.episodes >= 1
    assert {s.path for s in summary.skipped} <= {damaged}
