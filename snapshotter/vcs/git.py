"""Git, through short ``git`` plumbing commands.

``git status`` reads the index's stat cache and the ignore rules, so asking it
which paths may have changed costs little; contents come from one
``git cat-file --batch`` per capture.  Every call runs with optional locks
off (no ``index.lock`` contention with the developer's own git) and with
``core.fsmonitor`` off, because a repository's config could otherwise name a
command for us to run.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path

from snapshotter.errors import WorkspaceError
from snapshotter.vcs.base import NULL_REV, BaseInfo, Candidate, RevFile
from snapshotter.vcs.gitindex import IndexPaths

_ENV = {
    **os.environ,
    "GIT_OPTIONAL_LOCKS": "0",
    "GIT_TERMINAL_PROMPT": "0",
    "LC_ALL": "C",
}
_CHUNK = 500  # paths per command line


def _is_oid(text: str) -> bool:
    return len(text) in (40, 64) and all(c in "0123456789abcdef" for c in text)


class GitBackend:
    name = "git"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.refresh()
        # fails early on a broken repository
        out = self._git(
            ["rev-parse", "--absolute-git-dir", "--git-common-dir", "--show-object-format"]
        ).stdout
        git_dir, common_dir, object_format = out.decode(errors="surrogateescape").split("\n")[:3]
        self._git_dir = Path(git_dir)
        self._common_dir = (
            (Path(root) / common_dir) if not os.path.isabs(common_dir) else Path(common_dir)
        )
        self._index = IndexPaths(Path(git_dir), 32 if object_format == "sha256" else 20)

    def _git(
        self,
        args: Sequence[str | bytes],
        *,
        input: bytes | None = None,
        check: bool = True,
        literal: bool = True,
    ) -> subprocess.CompletedProcess[bytes]:
        # literal pathspecs: a file named "*.py" means that file, not a glob
        cmd: list[str | bytes] = [
            "git",
            *(["--literal-pathspecs"] if literal else []),
            "-c",
            "core.fsmonitor=false",
            "-c",
            "core.quotepath=false",
            *args,
        ]
        try:
            done = subprocess.run(
                cmd, cwd=self.root, input=input, capture_output=True, env=_ENV, check=False
            )
        except OSError as exc:
            raise WorkspaceError(f"cannot run git: {exc.strerror}") from exc
        if check and done.returncode != 0:
            detail = done.stderr.decode("utf-8", "replace").strip().splitlines()
            raise WorkspaceError(
                f"git {args[0]!s} failed in {self.root}: {detail[0] if detail else done.returncode}"
            )
        return done

    def refresh(self) -> None:
        # answers are cached within one capture: each git process costs ~3-5 ms
        self._base: BaseInfo | None = None
        self._tree: tuple[str, frozenset[bytes], dict[bytes, RevFile]] | None = None
        # what changed_between learnt: the paths, and each revision's files among them
        self._changed: tuple[frozenset[bytes], dict[str, dict[bytes, RevFile]]] | None = None

    def base(self) -> BaseInfo:
        if getattr(self, "_base", None) is not None:
            assert self._base is not None
            return self._base
        self._base = self._base_from_files() or self._base_from_git()
        return self._base

    def _base_from_files(self) -> BaseInfo | None:
        """HEAD read from ``.git/HEAD`` and the loose or packed ref: two small files, no process.

        Anything unusual (a reftable repository, a symbolic ref outside
        refs/heads, a malformed file) returns None and git is asked instead.
        """
        try:
            head = (self._git_dir / "HEAD").read_text().strip()
            if not head.startswith("ref: "):
                return BaseInfo(rev=head, branch=None) if _is_oid(head) else None
            ref = head[5:]
            if not ref.startswith("refs/heads/"):
                return None
            branch = ref[len("refs/heads/") :]
            loose = self._common_dir / ref
            if loose.is_file():
                rev = loose.read_text().strip()
                return BaseInfo(rev=rev, branch=branch) if _is_oid(rev) else None
            packed = self._common_dir / "packed-refs"
            if packed.is_file():
                for line in packed.read_text().splitlines():
                    oid, _, name = line.partition(" ")
                    if name == ref and _is_oid(oid):
                        return BaseInfo(rev=oid, branch=branch)
            if (self._common_dir / "reftable").exists():
                return None
            return BaseInfo(rev=NULL_REV, branch=branch)  # unborn: no commit yet
        except (OSError, UnicodeDecodeError):
            return None

    def _base_from_git(self) -> BaseInfo:
        head = self._git(["rev-parse", "--verify", "-q", "HEAD^{commit}"], check=False)
        rev = head.stdout.decode().strip() if head.returncode == 0 else NULL_REV
        ref = self._git(["symbolic-ref", "-q", "--short", "HEAD"], check=False)
        branch = ref.stdout.decode("utf-8", "replace").strip() if ref.returncode == 0 else None
        return BaseInfo(rev=rev, branch=branch or None)

    def candidates(self, paths: Sequence[bytes] | None = None) -> list[Candidate]:
        if paths is not None:
            return self._candidates_among(paths)
        out = self._git(
            [
                "status",
                "--porcelain=v1",
                "-z",
                "--untracked-files=all",
                "--no-renames",
                "--ignore-submodules=all",
            ]
        ).stdout
        found = []
        for entry in out.split(b"\0"):
            if len(entry) < 4:
                continue
            code, path = entry[:2], entry[3:]
            found.append(Candidate(path, tracked=code != b"??"))
        return found

    def _candidates_among(self, paths: Sequence[bytes]) -> list[Candidate]:
        """Files among ``paths`` in HEAD, or on disk and not ignored.

        ``git status -- paths`` refreshes the whole index (70 ms on 100,000
        files).  HEAD's tree for k paths costs a few ms, and capture compares
        contents itself; only files new since HEAD need the index (tracked
        "A" or untracked "?"), read from ``.git/index`` itself (gitindex).
        """
        if not paths:
            return []
        in_head = self.rev_files(self.base().rev, paths)
        found: dict[bytes, bool] = dict.fromkeys(in_head, True)
        root = bytes(self.root)
        new = [p for p in paths if p not in in_head and os.path.lexists(os.path.join(root, p))]
        if new:
            ignored = self.ignored(new)
            new = [p for p in new if p not in ignored]
        if new:
            tracked = self._index.tracked_among(new)
            if tracked is None:  # an index we cannot read (v4 just changed, many names): ask git
                listed: set[bytes] = set()
                for i in range(0, len(new), _CHUNK):
                    out = self._git(["ls-files", "-z", "--cached", "--", *new[i : i + _CHUNK]])
                    listed.update(p for p in out.stdout.split(b"\0") if p)
                tracked = listed
            found.update((p, p in tracked) for p in new)
        return [Candidate(path, tracked) for path, tracked in found.items()]

    def tracked_under(self, dirs: Sequence[bytes]) -> list[bytes]:
        found: set[bytes] = set()
        base = self.base().rev
        for i in range(0, len(dirs), _CHUNK):
            chunk = list(dirs[i : i + _CHUNK])
            out = self._git(["ls-files", "-z", "--cached", "--", *chunk]).stdout
            found.update(p for p in out.split(b"\0") if p)
            if base != NULL_REV:
                tree = self._git(["ls-tree", "-r", "-z", "--name-only", base, "--", *chunk])
                found.update(p for p in tree.stdout.split(b"\0") if p)
        return sorted(found)

    def ignored(self, paths: Sequence[bytes]) -> set[bytes]:
        if not paths:
            return set()
        # --no-index: ask the ignore rules only, not whether a path is tracked
        done = self._git(
            ["check-ignore", "-z", "--no-index", "--stdin"],
            input=b"\0".join(paths) + b"\0",
            check=False,
            literal=False,  # check-ignore refuses the literal magic; stdin paths are literal
        )
        if done.returncode not in (0, 1):
            return set()
        return {p for p in done.stdout.split(b"\0") if p}

    def rev_files(self, rev: str, paths: Sequence[bytes]) -> dict[bytes, RevFile]:
        if rev == NULL_REV or not paths:
            return {}
        changed = getattr(self, "_changed", None)
        if changed is not None and rev in changed[1] and changed[0].issuperset(paths):
            known = changed[1][rev]
            return {p: known[p] for p in paths if p in known}
        cached = getattr(self, "_tree", None)
        if cached is not None and cached[0] == rev:
            wanted = set(paths)
            if wanted <= cached[1]:
                return {p: f for p, f in cached[2].items() if p in wanted}
        found = self._ls_tree(rev, paths)
        self._tree = (rev, frozenset(paths), found)
        return found

    def _ls_tree(self, rev: str, paths: Sequence[bytes]) -> dict[bytes, RevFile]:
        found: dict[bytes, RevFile] = {}
        for i in range(0, len(paths), _CHUNK):
            chunk = list(paths[i : i + _CHUNK])
            out = self._git(["ls-tree", "-z", "-l", "--full-tree", rev, "--", *chunk]).stdout
            found.update(_ls_tree_blobs(out))
        return found

    def rev_contents(self, rev: str, files: Iterable[RevFile]) -> dict[bytes, bytes]:
        oids = sorted({f.key for f in files})
        if not oids:
            return {}
        out = self._git(["cat-file", "--batch"], input=b"\n".join(oids) + b"\n").stdout
        contents: dict[bytes, bytes] = {}
        pos = 0
        for oid in oids:
            header_end = out.index(b"\n", pos)
            header = out[pos:header_end].split()
            size = int(header[2])
            start = header_end + 1
            contents[oid] = out[start : start + size]
            pos = start + size + 1
        return contents

    def changed_between(self, old_rev: str, new_rev: str) -> list[bytes] | None:
        if old_rev == new_rev:
            return []
        if old_rev != NULL_REV:
            known = self._git(["cat-file", "-e", f"{old_rev}^{{commit}}"], check=False)
            if known.returncode != 0:
                return None
        # the files on both sides are learnt on the way, so that capture's
        # rev_files for these paths needs no ls-tree with thousands of pathspecs
        # (git matches each entry against each pathspec: 0.6 s for 10,000)
        if NULL_REV in (old_rev, new_rev):
            rev = new_rev if old_rev == NULL_REV else old_rev
            out = self._git(["ls-tree", "-r", "-z", "-l", "--full-tree", rev]).stdout
            paths = [entry.split(b"\t", 1)[1] for entry in out.split(b"\0") if entry]
            sides = {rev: _ls_tree_blobs(out)}
        else:
            out = self._git(
                ["diff", "--raw", "-z", "--no-renames", "--no-abbrev", old_rev, new_rev]
            ).stdout
            paths, sides = self._raw_diff_sides(out, old_rev, new_rev)
        self._changed = (frozenset(paths), sides)
        return sorted(paths)

    def _raw_diff_sides(
        self, out: bytes, old_rev: str, new_rev: str
    ) -> tuple[list[bytes], dict[str, dict[bytes, RevFile]]]:
        """The paths of ``git diff --raw -z`` and the files they name in each revision."""
        fields = out.split(b"\0")
        paths: list[bytes] = []
        found: list[tuple[str, bytes, bytes, bytes]] = []  # rev, path, mode, oid
        for i in range(0, len(fields) - 1, 2):
            # ":old_mode new_mode old_oid new_oid status", then the path
            old_mode, new_mode, old_oid, new_oid, _ = fields[i][1:].split(b" ")
            path = fields[i + 1]
            paths.append(path)
            for rev, mode, oid in ((old_rev, old_mode, old_oid), (new_rev, new_mode, new_oid)):
                if mode not in (b"000000", b"160000"):  # absent, or a submodule
                    found.append((rev, path, mode, oid))
        sizes = self._blob_sizes({oid for _, _, _, oid in found})
        sides: dict[str, dict[bytes, RevFile]] = {old_rev: {}, new_rev: {}}
        for rev, path, mode, oid in found:
            sides[rev][path] = RevFile(sizes[oid], mode == b"120000", oid)
        return paths, sides

    def _blob_sizes(self, oids: set[bytes]) -> dict[bytes, int]:
        if not oids:
            return {}
        out = self._git(["cat-file", "--batch-check"], input=b"\n".join(sorted(oids)) + b"\n")
        sizes: dict[bytes, int] = {}
        for line in out.stdout.splitlines():
            oid, kind, size = line.split(b" ")
            if kind == b"blob":
                sizes[oid] = int(size)
        return sizes

    def close(self) -> None:
        pass


def _ls_tree_blobs(out: bytes) -> dict[bytes, RevFile]:
    """The files of ``git ls-tree -z -l`` output; directories and submodules are no files."""
    found: dict[bytes, RevFile] = {}
    for entry in out.split(b"\0"):
        if not entry:
            continue
        meta, path = entry.split(b"\t", 1)
        mode, kind, oid, size = meta.split()
        if kind != b"blob":
            continue  # a directory or a submodule at that path
        found[path] = RevFile(int(size), mode == b"120000", oid)
    return found
