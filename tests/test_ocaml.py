"""A real OCaml workflow: a dune project in a real repository, broken and fixed the
ways OCaml developers do, a snapshot after each step with ``dune build``, then mined.

One stream per VCS with four episodes:

1. a type error, then (still red) an unbound value, then the fix: the episode keeps
   the last red's error and counts two distinct errors;
2. an unbound value in another directory (``bin/``);
3. a new constructor and a match that misses it (warning 8, an error in dune's
   default dev profile);
4. a function given a second parameter in ``lib/geometry.ml`` while its caller in
   ``lib/shape.ml`` passes one argument: the error names a file the fix never
   touches, whose content comes from the dataset, and that uses the fixed module.

The README's two example queries run on the mined dataset through ``miner sql``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from miner.fingerprint import diagnostic_fingerprint
from snapshotter.record import Identity
from snapshotter.snapshot import SnapshotOptions, take_snapshot
from tests.repos import Repo
from tests.test_pipeline import git_apply, mine, red_tree, snapshot_row

pytestmark = pytest.mark.skipif(
    shutil.which("dune") is None or shutil.which("ocamlc") is None, reason="needs dune and ocamlc"
)

ME = Identity(host="ocaml-host", user="camel")
MINER = str(Path(sys.executable).parent / "miner")

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
PROJECT = {
    "dune-project": "(lang dune 2.9)\n",
    "bin/dune": "(executable\n (name main)\n (libraries shapes))\n",
    "bin/main.ml": MAIN,
    "lib/dune": "(library\n (name shapes))\n",
    "lib/geometry.ml": GEOMETRY,
    "lib/shape.ml": SHAPE,
}

# Episode 1: perimeter, with a type error (2 is an int), then an unbound value
PERIMETER = (
    "\nlet perimeter = function\n  | Circle r -> {} *. r\n  | Rect (w, h) -> 2. *. (w +. h)\n"
)
SHAPE_1_TYPE = SHAPE + PERIMETER.format("2 * Geometry.pi")
SHAPE_1_UNBOUND = SHAPE + PERIMETER.format("2. *. Geometry.pie")
SHAPE_1 = SHAPE + PERIMETER.format("2. *. Geometry.pi")
# Episode 2: main prints the perimeter, misspelt
MAIN_2_UNBOUND = MAIN.replace("(Shapes.Shape.area s)", "(Shapes.Shape.perimetre s)")
MAIN_2 = MAIN.replace("(Shapes.Shape.area s)", "(Shapes.Shape.perimeter s)")
# Episode 3: a square, forgotten in `name`
SHAPE_3_PARTIAL = (
    SHAPE_1.replace(
        "  | Rect of float * float\n", "  | Rect of float * float\n  | Square of float\n"
    )
    .replace(
        "  | Rect (w, h) -> w *. h\n",
        "  | Rect (w, h) -> w *. h\n  | Square s -> Geometry.square s\n",
    )
    .replace(
        "  | Rect (w, h) -> 2. *. (w +. h)\n",
        "  | Rect (w, h) -> 2. *. (w +. h)\n  | Square s -> 4. *. s\n",
    )
)
SHAPE_3 = SHAPE_3_PARTIAL.replace(
    '  | Rect _ -> "rect"\n', '  | Rect _ -> "rect"\n  | Square _ -> "square"\n'
)
# Episode 4: square gets a second parameter; shape.ml still passes one argument
GEOMETRY_4_ARITY = GEOMETRY.replace("let square x = x *. x", "let square x y = x *. y")
GEOMETRY_4 = GEOMETRY.replace("let square x = x *. x", "let square ?(by = 1.0) x = by *. x *. x")

# The README's example queries (keep them in sync with README.md).
MOST_FREQUENT_ERRORS = """\
SELECT error_fingerprint,
       count(*) AS episodes,
       count(DISTINCT workspace) AS workspaces,
       min(split_part([d.message FOR d IN diagnostics IF d.severity = 'error'][1], chr(10), 1))
         AS example
FROM episodes
WHERE error_fingerprint IS NOT NULL
GROUP BY error_fingerprint
ORDER BY episodes DESC, error_fingerprint
LIMIT 20"""
MEDIAN_TIME_TO_REPAIR = """\
SELECT error_fingerprint,
       count(*) AS episodes,
       round(median(red_seconds), 1) AS median_seconds,
       min(split_part([d.message FOR d IN diagnostics IF d.severity = 'error'][1], chr(10), 1))
         AS example
FROM episodes
WHERE kept
GROUP BY error_fingerprint
ORDER BY median_seconds DESC, error_fingerprint"""


def snap(repo: Repo, data: Path) -> str | None:
    options = SnapshotOptions(build_command="dune build")
    return take_snapshot(repo.path, data, options, ME).build_status


def step(repo: Repo, data: Path, files: dict[str, str], status: str) -> None:
    for name, text in files.items():
        repo.write(name, text)
    assert snap(repo, data) == status, files


def first_error(episode: dict[str, Any]) -> dict[str, Any]:
    return next(d for d in episode["diagnostics"] if d["severity"] == "error")


def changed_lines(diff: str) -> list[str]:
    return [
        line
        for line in diff.splitlines()
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]


def check_fix(
    repo: Repo, data: Path, episode: dict[str, Any], tmp: Path, green: dict[str, str]
) -> None:
    """The fix diff applies to the rebuilt red state and yields the green files."""
    tree = red_tree(repo, data, episode["red_id"], tmp / episode["episode_id"][:12])
    git_apply(tree, episode["fix_diff"], check=True)
    git_apply(tree, episode["fix_diff"])
    for name, text in green.items():
        assert (tree / name).read_text() == text, name


def miner_sql(data: Path, out: Path, query: str) -> str:
    done = subprocess.run(
        [MINER, "sql", "--data-dir", str(data), "--out", str(out), "-c", query],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_ocaml_dune_workflow(repo: Repo, tmp_path: Path) -> None:
    data, out = tmp_path / "data", tmp_path / "out"
    repo.ignore("_build", "*.install", ".merlin")
    for name, text in PROJECT.items():
        repo.write(name, text)
    repo.commit("shapes")
    assert snap(repo, data) == "green"

    step(repo, data, {"lib/shape.ml": SHAPE_1_TYPE}, "red")
    step(repo, data, {"lib/shape.ml": SHAPE_1_UNBOUND}, "red")
    step(repo, data, {"lib/shape.ml": SHAPE_1}, "green")
    repo.commit("perimeter")
    step(repo, data, {"bin/main.ml": MAIN_2_UNBOUND}, "red")
    step(repo, data, {"bin/main.ml": MAIN_2}, "green")
    repo.commit("print the perimeter")
    step(repo, data, {"lib/shape.ml": SHAPE_3_PARTIAL}, "red")
    step(repo, data, {"lib/shape.ml": SHAPE_3}, "green")
    repo.commit("squares")
    step(repo, data, {"lib/geometry.ml": GEOMETRY_4_ARITY}, "red")
    step(repo, data, {"lib/geometry.ml": GEOMETRY_4}, "green")

    one, two, three, four = mine(data, out)
    for episode in (one, two, three, four):
        assert episode["kept"] and episode["filters"] == [], episode["filters"]
        assert episode["vcs"] == repo.kind

    # 1: type error, then unbound value: the last red's error, two distinct errors
    assert one["red_snapshots"] == 2 and one["error_count"] == 2
    first_red = snapshot_row(data, one["first_red_id"])["build"]
    type_error = "This expression has type float but an expression was expected of type"
    assert type_error in first_red["output"]
    assert first_red["diagnostics"][0]["file"] == "lib/shape.ml"
    assert first_red["diagnostics"][0]["line"] == 14
    assert "Unbound value Geometry.pie" in one["error"]
    error = first_error(one)
    assert (error["file"], error["line"], error["col"]) == ("lib/shape.ml", 14, 23)
    assert error["message"] == "Unbound value Geometry.pie\nHint: Did you mean pi?"
    assert changed_lines(one["fix_diff"]) == [
        "-  | Circle r -> 2. *. Geometry.pie *. r",
        "+  | Circle r -> 2. *. Geometry.pi *. r",
    ]
    assert one["fix_files"] == 1 and one["fix_lines"] == 2
    assert [c["path"] for c in one["context"]] == ["lib/shape.ml"]
    check_fix(repo, data, one, tmp_path, {"lib/shape.ml": SHAPE_1})

    # 2: an unbound value in bin/
    error = first_error(two)
    assert (error["file"], error["line"]) == ("bin/main.ml", 4)
    assert error["message"].startswith("Unbound value Shapes.Shape.perimetre")
    printf = '    (fun s -> Printf.printf "%s %.2f\\n" (Shapes.Shape.name s) '
    assert changed_lines(two["fix_diff"]) == [
        f"-{printf}(Shapes.Shape.perimetre s))",
        f"+{printf}(Shapes.Shape.perimeter s))",
    ]
    assert two["error_count"] == 1
    check_fix(repo, data, two, tmp_path, {"bin/main.ml": MAIN_2})

    # 3: the missing match case, a warning made an error
    error = first_error(three)
    assert (error["file"], error["line"], error["code"]) == (
        "lib/shape.ml",
        11,
        "warning 8 [partial-match]",
    )
    assert error["message"].splitlines() == [
        "this pattern-matching is not exhaustive.",
        "Here is an example of a case that is not matched:",
        "Square _",
    ]
    assert changed_lines(three["fix_diff"]) == ['+  | Square _ -> "square"']
    check_fix(repo, data, three, tmp_path, {"lib/shape.ml": SHAPE_3})

    # 4: the error is in lib/shape.ml, the fix in lib/geometry.ml
    error = first_error(four)
    assert (error["file"], error["line"]) == ("lib/shape.ml", 7)
    assert changed_lines(four["fix_diff"]) == [
        "-let square x y = x *. y",
        "+let square ?(by = 1.0) x = by *. x *. x",
    ]
    assert [c["path"] for c in four["context"]] == ["lib/geometry.ml", "lib/shape.ml"]
    assert four["context"][0]["content"] == GEOMETRY_4_ARITY
    # shape.ml is unchanged at the red state: its content came from the commit's base row
    assert four["context"][1]["content"] == SHAPE_3
    check_fix(repo, data, four, tmp_path, {"lib/geometry.ml": GEOMETRY_4})

    assert [e["prompt"] for e in (one, two, three, four)] == [
        "Fix the undefined name in lib/shape.ml",
        "Fix the undefined name in bin/main.ml",
        "Fix the non-exhaustive match in lib/shape.ml",
        "Fix the wrong number of arguments in lib/geometry.ml",
    ]

    # the same kind of error, the same fingerprint; other kinds, other fingerprints
    fingerprints = [e["error_fingerprint"] for e in (one, two, three, four)]
    assert fingerprints[0] == fingerprints[1]
    assert len(set(fingerprints)) == 3
    assert fingerprints[0] == diagnostic_fingerprint(first_error(two))
    first_red_fingerprint = diagnostic_fingerprint(first_red["diagnostics"][0])
    assert first_red_fingerprint not in fingerprints

    # the diagnostics view: one row per diagnostic of each red build (greens had none)
    view = miner_sql(
        data,
        out,
        "SELECT count(*) AS n, count(DISTINCT snapshot_id) AS builds,"
        " count(*) FILTER (WHERE position = 1 AND status = 'red' AND severity = 'error')"
        " AS leading, min(file) AS file FROM diagnostics",
    )
    assert view.splitlines()[2].split() == ["6", "|", "5", "|", "5", "|", "bin/main.ml"]

    # the README's queries, through the command line, on this dataset
    frequent = miner_sql(data, out, MOST_FREQUENT_ERRORS)
    lines = frequent.splitlines()
    assert lines[0].split(" | ")[:3] == ["error_fingerprint", "episodes", "workspaces"]
    assert fingerprints[0] in lines[2] and "Unbound value Geometry.pie" in lines[2]
    assert lines[2].split("|")[1].strip() == "2" and lines[-1] == "(3 rows)"
    repair = miner_sql(data, out, MEDIAN_TIME_TO_REPAIR)
    assert "median_seconds" in repair.splitlines()[0] and repair.splitlines()[-1] == "(3 rows)"
    assert "this pattern-matching is not exhaustive." in repair
