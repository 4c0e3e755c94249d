"""A generated monorepo for the agent benchmark: DIRS directories x FILES small files.

``ensure_repo(vcs, root)`` makes (or reuses) a working copy of the tree: one
commit holding every file and a small commit on top of it, left clean, with
its stat cache (the hg dirstate, the git index) fresh, as a developer's
working copy is after a while.  A marker file next to each repo
records what was generated, so ``--repos DIR`` reuses a finished repository
and regenerates a half-made one.

Every VCS command runs with the user's configuration shut out (``HGRCPATH``,
``GIT_CONFIG_GLOBAL``, ``GIT_CONFIG_NOSYSTEM``), so runs are comparable
between machines.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

DIRS = 1000
FILES = 100

# the ``hg`` script installed next to this Python (the way a user runs it)
HG = str(Path(sys.executable).parent / "hg")
HG_CMD = [HG] if os.path.exists(HG) else [sys.executable, "-m", "mercurial"]

ISOLATED_ENV = {
    "HGPLAIN": "1",
    "HGUSER": "Bench <bench@example.com>",
    "HGRCPATH": os.devnull,
    "GIT_AUTHOR_NAME": "Bench",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "Bench",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


def vcs_env() -> dict[str, str]:
    return {**os.environ, **ISOLATED_ENV}


def rel_path(d: int, f: int) -> str:
    return f"pkg{d:03d}/mod{f:02d}.py"


def content(d: int, f: int, version: int = 0) -> bytes:
    """A small Python module, about 300 bytes; ``version`` > 0 is an edit of it."""
    body = (
        f'"""Module {d}.{f} of the generated benchmark monorepo."""\n'
        f"\n"
        f"from pkg{(d + 1) % DIRS:03d} import mod{(f + 1) % FILES:02d}\n"
        f"\n"
        f"LIMIT = {d * FILES + f}\n"
        f"\n"
        f"\n"
        f"def compute_{d}_{f}(x: int) -> int:\n"
        f"    total = x\n"
        f"    for i in range(LIMIT % 17 + 3):\n"
        f"        total += i * {f + 1}\n"
        f"    return mod{(f + 1) % FILES:02d}.helper(total)\n"
    )
    if version:
        body = body.replace("total = x\n", f"total = x + {version}  # edited\n")
        body += f"\n\ndef added_in_edit_{version}() -> int:\n    return {version}\n"
    return body.encode()


def run(cmd: Sequence[str], cwd: Path, *, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    done = subprocess.run(list(cmd), cwd=cwd, env=vcs_env(), capture_output=True, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd)} failed in {cwd} ({done.returncode}): "
            f"{done.stderr.decode(errors='replace').strip()}"
        )
    return done


# The working copy's parent is a small commit on top of the import, as in a real
# repository: Mercurial reads the parent's list of touched files on every
# ``ctx[path]``, and a 100,000-file parent would cost each tick about 10 ms that
# no developer's working copy pays.
TOP_EDITS = ((0, 0), (999, 99))
TOP_ADDED = "README.md"
TOP_VERSION = 10_000


def base_content(d: int, f: int) -> bytes:
    """A file's content in the working copy's parent (the small top commit)."""
    return content(d, f, TOP_VERSION if (d, f) in TOP_EDITS else 0)


def write_tree(root: Path, dirs: int = DIRS, files: int = FILES) -> None:
    for d in range(dirs):
        directory = root / f"pkg{d:03d}"
        directory.mkdir(parents=True, exist_ok=True)
        for f in range(files):
            (root / rel_path(d, f)).write_bytes(content(d, f))


def _marker(root: Path) -> Path:
    return root.with_name(root.name + ".ready")


# bumped when a repository of that kind is made differently
_GENERATION = {"hg": 2, "git": 3}


def _signature(vcs: str, dirs: int, files: int) -> str:
    return f"{vcs} {dirs}x{files} v{_GENERATION[vcs]}\n"


def make_repo(vcs: str, root: Path, dirs: int = DIRS, files: int = FILES) -> float:
    """Generate and commit the tree at ``root``; returns the seconds it took."""
    start = time.perf_counter()
    if root.exists():
        shutil.rmtree(root)
    _marker(root).unlink(missing_ok=True)
    root.mkdir(parents=True)
    if vcs == "git":
        run(["git", "init", "-q", "-b", "main"], root)
    else:
        run([*HG_CMD, "init"], root)
    write_tree(root, dirs, files)
    commit(vcs, root, "generated monorepo")
    for d, f in TOP_EDITS:
        if d < dirs and f < files:
            (root / rel_path(d, f)).write_bytes(base_content(d, f))
    (root / TOP_ADDED).write_text("The benchmark monorepo.\n")
    commit(vcs, root, "a small change")
    if vcs == "git":
        run(["git", "gc", "-q"], root)  # packed, as a clone is
    settle(vcs, root)
    _marker(root).write_text(_signature(vcs, dirs, files))
    return time.perf_counter() - start


def commit(vcs: str, root: Path, message: str) -> None:
    if vcs == "git":
        run(["git", "add", "-A"], root)
        # no automatic gc running in the background of the measurements
        run(["git", "-c", "gc.auto=0", "commit", "-q", "-m", message], root)
    else:
        run([*HG_CMD, "commit", "-q", "-A", "-m", message], root)


def settle(vcs: str, root: Path) -> None:
    """Refresh the stat cache once files are older than it (no "racily clean" entries)."""
    time.sleep(1.1)
    if vcs == "git":
        run(["git", "update-index", "-q", "--refresh"], root, check=False)
        run(["git", "status", "--porcelain"], root)
    else:
        run([*HG_CMD, "status"], root)


def is_clean(vcs: str, root: Path) -> bool:
    if vcs == "git":
        out = run(["git", "status", "--porcelain", "--untracked-files=all"], root).stdout
    else:
        out = run([*HG_CMD, "status"], root).stdout
    return not out.strip()


def restore(vcs: str, root: Path) -> None:
    """Back to the committed tree: edits reverted, new files removed."""
    if is_clean(vcs, root):
        return
    if vcs == "git":
        run(["git", "checkout", "-q", "--", "."], root)
        run(["git", "clean", "-fdq"], root)
    else:
        run([*HG_CMD, "revert", "-q", "--all", "--no-backup"], root)
        run([*HG_CMD, "purge", "--no-confirm"], root)
    settle(vcs, root)


def ensure_repo(vcs: str, root: Path, dirs: int = DIRS, files: int = FILES) -> float | None:
    """Reuse a finished repository (cleaned) or generate it; seconds spent generating, or None."""
    marker = _marker(root)
    if root.is_dir() and marker.exists() and marker.read_text() == _signature(vcs, dirs, files):
        restore(vcs, root)
        return None
    return make_repo(vcs, root, dirs, files)
