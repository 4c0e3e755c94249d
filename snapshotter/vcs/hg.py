"""Mercurial, in-process through the ``mercurial`` package.

No ``hg`` process per call: ``hg`` alone costs 120-210 ms to start, the
in-process API a few milliseconds.  The repository's own ``.hg/hgrc`` is not
loaded (``HGRCSKIPREPO``): it may name extensions and hooks, and a
repository's files never decide what code runs here.  The user's own
configuration is read as usual.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from mercurial import encoding, error, hg
from mercurial import match as matchmod
from mercurial import ui as uimod

from snapshotter.errors import WorkspaceError
from snapshotter.vcs.base import NULL_REV, BaseInfo, Candidate, RevFile

# mercurial copies os.environ at import; set the switch in its copy
encoding.environ[b"HGRCSKIPREPO"] = b"1"

# what a damaged repository makes Mercurial raise: a corrupt ``.hg/requires`` is a
# RepoError, not an Abort; a truncated dirstate or store an OSError or StorageError
_HG_FAILURES = (error.Abort, error.RepoError, error.StorageError, OSError)

# a filectx sized by rev_files is kept for rev_contents up to this size: it may
# hold the file's text, and a file capture finds too large is never fetched
_KEEP_BYTES = 1024 * 1024


class HgBackend:
    name = "hg"

    def __init__(self, root: Path) -> None:
        self.root = root
        # filectxs of the last rev_files call, kept for the rev_contents that follows it
        self._sized: tuple[str, dict[bytes, Any]] = ("", {})
        ui = uimod.ui.load()
        ui.setconfig(b"ui", b"quiet", b"true", b"redgreen")
        ui.setconfig(b"ui", b"interactive", b"false", b"redgreen")
        ui.setconfig(b"ui", b"paginate", b"false", b"redgreen")
        try:
            self._repo: Any = hg.repository(ui, bytes(root))
        except _HG_FAILURES as exc:
            raise WorkspaceError(f"cannot open Mercurial repository {root}: {_msg(exc)}") from exc

    def refresh(self) -> None:
        self._sized = ("", {})
        self._repo.invalidate()
        self._repo.invalidatedirstate()

    def base(self) -> BaseInfo:
        try:
            ctx = self._repo[b"."]
            bookmark = self._repo._activebookmark
            branch = bookmark if bookmark else ctx.branch()
            return BaseInfo(rev=ctx.hex().decode(), branch=branch.decode("utf-8", "replace"))
        except _HG_FAILURES as exc:
            raise WorkspaceError(f"Mercurial failed in {self.root}: {_msg(exc)}") from exc

    def candidates(self, paths: Sequence[bytes] | None = None) -> list[Candidate]:
        # an exact matcher makes the dirstate stat only these files (a few ms
        # on 100,000 files); a pattern matcher would walk directories
        match = matchmod.exact(list(paths)) if paths is not None else None
        try:
            st = self._repo.status(match=match, unknown=True)
        except _HG_FAILURES as exc:
            raise WorkspaceError(f"hg status failed in {self.root}: {_msg(exc)}") from exc
        tracked = [*st.modified, *st.added, *st.removed, *st.deleted]
        return [Candidate(p, True) for p in tracked] + [Candidate(p, False) for p in st.unknown]

    def tracked_under(self, dirs: Sequence[bytes]) -> list[bytes]:
        prefixes = tuple(d.rstrip(b"/") + b"/" for d in dirs)
        dirstate = self._repo.dirstate
        parent = self._repo[b"."]
        found = {f for f in dirstate if f.startswith(prefixes)}
        found.update(f for f in parent.manifest() if f.startswith(prefixes))
        return sorted(found)

    def ignored(self, paths: Sequence[bytes]) -> set[bytes]:
        dirstate = self._repo.dirstate
        # _ignore matches files, _dirignore a directory or any of its parents
        return {p for p in paths if dirstate._ignore(p) or dirstate._dirignore(p)}

    def _ctx(self, rev: str) -> Any:
        return self._repo.unfiltered()[rev.encode()]

    def rev_files(self, rev: str, paths: Sequence[bytes]) -> dict[bytes, RevFile]:
        self._sized = (rev, {})
        if rev == NULL_REV:
            return {}
        ctx = self._ctx(rev)
        manifest = ctx.manifest()
        found: dict[bytes, RevFile] = {}
        for path in paths:
            try:
                node, flags = manifest.find(path)
            except KeyError:
                continue
            fctx = ctx.filectx(path, fileid=node)
            size = fctx.size()
            found[path] = RevFile(size, b"l" in flags, path)
            if size <= _KEEP_BYTES:
                self._sized[1][path] = fctx
        return found

    def rev_contents(self, rev: str, files: Iterable[RevFile]) -> dict[bytes, bytes]:
        # sizing a file opened its filelog (its own file in the store, the bulk
        # of the cost) and read its text: the same filectx reads it again for free
        sized_rev, sized = self._sized
        if sized_rev != rev:
            sized = {}
        self._sized = (sized_rev, {})
        ctx = self._ctx(rev)
        return {f.key: (sized.get(f.key) or ctx[f.key]).data() for f in files}

    def changed_between(self, old_rev: str, new_rev: str) -> list[bytes] | None:
        repo = self._repo.unfiltered()
        try:
            repo[old_rev.encode()]
        except error.RepoLookupError:
            return None
        st = repo.status(old_rev.encode(), new_rev.encode())
        return sorted({*st.modified, *st.added, *st.removed})

    def close(self) -> None:
        self._repo.close()


def _msg(exc: Exception) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    raw = getattr(exc, "message", None) or (exc.args[0] if exc.args else str(exc))
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return " ".join(text.split())  # one line
