"""Benchmark the snapshot after a branch switch that adds 10,000 files, in git and hg.

The same scenario as ``tests/test_hostile_repos.py``
(``test_branch_switch_of_10000_files_is_one_base_row``): a working copy on a
commit with one file is snapshotted, then switched to a commit adding
``--files`` small files, and the next ``take_snapshot`` is timed.  That
snapshot records one ``base`` row listing every added file with its blob, then
the state row.

Beside it, the naive baseline: the cost of just asking the VCS for those files
as subprocesses, which any recorder has to pay one way or another:

* git: ``git diff --name-only -z OLD NEW`` + ``git archive NEW`` (every path and
  every byte of the new revision);
* hg: ``hg status --rev OLD --rev NEW`` + ``hg cat -r NEW gen`` (the same for
  Mercurial, through the ``hg`` command).

It prints seconds for both and their ratio.  Run it with::

    uv run python bench/bench_branch_switch.py [--files 10000] [--repeat 3] [--kinds git,hg]

``--tracemalloc`` times the snapshot with ``tracemalloc`` on, as the test does
(it makes every allocation dearer), and prints the peak; ``--profile FILE``
writes a cProfile of the last snapshot run per kind to ``FILE.<kind>``.
"""

from __future__ import annotations

import argparse
import cProfile
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.repos
from snapshotter.snapshot import SnapshotOptions, take_snapshot
from tests.repos import HG, VCS_ENV, Repo


def build_repo(kind: str, where: Path, files: int) -> tuple[Repo, str, str]:
    """A working copy on a one-file commit, with a commit adding ``files`` files after it."""
    repo = Repo(kind, where)
    repo.write("README", "base\n")
    main = repo.commit("base")
    for i in range(files):
        repo.write(f"gen/{i // 100:03d}/f{i:05d}.txt", f"file {i}\n")
    big = repo.commit(f"{files} files")
    return repo, main, big


def switch(repo: Repo, rev: str) -> None:
    if repo.kind == "hg":
        repo.vcs("update", "-q", "-r", rev)
    else:
        repo.vcs("checkout", "-q", rev)


def time_snapshot(
    repo: Repo, main: str, big: str, data_dir: Path, *, traced: bool, profile: Path | None
) -> tuple[float, int]:
    """Seconds (and peak traced bytes) of the snapshot right after switching to ``big``."""
    shutil.rmtree(data_dir, ignore_errors=True)
    switch(repo, main)
    take_snapshot(repo.path, data_dir, SnapshotOptions())
    switch(repo, big)
    profiler = cProfile.Profile() if profile is not None else None
    if traced:
        tracemalloc.start()
    try:
        if profiler is not None:
            profiler.enable()
        start = time.perf_counter()
        take_snapshot(repo.path, data_dir, SnapshotOptions())
        seconds = time.perf_counter() - start
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(profile)  # type: ignore[arg-type]
        peak = tracemalloc.get_traced_memory()[1] if traced else 0
    finally:
        if traced:
            tracemalloc.stop()
    return seconds, peak


def naive(repo: Repo, main: str, big: str) -> float:
    """Seconds to get the changed paths and the new revision's contents from the VCS itself."""
    if repo.kind == "git":
        git = ["git", "-C", str(repo.path)]
        commands = [
            [*git, "diff", "--name-only", "-z", main, big],
            [*git, "archive", big],
        ]
    else:
        hg = [*HG, "--cwd", str(repo.path)]
        commands = [
            [*hg, "status", "--rev", main, "--rev", big],
            [*hg, "cat", "-r", big, "gen"],
        ]
    start = time.perf_counter()
    for command in commands:
        subprocess.run(command, env=VCS_ENV, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def best(run: Callable[[], float], repeat: int) -> float:
    return min(run() for _ in range(repeat))


def run_kind(kind: str, where: Path, args: argparse.Namespace) -> None:
    """Build one repository, time our snapshot and the naive baseline on it, print a line."""
    repo, old, new = build_repo(kind, where / "repo", args.files)
    profile = args.profile.with_name(f"{args.profile.name}.{kind}") if args.profile else None
    peaks: list[int] = []

    def snapshot() -> float:
        seconds, peak = time_snapshot(
            repo, old, new, where / "data", traced=args.tracemalloc, profile=profile
        )
        peaks.append(peak)
        return seconds

    ours = best(snapshot, args.repeat)
    baseline = best(lambda: naive(repo, old, new), args.repeat)
    peak = f"{max(peaks) >> 20} MiB" if args.tracemalloc else "-"
    print(f"{kind:4} {ours:11.2f} {baseline:9.2f} {ours / baseline:7.2f}  {peak}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--kinds", default="git,hg")
    parser.add_argument("--tracemalloc", action="store_true", help="time as the test does")
    parser.add_argument("--profile", type=Path, help="write a cProfile per kind to FILE.<kind>")
    args = parser.parse_args()

    print(f"snapshot after switching to a commit adding {args.files:,} files")
    print(f"{'vcs':4} {'snapshot s':>11} {'naive s':>9} {'ratio':>7}  peak")
    with tempfile.TemporaryDirectory(prefix="bench-switch-") as tmp:
        for kind in args.kinds.split(","):
            run_kind(kind, Path(tmp) / kind, args)


if __name__ == "__main__":
    main()
