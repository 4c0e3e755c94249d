"""Errors as data in the miner: fingerprints, error counts, error-related filters and
the error's files in the context, on hand-made datasets run through the pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest

from miner import pipeline
from miner.fingerprint import (
    diagnostic_fingerprint,
    error_fingerprint,
    normal_form,
    reported,
    summary,
)
from miner.related import any_related, related, workspace_file
from miner.settings import MinerSettings
from miner.synthetic import SyntheticDataset, Workspace


def mine_all(
    tmp_path: Path, ds: SyntheticDataset, settings: MinerSettings | None = None
) -> list[dict[str, Any]]:
    ds.write(tmp_path / "data")
    pipeline.run(tmp_path / "data", tmp_path / "out", settings=settings)
    cursor = duckdb.connect().execute(
        "SELECT * FROM read_parquet(?) ORDER BY red_ended_at",
        [str(tmp_path / "out" / "episodes.parquet")],
    )
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def diag(
    file: str | None,
    message: str,
    *,
    line: int | None = 1,
    severity: str = "error",
    code: str | None = None,
) -> dict[str, Any]:
    return {
        "file": file,
        "line": line,
        "col": None,
        "severity": severity,
        "code": code,
        "message": message,
    }


def red(w: Workspace, *diagnostics: dict[str, Any], output: str = "build failed\n") -> str:
    return w.snapshot("red", output, diagnostics=diagnostics)


# --- fingerprints ---------------------------------------------------------------------

SAME_KIND = [
    [
        diag("a.ml", "Unbound value Geometry.sqare\nHint: Did you mean square?"),
        diag("bin/main.ml", "Unbound value totl"),
        diag("x.ml", "Unbound value Shapes.Shape.perimetre\nHint: Did you mean perimeter?"),
    ],
    [
        diag(
            "a.ml",
            "This expression has type float but an expression was expected of type\n         int",
        ),
        diag(
            "b.ml",
            "This expression has type int list but an expression was expected of type\n"
            "         string\n  Hint: Did you mean `2.'?",
        ),
    ],
    [
        diag(
            "a.ml",
            "this pattern-matching is not exhaustive.\n"
            "Here is an example of a case that is not matched:\nRect (_, _)",
            code="warning 8 [partial-match]",
        ),
        diag(
            "b.ml",
            "this pattern-matching is not exhaustive.\n"
            "Here is an example of a case that is not matched:\n(Some _|None)",
            code="warning 8 [partial-match]",
            line=40,
        ),
    ],
    [
        diag(
            "src/main.rs",
            "mismatched types\n --> src/main.rs:5:18\n  |\n5 | let x: i32 = 1;",
            code="E0308",
        ),
        diag(
            "src/lib.rs", "mismatched types\n --> src/lib.rs:9:1\n  |\n9 | foo(bar)", code="E0308"
        ),
    ],
    [
        diag("a.c", "use of undeclared identifier 'y'\n    y = 2;\n    ^"),
        diag("b.c", "use of undeclared identifier 'count'\n  total += count;\n           ^~~~~"),
    ],
    [
        diag(
            "a.go",
            "not enough arguments in call to shapes.Area\n"
            "\thave (number)\n\twant (float64, float64)",
        ),
        diag("b.go", "not enough arguments in call to f\n\thave ()\n\twant (int)"),
    ],
    [
        diag("a.py", 'Name "totl" is not defined', code="name-defined"),
        diag("b/c.py", 'Name "count_all" is not defined', code="name-defined", line=99),
    ],
    [
        diag("a.go", "x declared but not used"),
        diag("b.go", "totalCount declared but not used"),
    ],
]


@pytest.mark.parametrize("group", range(len(SAME_KIND)))
def test_the_same_kind_of_error_has_one_fingerprint(group: int) -> None:
    prints = {diagnostic_fingerprint(d) for d in SAME_KIND[group]}
    assert len(prints) == 1, [normal_form(d) for d in SAME_KIND[group]]


def test_different_kinds_have_different_fingerprints() -> None:
    prints = [diagnostic_fingerprint(group[0]) for group in SAME_KIND]
    assert len(set(prints)) == len(prints)
    # the code is part of it
    assert diagnostic_fingerprint(diag("a.rs", "mismatched types", code="E0308")) != (
        diagnostic_fingerprint(diag("a.rs", "mismatched types", code="E0309"))
    )
    # keywords of the message are kept
    assert normal_form(SAME_KIND[0][0]) == "Unbound value <id>"
    assert normal_form(SAME_KIND[1][0]) == (
        "This expression has type <type> but an expression was expected of type <type>"
    )
    assert normal_form(SAME_KIND[2][0]) == (
        "warning 8 [partial-match]: this pattern-matching is not exhaustive."
    )


def test_summary_drops_excerpts_and_hints() -> None:
    assert summary("mismatched types\n --> a.rs:1:1\n  |\n1 | x") == "mismatched types"
    assert summary("use of undeclared identifier 'y'\n    y = 2;\n    ^") == (
        "use of undeclared identifier 'y'"
    )
    assert summary("This function has type int\n  It is applied to too many arguments") == (
        "This function has type int\nIt is applied to too many arguments"
    )
    assert summary("Unbound value x\nHint: Did you mean y?") == "Unbound value x"


def test_werror_is_the_warning_it_promotes() -> None:
    error = diag("a.c", "unused variable 'x'", code="-Werror=unused-variable")
    warning = diag("a.c", "unused variable 'y'", severity="warning", code="-Wunused-variable")
    assert diagnostic_fingerprint(error) == diagnostic_fingerprint(warning)
    fingerprint = error_fingerprint("", [error])
    assert fingerprint is not None
    assert reported(fingerprint, "a.c", [warning])
    assert not reported(fingerprint, "b.c", [warning])
    assert reported(fingerprint, None, [warning]) and not reported(fingerprint, "a.c", [])


def test_episode_fingerprint_is_the_first_errors() -> None:
    warning = diag("a.c", "unused variable 'z'", severity="warning")
    error = diag("a.c", "expected ';' before '}' token")
    assert error_fingerprint("anything", [warning, error]) == diagnostic_fingerprint(error)
    assert error_fingerprint("make: *** oops error\n", [warning]) is not None
    assert error_fingerprint(None, []) is None


# --- red -> red: the last error, and how many there were ---------------------------------


def test_red_to_red_keeps_the_last_error_and_counts_distinct_errors(tmp_path: Path) -> None:
    ds = SyntheticDataset()
    w = ds.workspace()
    w.start({"a.ml": b"let x = 1\n"})
    w.snapshot("green")
    w.write("a.ml", b"let x = 1 + 1.0\n")
    red(
        w,
        diag("a.ml", "This expression has type float but an expression was expected of type\n int"),
    )
    w.write("a.ml", b"let x = 1 + y\n")
    red(w, diag("a.ml", "Unbound value y"), output="Error: Unbound value y\n")
    w.write("a.ml", b"let x = 1 + z\n")
    red(w, diag("a.ml", "Unbound value z"), output="Error: Unbound value z\n")
    w.snapshot("unknown")  # not a usable build: not counted
    w.write("a.ml", b"let x = 1 + 2\n")
    w.snapshot("green")
    # a second episode: one red, one error
    w.write("a.ml", b"let x = (\n")
    red(w, diag("a.ml", "Syntax error"))
    w.write("a.ml", b"let x = 3\n")
    w.snapshot("green")

    first, second = mine_all(tmp_path, ds)
    assert first["red_snapshots"] == 3
    assert first["error"] == "Error: Unbound value z\n"
    assert first["diagnostics"][0]["message"] == "Unbound value z"
    assert first["error_count"] == 2
    assert first["error_fingerprint"] == diagnostic_fingerprint(diag("x", "Unbound value q"))
    assert second["error_count"] == 1


def test_error_count_from_output_alone(tmp_path: Path) -> None:
    # data recorded before diagnostics were parsed: the output's error line counts
    ds = SyntheticDataset()
    w = ds.workspace()
    w.start({"a.py": b"x = 1\n"})
    w.snapshot("green")
    for text in (b"x = (\n", b"x = [\n", b"x = {\n"):
        w.write("a.py", text)
        red(w, output=f"SyntaxError: '{text.decode().strip()[-1]}' was never closed\n")
    w.write("a.py", b"x = 2\n")
    w.snapshot("green")
    (episode,) = mine_all(tmp_path, ds)
    assert episode["error_count"] == 1 and episode["red_snapshots"] == 3


# --- fix_unrelated_to_error ----------------------------------------------------------------

GOOD = b"def add(a, b):\n    return a + b\n"
BROKEN = b"def add(a, b)\n    return a + b\n"


def _unrelated_episode(
    files: dict[str, bytes], broken: dict[str, bytes], fixed: dict[str, bytes], *diags: Any
) -> SyntheticDataset:
    ds = SyntheticDataset()
    w = ds.workspace()
    w.start(files)
    w.snapshot("green")
    for path, content in broken.items():
        w.write(path, content)
    red(w, *diags)
    for path, content in fixed.items():
        w.write(path, content)
    w.snapshot("green")
    return ds


def test_a_fix_far_from_the_error_is_flagged(tmp_path: Path) -> None:
    ds = _unrelated_episode(
        {"calc.py": GOOD, "notes.txt": b"a\n"},
        {"calc.py": BROKEN},
        {"notes.txt": b"b\n"},
        diag("calc.py", "expected ':'", line=1, code="SyntaxError"),
    )
    (episode,) = mine_all(tmp_path, ds)
    assert episode["filters"] == ["fix_unrelated_to_error"] and not episode["kept"]
    # the error's file is in the context, after the fix's
    assert [c["path"] for c in episode["context"]] == ["notes.txt", "calc.py"]
    assert episode["context"][1]["content"] == BROKEN.decode()


@pytest.mark.parametrize(
    ("error_file", "error_content", "fix_file"),
    [
        # same module
        ("src/util.c", b"int f(void) { return g(); }\n", "src/util.h"),
        # the error file includes the fixed file
        ("main.c", b'#include "lib/helpers.h"\nint main(void) { return h(); }\n', "lib/helpers.h"),
        # OCaml: the error file uses the fixed module
        ("lib/shape.ml", b"let a r = Geometry.square r\n", "lib/geometry.ml"),
        # Python: the error file imports the fixed one
        ("app/main.py", b"from app.calc import add\nprint(add(1))\n", "app/calc.py"),
        # Rust and TypeScript
        ("src/main.rs", b"mod util;\nfn main() { util::add(1); }\n", "src/util.rs"),
        ("src/main.ts", b'import { f } from "./shapes";\nf(1, 2);\n', "src/shapes.ts"),
        # a build file of the directory
        ("lib/dune", b"(library (name shapes))\n", "lib/shape.ml"),
    ],
)
def test_a_plausibly_related_fix_is_not_flagged(
    tmp_path: Path, error_file: str, error_content: bytes, fix_file: str
) -> None:
    ds = _unrelated_episode(
        {error_file: b"ok\n", fix_file: b"one\n"},
        {error_file: error_content},
        {fix_file: b"two\n"},
        diag(error_file, "something is wrong"),
    )
    (episode,) = mine_all(tmp_path, ds)
    assert "fix_unrelated_to_error" not in episode["filters"]


def test_the_fix_file_referring_to_the_error_file_counts(tmp_path: Path) -> None:
    # the error points at a definition, the fix is at its use site
    ds = _unrelated_episode(
        {"lib/geometry.ml": b"let sq x = x\n", "lib/shape.ml": b"let a = Geometry.sq 1\n"},
        {"lib/geometry.ml": b"let sq x = x +\n"},
        {"lib/shape.ml": b"let a = Geometry.sq 2\n"},
        diag("lib/geometry.ml", "Syntax error"),
    )
    (episode,) = mine_all(tmp_path, ds)
    assert "fix_unrelated_to_error" not in episode["filters"]


def test_errors_without_a_workspace_file_say_nothing(tmp_path: Path) -> None:
    for i, error in enumerate(
        [diag(None, "ld returned 1 exit status"), diag("/usr/include/stdio.h", "oops")]
    ):
        ds = _unrelated_episode(
            {"calc.py": GOOD, "notes.txt": b"a\n"},
            {"calc.py": BROKEN},
            {"notes.txt": b"b\n"},
            error,
        )
        (episode,) = mine_all(tmp_path / str(i), ds)
        assert "fix_unrelated_to_error" not in episode["filters"]


def test_an_error_file_whose_content_is_unknown_gets_the_benefit_of_the_doubt(
    tmp_path: Path,
) -> None:
    # caller.py is unchanged and recorded nowhere: it may well use lib.py
    ds = _unrelated_episode(
        {"lib.py": b"def f(a):\n    return a\n", "caller.py": b"x = 1\n"},
        {"lib.py": b"def f(a, b):\n    return a\n"},
        {"lib.py": b"def f(a, b=0):\n    return a\n"},
        diag("caller.py", "f() missing 1 required positional argument: 'b'", code="TypeError"),
    )
    (episode,) = mine_all(tmp_path, ds)
    assert episode["filters"] == [] and episode["kept"]
    assert [c["path"] for c in episode["context"]] == ["lib.py"]


def test_related_rules() -> None:
    contents = {"a/main.c": b'#include "util.h"\n', "x.py": b"import os\n"}
    assert related("src/a.py", "a.py", {})  # a path relative to a subdirectory
    assert related("Shape.mli", "shape.ml", {})
    assert related("main.c", "Makefile", {})
    assert related("a/main.c", "b/util.h", contents)
    assert related("pkg/a.go", "pkg/b.go", {})
    assert not related("x.py", "y.py", contents)
    assert not related("pkg/a.go", "other/b.go", {})
    assert not any_related(["x.py"], ["y.py"], contents)
    assert any_related(["unknown.py"], ["y.py"], contents)
    assert workspace_file("./lib/x.ml") == "lib/x.ml"
    for outside in (None, "", "/usr/include/x.h", "../x.c", "<stdin>", "C:\\x.c"):
        assert workspace_file(outside) is None


# --- error_silenced ----------------------------------------------------------------------


def test_a_green_build_still_reporting_the_error_is_flagged_silenced(tmp_path: Path) -> None:
    partial = diag(
        "lib/a.ml", "this pattern-matching is not exhaustive.", code="warning 8 [partial-match]"
    )
    ds = SyntheticDataset()
    w = ds.workspace()
    w.start({"lib/a.ml": b"let f = function Some x -> x | None -> 0\n", "lib/dune": b"(library)\n"})
    w.snapshot("green")
    w.write("lib/a.ml", b"let f = function Some x -> x\n")
    red(w, partial)
    w.write("lib/dune", b"(library (flags -w -8))\n")
    w.snapshot("green", diagnostics=[{**partial, "severity": "warning"}])
    # the real fix in a second episode: the green build is clean
    w.write("lib/dune", b"(library)\n")
    red(w, partial)
    w.write("lib/a.ml", b"let f = function Some x -> x | None -> 1\n")
    w.snapshot("green")
    silenced, fixed = mine_all(tmp_path, ds)
    assert silenced["filters"] == ["error_silenced"] and silenced["kept"]
    assert fixed["filters"] == []


# --- the context gets the error's files --------------------------------------------------


def test_context_takes_error_files_from_the_red_state_within_the_limit(tmp_path: Path) -> None:
    big = b"# big\n" + b"x = 1\n" * 2000
    ds = SyntheticDataset()
    w = ds.workspace()
    w.start(
        {
            "lib.py": b"def f(a):\n    return a\n",
            "main.py": b"import lib\n",
            "big.py": big,
            "other.py": b"import lib\nlib.f(1)\n",
        }
    )
    # big.py and other.py are changed and changed back under this base: their base
    # content is recorded, so their content at the red state can be rebuilt
    w.write("big.py", big + b"y = 2\n")
    w.write("other.py", b"import lib\nlib.f(2)\n")
    w.snapshot("green")
    w.write("big.py", big)
    w.write("other.py", b"import lib\nlib.f(1)\n")
    w.snapshot("green")
    w.write("lib.py", b"def f(a, b):\n    return a\n")
    w.write("main.py", b"import lib\nlib.f(1)\n")
    red(
        w,
        diag("main.py", "missing argument", line=2),
        diag("big.py", "missing argument", line=3),
        diag("other.py", "missing argument", line=2),
        diag("unseen.py", "missing argument", line=2),
        diag("main.py", "see here", severity="note"),
    )
    w.write("lib.py", b"def f(a, b=0):\n    return a\n")
    w.snapshot("green")

    (episode,) = mine_all(tmp_path, ds)
    assert episode["filters"] == []
    context = {c["path"]: c["content"] for c in episode["context"]}
    assert list(context) == ["lib.py", "main.py", "big.py", "other.py"]
    assert context["lib.py"] == "def f(a, b):\n    return a\n"
    assert context["main.py"] == "import lib\nlib.f(1)\n"  # changed in the red state
    assert context["big.py"] == big.decode()  # the base's, from another row
    assert context["other.py"] == "import lib\nlib.f(1)\n"

    # a smaller limit: the fix's file always, the error files that still fit, in order
    small = MinerSettings(max_context_bytes=100)
    (episode,) = mine_all(tmp_path / "small", ds, small)
    assert [c["path"] for c in episode["context"]] == ["lib.py", "main.py", "other.py"]
    none = MinerSettings(max_context_bytes=0)
    (episode,) = mine_all(tmp_path / "none", ds, none)
    assert [c["path"] for c in episode["context"]] == ["lib.py"]


def test_context_after_a_commit_reads_the_base_row(tmp_path: Path) -> None:
    ds = SyntheticDataset()
    w = ds.workspace()
    w.start({"geometry.ml": b"let sq x = x *. x\n", "shape.ml": b"let a r = r\n"})
    w.snapshot("green")
    w.write("shape.ml", b"let a r = Geometry.sq r\n")
    w.snapshot("green")
    w.commit("c" * 40)
    w.snapshot("green")
    w.write("geometry.ml", b"let sq x y = x *. y\n")
    red(w, diag("shape.ml", "This expression has type float -> float"))
    w.write("geometry.ml", b"let sq ?(by = 1.0) x = by *. x *. x\n")
    w.snapshot("green")
    (episode,) = mine_all(tmp_path, ds)
    assert episode["filters"] == []
    assert [(c["path"], c["content"]) for c in episode["context"]] == [
        ("geometry.ml", "let sq x y = x *. y\n"),
        ("shape.ml", "let a r = Geometry.sq r\n"),
    ]
