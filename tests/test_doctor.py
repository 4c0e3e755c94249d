"""``snapshotter doctor``: a healthy setup passes; each broken thing is flagged with its fix."""

from __future__ import annotations

import shlex
import shutil
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from snapshotter.cli_setup import doctor
from snapshotter.config import add_workspace, load_config
from snapshotter.doctor import (
    DIRECTORY_CAP,
    Check,
    build_program,
    count_directories,
    run_checks,
)
from snapshotter.paths import default_config_file, ensure_private_dir
from tests.repos import Repo

PLENTY = 10_000_000  # an inotify limit no test repository comes near


@pytest.fixture
def healthy(repo: Repo) -> Repo:
    """A configured workspace whose build program exists, and a private data directory."""
    repo.write("src/app.py", "x = 1\n")
    add_workspace(repo.path, f"{shlex.quote(sys.executable)} -m compileall -q src")
    ensure_private_dir(load_config().data_dir)
    return repo


def checks(
    *,
    data_dir: Path | None = None,
    max_user_watches: int = PLENTY,
    min_free_bytes: int = 0,
    directory_cap: int = DIRECTORY_CAP,
) -> dict[str, Check]:
    found = run_checks(
        data_dir=data_dir,
        max_user_watches=max_user_watches,
        min_free_bytes=min_free_bytes,
        directory_cap=directory_cap,
    )
    return {check.name: check for check in found}


def failed(found: dict[str, Check]) -> dict[str, Check]:
    return {name: check for name, check in found.items() if not check.ok}


def test_a_healthy_setup_passes_every_check(healthy: Repo) -> None:
    found = checks()
    assert failed(found) == {}
    names = list(found)
    workspace = f"workspace {healthy.path}"
    assert names == [
        "mercurial",
        "git",
        "config",
        workspace,
        f"build {healthy.path}",
        "inotify watches",
        "data directory",
        "disk space",
    ]
    assert found[workspace].detail == f"{healthy.kind} working copy"
    assert "is private (0700) and writable" in found["data directory"].detail
    assert all(check.fix is None for check in found.values())


def test_the_doctor_command_prints_a_table_and_exits_0_when_healthy(healthy: Repo) -> None:
    limit = Path("/proc/sys/fs/inotify/max_user_watches")
    if limit.exists() and int(limit.read_text()) < 1000:
        pytest.skip("this machine's inotify limit is too low for the real check")
    if shutil.disk_usage(healthy.path).free < 1024**3:
        pytest.skip("less than 1 GiB free here: the real disk check fails")
    result = CliRunner().invoke(doctor, [], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("ok    mercurial")
    assert any(line.startswith("ok    data directory") for line in lines)
    assert "All checks passed." in result.output


def test_a_world_readable_data_dir_is_flagged_with_chmod(healthy: Repo) -> None:
    data_dir = load_config().data_dir
    data_dir.chmod(0o755)
    bad = failed(checks())
    assert list(bad) == ["data directory"]
    assert "readable by group or others (mode 0755)" in bad["data directory"].detail
    assert bad["data directory"].fix == f"chmod 700 {data_dir}"


def test_a_missing_workspace_is_flagged(healthy: Repo, tmp_path: Path) -> None:
    gone = tmp_path / "gone"
    add_workspace(gone, None)
    bad = failed(checks())
    assert list(bad) == [f"workspace {gone}"]
    assert bad[f"workspace {gone}"].detail == "does not exist"
    fix = bad[f"workspace {gone}"].fix
    assert fix is not None and "remove workspace[2] from ~/.config/redgreen/config.toml" in fix


def test_a_folder_that_is_no_working_copy_is_flagged(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    add_workspace(plain, None)
    bad = failed(checks())
    assert bad[f"workspace {plain}"].detail == "is not inside a Mercurial or Git working copy"


def test_a_workspace_below_the_root_is_flagged_with_the_root(repo: Repo) -> None:
    sub = repo.path / "sub"
    sub.mkdir()
    add_workspace(sub, None)
    bad = failed(checks())
    check = bad[f"workspace {sub}"]
    assert f"is inside the {repo.kind} working copy {repo.path.resolve()}" in check.detail
    assert check.fix is not None and f"path = '{repo.path.resolve()}'" in check.fix


def test_a_missing_build_program_is_flagged(healthy: Repo, tmp_path: Path) -> None:
    other = Repo(healthy.kind, tmp_path / "other")
    add_workspace(other.path, "CC=clang redgreen-no-such-compiler --check")
    bad = failed(checks())
    check = bad[f"build {other.path}"]
    assert check.detail == "redgreen-no-such-compiler not found on PATH"
    assert check.fix is not None and "workspace[2].build" in check.fix


def test_a_relative_build_script_is_looked_for_in_the_workspace(repo: Repo) -> None:
    script = repo.write("tools/check.sh", "#!/bin/sh\n")
    add_workspace(repo.path, "./tools/check.sh --fast")
    assert not checks()[f"build {repo.path}"].ok
    script.chmod(0o755)
    assert checks()[f"build {repo.path}"].ok


@pytest.mark.parametrize(
    ("command", "program"),
    [
        ("make -j2", "make"),
        ("CC=clang CFLAGS='-O2 -g' make all", "make"),
        ("  dune build 2>&1", "dune"),
        ("'my tool' --x", "my tool"),
        ("FOO=1", None),
        ("make 'unterminated", None),
        ("# only a comment", None),
    ],
)
def test_the_build_program_is_the_first_word_after_assignments(
    command: str, program: str | None
) -> None:
    assert build_program(command) == program


def test_shell_syntax_first_is_not_flagged(repo: Repo) -> None:
    add_workspace(repo.path, "cd src && make")
    check = checks()[f"build {repo.path}"]
    assert check.ok and "shell syntax" in check.detail


def test_a_low_inotify_limit_is_flagged_with_the_sysctl_fix(healthy: Repo) -> None:
    for n in range(40):
        (healthy.path / "pkg" / f"d{n}").mkdir(parents=True)
    (healthy.path / "node_modules" / "big" / "tree").mkdir(parents=True)
    assert count_directories(healthy.path) == 1 + 1 + 1 + 40  # root, src, pkg, pkg/d*
    assert checks(max_user_watches=86)["inotify watches"].ok
    check = checks(max_user_watches=85)["inotify watches"]
    assert not check.ok
    assert "43 directories to watch" in check.detail
    assert "max_user_watches 85" in check.detail
    assert check.fix == (
        "echo fs.inotify.max_user_watches=524288 | sudo tee /etc/sysctl.d/60-redgreen.conf"
        " && sudo sysctl --system"
    )


def test_directory_counting_stops_at_the_cap(tmp_path: Path) -> None:
    for n in range(30):
        (tmp_path / "tree" / f"d{n}").mkdir(parents=True)
    assert count_directories(tmp_path / "tree", cap=10) == 10
    assert count_directories(tmp_path / "tree") == 31


def test_a_huge_tree_gets_a_bigger_limit_proposed(healthy: Repo) -> None:
    for n in range(20):
        (healthy.path / f"d{n}").mkdir()
    check = checks(max_user_watches=10, directory_cap=5)["inotify watches"]
    assert not check.ok and "more than 5 directories" in check.detail
    assert checks(max_user_watches=1_000_000, directory_cap=300_000)["inotify watches"].ok
    check = checks(max_user_watches=1_000_000, directory_cap=10)["inotify watches"]
    assert check.ok  # 22 directories: well under the cap, well under the limit


def test_no_workspace_is_flagged_with_init() -> None:
    bad = failed(checks())
    assert bad["workspaces"].fix == "snapshotter init PATH"
    assert "inotify watches" not in checks()


def test_a_broken_config_is_flagged_and_the_rest_still_checked() -> None:
    default_config_file().parent.mkdir(parents=True)
    default_config_file().write_text("[agent]\ninterval = 'soon'\n")
    found = checks()
    assert not found["config"].ok
    assert "agent.interval must be a number of seconds > 0" in found["config"].detail
    assert {"mercurial", "git"} <= set(found)
    assert "data directory" not in found  # unknown without a config ...
    assert "data directory" in checks(data_dir=Path.home() / "data")  # ... unless given


def test_a_data_dir_to_be_created_is_fine_if_its_parent_is_writable(healthy: Repo) -> None:
    target = Path.home() / "new" / "data"
    check = checks(data_dir=target)["data directory"]
    assert check.ok and "will be created" in check.detail
    assert not target.exists()  # the doctor only looks


def test_little_free_space_is_flagged(healthy: Repo) -> None:
    check = checks(min_free_bytes=1 << 62)["disk space"]
    assert not check.ok
    assert "retention.max_bytes is 2.0 GiB" in check.detail
    assert check.fix is not None and "retention.max_bytes" in check.fix


def test_git_missing_is_flagged_only_for_git_workspaces(
    healthy: Repo, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    check = checks()["git"]
    assert check.ok == (healthy.kind == "hg")
    assert "git not found on PATH" in check.detail


def test_the_doctor_command_lists_fixes_and_exits_1(healthy: Repo) -> None:
    load_config().data_dir.chmod(0o750)
    result = CliRunner().invoke(doctor, [], catch_exceptions=False)
    assert result.exit_code == 1
    assert "FAIL  data directory" in result.output
    fixes = result.output.split("To fix:\n", 1)[1]
    assert f"  data directory: chmod 700 {load_config().data_dir}" in fixes
