"""Real Mercurial and Git working copies in temporary folders, driven like a developer would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HG = [sys.executable, "-m", "mercurial"]
VCS_ENV = {
    **os.environ,
    "HGPLAIN": "1",
    "HGUSER": "Test <test@example.com>",
    "HGRCPATH": os.devnull,
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


class Repo:
    """A working copy of either kind with the handful of verbs tests need."""

    def __init__(self, kind: str, path: Path) -> None:
        self.kind = kind
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        if kind == "hg":
            self.vcs("init")
        else:
            self.vcs("init", "-q", "-b", "main")

    def vcs(self, *args: str | bytes) -> str:
        cmd: list[str | bytes] = (
            [*HG, "--cwd", str(self.path), *args]
            if self.kind == "hg"
            else [
                "git",
                "-C",
                str(self.path),
                *args,
            ]
        )
        done = subprocess.run(cmd, capture_output=True, env=VCS_ENV, check=False)
        if done.returncode != 0:
            raise AssertionError(
                f"{cmd!r} failed ({done.returncode}): {done.stderr.decode(errors='replace')}"
            )
        return done.stdout.decode(errors="replace")

    def write(self, name: str | bytes, content: str | bytes) -> Path:
        raw = name if isinstance(name, bytes) else name.encode()
        path = Path(os.fsdecode(os.path.join(bytes(self.path), raw)))
        path.parent.mkdir(parents=True, exist_ok=True)
        data = content.encode() if isinstance(content, str) else content
        path.write_bytes(data)
        return path

    def read(self, name: str) -> bytes:
        return (self.path / name).read_bytes()

    def remove(self, name: str) -> None:
        (self.path / name).unlink()

    def add(self, *names: str | bytes) -> None:
        self.vcs("add", *names)

    def commit(self, message: str = "change") -> str:
        if self.kind == "hg":
            self.vcs("commit", "-A", "-m", message)
            return self.vcs("log", "-r", ".", "-T", "{node}").strip()
        self.vcs("add", "-A")
        self.vcs("commit", "-q", "-m", message)
        return self.vcs("rev-parse", "HEAD").strip()

    def ignore(self, *patterns: str) -> None:
        if self.kind == "hg":
            self.write(".hgignore", "syntax: glob\n" + "".join(p + "\n" for p in patterns))
        else:
            self.write(".gitignore", "".join(p + "\n" for p in patterns))

    def export_base(self, dest: Path, rev: str | None = None) -> Path:
        """The tree of ``rev`` (default: the working copy's parent revision), in ``dest``."""
        if self.kind == "hg":
            self.vcs("archive", "-r", rev or ".", str(dest))
            (dest / ".hg_archival.txt").unlink(missing_ok=True)
        else:
            dest.mkdir(parents=True)
            archive = subprocess.run(
                ["git", "-C", str(self.path), "archive", rev or "HEAD"],
                capture_output=True,
                check=True,
                env=VCS_ENV,
            ).stdout
            subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
        return dest
