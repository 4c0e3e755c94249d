"""parse_diagnostics on real compiler output and on hand-written samples."""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.v1 import DIAGNOSTIC
from snapshotter.build import BuildLimits, run_build
from snapshotter.diagnostics import PARSERS, parse_diagnostics, strip_ansi

KEYS = [DIAGNOSTIC.field(i).name for i in range(DIAGNOSTIC.num_fields)]
LIMITS = BuildLimits(timeout_s=30.0)
needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")

BROKEN_C = """\
int main(void) {
  int unused = 1;
  return 0
}
"""


def _check_shape(found: list[dict[str, object]]) -> None:
    for d in found:
        assert list(d) == KEYS
    pa.array(found, type=DIAGNOSTIC)  # fits the schema: str / int32 / null


@needs_gcc
@pytest.mark.parametrize("colour", ["never", "always"])
def test_real_gcc_output(tmp_path: Path, colour: str) -> None:
    (tmp_path / "src").mkdir()
    source = tmp_path / "src" / "bad.c"
    source.write_text(BROKEN_C)
    cmd = f"gcc -fsyntax-only -Wall -fdiagnostics-color={colour} {source}"
    out = run_build(cmd, tmp_path, LIMITS)
    assert out.status == "red"
    assert ("\x1b[" in out.output) == (colour == "always")

    found = parse_diagnostics(out.output, tmp_path)
    _check_shape(found)
    errors = [d for d in found if d["severity"] == "error"]
    assert [(d["file"], d["line"], d["col"]) for d in errors] == [("src/bad.c", 3, 11)]
    assert "before" in errors[0]["message"]
    assert errors[0]["code"] is None
    warnings = [d for d in found if d["severity"] == "warning"]
    assert [(d["file"], d["line"], d["code"]) for d in warnings] == [
        ("src/bad.c", 2, "-Wunused-variable")
    ]
    assert not warnings[0]["message"].endswith("]")


@needs_gcc
def test_real_gcc_fatal_error(tmp_path: Path) -> None:
    (tmp_path / "inc.c").write_text('#include "redgreen_missing.h"\nint x;\n')
    out = run_build("gcc -fsyntax-only inc.c", tmp_path, LIMITS)
    assert out.status == "red"
    found = parse_diagnostics(out.output, tmp_path)
    _check_shape(found)
    assert [(d["file"], d["line"], d["col"], d["severity"]) for d in found] == [
        ("inc.c", 1, 10, "error")
    ]
    assert "redgreen_missing.h" in found[0]["message"]


def test_real_py_compile(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "bad.py").write_text("x = 1\ndef f(:\n    pass\n")
    out = run_build(f"'{sys.executable}' -m py_compile pkg/bad.py", tmp_path, LIMITS)
    assert out.status == "red"
    found = parse_diagnostics(out.output, tmp_path)
    _check_shape(found)
    assert len(found) == 1
    d = found[0]
    assert (d["file"], d["line"], d["col"], d["severity"], d["code"]) == (
        "pkg/bad.py",
        2,
        None,
        "error",
        "SyntaxError",
    )
    assert d["message"]


def test_real_traceback_blames_innermost_frame(tmp_path: Path) -> None:
    (tmp_path / "helper.py").write_text("def check(n):\n    raise ValueError(f'bad value {n}')\n")
    (tmp_path / "main.py").write_text("import helper\n\nhelper.check(3)\n")
    out = run_build(f"'{sys.executable}' main.py", tmp_path, LIMITS)
    assert out.status == "red"
    found = parse_diagnostics(out.output, tmp_path)
    assert found == [
        {
            "file": "helper.py",
            "line": 2,
            "col": None,
            "severity": "error",
            "code": "ValueError",
            "message": "bad value 3",
        }
    ]


def test_traceback_skips_library_frames() -> None:
    output = """\
Traceback (most recent call last):
  File "/work/app/main.py", line 7, in <module>
    requests.get(url)
  File "/usr/lib/python3.11/site-packages/requests/api.py", line 73, in get
    return request("get", url, params=params, **kwargs)
  File "<frozen importlib._bootstrap>", line 1, in _find
requests.exceptions.MissingSchema: Invalid URL 'x'
"""
    found = parse_diagnostics(output, Path("/work/app"))
    assert [(d["file"], d["line"], d["code"], d["message"]) for d in found] == [
        ("main.py", 7, "requests.exceptions.MissingSchema", "Invalid URL 'x'")
    ]


def test_chained_tracebacks_give_one_diagnostic_each() -> None:
    output = """\
Traceback (most recent call last):
  File "a.py", line 2, in <module>
    {}["k"]
    ~~^^^^^
KeyError: 'k'

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "a.py", line 4, in <module>
    raise RuntimeError
RuntimeError
"""
    found = parse_diagnostics(output)
    assert [(d["file"], d["line"], d["code"], d["message"]) for d in found] == [
        ("a.py", 2, "KeyError", "'k'"),
        ("a.py", 4, "RuntimeError", ""),
    ]


def test_old_py_compile_sorry_line() -> None:
    output = "Sorry: IndentationError: unexpected indent (lib/mod.py, line 12)\n"
    assert parse_diagnostics(output) == [
        {
            "file": "lib/mod.py",
            "line": 12,
            "col": None,
            "severity": "error",
            "code": "IndentationError",
            "message": "unexpected indent",
        }
    ]


def test_clang_style_with_notes_and_colours() -> None:
    output = (
        "\x1b[1msrc/a.c:4:3: \x1b[0m\x1b[0;1;31merror: \x1b[0m\x1b[1muse of undeclared "
        "identifier 'y'\x1b[0m\n"
        "    y = 2;\n"
        "    ^\n"
        "src/a.c:1:5: note: 'x' declared here\n"
        "src/a.c:9:1: remark: something [-Rpass=inline]\n"
        "src/a.c:2:7: warning: unused variable 'z' [-Wunused-variable]\n"
        "2 warnings and 1 error generated.\n"
    )
    found = parse_diagnostics(output)
    _check_shape(found)
    # the message goes on with the excerpt clang prints under the headline
    assert [(d["line"], d["col"], d["severity"], d["code"], d["message"]) for d in found] == [
        (4, 3, "error", None, "use of undeclared identifier 'y'\n    y = 2;\n    ^"),
        (1, 5, "note", None, "'x' declared here"),
        (9, 1, "note", None, "something [-Rpass=inline]"),
        (2, 7, "warning", "-Wunused-variable", "unused variable 'z'"),
    ]


def test_generic_path_line_severity() -> None:
    output = (
        "src/app.py:3: error: Incompatible types in assignment [assignment]\n"
        "src/app.py:5: note: See https://mypy.rtfd.io/\n"
        "lib/x.txt:10: Error: upper-case severity\n"
        "Found 1 error in 1 file (checked 2 source files)\n"
    )
    found = parse_diagnostics(output)
    _check_shape(found)
    assert found == [
        {
            "file": "src/app.py",
            "line": 3,
            "col": None,
            "severity": "error",
            "code": "assignment",
            "message": "Incompatible types in assignment",
        },
        {
            "file": "src/app.py",
            "line": 5,
            "col": None,
            "severity": "note",
            "code": None,
            "message": "See https://mypy.rtfd.io/",
        },
        {
            "file": "lib/x.txt",
            "line": 10,
            "col": None,
            "severity": "error",
            "code": None,
            "message": "upper-case severity",
        },
    ]


def test_generic_with_column_and_bracketed_code() -> None:
    # Not gcc's shape (upper case, code after the severity): the generic parser takes it.
    output = "pkg/m.ts:8:5: ERROR[TS2322]: Type 'string' is not assignable\n"
    assert parse_diagnostics(output) == [
        {
            "file": "pkg/m.ts",
            "line": 8,
            "col": 5,
            "severity": "error",
            "code": "TS2322",
            "message": "Type 'string' is not assignable",
        }
    ]


def test_paths_are_made_relative_only_under_the_workspace(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    output = (
        f"{ws}/a/b.c:1:1: error: inside\n"
        f"{tmp_path}/other/c.c:2:1: error: outside\n"
        f"{ws}x/d.c:3:1: error: sibling with a common prefix\n"
        "./e.c:4:1: error: relative\n"
    )
    found = parse_diagnostics(output, ws)
    assert [d["file"] for d in found] == [
        "a/b.c",
        f"{tmp_path}/other/c.c",
        f"{ws}x/d.c",
        "e.c",
    ]


def test_workspace_through_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    output = f"{real}/m.c:1:1: error: x\n{link}/n.c:1:1: error: y\n"
    assert [d["file"] for d in parse_diagnostics(output, link)] == ["m.c", "n.c"]


def test_diagnostics_of_several_dialects_merge_in_output_order() -> None:
    assert list(PARSERS)[-1] == "generic"
    output = (
        'Traceback (most recent call last):\n  File "b.py", line 1, in <module>\nNameError: x\n'
        "a.c:1:2: error: from gcc\n"
        'File "c.ml", line 3, characters 0-1:\nError: from ocaml\n'
    )
    assert [(d["file"], d["message"]) for d in parse_diagnostics(output)] == [
        ("b.py", "x"),
        ("a.c", "from gcc"),
        ("c.ml", "from ocaml"),
    ]


def test_a_failing_parser_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(output: str) -> list[dict[str, object]]:
        raise RuntimeError("bug")

    monkeypatch.setattr(
        "snapshotter.diagnostics.PARSERS", {"broken": broken, **PARSERS}, raising=True
    )
    assert [d["line"] for d in parse_diagnostics("a.c:1:2: error: x\n")] == [1]


@pytest.mark.parametrize(
    "output",
    [
        "",
        "\n\n",
        "make: *** [Makefile:3: all] Error 1\n",
        "all good: 3 tests passed\n",
        "a.c:99999999999:1: error: line too big for int32\n",
        '  File "x.py", line 3\n',
        "Sorry: nothing (here)\n",
        "\x1b[31m\x1b]8;;http://x\x07link\x1b]8;;\x07\n",
    ],
)
def test_unknown_output_gives_nothing(output: str) -> None:
    assert parse_diagnostics(output) == []


def test_strip_ansi() -> None:
    assert strip_ansi("\x1b[01;31m\x1b[Kerror:\x1b[m\x1b[K x \x1b]8;;u\x1b\\w\x1b]8;;\x1b\\") == (
        "error: x w"
    )


@pytest.mark.parametrize(
    "line",
    [
        "a" * 200_000,
        "a:" * 100_000,
        "a:1:" * 50_000,
        "x.c:1:1: error: " + " [" * 100_000 + "]",
        "Sorry: E: " + " (" * 100_000 + ")",
        '  File "' + '"' * 100_000,
        "\x1b[" + "1;" * 100_000,
        "\x1b]" * 100_000,
    ],
)
def test_pathological_lines_are_fast(line: str) -> None:
    output = "\n".join([line] * 10)
    start = time.monotonic()
    found = parse_diagnostics(output, Path("/ws"))
    assert time.monotonic() - start < 1.0
    _check_shape(found)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list('ab:1 \n\x1b[]()"./,Ferorwning'))))
def test_never_raises(output: str) -> None:
    _check_shape(parse_diagnostics(output, Path("/ws")))
