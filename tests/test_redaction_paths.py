"""Every path to disk, to a log and to the terminal goes through redaction, for real.

- a build that prints a private key and then more than the 64 KiB cap: the cut
  falls inside the key, and no line of its body reaches the spool or Parquet;
- a git branch or hg bookmark named ``feature/ghp_...``: the rows (state and
  ``base``), the spool, the status file and the log hold no token, for
  ``snapshotter snapshot`` and the running agent;
- a file the agent cannot read, named with a token: the real process (run in a
  user namespace where root has no power over the file's owner, so the read
  really fails) warns about it, and its stderr holds no token;
- an error message naming such a path, shown by click, is redacted.
"""

from __future__ import annotations

import logging
import os
import random
import shlex
import shutil
import string
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from snapshotter.build import BuildLimits, run_build
from snapshotter.log_redaction import RedactingFilter, install
from snapshotter.record import Identity
from snapshotter.snapshot import SnapshotOptions, take_snapshot
from tests.agent_process import SNAPSHOTTER, AgentProcess, flush, recorded, wait_for
from tests.leak_search import written
from tests.repos import VCS_ENV, Repo

_RNG = random.Random(1212)
ALNUM = string.ascii_letters + string.digits
B64 = ALNUM + "+/"
TOKEN = "ghp_" + "".join(_RNG.choice(ALNUM) for _ in range(32)) + "Ab9z"
OTHER_UID = 12345  # owns the unreadable file; not mapped in the test's user namespace


def _key(lines: int) -> str:
    body = "\n".join("".join(_RNG.choice(B64) for _ in range(64)) for _ in range(lines))
    return f"-----BEGIN RSA PRIVATE KEY-----\n{body}\n-----END RSA PRIVATE KEY-----\n"


KEY = _key(64)  # 4 KiB
KEY_BODY = [line for line in KEY.splitlines() if "-" not in line]


def _key_then_filler(tmp_path: Path, cap: int) -> Path:
    """A file whose last ``cap`` bytes start in the middle of the key's body."""
    filler_line = "filler: compiling module number 0000\n"
    filler = "".join(filler_line.replace("0000", f"{i:04d}") for i in range(cap // 37 - 40))
    printed = tmp_path / "printed.txt"
    printed.write_text("build starting\n" + KEY + filler + "error: build failed\n")
    total = printed.stat().st_size
    key_at = printed.read_text().index("-----BEGIN")
    assert key_at < total - cap < key_at + len(KEY) - 100, "the cut must fall inside the key"
    return printed


# -- build output: redacted, then cut ------------------------------------------


def test_a_cut_inside_a_private_key_keeps_no_line_of_its_body(tmp_path: Path) -> None:
    printed = _key_then_filler(tmp_path, 64 * 1024)
    out = run_build(f"cat {shlex.quote(str(printed))}; exit 1", tmp_path, BuildLimits(10.0))
    assert out.status == "red"
    assert out.output.startswith("[redgreen: ") and "bytes of output cut]" in out.output
    assert out.output.endswith("error: build failed\n")
    for line in KEY_BODY:
        assert line not in out.output
    # what is kept is the tail, on whole lines, within the cap
    kept = out.output.partition("\n")[2]
    assert len(kept.encode()) <= 64 * 1024
    assert kept.startswith(("filler: ", "[REDACTED:"))


@pytest.mark.parametrize("kind", ["hg", "git"])
def test_a_key_body_past_the_cut_reaches_neither_spool_nor_parquet(
    kind: str, tmp_path: Path
) -> None:
    repo = Repo(kind, tmp_path / "ws")
    repo.write("a.py", "x = 1\n")
    repo.commit()
    repo.write("a.py", "x = 2\n")
    printed = _key_then_filler(tmp_path, 64 * 1024)
    data = tmp_path / "data"
    options = SnapshotOptions(build_command=f"cat {shlex.quote(str(printed))}; exit 1")
    report = take_snapshot(repo.path, data, options, Identity("h", "u"))
    assert report.build_status == "red"
    (row,) = [r for r in recorded(data) if r["build"]]
    assert "error: build failed" in row["build"]["output"]
    stored = written(data)
    for line in KEY_BODY:
        assert line.encode() not in stored


# -- branch and bookmark names -------------------------------------------------


def _on_secret_branch(kind: str, path: Path) -> Repo:
    repo = Repo(kind, path)
    repo.write("a.py", "x = 1\n")
    repo.commit()
    if kind == "git":
        repo.vcs("checkout", "-q", "-b", f"feature/{TOKEN}")
    else:
        repo.vcs("bookmark", f"feature/{TOKEN}")
    return repo


@pytest.mark.parametrize("kind", ["hg", "git"])
def test_a_branch_named_with_a_token_is_recorded_redacted(kind: str, tmp_path: Path) -> None:
    repo = _on_secret_branch(kind, tmp_path / "ws")
    data = tmp_path / "data"
    repo.write("a.py", "x = 2\n")
    take_snapshot(repo.path, data, SnapshotOptions(), Identity("h", "u"))
    # a commit on that branch: the next snapshot records a ``base`` row too
    repo.commit()
    repo.write("a.py", "x = 3\n")
    take_snapshot(repo.path, data, SnapshotOptions(), Identity("h", "u"))
    rows = recorded(data)
    assert {r["reason"] for r in rows} >= {"base"}
    assert {r["branch"] for r in rows} == {"feature/[REDACTED:github-token]"}
    assert TOKEN.encode() not in written(data)


def _hg_branch_repo(path: Path) -> Repo:
    repo = Repo("hg", path)
    repo.vcs("branch", f"feature/{TOKEN}")
    repo.write("a.py", "x = 1\n")
    repo.commit()
    return repo


def test_an_hg_named_branch_with_a_token_is_recorded_redacted(tmp_path: Path) -> None:
    repo = _hg_branch_repo(tmp_path / "ws")
    repo.write("a.py", "x = 2\n")
    data = tmp_path / "data"
    take_snapshot(repo.path, data, SnapshotOptions(), Identity("h", "u"))
    assert [r["branch"] for r in recorded(data)] == ["feature/[REDACTED:github-token]"]
    assert TOKEN.encode() not in written(data)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["hg", "git"])
def test_the_running_agent_records_a_token_branch_redacted(kind: str, tmp_path: Path) -> None:
    repo = _on_secret_branch(kind, tmp_path / "ws")
    data, log = tmp_path / "data", tmp_path / "agent.log"
    agent = AgentProcess(
        ["--workspace", str(repo.path), "--data-dir", str(data), "--interval", "0.3"], log
    )
    try:
        repo.write("a.py", "x = 2\n")
        wait_for(lambda: (flush(data), recorded(data))[1], timeout=60, what="a row")
        repo.commit()
        wait_for(
            lambda: any(r["reason"] == "base" for r in (flush(data), recorded(data))[1]),
            timeout=60,
            what="a base row",
        )
        status = subprocess.run(
            [SNAPSHOTTER, "status", "--json"], capture_output=True, check=True
        ).stdout
    finally:
        assert agent.stop() == 0, agent.output()
    rows = recorded(data)
    assert {r["branch"] for r in rows} == {"feature/[REDACTED:github-token]"}
    for where, blob in {
        "data": written(data),
        "state": written(tmp_path / "home"),
        "status": status,
        "log": log.read_bytes(),
    }.items():
        assert TOKEN.encode() not in blob, f"the token reached the {where}"


# -- logs and errors -----------------------------------------------------------


def _in_user_namespace(argv: Sequence[str]) -> list[str]:
    """``argv`` as root of a new user namespace: root there has no power over a file
    whose owner the namespace does not map, so a 0000 file really cannot be read."""
    return ["unshare", "--user", "--map-root-user", *argv]


def _unshare_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    done = subprocess.run(
        ["unshare", "--user", "--map-root-user", "true"], capture_output=True, check=False
    )
    return done.returncode == 0


needs_userns = pytest.mark.skipif(not _unshare_works(), reason="needs user namespaces")


def _plant_unreadable(repo: Repo) -> Path:
    secret_file = repo.write(f"keys/{TOKEN}.txt", "token file\n")
    os.chown(secret_file, OTHER_UID, OTHER_UID)
    secret_file.chmod(0o000)
    return secret_file


@needs_userns
@pytest.mark.parametrize("kind", ["hg", "git"])
def test_snapshot_warns_about_an_unreadable_token_named_file_without_the_token(
    kind: str, tmp_path: Path
) -> None:
    repo = Repo(kind, tmp_path / "ws")
    repo.write("a.py", "x = 1\n")
    repo.commit()
    _plant_unreadable(repo)
    repo.write("a.py", "x = 2\n")
    data = tmp_path / "data"
    done = subprocess.run(
        _in_user_namespace(
            [SNAPSHOTTER, "snapshot", "--workspace", str(repo.path), "--data-dir", str(data)]
        ),
        capture_output=True,
        env={**VCS_ENV, "HOME": str(tmp_path / "home")},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    stderr = done.stderr.decode()
    assert "cannot read" in stderr and "keys/[REDACTED:github-token].txt" in stderr, stderr
    assert TOKEN not in stderr + done.stdout.decode()
    assert TOKEN.encode() not in written(data)


@pytest.mark.slow
@needs_userns
@pytest.mark.parametrize("kind", ["hg", "git"])
def test_the_agent_log_names_an_unreadable_token_file_redacted(kind: str, tmp_path: Path) -> None:
    repo = Repo(kind, tmp_path / "ws")
    repo.write("a.py", "x = 1\n")
    repo.commit()
    data, log = tmp_path / "data", tmp_path / "agent.log"
    agent = AgentProcess(
        ["--workspace", str(repo.path), "--data-dir", str(data), "--interval", "0.3"],
        log,
        wrapper=_in_user_namespace([]),
    )
    try:
        _plant_unreadable(repo)
        repo.write("a.py", "x = 2\n")
        wait_for(lambda: "cannot read" in agent.output(), timeout=60, what="the warning")
    finally:
        assert agent.stop() == 0, agent.output()
    assert "keys/[REDACTED:github-token].txt" in agent.output()
    assert TOKEN not in agent.output()


def test_a_cli_error_naming_a_token_path_is_redacted(tmp_path: Path) -> None:
    missing = tmp_path / f"ws-{TOKEN}"
    done = subprocess.run(
        [SNAPSHOTTER, "snapshot", "--workspace", str(missing), "--data-dir", str(tmp_path / "d")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1 and "does not exist" in done.stderr, done.stderr
    assert TOKEN not in done.stderr and "[REDACTED:github-token]" in done.stderr


def test_a_miner_error_naming_a_token_path_is_redacted(tmp_path: Path) -> None:
    miner = str(Path(SNAPSHOTTER).parent / "miner")
    missing = tmp_path / f"data-{TOKEN}" / "nope"
    done = subprocess.run(
        [miner, "run", "--data-dir", str(missing), "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1 and "does not exist" in done.stderr, done.stderr
    assert TOKEN not in done.stderr + done.stdout and "[REDACTED:" in done.stderr


def test_the_filter_redacts_arguments_exceptions_and_stacks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    logger = logging.getLogger("redgreen-test-filter")
    handler = logging.StreamHandler()
    handler.addFilter(RedactingFilter())
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("cannot read %s: %s", f"/w/{TOKEN}.txt", "Permission denied")
        try:
            raise OSError(f"no such file: /w/{TOKEN}")
        except OSError:
            logger.exception("failed on %r", {"token": TOKEN})
        logger.warning("where", stack_info=True, extra={"x": TOKEN})
    finally:
        logger.removeHandler(handler)
    err = capsys.readouterr().err
    assert "cannot read /w/[REDACTED:github-token].txt: Permission denied" in err
    assert "OSError: no such file: /w/[REDACTED:github-token]" in err
    assert TOKEN not in err


def test_warnings_go_through_the_redacting_handler(capsys: pytest.CaptureFixture[str]) -> None:
    import warnings

    root = logging.getLogger()
    handler = logging.StreamHandler()
    root.addHandler(handler)
    try:
        with warnings.catch_warnings():  # pytest records warnings: let them be shown
            warnings.simplefilter("always")
            install()
            assert any(isinstance(f, RedactingFilter) for f in handler.filters)
            install()  # idempotent: one filter per handler
            assert sum(isinstance(f, RedactingFilter) for f in handler.filters) == 1
            warnings.warn(f"deprecated path /w/{TOKEN}", UserWarning, stacklevel=1)
    finally:
        root.removeHandler(handler)
        logging.captureWarnings(False)
    err = capsys.readouterr().err
    assert "deprecated path /w/[REDACTED:github-token]" in err and TOKEN not in err


def test_status_strings_are_redacted_but_the_data_dir_kept() -> None:
    from snapshotter.log_redaction import redact_strings

    status = {"data_dir": f"/d/{TOKEN}", "workspaces": [{"error": f"cannot open /w/{TOKEN}"}]}
    assert redact_strings(status, keep=frozenset({"data_dir"})) == {
        "data_dir": f"/d/{TOKEN}",
        "workspaces": [{"error": "cannot open /w/[REDACTED:github-token]"}],
    }
