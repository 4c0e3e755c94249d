"""``snapshotter demo``: the whole pipeline on a throw-away Mercurial repository.

A developer's afternoon in four steps, each followed by a real snapshot with
a real build (byte-compile the program, then run it):

1. green: a small statistics program, committed;
2. red: ``mean`` is renamed to ``average`` in ``stats.py`` but ``report.py``
   still calls ``mean`` (the program fails with an AttributeError);
3. red again: a hurried edit of ``report.py`` leaves a syntax error;
4. green: the call is fixed.

Then the miner finds the green -> red -> green episode and the demo prints
its error, its fix diff and its prompt, and replays it as ``miner verify``
does: the red state rebuilt in a scratch copy of the repository must fail with
the recorded error, and the fix must turn it green.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from snapshotter.errors import RedgreenError
from snapshotter.record import Identity
from snapshotter.snapshot import SnapshotOptions, take_snapshot

STATS_V1 = '''"""Small statistics helpers."""


def total(values):
    return sum(values)


def mean(values):
    return total(values) / len(values)
'''

REPORT_V1 = '''"""Print a summary of some measurements."""

import stats

MEASUREMENTS = [3.5, 4.0, 5.5, 7.0]


def summary(values):
    return f"n={len(values)} total={stats.total(values)} mean={stats.mean(values)}"


if __name__ == "__main__":
    print(summary(MEASUREMENTS))
'''

STEPS: list[tuple[str, dict[str, str]]] = [
    (
        "write the program and commit it",
        # py_compile writes __pycache__: a build's outputs are ignored, as in any project
        {"stats.py": STATS_V1, "report.py": REPORT_V1, ".hgignore": "syntax: glob\n__pycache__\n"},
    ),
    (
        "rename mean() to average() in stats.py (report.py still calls mean)",
        {"stats.py": STATS_V1.replace("def mean(", "def average(")},
    ),
    (
        "a hurried attempt at report.py leaves a syntax error",
        {
            "report.py": REPORT_V1.replace(
                "mean={stats.mean(values)}", "mean={stats.average(values}"
            )
        },
    ),
    (
        "fix the call in report.py",
        {"report.py": REPORT_V1.replace("stats.mean(values)", "stats.average(values)")},
    ),
]


def _hg(repo: Path, *args: str) -> None:
    cmd = [sys.executable, "-m", "mercurial", "--cwd", str(repo), *args]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RedgreenError(f"demo: hg {args[0]} failed: {done.stderr.strip()}")


def build_command() -> str:
    python = shlex.quote(sys.executable)
    return f"{python} -m py_compile stats.py report.py && {python} report.py"


def run_demo(data_dir: Path | None, echo: Callable[[str], None]) -> None:
    with tempfile.TemporaryDirectory(prefix="redgreen-demo-") as scratch:
        root = Path(scratch)
        repo = root / "workspace"
        repo.mkdir()
        data = data_dir or root / "data"
        out = root / "out" if data_dir is None else data / "mined"
        _hg(repo, "init")
        options = SnapshotOptions(build_command=build_command())
        identity = Identity(host="demo-host", user="demo")
        echo(f"workspace {repo} (Mercurial), build: {options.build_command}")
        for number, (what, files) in enumerate(STEPS, start=1):
            for name, text in files.items():
                (repo / name).write_text(text)
            if number == 1:
                _hg(repo, "commit", "-A", "-m", "statistics report", "-u", "demo")
            report = take_snapshot(repo, data, options, identity)
            echo(f"  step {number}: {what}: build {report.build_status}")
        _mine_and_show(data, out, echo)
        if data_dir is not None:
            echo(f"dataset kept in {data}; episodes in {out}")


def _mine_and_show(data: Path, out: Path, echo: Callable[[str], None]) -> None:
    # the miner is a separate program; the demo borrows its core, imported late
    import duckdb

    from miner import pipeline
    from miner.describe import get_describer

    summary = pipeline.run(data, out, describer=get_describer("offline"))
    echo(f"mined {summary.snapshots} snapshots: {summary.episodes} episode(s), {summary.kept} kept")
    episodes = duckdb.connect().sql(
        f"select * from read_parquet('{out / 'episodes.parquet'}') order by red_ended_at"
    )
    names = episodes.columns
    for values in episodes.fetchall():
        episode = dict(zip(names, values, strict=True))
        red_for = f"{episode['red_seconds']:.1f} s, {episode['red_snapshots']} red snapshot(s)"
        echo("")
        echo(f"episode {episode['episode_id'][:12]} (red for {red_for})")
        echo(f"prompt: {episode['prompt']}")
        echo("error at the red state:")
        for line in (episode["error"] or "").strip().splitlines()[-6:]:
            echo(f"  | {line}")
        echo("fix diff (red -> green):")
        for line in (episode["fix_diff"] or "").splitlines():
            echo(f"  {line}")
        filters = ", ".join(episode["filters"]) or "none"
        echo(f"filters: {filters}; split: {episode['split']}")
    _verify_and_show(data, out, echo)


def _verify_and_show(data: Path, out: Path, echo: Callable[[str], None]) -> None:
    from miner.verify.verify import verify_out_dir

    report = verify_out_dir(data, out, jobs=1)
    outcomes = ", ".join(f"{name} {count}" for name, count in report.outcomes.items())
    echo("")
    echo(f"verified in a scratch copy of the repository: {outcomes or 'nothing to verify'}")
