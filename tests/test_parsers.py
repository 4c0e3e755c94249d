"""The diagnostics parsers: real output of OCaml, gcc and Python tools made in the run,
committed samples for the rest (see tests/samples/README.md), noise, merging, speed."""

from __future__ import annotations

import random
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.v1 import DIAGNOSTIC
from snapshotter.build import BuildLimits, run_build
from snapshotter.diagnostics import MAX_DIAGNOSTICS, PARSERS, parse_diagnostics
from snapshotter.diagnostics.found import MAX_MESSAGE
from snapshotter.diagnostics.output import clean

SAMPLES = Path(__file__).with_name("samples")
LIMITS = BuildLimits(timeout_s=120.0)
PY = shlex.quote(sys.executable)
BIN = Path(sys.executable).parent
needs_dune = pytest.mark.skipif(
    shutil.which("dune") is None or shutil.which("ocamlc") is None, reason="needs dune and ocamlc"
)
needs_ocamlc = pytest.mark.skipif(shutil.which("ocamlc") is None, reason="needs ocamlc")
needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")

Row = tuple[str | None, int | None, int | None, str, str | None, str]


def rows(found: list[dict[str, Any]]) -> list[Row]:
    """Each diagnostic as (file, line, col, severity, code, first line of the message)."""
    pa.array(found, type=DIAGNOSTIC)  # fits the schema
    return [
        (
            d["file"],
            d["line"],
            d["col"],
            d["severity"],
            d["code"],
            d["message"].splitlines()[0] if d["message"] else "",
        )
        for d in found
    ]


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


# --- OCaml and dune, built for real ------------------------------------------------

GEOMETRY = "let square x = x *. x\n\nlet pi = 3.14159\n"
SHAPE = """\
type t =
  | Circle of float
  | Rect of float * float

let area = function
  | Circle r -> Geometry.pi *. Geometry.square r
  | Rect (w, h) -> w *. h

let name = function
  | Circle _ -> "circle"
  | Rect _ -> "rect"
"""
MAIN = """\
let () =
  let shapes = [ Shapes.Shape.Circle 1.0; Shapes.Shape.Rect (2.0, 3.0) ] in
  List.iter
    (fun s -> Printf.printf "%s %.2f\\n" (Shapes.Shape.name s) (Shapes.Shape.area s))
    shapes
"""
DUNE_PROJECT = {
    "dune-project": "(lang dune 2.9)\n",
    "bin/dune": "(executable\n (name main)\n (libraries shapes))\n",
    "bin/main.ml": MAIN,
    "lib/dune": "(library\n (name shapes))\n",
    "lib/geometry.ml": GEOMETRY,
    "lib/shape.ml": SHAPE,
}

# name -> (file, its broken text, expected diagnostics, a line every message has)
DUNE_BREAKS: dict[str, tuple[str, str, list[Row], str]] = {
    "type error": (
        "lib/shape.ml",
        SHAPE.replace("w *. h", "w * h"),
        [
            (
                "lib/shape.ml",
                7,
                20,
                "error",
                None,
                "This expression has type float but an expression was expected of type",
            )
        ],
        "int",
    ),
    "unbound value": (
        "lib/shape.ml",
        SHAPE.replace("Geometry.square r", "Geometry.sqare r"),
        [("lib/shape.ml", 6, 32, "error", None, "Unbound value Geometry.sqare")],
        "Hint: Did you mean square?",
    ),
    "missing match case": (
        "lib/shape.ml",
        SHAPE.replace('  | Rect _ -> "rect"\n', ""),
        [
            (
                "lib/shape.ml",
                9,
                12,
                "error",
                "warning 8 [partial-match]",
                "this pattern-matching is not exhaustive.",
            )
        ],
        "Rect (_, _)",
    ),
    "too many arguments": (
        "lib/shape.ml",
        SHAPE.replace("Geometry.square r", "Geometry.square r r"),
        [("lib/shape.ml", 6, 32, "error", None, "This function has type float -> float")],
        "It is applied to too many arguments; maybe you forgot a `;'.",
    ),
    "arity changed in the other file": (
        "lib/geometry.ml",
        GEOMETRY.replace("let square x = x *. x", "let square x y = x *. y"),
        [
            (
                "lib/shape.ml",
                6,
                32,
                "error",
                "warning 5 [ignored-partial-application]",
                "this function application is partial,",
            ),
            ("lib/shape.ml", 6, 32, "error", None, "This expression has type float -> float"),
        ],
        "",
    ),
    "syntax error": (
        "lib/geometry.ml",
        GEOMETRY + "let x = (1\n",
        [
            ("lib/geometry.ml", 5, 1, "error", None, "Syntax error: ')' expected"),
            ("lib/geometry.ml", 4, 9, "note", None, "This '(' might be unmatched"),
        ],
        "",
    ),
    "dune file": (
        "bin/dune",
        "(executable\n (name main)\n (libraries shapes2))\n",
        [("bin/dune", 3, 13, "error", None, 'Library "shapes2" not found.')],
        "",
    ),
}


@pytest.fixture(scope="module")
def dune_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = write_tree(tmp_path_factory.mktemp("dune") / "proj", DUNE_PROJECT)
    assert run_build("dune build 2>&1", root, LIMITS).status == "green"
    return root


@needs_dune
@pytest.mark.parametrize("kind", list(DUNE_BREAKS))
def test_real_dune_errors(dune_project: Path, kind: str) -> None:
    name, broken, expected, every = DUNE_BREAKS[kind]
    target = dune_project / name
    original = target.read_text()
    target.write_text(broken)
    try:
        out = run_build("dune build 2>&1", dune_project, LIMITS)
    finally:
        target.write_text(original)
    assert out.status == "red"
    found = parse_diagnostics(out.output, dune_project, failed=True)
    assert rows(found) == expected, out.output
    assert every in found[0]["message"]
    # dune's (cd _build/default && ...) line never reaches a message
    assert all("_build" not in d["message"] for d in found)


@needs_dune
def test_real_dune_from_a_parent_directory(dune_project: Path) -> None:
    # `dune build --root sub` prints "Entering directory": paths follow it
    target = dune_project / "lib/shape.ml"
    target.write_text(SHAPE.replace("w *. h", "w * h"))
    try:
        out = run_build(
            f"dune build --root {dune_project.name} --always-show-command-line 2>&1",
            dune_project.parent,
            LIMITS,
        )
    finally:
        target.write_text(SHAPE)
    assert out.status == "red" and "(cd _build/default" in out.output
    found = parse_diagnostics(out.output, dune_project.parent, failed=True)
    assert [(d["file"], d["line"]) for d in found] == [(f"{dune_project.name}/lib/shape.ml", 7)]


@needs_ocamlc
def test_real_ocamlc_warning_and_error(tmp_path: Path) -> None:
    (tmp_path / "warn.ml").write_text("let f x = let y = 1 in x\n")
    out = run_build("ocamlc -w +26 -c warn.ml", tmp_path, LIMITS)
    assert out.status == "green"
    assert rows(parse_diagnostics(out.output, tmp_path)) == [
        ("warn.ml", 1, 15, "warning", "warning 26 [unused-var]", "unused variable y.")
    ]
    (tmp_path / "bad.ml").write_text("let f x = x + 1\nlet g = f 1 +. 2.0\n")
    out = run_build(f"ocamlc -c {tmp_path}/bad.ml", tmp_path, LIMITS)
    assert out.status == "red"
    assert rows(parse_diagnostics(out.output, tmp_path, failed=True)) == [
        (
            "bad.ml",
            2,
            9,
            "error",
            None,
            "This expression has type int but an expression was expected of type",
        )
    ]


def test_ocaml_forms_without_characters_and_with_alerts() -> None:
    output = (
        'File "a.ml", line 1:\n'
        "Error: The implementation a.ml does not match the interface a.cmi:\n"
        "       Values do not match: val x : int is not included in val x : string\n"
        "\n"
        'File "b.ml", line 3, characters 2-9:\n'
        "Alert deprecated: Stdlib.String.lowercase\n"
        'File "c.ml", line 2, characters 0-5:\n'
        "Error (warning 32 [unused-value-declaration]): unused value helper.\n"
        'File "_none_", line 1:\n'
        "Error: I/O error: missing.ml: No such file or directory\n"
    )
    assert rows(parse_diagnostics(output)) == [
        (
            "a.ml",
            1,
            None,
            "error",
            None,
            "The implementation a.ml does not match the interface a.cmi:",
        ),
        ("b.ml", 3, 3, "warning", "alert deprecated", "Stdlib.String.lowercase"),
        ("c.ml", 2, 1, "error", "warning 32 [unused-value-declaration]", "unused value helper."),
        (None, 1, None, "error", None, "I/O error: missing.ml: No such file or directory"),
    ]
    assert parse_diagnostics(output)[0]["message"].count("\n") == 1


def test_dune_build_dir_prefix_is_stripped() -> None:
    output = 'File "_build/default/lib/x.ml", line 2, characters 4-5:\nError: Unbound value z\n'
    assert [d["file"] for d in parse_diagnostics(output, Path("/ws"))] == ["lib/x.ml"]


# --- several dialects in one build, for real ----------------------------------------


@needs_gcc
def test_real_gcc_then_python_merge_in_output_order(tmp_path: Path) -> None:
    (tmp_path / "bad.c").write_text("int main(void) { return x; }\n")
    (tmp_path / "bad.py").write_text("def f(:\n    pass\n")
    cmd = f"gcc -fsyntax-only bad.c; {PY} -m py_compile bad.py"
    out = run_build(cmd, tmp_path, LIMITS)
    assert out.status == "red"
    found = parse_diagnostics(out.output, tmp_path, failed=True)
    errors = [d for d in found if d["severity"] == "error"]
    assert [(d["file"], d["line"]) for d in errors] == [("bad.c", 1), ("bad.py", 1)]
    assert "undeclared" in errors[0]["message"] and errors[1]["code"] == "SyntaxError"
    # gcc's excerpt stops where Python's traceback starts
    assert all('File "bad.py"' not in d["message"] for d in found)


# --- Python tools, for real -----------------------------------------------------------

CALC = """\
def add(a: int, b: int) -> int:
    return a - b


def label(n: int) -> str:
    return n
"""
TEST_CALC = """\
from calc import add


def test_add():
    assert add(1, 2) == 3


def test_ok():
    assert add(2, 0) == 2
"""


def test_real_mypy(tmp_path: Path) -> None:
    (tmp_path / "calc.py").write_text(CALC)
    out = run_build(
        f"{PY} -m mypy --no-incremental --cache-dir=/dev/null calc.py", tmp_path, LIMITS
    )
    assert out.status == "red"
    assert rows(parse_diagnostics(out.output, tmp_path, failed=True)) == [
        (
            "calc.py",
            6,
            None,
            "error",
            "return-value",
            'Incompatible return value type (got "int", expected "str")',
        )
    ]


def test_real_ruff(tmp_path: Path) -> None:
    (tmp_path / "calc.py").write_text("import os\n" + CALC)
    ruff = shlex.quote(str(BIN / "ruff"))
    for fmt in ("full", "concise"):
        cmd = f"{ruff} check --no-cache --isolated --select F --output-format {fmt} calc.py"
        out = run_build(cmd, tmp_path, LIMITS)
        assert out.status == "red"
        assert rows(parse_diagnostics(out.output, tmp_path, failed=True)) == [
            ("calc.py", 1, 8, "error", "F401", "`os` imported but unused")
        ], out.output


def test_real_pytest(tmp_path: Path) -> None:
    (tmp_path / "calc.py").write_text(CALC)
    (tmp_path / "test_calc.py").write_text(TEST_CALC)
    for tb in ("long", "short", "line", "no"):
        cmd = f"{PY} -m pytest -p no:cacheprovider -q --tb={tb} test_calc.py"
        out = run_build(cmd, tmp_path, LIMITS)
        assert out.status == "red"
        found = parse_diagnostics(out.output, tmp_path, failed=True)
        assert [(d["file"], d["severity"]) for d in found] == [("test_calc.py", "error")], tb
        if tb in ("long", "short"):
            assert rows(found) == [
                ("test_calc.py", 5, None, "error", "AssertionError", "assert -1 == 3")
            ]
            assert "where -1 = add(1, 2)" in found[0]["message"]


# --- committed samples ------------------------------------------------------------------

SAMPLE_WORKSPACE = {
    "cargo": Path("/tmp/samples/rs"),
    "pytest": Path("/tmp/samples/py"),
    "dune": Path("/tmp/ocp"),
}
TSC_ROWS: list[Row] = [
    (
        "src/main.ts",
        3,
        56,
        "error",
        "TS2353",
        "Object literal may only specify known properties, and 'sides' does not exist in type"
        " 'Shape'.",
    ),
    ("src/main.ts", 4, 5, "error", "TS2322", "Type 'string' is not assignable to type 'number'."),
    ("src/main.ts", 5, 30, "error", "TS2554", "Expected 1 arguments, but got 2."),
    ("src/main.ts", 5, 34, "error", "TS2552", "Cannot find name 'totl'. Did you mean 'total'?"),
    (
        "src/main.ts",
        6,
        7,
        "error",
        "TS2322",
        "Type '(x: string) => string' is not assignable to type '(x: number) => string'.",
    ),
]
RUFF_ROWS: list[Row] = [
    ("app/calc.py", 1, 8, "error", "F401", "`os` imported but unused"),
    ("app/calc.py", 2, 1, "error", "UP035", "`typing.List` is deprecated, use `list` instead"),
    ("app/calc.py", 9, 18, "error", "UP006", "Use `list` instead of `List` for type annotation"),
    ("app/calc.py", 17, 5, "error", "F841", "Local variable `x` is assigned to but never used"),
    ("app/calc.py", 18, 12, "error", "F821", "Undefined name `undefined_name`"),
]
PYTEST_ROWS: list[Row] = [
    ("tests/test_calc.py", 5, None, "error", "AssertionError", "assert -1 == 3"),
    ("tests/test_calc.py", 15, None, "error", "AssertionError", "negative numbers"),
    ("tests/test_calc.py", 18, None, "error", "ValueError", "boom"),
    ("app/calc.py", 13, None, "error", "ZeroDivisionError", "division by zero"),
]
SAMPLE_ROWS: dict[str, list[Row]] = {
    "cargo-errors.txt": [
        ("src/main.rs", 7, 26, "error", "E0425", "cannot find value `totl` in this scope"),
        ("src/main.rs", 5, 18, "error", "E0308", "mismatched types"),
        (
            "src/main.rs",
            6,
            17,
            "error",
            "E0061",
            "this function takes 2 arguments but 3 arguments were supplied",
        ),
    ],
    "cargo-tty.txt": [
        (
            "src/main.rs",
            6,
            5,
            "error",
            "E0596",
            "cannot borrow `v` as mutable, as it is not declared as mutable",
        ),
        ("src/main.rs", 4, 9, "warning", "unused_variables", "unused variable: `unused`"),
    ],
    "rustc-borrow.txt": [
        (
            "borrow.rs",
            3,
            5,
            "error",
            "E0596",
            "cannot borrow `v` as mutable, as it is not declared as mutable",
        )
    ],
    "tsc-plain.txt": TSC_ROWS,
    "tsc-pretty.txt": TSC_ROWS,
    "go-build.txt": [
        ("main.go", 5, 2, "error", None, 'imported and not used: "os"'),
        (
            "main.go",
            11,
            18,
            "error",
            None,
            'cannot use "three" (untyped string constant) as int value in variable declaration',
        ),
        ("main.go", 12, 2, "error", None, "total declared but not used"),
        ("main.go", 12, 23, "error", None, "not enough arguments in call to shapes.Area"),
        ("main.go", 13, 21, "error", None, "undefined: totl"),
    ],
    "go-vet.txt": [
        ("main.go", 8, 2, "error", None, 'fmt.Printf format %d has arg "x" of wrong type string')
    ],
    "go-test.txt": [("main_test.go", 7, None, "error", None, "add(1, 2) = -1, want 3")],
    "mypy.txt": [
        (
            "app/calc.py",
            10,
            None,
            "error",
            "assignment",
            'Incompatible types in assignment (expression has type "str", variable has type "int")',
        ),
        (
            "app/calc.py",
            16,
            None,
            "error",
            "no-untyped-def",
            "Function is missing a return type annotation",
        ),
        ("app/calc.py", 18, None, "error", "name-defined", 'Name "undefined_name" is not defined'),
    ],
    "mypy-pretty.txt": [
        (
            "app/calc.py",
            10,
            18,
            "error",
            "assignment",
            'Incompatible types in assignment (expression has type "str", variable has type "int")',
        )
    ],
    "ruff-full.txt": RUFF_ROWS,
    "ruff-concise.txt": RUFF_ROWS,
    "pytest-long.txt": PYTEST_ROWS,
    "pytest-short.txt": PYTEST_ROWS,
    "pytest-collect.txt": [
        (
            "tests/test_broken.py",
            1,
            None,
            "error",
            "ModuleNotFoundError",
            "No module named 'app.nothere'",
        )
    ],
    "dune-tty.txt": [
        (
            "lib/shape.ml",
            7,
            20,
            "error",
            None,
            "This expression has type float but an expression was expected of type",
        )
    ],
}


def parse_sample(name: str) -> list[dict[str, Any]]:
    text = (SAMPLES / name).read_text()
    workspace = SAMPLE_WORKSPACE.get(name.split("-")[0], Path("/ws"))
    return parse_diagnostics(text, workspace, failed=True)


def test_every_sample_is_checked() -> None:
    assert sorted(p.name for p in SAMPLES.glob("*.txt")) == sorted(SAMPLE_ROWS)


@pytest.mark.parametrize("name", sorted(SAMPLE_ROWS))
def test_sample(name: str) -> None:
    found = parse_sample(name)
    assert rows(found) == SAMPLE_ROWS[name]
    for d in found:
        assert "\x1b" not in d["message"] and "\r" not in d["message"]


def test_sample_messages_hold_the_whole_diagnostic() -> None:
    rust = parse_sample("cargo-errors.txt")
    assert "expected `i32`, found `&str`" in rust[1]["message"]
    assert rust[1]["message"].splitlines()[1] == " --> src/main.rs:5:18"
    assert "note: function defined here" in rust[2]["message"]
    assert not any("could not compile" in d["message"] for d in rust)
    chained = parse_sample("tsc-plain.txt")[-1]["message"].splitlines()
    assert chained[1:] == [
        "  Types of parameters 'x' and 'x' are incompatible.",
        "    Type 'number' is not assignable to type 'string'.",
    ]
    related = parse_sample("tsc-pretty.txt")[3]["message"]
    assert "'total' is declared here." in related and "Found 5 errors" not in related
    go = parse_sample("go-build.txt")[3]["message"]
    assert go.splitlines()[1:] == ["\thave (number)", "\twant (float64, float64)"]
    pretty = parse_sample("mypy-pretty.txt")[0]["message"]
    assert pretty.splitlines()[1].strip() == 'total: int = "0"'
    assert parse_sample("pytest-long.txt")[1]["message"] == "negative numbers\nassert 0 == -2"


# --- noise, order, fallback ---------------------------------------------------------------


def test_build_tool_noise_is_stripped() -> None:
    output = (
        "   Compiling rs v0.1.0 (/ws)\n"
        "    Building [=======>     ] 3/10: rs\n"
        "make[1]: Entering directory '/ws/sub'\n"
        "(cd _build/default && /usr/bin/ocamlc.opt -c lib/x.ml)\n"
        "      ocamlc lib/.x.objs/byte/x.cmo (exit 2)\n"
        "make: *** [Makefile:3: all] Error 1\n"
        'error: could not compile `rs` (bin "rs") due to 1 previous error\n'
        "Found 2 errors in 1 file (checked 3 source files)\n"
        "[3/10] Building C object x.o\n"
        "ninja: build stopped: subcommand failed.\n"
        "make: *** No rule to make target 'x'.  Stop.\n"
    )
    assert clean(output).text.splitlines() == [
        "make[1]: Entering directory '/ws/sub'",
        "make: *** No rule to make target 'x'.  Stop.",
    ]
    (only,) = parse_diagnostics(output, Path("/ws"), failed=True)
    assert only["message"] == "make: *** No rule to make target 'x'.  Stop."


def test_progress_rewritten_with_carriage_returns() -> None:
    output = "Done: 3/9 (jobs: 1)\r          \rsrc/a.c:1:2: error: boom\r\nok\r\n50%\r100%\r"
    assert clean(output).text == "src/a.c:1:2: error: boom\nok\n"
    assert rows(parse_diagnostics(output)) == [("src/a.c", 1, 2, "error", None, "boom")]


def test_make_directories_make_paths_relative_to_the_workspace() -> None:
    output = (
        "make[1]: Entering directory '/ws/lib'\n"
        "util.c:3:1: error: one\n"
        "make[2]: Entering directory '/ws/lib/deep'\n"
        "x.c:1:1: error: two\n"
        "make[2]: Leaving directory '/ws/lib/deep'\n"
        "util.c:4:1: error: three\n"
        "make[1]: Leaving directory '/ws/lib'\n"
        "main.c:5:1: error: four\n"
        "make[1]: Entering directory '/elsewhere'\n"
        "y.c:6:1: error: five\n"
    )
    found = parse_diagnostics(output, Path("/ws"))
    assert [d["file"] for d in found] == [
        "lib/util.c",
        "lib/deep/x.c",
        "lib/util.c",
        "main.c",
        "/elsewhere/y.c",
    ]


def test_unknown_output_of_a_failed_build_is_one_raw_diagnostic() -> None:
    output = "\x1b[31mSegmentation fault\x1b[0m (core dumped)\nmake: *** [all] Error 139\n\n"
    assert parse_diagnostics(output) == []
    assert parse_diagnostics(output, failed=True) == [
        {
            "file": None,
            "line": None,
            "col": None,
            "severity": "error",
            "code": None,
            "message": "Segmentation fault (core dumped)",
        }
    ]
    assert parse_diagnostics("", failed=True) == []
    # only noise: the raw text stands
    (noise,) = parse_diagnostics("make: *** [all] Error 2\n", failed=True)
    assert noise["message"] == "make: *** [all] Error 2"


def test_failed_build_with_only_warnings_gets_the_unexplained_text() -> None:
    output = (
        "main.c:2:7: warning: unused variable 'z' [-Wunused-variable]\n"
        "    2 |   int z;\n"
        "      |       ^\n"
        "/usr/bin/ld: main.o: in function `main':\n"
        "collect2: error: ld returned 1 exit status\n"
    )
    found = parse_diagnostics(output, failed=True)
    assert [(d["severity"], d["file"]) for d in found] == [("warning", "main.c"), ("error", None)]
    assert found[1]["message"] == (
        "/usr/bin/ld: main.o: in function `main':\ncollect2: error: ld returned 1 exit status"
    )


def test_linker_undefined_reference() -> None:
    output = "main.c:(.text+0x1a): undefined reference to `helper'\n"
    assert rows(parse_diagnostics(output)) == [
        ("main.c", None, None, "error", None, "undefined reference to `helper'")
    ]


def test_the_earlier_parser_keeps_a_line_both_claim() -> None:
    line = 'app.py:3:5: error: Name "x" is not defined  [name-defined]\n'
    # mypy, gcc and generic all read this line; mypy comes first and takes it whole
    assert list(PARSERS).index("mypy") < list(PARSERS).index("gcc")
    assert rows(parse_diagnostics(line)) == [
        ("app.py", 3, 5, "error", "name-defined", 'Name "x" is not defined')
    ]


def test_messages_and_counts_are_bounded() -> None:
    huge = "a.c:1:1: error: " + "x" * (3 * MAX_MESSAGE) + "\n"
    (one,) = parse_diagnostics(huge)
    assert len(one["message"]) <= MAX_MESSAGE
    warnings = "".join(f"a.c:{i}:1: warning: w{i}\n" for i in range(1, MAX_DIAGNOSTICS + 50))
    found = parse_diagnostics(warnings + "a.c:9999:1: error: the one that matters\n")
    assert len(found) == MAX_DIAGNOSTICS
    assert found[-1]["message"] == "the one that matters"
    assert [d["line"] for d in found[:3]] == [1, 2, 3]
    unknown = parse_diagnostics("z" * 100 + "\n" + "y" * (2 * MAX_MESSAGE), failed=True)
    assert len(unknown[0]["message"]) <= MAX_MESSAGE


# --- never raises, never hangs -------------------------------------------------------------

ALPHABET = [
    *"abFEeFrLwTS01239 :.,()[]{}<>\"'`|^~-_=/\\\n\r\t\x1b",
    *('File "', "error", "warning", "Error", ".ml", ".py", ".go", " --> ", "TS"),
    *("FAILED ", "___ "),
]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(ALPHABET), max_size=200).map("".join), st.booleans())
def test_no_text_makes_a_parser_raise(text: str, failed: bool) -> None:
    out = clean(text)
    for parser in PARSERS.values():
        for found in parser(out):
            assert 0 <= found.start < found.end <= len(out.lines)
    pa.array(parse_diagnostics(text, Path("/ws"), failed=failed), type=DIAGNOSTIC)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_no_unicode_text_makes_a_parser_raise(text: str) -> None:
    pa.array(parse_diagnostics(text, Path("/ws"), failed=True), type=DIAGNOSTIC)


MB = 1 << 20


def _repeat(unit: str) -> str:
    return (unit * (MB // len(unit) + 1))[:MB]


# For each parser, a megabyte of lines that almost match it (and some that do).
NEAR_MATCHES = {
    "ocaml": 'File "a.ml", line 1, characters 1-\nFile "a.ml", line 1:\n',
    "ocaml-blocks": 'File "a.ml", line 1, characters 1-2:\n1 | x\n    ^\nError: y\n',
    "rustc": "error: x\n --> a.rs:1\nerror[E1: y\n",
    "ruff": "F401 x\n -> a.py:1:1\n",
    "tsc": "a.ts(1,1): error T1: x\na.ts:1:1 - error TS: x\n",
    "go": "a.go:1:x\n\ta.go:1: y\n",
    "pytest": "___ t __\nE   x\na.py:1: \nFAILED a.py::t\n",
    "mypy": "a.py:1: error: x\ny\n",
    "python": '  File "a.py", line 1, in x\n    y\nz z\n',
    "gcc": "a.c:1:1: errr: x\n a\n",
    "generic": "a:1:1: Errorr: x\n",
    "spaces": " " * 1000 + "\n",
    "one line": "a:1:" * 100,
    "newlines": "\n",
    "carriage returns": "x\r",
    "escapes": "\x1b[31m\x1b]8;;",
}


@pytest.mark.parametrize("name", ["garbage", *NEAR_MATCHES])
def test_a_megabyte_parses_in_under_a_second(name: str) -> None:
    if name == "garbage":
        pick = random.Random(name).choice
        text = "".join(pick(ALPHABET) for _ in range(MB // 4))
    else:
        text = _repeat(NEAR_MATCHES[name])
    start = time.monotonic()
    found = parse_diagnostics(text, Path("/ws"), failed=True)
    assert time.monotonic() - start < 1.0
    assert len(found) <= MAX_DIAGNOSTICS + 1
