"""``miner verify`` on real recordings: git and hg repositories, real Python builds
recorded by the real snapshotter, mined by the real pipeline, then replayed in
scratch copies with the real ``patch``.

One stream per VCS, three episodes:

1. a syntax error in calc.py, fixed: ``reproduced``;
2. red only because of an ignored file (``debug.lock``) the snapshotter never
   records, "fixed" by deleting it: the rebuilt red state builds green, ``not_red``;
3. after a commit (another base revision), a NameError fixed: ``reproduced``.

Tampered copies of episode 1 give ``does_not_apply``, ``not_green`` and a hung
build killed by ``--timeout``.
"""

from __future__ import annotations

import difflib
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from miner import pipeline
from miner.describe import get_describer
from miner.describe_stage import read_episodes
from miner.output import write_episodes
from miner.record import DOES_NOT_APPLY, NO_REPO, NOT_GREEN, NOT_RED, REPRODUCED, Episode
from miner.verify.scratch import ScratchTree, diff_paths
from miner.verify.states import red_states
from miner.verify.verify import Verdict, verify_out_dir
from miner.verify.workers import WorkerPool
from snapshotter.build import BuildLimits
from snapshotter.record import Identity
from snapshotter.snapshot import SnapshotOptions, take_snapshot
from tests.repos import Repo

ME = Identity(host="verify-host", user="tester")
PY = shlex.quote(sys.executable)
BUILD = f"{PY} -m py_compile calc.py main.py && {PY} main.py"
MINER = str(Path(sys.executable).parent / "miner")
TIMEOUT_ARGS = ["--limit", "1", "--timeout", "3", "--jobs", "1"]

CALC = "def add(a, b):\n    return a + b\n"
CALC_SYNTAX = "def add(a, b)\n    return a + b\n"
MAIN = """\
import os
import sys

import calc

if os.path.exists("debug.lock"):
    sys.exit("main.py:6: error: debug.lock present")
print(calc.add(1, 2))
"""
MAIN_A = MAIN + "# a\n"
MAIN_B = MAIN + "# b\n"
CALC_3_NAME = "def add(a, b):\n    return a + c\n"
CALC_3 = "def add(a, b):\n    return b + a\n"


def snap(repo: Repo, data: Path) -> str | None:
    return take_snapshot(repo.path, data, SnapshotOptions(build_command=BUILD), ME).build_status


def step(repo: Repo, data: Path, files: dict[str, str | None], status: str) -> None:
    for name, text in files.items():
        if text is None:
            repo.remove(name)
        else:
            repo.write(name, text)
    assert snap(repo, data) == status, files


def edit_diff(path: str, old: str, new: str) -> str:
    lines = difflib.unified_diff(
        old.splitlines(keepends=True), new.splitlines(keepends=True), f"a/{path}", f"b/{path}"
    )
    return f"diff --git a/{path} b/{path}\n" + "".join(lines)


def tree_state(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``root`` (VCS metadata included) with its bytes and mtime."""
    found = {}
    for directory, _dirs, files in os.walk(root):
        for name in files:
            path = Path(directory, name)
            found[str(path.relative_to(root))] = (path.read_bytes(), path.stat().st_mtime_ns)
    return found


class Recorded:
    """One VCS's recorded and mined stream; tests copy ``out`` before changing it."""

    def __init__(self, repo: Repo, data: Path, out: Path) -> None:
        self.repo, self.data, self.out = repo, data, out

    def episodes(self) -> list[Episode]:
        return sorted(read_episodes(self.out), key=lambda e: e.red_ended_at)

    def copy_out(self, dest: Path, change: dict[int, dict[str, object]] | None = None) -> Path:
        """A copy of the output directory, episode ``i`` changed as ``change[i]`` says."""
        shutil.copytree(self.out, dest)
        if change:
            episodes = self.episodes()
            for index, fields in change.items():
                episodes[index] = replace(episodes[index], **fields)  # type: ignore[arg-type]
            write_episodes(dest, episodes)
        return dest


@pytest.fixture(scope="module", params=["hg", "git"])
def recorded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Recorded]:
    root = tmp_path_factory.mktemp(f"verify-{request.param}")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("HOME", str(root / "home"))
        repo = Repo(request.param, root / "ws")
        data, out = root / "data", root / "out"
        repo.ignore("__pycache__", "*.lock")
        repo.write("calc.py", CALC)
        repo.write("main.py", MAIN)
        repo.commit("calc")
        assert snap(repo, data) == "green"
        step(repo, data, {"calc.py": CALC_SYNTAX}, "red")
        step(repo, data, {"calc.py": CALC}, "green")
        step(repo, data, {"debug.lock": "on\n", "main.py": MAIN_A}, "red")
        step(repo, data, {"debug.lock": None, "main.py": MAIN_B}, "green")
        repo.commit("tidy")
        step(repo, data, {"calc.py": CALC_3_NAME}, "red")
        step(repo, data, {"calc.py": CALC_3}, "green")
        pipeline.run(data, out, describer=get_describer("offline"))
        recording = Recorded(repo, data, out)
        episodes = recording.episodes()
        assert [e.kept for e in episodes] == [True, True, True], [e.filters for e in episodes]
        yield recording


def verdicts(out: Path) -> list[str | None]:
    return [e.verified for e in sorted(read_episodes(out), key=lambda e: e.red_ended_at)]


def test_verify_outcomes_and_untouched_working_copy(recorded: Recorded, tmp_path: Path) -> None:
    out = recorded.copy_out(tmp_path / "out")
    before = tree_state(recorded.repo.path)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    report = verify_out_dir(recorded.data, out, jobs=1, scratch_root=scratch)

    assert verdicts(out) == [REPRODUCED, NOT_RED, REPRODUCED]
    assert report.outcomes == {REPRODUCED: 2, NOT_RED: 1}
    one, two, three = sorted(read_episodes(out), key=lambda e: e.red_ended_at)
    assert one.verify_output is not None and "== red build: red" in one.verify_output
    assert "== fix build: green" in one.verify_output and "SyntaxError" in one.verify_output
    assert two.verify_output is not None and "== red build: green" in two.verify_output
    assert "NameError" in (three.verify_output or "")
    # the working copy, its VCS metadata included, is byte for byte and mtime for mtime as it was
    assert tree_state(recorded.repo.path) == before
    assert list(scratch.iterdir()) == []
    # train.jsonl loses the disproved episode only
    lines = (out / "train.jsonl").read_text().splitlines()
    assert len(lines) == 2 and two.episode_id not in "".join(lines)
    assert one.episode_id in lines[0] or one.episode_id in lines[1]

    # a second run has nothing left to do; --refresh does it all again, the same way
    assert verify_out_dir(recorded.data, out, jobs=1).selected == 0
    again = verify_out_dir(recorded.data, out, jobs=2, refresh=True)
    assert again.selected == 3 and verdicts(out) == [REPRODUCED, NOT_RED, REPRODUCED]


def test_jobs_two_gives_the_same_results(recorded: Recorded, tmp_path: Path) -> None:
    single = recorded.copy_out(tmp_path / "one")
    double = recorded.copy_out(tmp_path / "two")
    verify_out_dir(recorded.data, single, jobs=1)
    verify_out_dir(recorded.data, double, jobs=2)
    assert verdicts(single) == verdicts(double) == [REPRODUCED, NOT_RED, REPRODUCED]
    # the output names no scratch copy, so it is the same whichever worker built it
    outputs = [[e.verify_output for e in read_episodes(out)] for out in (single, double)]
    assert outputs[0] == outputs[1]
    assert all("redgreen-verify-" not in (text or "") for text in outputs[0])


def test_tampered_fixes(recorded: Recorded, tmp_path: Path) -> None:
    first = recorded.episodes()[0]
    garbled = first.fix_diff.replace("def add(a, b)\n", "def sub(a, b)\n")
    assert garbled != first.fix_diff
    keeps_red = edit_diff("main.py", MAIN, MAIN + "# touched\n")
    cases = {
        DOES_NOT_APPLY: garbled,
        NOT_GREEN: keeps_red,
    }
    for expected, diff in cases.items():
        out = recorded.copy_out(tmp_path / expected, {0: {"fix_diff": diff}})
        verify_out_dir(recorded.data, out, jobs=1, limit=1)
        (episode, *_rest) = sorted(read_episodes(out), key=lambda e: e.red_ended_at)
        assert episode.verified == expected, episode.verify_output
        assert all(e.verified is None for e in _rest)  # --limit 1
        lines = (out / "train.jsonl").read_text()
        assert episode.episode_id not in lines
    assert "patch failed" in (
        sorted(read_episodes(tmp_path / DOES_NOT_APPLY), key=lambda e: e.red_ended_at)[
            0
        ].verify_output
        or ""
    )


def test_a_hung_build_is_killed_by_the_timeout(recorded: Recorded, tmp_path: Path) -> None:
    first = recorded.episodes()[0]
    hangs = first.fix_diff + edit_diff(
        "main.py",
        MAIN,
        MAIN.replace("import calc\n", "import calc\nimport time\ntime.sleep(600)\n"),
    )
    out = recorded.copy_out(tmp_path / "out", {0: {"fix_diff": hangs}})
    done = subprocess.run(
        [MINER, "verify", "--out", str(out), "--data-dir", str(recorded.data), *TIMEOUT_ARGS],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "not_green:" in done.stdout
    episode = sorted(read_episodes(out), key=lambda e: e.red_ended_at)[0]
    assert episode.verified == NOT_GREEN
    assert "== fix build: timeout" in (episode.verify_output or "")


def test_missing_repo_then_a_moved_clone(repo: Repo, tmp_path: Path) -> None:
    data, out = tmp_path / "data", tmp_path / "out"
    repo.ignore("__pycache__", "*.lock")
    repo.write("calc.py", CALC)
    repo.write("main.py", MAIN)
    repo.commit("calc")
    assert snap(repo, data) == "green"
    step(repo, data, {"calc.py": CALC_SYNTAX}, "red")
    step(repo, data, {"calc.py": CALC}, "green")
    pipeline.run(data, out, describer=get_describer("offline"))
    moved = tmp_path / "moved"
    repo.path.rename(moved)

    done = subprocess.run(
        [MINER, "verify", "--out", str(out), "--data-dir", str(data)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "no_repo:" in done.stdout
    assert verdicts(out) == [NO_REPO]
    (episode,) = read_episodes(out)
    assert "no repository" in (episode.verify_output or "")
    assert "no_repo" not in (out / "train.jsonl").read_text()  # kept: nothing disproved
    assert episode.episode_id in (out / "train.jsonl").read_text()

    # a repository that does not hold the revision is no repository either
    stranger = Repo(repo.kind, tmp_path / "stranger")
    stranger.write("x.py", "X = 1\n")
    stranger.commit("unrelated")
    verify_out_dir(data, out, repo=stranger.path, refresh=True)
    assert verdicts(out) == [NO_REPO]

    done = subprocess.run(
        [
            MINER,
            "verify",
            "--out",
            str(out),
            "--data-dir",
            str(data),
            "--repo",
            str(moved),
            "--refresh",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert verdicts(out) == [REPRODUCED]

    # refreshed away from the repository again: the replay's verdict stands
    verify_out_dir(data, out, refresh=True)
    assert verdicts(out) == [REPRODUCED]


def test_bad_input_is_one_clear_line(recorded: Recorded, tmp_path: Path) -> None:
    done = subprocess.run(
        [MINER, "verify", "--out", str(tmp_path / "nothing"), "--data-dir", str(recorded.data)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "miner run" in done.stderr, done.stderr
    # episodes of another dataset: named, nothing written
    other = tmp_path / "other-data"
    (other / "snapshots").mkdir(parents=True)
    shutil.copytree(recorded.data / "blobs", other / "blobs")
    out = recorded.copy_out(tmp_path / "out")
    before = (out / "episodes.parquet").read_bytes()
    done = subprocess.run(
        [MINER, "verify", "--out", str(out), "--data-dir", str(other)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1 and done.stderr.startswith("Error: "), done.stderr
    assert done.stderr.count("\n") == 1
    assert (out / "episodes.parquet").read_bytes() == before


def test_worker_pool_attempts_stay_warm(recorded: Recorded, tmp_path: Path) -> None:
    """The public pool: attempts in input order, one warm-up per worker and base."""
    episodes = recorded.episodes()
    states = red_states(recorded.data, episodes)
    first, _second, third = (states[e.episode_id] for e in episodes)
    assert first.base_rev == _second.base_rev != third.base_rev
    assert first.repo == recorded.repo.path and first.command == BUILD
    assert first.files == {"calc.py": CALC_SYNTAX.encode()}
    items = [
        (first, None),
        (first, episodes[0].fix_diff),
        (
            first,
            "diff --git a/nope.py b/nope.py\n--- a/nope.py\n+++ b/nope.py\n@@ -1 +1 @@\n-x\n+y\n",
        ),
        (third, None),
        (first, None),
    ]
    with WorkerPool(1, BuildLimits(timeout_s=60)) as pool:
        attempts = pool.attempt(items)
        # items on the worker's base go first: one warm-up per base, results in input order
        assert pool.warmups == 2
        root = pool.root
    assert [(a.applied, a.status) for a in attempts] == [
        (True, "red"),
        (True, "green"),
        (False, ""),
        (True, "red"),
        (True, "red"),
    ]
    assert attempts[0].fingerprint == first.red_fingerprint == attempts[4].fingerprint
    assert attempts[1].fingerprint is None
    assert attempts[3].fingerprint == third.red_fingerprint
    assert not root.exists()


def test_scratch_tree_reverts_exactly(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    (root / "src").mkdir(parents=True)
    (root / "src" / "a.c").write_text("int a;\n")
    (root / "run.sh").write_text("#!/bin/sh\n")
    (root / "run.sh").chmod(0o755)
    (root / "link").symlink_to("src/a.c")
    (root / "_build").mkdir()
    before = tree_state(root)
    tree = ScratchTree(root)
    tree.lay({"src/a.c": b"int b;\n", "run.sh": None, "new/deep/x.c": b"x\n", "link": b"file"})
    assert (root / "new/deep/x.c").read_bytes() == b"x\n" and not (root / "run.sh").exists()
    problem = tree.apply(edit_diff("src/a.c", "int b;\n", "int c;\n"))
    assert problem is None and (root / "src/a.c").read_text() == "int c;\n"
    assert tree.apply(edit_diff("src/a.c", "nothing\n", "else\n")) is not None
    (root / "_build" / "a.o").write_bytes(b"obj")  # a build product stays
    tree.revert()
    after = tree_state(root)
    del after["_build/a.o"]
    assert {k: v[0] for k, v in after.items()} == {k: v[0] for k, v in before.items()}
    assert os.access(root / "run.sh", os.X_OK) and os.readlink(root / "link") == "src/a.c"
    assert not (root / "new").exists()
    with pytest.raises(ValueError):
        tree.write("../escape", b"x")
    assert tree.apply(edit_diff("../escape", "", "x\n")) is not None
    assert diff_paths('diff --git "a/caf\\303\\251.c" "b/caf\\303\\251.c"\n') == ["café.c"]


def test_verify_shows_progress_on_stderr_and_its_summary_on_stdout(
    recorded: Recorded, tmp_path: Path
) -> None:
    out = recorded.copy_out(tmp_path / "out")
    # two workers: the bar is stepped from both threads
    done = subprocess.run(
        [MINER, "verify", "--out", str(out), "--data-dir", str(recorded.data), "--jobs", "2"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("verified:        3 episode(s) in ") and lines[0].endswith(" s")
    assert lines[1:] == [
        "reproduced:      2",
        "not_red:         1",
        f"wrote {out / 'episodes.parquet'}",
        f"wrote {out / 'train.jsonl'}",
    ]
    # stderr is not a terminal: click writes the bar's label once, with no redraws
    assert done.stderr.splitlines() == ["verifying"]
    assert verdicts(out) == [REPRODUCED, NOT_RED, REPRODUCED]

    # nothing left to verify: no bar at all
    again = subprocess.run(
        [MINER, "verify", "--out", str(out), "--data-dir", str(recorded.data)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("nothing to verify") and again.stderr == ""


def test_verify_out_dir_reports_the_total_then_each_episode_done(
    recorded: Recorded, tmp_path: Path
) -> None:
    out = recorded.copy_out(tmp_path / "out")
    totals: list[int] = []
    done: list[str | None] = []

    def done_one(_episode: Episode, verdict: Verdict) -> None:
        done.append(verdict.verified)

    report = verify_out_dir(
        recorded.data,
        out,
        jobs=2,
        limit=2,
        on_start=totals.append,
        on_done=done_one,
    )
    assert totals == [2] and report.selected == 2
    assert sorted(done) == sorted([REPRODUCED, NOT_RED])

    # episodes without their repository are done too: a bar reaches its end
    done.clear()
    elsewhere = tmp_path / "not-a-repository"
    elsewhere.mkdir()
    report = verify_out_dir(recorded.data, out, repo=elsewhere, refresh=True, on_done=done_one)
    assert report.selected == 3 and done == [NO_REPO] * 3
