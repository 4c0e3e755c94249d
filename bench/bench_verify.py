"""Benchmark ``miner verify``: warm workers against a fresh copy per episode.

Generates a dune project of ``--modules`` OCaml modules (each a few dozen
functions over a shared ``Util`` module, so a cold build costs real time) in a
real git repository, and records ``--episodes`` green -> red -> green episodes
with the real snapshotter (a type error in a different module each time, then
the fix, all on one base revision), mined by the real pipeline.  Then it
verifies every episode twice, side by side:

* **warm**: ``WorkerPool(jobs)``: each worker exports the base once, builds it
  once (the warm-up, counted in the time), then moves from episode to episode by
  laying files and reverting them, so dune rebuilds only what changed;
* **fresh**: ``WorkerPool(jobs, fresh=True)``: for each episode a new export and a
  cold build, as a service without warm workspaces would do.

It prints episodes verified per minute for both, their ratio (target: at least
3x) and checks that both give every episode the same verdict.  dune's shared
cache is off (``DUNE_CACHE=disabled``) so that a fresh copy really builds cold.
Run it with::

    uv run python bench/bench_verify.py [--modules 40] [--functions 60] [--episodes 12] [--jobs N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.repos
from miner import pipeline
from miner.describe import get_describer
from miner.describe_stage import read_episodes
from miner.record import Episode
from miner.verify.states import red_states
from miner.verify.verify import Verdict, verify_episodes
from miner.verify.workers import WorkerPool
from snapshotter.build import BuildLimits
from snapshotter.record import Identity
from snapshotter.snapshot import SnapshotOptions, take_snapshot
from tests.repos import Repo

ME = Identity(host="bench-host", user="bench")
BUILD = "dune build 2>&1"


def module_text(number: int, functions: int) -> str:
    lines = [f"(* module {number} *)", ""]
    for f in range(functions):
        lines.append(
            f"let f{f} (x : int) (ys : float list) =\n"
            f"  let total = List.fold_left (fun acc y -> acc +. Util.scale {f} y) 0. ys in\n"
            f'  if x > {f} then Printf.sprintf "%d:%f" x total\n'
            f'  else String.concat "," (List.map string_of_float (total :: ys))\n'
        )
    lines.append(f'let name = "m{number}"\n')
    return "\n".join(lines)


def project(modules: int, functions: int) -> dict[str, str]:
    files = {
        "dune-project": "(lang dune 2.9)\n",
        "lib/dune": "(library\n (name gen))\n",
        "lib/util.ml": "let scale k y = float_of_int k *. y\n",
        "bin/dune": "(executable\n (name main)\n (libraries gen))\n",
    }
    for n in range(modules):
        files[f"lib/m{n}.ml"] = module_text(n, functions)
    uses = " ".join(f"Gen.M{n}.name;" for n in range(modules))
    files["bin/main.ml"] = f"let () = List.iter print_endline [ {uses} ]\n"
    return files


def record(root: Path, modules: int, functions: int, episodes: int) -> tuple[Path, Path]:
    repo = Repo("git", root / "ws")
    data, out = root / "data", root / "out"
    repo.ignore("_build", "*.install", ".merlin")
    files = project(modules, functions)
    for name, text in files.items():
        repo.write(name, text)
    repo.commit("generated project")
    options = SnapshotOptions(build_command=BUILD, build_limits=BuildLimits(timeout_s=1800))

    def snap(expected: str) -> None:
        status = take_snapshot(repo.path, data, options, ME).build_status
        assert status == expected, (status, expected)

    snap("green")
    for e in range(episodes):
        path = f"lib/m{(e * 7) % modules}.ml"
        good = files[path]
        # a type error of a different length each time: no two episodes are near-duplicates
        line = "let total = List.fold_left"
        broken = line.replace("= ", "= " + "1 + " * (e + 1), 1)
        repo.write(path, good.replace(line, broken, 1))
        snap("red")
        repo.write(path, good)
        snap("green")
    pipeline.run(data, out, describer=get_describer("offline"))
    return data, out


def timed(
    data: Path, episodes: list[Episode], jobs: int, fresh: bool
) -> tuple[float, list[Verdict]]:
    states = red_states(data, episodes)
    began = time.monotonic()
    with WorkerPool(jobs, BuildLimits(timeout_s=1800), fresh=fresh) as pool:
        verdicts = verify_episodes(episodes, states, pool)
    return time.monotonic() - began, verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", type=int, default=40)
    parser.add_argument("--functions", type=int, default=60, help="functions per module")
    parser.add_argument("--episodes", type=int, default=12)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    if shutil.which("dune") is None:
        sys.exit("bench_verify needs dune and ocaml")
    os.environ["DUNE_CACHE"] = "disabled"
    with tempfile.TemporaryDirectory(prefix="bench-verify-") as tmp:
        root = Path(tmp)
        os.environ["HOME"] = str(root / "home")  # no user config, no dune cache of the user
        began = time.monotonic()
        data, out = record(root, args.modules, args.functions, args.episodes)
        kept = [e for e in read_episodes(out) if e.kept]
        print(
            f"recorded {len(kept)} kept episodes on {args.modules} modules"
            f" x {args.functions} functions in {time.monotonic() - began:.1f} s;"
            f" jobs {args.jobs}"
        )
        results = {}
        for label, fresh in (("warm", False), ("fresh", True)):
            seconds, verdicts = timed(data, kept, args.jobs, fresh)
            results[label] = (seconds, verdicts)
        print(f"{'mode':<8}{'episodes':>10}{'seconds':>10}{'per minute':>12}  verdicts")
        for label, (seconds, verdicts) in results.items():
            counts = ", ".join(f"{k} {n}" for k, n in Counter(v.verified for v in verdicts).items())
            rate = len(kept) / seconds * 60
            print(f"{label:<8}{len(kept):>10}{seconds:>10.1f}{rate:>12.1f}  {counts}")
        ratio = results["fresh"][0] / results["warm"][0]
        print(f"warm / fresh: {ratio:.1f}x episodes per minute (target: 3x)")
        same = [v.verified for v in results["warm"][1]] == [v.verified for v in results["fresh"][1]]
        print(f"same verdicts: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
