"""config.toml: defaults, merging, every validation message, the commented default, appends."""

from __future__ import annotations

import os
import re
import stat
import tomllib
from dataclasses import replace
from pathlib import Path

import pytest

from miner.settings import DEFAULT_FIX_EXCLUDES, MinerSettings
from snapshotter.capture import DEFAULT_EXCLUDES, CaptureSettings
from snapshotter.config import (
    AgentSettings,
    Config,
    LLMSettings,
    MinerSection,
    RetentionSettings,
    WorkspaceConfig,
    add_workspace,
    default_config_text,
    format_size,
    load_config,
    parse_size,
    write_default_config,
)
from snapshotter.errors import ConfigError
from snapshotter.paths import default_config_file

SHOWN = "~/.config/redgreen/config.toml"  # how messages name the default file


def write(text: str) -> Path:
    path = default_config_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def error_of(text: str) -> str:
    write(text)
    with pytest.raises(ConfigError) as info:
        load_config()
    return str(info.value)


def defaults() -> Config:
    return Config(
        agent=AgentSettings(),
        capture=CaptureSettings(),
        retention=RetentionSettings(),
        workspaces=(),
        data_dir=Path.home() / ".local/share/redgreen",
        source=None,
    )


def test_a_missing_file_means_every_default_and_no_workspace() -> None:
    assert not default_config_file().exists()
    assert load_config() == defaults()
    assert load_config().capture.exclude == DEFAULT_EXCLUDES


def test_the_dataclass_defaults_are_the_documented_ones() -> None:
    agent = AgentSettings()
    assert (agent.interval, agent.debounce, agent.heartbeat, agent.rescan) == (20, 2, 600, 600)
    assert (agent.build_nice, agent.roll_interval, agent.roll_rows) == (10, 3600, 5000)
    assert RetentionSettings() == RetentionSettings(max_bytes=2 * 1024**3, max_age_days=90)
    assert WorkspaceConfig(Path("/w")).build_timeout == 600.0


def test_the_users_values_are_merged_over_the_defaults() -> None:
    path = write(
        """
[agent]
interval = 5
build_nice = 0

[capture]
max_file_size = "256KiB"
exclude = ["*.sqlite", "secrets/**"]

[retention]
max_age_days = 30

[[workspace]]
path = "/src/app"
build = "make -j2"

[[workspace]]
path = "/src/lib"
build_timeout = 30.5
"""
    )
    config = load_config()
    assert config.agent == replace(AgentSettings(), interval=5.0, build_nice=0)
    assert isinstance(config.agent.interval, float)
    assert config.capture.max_file_bytes == 256 * 1024
    assert config.capture.exclude == (*DEFAULT_EXCLUDES, "*.sqlite", "secrets/**")
    assert config.retention == RetentionSettings(max_bytes=2 * 1024**3, max_age_days=30)
    assert config.workspaces == (
        WorkspaceConfig(Path("/src/app"), "make -j2", 600.0),
        WorkspaceConfig(Path("/src/lib"), None, 30.5),
    )
    assert config.source == path


def test_user_excludes_extend_the_built_in_ones_and_never_replace_them() -> None:
    write('[capture]\nexclude = [".env*", "*.log"]\n')
    exclude = load_config().capture.exclude
    assert exclude == (*DEFAULT_EXCLUDES, "*.log")
    assert load_config().capture.excluded("deploy/.env.production")


def test_tilde_is_expanded_in_workspace_paths_and_the_data_dir() -> None:
    write('[agent]\ndata_dir = "~/data/rg"\n\n[[workspace]]\npath = "~/src/app/"\n')
    config = load_config()
    assert config.data_dir == Path.home() / "data/rg"
    assert config.workspaces[0].path == Path.home() / "src/app"


def test_the_environment_overrides_the_configured_data_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    write('[agent]\ndata_dir = "/srv/redgreen"\n')
    assert load_config().data_dir == Path("/srv/redgreen")
    monkeypatch.setenv("REDGREEN_DATA_DIR", str(tmp_path / "elsewhere"))
    assert load_config().data_dir == tmp_path / "elsewhere"


def test_redgreen_config_names_the_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    other = tmp_path / "other.toml"
    other.write_text("[agent]\ninterval = 7\n")
    monkeypatch.setenv("REDGREEN_CONFIG", str(other))
    assert load_config().agent.interval == 7.0
    assert load_config().source == other
    assert load_config(tmp_path / "missing.toml").source is None


def test_the_message_names_the_file_the_key_and_the_value() -> None:
    message = error_of('[agent]\ninterval = "fast"\n')
    assert message == f'{SHOWN}: agent.interval must be a number of seconds > 0, got "fast"'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[agent]\ninterval = 0", "agent.interval must be a number of seconds > 0, got 0"),
        ("[agent]\nheartbeat = -1.5", "agent.heartbeat must be a number of seconds > 0, got -1.5"),
        ("[agent]\nrescan = true", "agent.rescan must be a number of seconds > 0, got true"),
        ("[agent]\nroll_interval = nan", "agent.roll_interval must be a number of seconds > 0"),
        ("[agent]\ndebounce = -1", "agent.debounce must be a number of seconds >= 0, got -1"),
        ("[agent]\nbuild_nice = 25", "agent.build_nice must be an integer niceness from 0 to 19"),
        ("[agent]\nbuild_nice = 1.5", "agent.build_nice must be an integer niceness"),
        ("[agent]\nroll_rows = 0", "agent.roll_rows must be an integer >= 1, got 0"),
        (
            '[agent]\ndata_dir = "data"',
            'agent.data_dir must be an absolute path (or start with ~), got "data"',
        ),
        ("[agent]\ndata_dir = 3", "agent.data_dir must be a path string, got 3"),
        ('[capture]\nmax_file_size = "lots"', "capture.max_file_size must be a size > 0"),
        ('[capture]\nmax_file_size = "1MB"', "(units: B, KiB, MiB, GiB, TiB)"),
        ("[capture]\nmax_file_size = 0", "capture.max_file_size must be a size > 0"),
        (
            '[capture]\nexclude = "*.log"',
            'capture.exclude must be an array of glob strings, got "*.log"',
        ),
        (
            '[capture]\nexclude = ["*.log", 5]',
            "capture.exclude[2] must be a non-empty glob string, got 5",
        ),
        ('[retention]\nmax_bytes = "-2GiB"', "retention.max_bytes must be a size > 0"),
        (
            '[retention]\nmax_age_days = "90"',
            'retention.max_age_days must be an integer number of days >= 1, got "90"',
        ),
        ('[miner]\nsplit_by = "host"', 'miner.split_by must be "time" or "developer", got "host"'),
        (
            "[miner]\ntest_fraction = 1.5",
            "miner.test_fraction must be a number from 0 to 1, got 1.5",
        ),
        ("[miner]\ntest_fraction = true", "miner.test_fraction must be a number from 0 to 1"),
        ("[miner]\nmax_fix_lines = 0", "miner.max_fix_lines must be an integer >= 1, got 0"),
        ('[miner]\nmax_fix_files = "10"', 'miner.max_fix_files must be an integer >= 1, got "10"'),
        ('[miner]\nmax_context_bytes = "lots"', "miner.max_context_bytes must be a size > 0"),
        (
            '[miner]\ndefault_fix_exclude = "no"',
            'miner.default_fix_exclude must be true or false, got "no"',
        ),
        (
            '[miner]\nfix_exclude = "*.lock"',
            'miner.fix_exclude must be an array of glob strings, got "*.lock"',
        ),
        (
            '[miner]\nfix_exclude = ["gen/", "/"]',
            'miner.fix_exclude[2] must be a non-empty glob string, got "/"',
        ),
        ("miner = 5", "miner must be a table ([miner]), got 5"),
        ("agent = 5", "agent must be a table ([agent]), got 5"),
        (
            '[workspace]\npath = "/a"',
            "workspace must be [[workspace]] blocks (an array of tables), got a table",
        ),
        ('[[workspace]]\nbuild = "make"', "workspace[1].path is missing"),
        ('[[workspace]]\npath = "src/app"', "workspace[1].path must be an absolute path"),
        (
            '[[workspace]]\npath = "/a"\n[[workspace]]\npath = "/b"\nbuild = 5',
            "workspace[2].build must be a non-empty string (a shell command), got 5",
        ),
        ('[[workspace]]\npath = "/a"\nbuild = ""', "workspace[1].build must be a non-empty"),
        (
            '[[workspace]]\npath = "/a"\nbuild_timeout = 0',
            "workspace[1].build_timeout must be a number of seconds > 0, got 0",
        ),
    ],
)
def test_every_invalid_value_is_named_with_its_key(text: str, message: str) -> None:
    error = error_of(text + "\n")
    assert error.startswith(f"{SHOWN}: ")
    assert message in error
    assert "\n" not in error


def test_duplicate_workspaces_are_refused_however_they_are_spelled() -> None:
    home = Path.home()
    error = error_of(
        f'[[workspace]]\npath = "~/src/app"\n\n[[workspace]]\npath = "{home}/src/app/"\n'
    )
    assert error == (f"{SHOWN}: workspace[2].path {home}/src/app is the same as workspace[1].path")


def test_duplicates_through_a_symlink_are_refused(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    text = f'[[workspace]]\npath = "{tmp_path}/real"\n[[workspace]]\npath = "{tmp_path}/link"\n'
    assert "workspace[2].path" in error_of(text)


@pytest.mark.parametrize(
    ("first", "second", "relation"),
    [("/src", "/src/app", "is inside"), ("/src/app", "/src", "contains")],
)
def test_nested_workspaces_are_refused(first: str, second: str, relation: str) -> None:
    error = error_of(f'[[workspace]]\npath = "{first}"\n[[workspace]]\npath = "{second}"\n')
    assert error == (
        f"{SHOWN}: workspace[2].path {second} {relation} workspace[1].path {first}:"
        " workspaces must not be nested"
    )


def test_siblings_sharing_a_prefix_are_not_nested() -> None:
    write('[[workspace]]\npath = "/src/app"\n[[workspace]]\npath = "/src/app2"\n')
    assert len(load_config().workspaces) == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[agent]\nintreval = 5", "unknown key agent.intreval (did you mean agent.interval?)"),
        ("[agnet]\ninterval = 5", "unknown key agnet (did you mean agent?)"),
        ("interval = 5", "unknown key interval (did you mean interval under [agent]?)"),
        (
            "[retention]\nmax_age = 5",
            "unknown key retention.max_age (did you mean retention.max_age_days?)",
        ),
        (
            '[[workspace]]\npath = "/a"\nbiuld = "make"',
            "unknown key workspace[1].biuld (did you mean workspace[1].build?)",
        ),
        ("[capture]\ncolour = 1", "unknown key capture.colour"),
        ('[miner]\nsplit = "time"', "unknown key miner.split (did you mean miner.split_by?)"),
        (
            'split_by = "developer"',
            "unknown key split_by (did you mean split_by under [miner]?)",
        ),
        ("[mienr]\ntest_fraction = 0.2", "unknown key mienr (did you mean miner?)"),
    ],
)
def test_unknown_keys_are_errors_with_a_suggestion(text: str, message: str) -> None:
    assert error_of(text + "\n") == f"{SHOWN}: {message}"


def test_a_toml_syntax_error_gives_the_line() -> None:
    error = error_of("[agent]\ninterval = 20\nheartbeat = \n")
    assert error.startswith(f"{SHOWN}: invalid TOML at line 3, column 13: ")
    assert "\n" not in error


def test_a_duplicated_table_is_a_syntax_error_with_its_line() -> None:
    assert "at line 4" in error_of("[agent]\ninterval = 1\n\n[agent]\n")


def test_a_file_that_is_not_utf8_is_named() -> None:
    default_config_file().parent.mkdir(parents=True)
    default_config_file().write_bytes(b"[agent]\n# caf\xe9\n")
    with pytest.raises(ConfigError, match=re.escape(f"{SHOWN}: not UTF-8")):
        load_config()


def test_an_unreadable_config_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path)  # a directory


@pytest.mark.parametrize(
    ("value", "size"),
    [
        (100, 100),
        ("100", 100),
        ("100B", 100),
        ("2GiB", 2 * 1024**3),
        ("512MiB", 512 * 1024**2),
        ("1.5 GiB", 3 * 1024**3 // 2),
        ("64kib", 64 * 1024),
        ("1TiB", 1024**4),
    ],
)
def test_sizes_are_bytes_or_binary_units(value: object, size: int) -> None:
    assert parse_size(value) == size


@pytest.mark.parametrize("value", ["2GB", "2 G", "", "GiB", "-1KiB", 0, -5, True, 1.5, [1]])
def test_other_sizes_are_refused(value: object) -> None:
    write(f"[retention]\nmax_bytes = {_toml(value)}\n")
    with pytest.raises(ConfigError, match=r"retention\.max_bytes must be a size > 0"):
        load_config()


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


def test_format_size_reads_back_as_a_person_would() -> None:
    assert format_size(512) == "512 B"
    assert format_size(1536) == "1.5 KiB"
    assert format_size(2 * 1024**3) == "2.0 GiB"
    assert format_size(5 * 1024**4) == "5120.0 GiB"


# -- the commented default file ----------------------------------------------------------


def test_the_commented_default_file_loads_back_to_the_defaults() -> None:
    path = write_default_config()
    assert path == default_config_file()
    assert path.read_text() == default_config_text()
    config = load_config()
    assert config == replace(defaults(), source=path)


def test_every_key_of_the_commented_default_uncommented_still_gives_the_defaults() -> None:
    text = default_config_text()
    settings, _workspace_example = text.split("\n# [[workspace]]\n", 1)
    uncommented = re.sub(r"(?m)^# (\w+ = .*?)\s+# .*$", r"\1", settings)
    keys = re.findall(r"(?m)^(\w+) = ", uncommented)
    assert set(keys) == {
        "interval",
        "debounce",
        "heartbeat",
        "rescan",
        "build_nice",
        "roll_interval",
        "roll_rows",
        "data_dir",
        "max_file_size",
        "exclude",
        "max_bytes",
        "max_age_days",
        *("model", "base_url", "api_key", "concurrency", "timeout", "max_retries"),
        *("max_tokens_total", "context_tokens"),
        *("split_by", "test_fraction", "max_fix_lines", "max_fix_files", "max_context_bytes"),
        *("fix_exclude", "default_fix_exclude"),
    }
    path = write(uncommented)
    # [llm]'s keys without a default (no model: offline) show examples instead
    examples = LLMSettings(
        model="gpt-4o-mini",
        base_url="http://127.0.0.1:8080/v1",
        api_key="...",
        max_tokens_total=1_000_000,
    )
    assert load_config() == replace(defaults(), source=path, llm=examples)


def test_the_miner_section_defaults_are_the_miners() -> None:
    assert load_config().miner.settings() == MinerSettings()
    section = MinerSection()
    assert (section.fix_exclude, section.default_fix_exclude) == ((), True)


def test_the_miner_section_is_merged_over_the_defaults() -> None:
    write(
        """
[miner]
split_by = "developer"
test_fraction = 0.25
max_fix_lines = 40
max_context_bytes = "16KiB"
fix_exclude = ["gen/", "*.snap"]
"""
    )
    section = load_config().miner
    assert section == MinerSection(
        split_by="developer",
        fix_exclude=("gen/", "*.snap"),
        test_fraction=0.25,
        max_fix_lines=40,
        max_context_bytes=16 * 1024,
    )
    settings = section.settings()
    assert settings == MinerSettings(
        max_fix_lines=40,
        test_fraction=0.25,
        split_by="developer",
        max_context_bytes=16 * 1024,
        fix_exclude=(*DEFAULT_FIX_EXCLUDES, "gen/", "*.snap"),
    )
    assert settings.excluded_from_fix("app/gen/schema.py")
    assert settings.excluded_from_fix("Cargo.lock")
    assert not settings.excluded_from_fix("app/main.py")


def test_the_command_line_overrides_the_miner_section() -> None:
    write('[miner]\nsplit_by = "developer"\nfix_exclude = ["gen/"]\ndefault_fix_exclude = false\n')
    section = load_config().miner
    assert section.settings().fix_exclude == ("gen/",)
    assert section.settings().split_by == "developer"
    flags = section.settings(split_by="time", fix_exclude=("*.snap",), default_fix_exclude=True)
    assert flags.split_by == "time"
    # the command line's globs add to the file's, and it can bring the built-in ones back
    assert flags.fix_exclude == (*DEFAULT_FIX_EXCLUDES, "gen/", "*.snap")
    write('[miner]\nfix_exclude = ["gen/"]\n')
    assert load_config().miner.settings(default_fix_exclude=False).fix_exclude == ("gen/",)


def test_the_workspace_example_in_the_default_file_is_a_valid_block() -> None:
    example = default_config_text().split("\n# [[workspace]]\n", 1)[1]
    block = "[[workspace]]\n" + re.sub(r"(?m)^# (\w+ = .*?)\s+# .*$", r"\1", example)
    workspace = tomllib.loads(block)["workspace"][0]
    assert set(workspace) == {"path", "build", "build_timeout"}
    write(block)
    assert load_config().workspaces == (
        WorkspaceConfig(Path.home() / "src/app", "make -j2", 600.0),
    )


def test_the_default_file_is_private_and_its_folders_are_made(tmp_path: Path) -> None:
    path = write_default_config(tmp_path / "a" / "b" / "config.toml")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == ["config.toml"]  # no temporary left


def test_an_existing_file_is_never_overwritten_by_the_default() -> None:
    path = write("[agent]\ninterval = 3\n")
    assert write_default_config() == path
    assert path.read_text() == "[agent]\ninterval = 3\n"


# -- add_workspace -------------------------------------------------------------------------


def test_add_workspace_writes_the_default_first_and_loads_back(tmp_path: Path) -> None:
    workspace = tmp_path / "src" / "app"
    path = add_workspace(workspace, "make -j2")
    assert path == default_config_file()
    text = path.read_text()
    assert text.startswith(default_config_text())
    assert text.endswith(f'\n[[workspace]]\npath = "{workspace}"\nbuild = "make -j2"\n')
    assert load_config().workspaces == (WorkspaceConfig(workspace, "make -j2"),)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_add_workspace_keeps_the_users_comments_and_layout(tmp_path: Path) -> None:
    original = "# my settings\n[agent]\ninterval   =   10   # faster, please\n"
    path = write(original.rstrip("\n"))  # no final newline either
    add_workspace(tmp_path / "one", None)
    add_workspace(tmp_path / "two", "cargo check")
    text = path.read_text()
    assert text.startswith(original)
    config = load_config()
    assert config.agent.interval == 10.0
    assert config.workspaces == (
        WorkspaceConfig(tmp_path / "one", None),
        WorkspaceConfig(tmp_path / "two", "cargo check"),
    )


@pytest.mark.parametrize(
    "build",
    [
        'make CFLAGS="-O2 -g"',
        "python3 -m compileall -q -x '/\\.' .",
        "echo ünïcödé && true",
        "make\nmake check",
        "printf '\\t\x7f\x01'",
    ],
)
def test_any_build_command_round_trips(tmp_path: Path, build: str) -> None:
    add_workspace(tmp_path / "w", build)
    assert load_config().workspaces[0].build == build


def test_an_empty_build_means_none(tmp_path: Path) -> None:
    add_workspace(tmp_path / "w", "  ")
    assert "\nbuild =" not in default_config_file().read_text()
    assert load_config().workspaces[0].build is None


def test_a_path_with_quotes_and_backslashes_round_trips(tmp_path: Path) -> None:
    odd = tmp_path / 'it\'s a "dir" \\ here'
    add_workspace(odd, None)
    assert load_config().workspaces[0].path == odd


def test_add_workspace_refuses_a_duplicate_and_leaves_the_file_alone(tmp_path: Path) -> None:
    add_workspace(tmp_path / "app", "make")
    before = default_config_file().read_text()
    with pytest.raises(ConfigError, match=r"is already a workspace \(workspace\[1\]\)"):
        add_workspace(tmp_path / "app" / ".", "cargo check")
    assert default_config_file().read_text() == before


def test_add_workspace_refuses_a_nested_workspace(tmp_path: Path) -> None:
    add_workspace(tmp_path / "app", "make")
    with pytest.raises(ConfigError, match=r"workspace\[2\]\.path .* is inside workspace\[1\]"):
        add_workspace(tmp_path / "app" / "sub", None)
    assert len(load_config().workspaces) == 1


def test_add_workspace_refuses_a_relative_path() -> None:
    with pytest.raises(ConfigError, match="must be an absolute path"):
        add_workspace(Path("src/app"), None)
    assert not default_config_file().exists()


def test_add_workspace_refuses_to_append_to_a_broken_file(tmp_path: Path) -> None:
    path = write("[agent]\ninterval = 'x'\n")
    with pytest.raises(ConfigError, match=r"agent\.interval"):
        add_workspace(tmp_path / "w", None)
    assert path.read_text() == "[agent]\ninterval = 'x'\n"


def test_add_workspace_refuses_when_workspace_is_not_an_array_of_tables(tmp_path: Path) -> None:
    path = write('workspace = [{ path = "/a" }]\n')  # valid, but [[workspace]] cannot follow it
    with pytest.raises(ConfigError, match="invalid TOML"):
        add_workspace(tmp_path / "w", None)
    assert path.read_text() == 'workspace = [{ path = "/a" }]\n'


def test_a_symlinked_config_is_edited_where_it_lives(tmp_path: Path) -> None:
    dotfiles = tmp_path / "dotfiles" / "redgreen.toml"
    dotfiles.parent.mkdir()
    dotfiles.write_text("[agent]\n")
    dotfiles.chmod(0o640)
    link = default_config_file()
    link.parent.mkdir(parents=True)
    link.symlink_to(dotfiles)
    add_workspace(tmp_path / "w", "make")
    assert link.is_symlink()
    assert "[[workspace]]" in dotfiles.read_text()
    assert stat.S_IMODE(dotfiles.stat().st_mode) == 0o640  # the user's mode is kept
    assert load_config().workspaces == (WorkspaceConfig(tmp_path / "w", "make"),)
    assert not [p for p in dotfiles.parent.iterdir() if p.name.endswith(".tmp")]


def test_add_workspace_to_a_given_file(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "redgreen.toml"
    assert add_workspace(tmp_path / "w", "make", path) == path
    assert load_config(path).workspaces == (WorkspaceConfig(tmp_path / "w", "make"),)
    assert not default_config_file().exists()
    assert os.access(path, os.R_OK)
