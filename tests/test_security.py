"""Secrets planted everywhere a developer might put them never leave the keyboard.

Files, their diffs, the build's output and the files' *names* carry secrets
from the corpus.  A real agent process records the workspace; then every byte
of the data directory (spool and Parquet), the state directory (status), the
agent's log, and every request the miner makes to a real LLM server (and
writes with --dry-run) are searched for each secret.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from miner.cli import cli as miner_cli
from miner.filters import _NOT_CODE_OUTPUT
from snapshotter.pathnames import to_record
from tests.agent_process import AgentProcess, flush, recorded, wait_for
from tests.fault_proxy import FaultProxy
from tests.repos import Repo
from tests.secrets_corpus import SECRETS, Secret

# Secrets whose format gives them away, so a file name alone shows them; a bare
# random string (a password without its "password=") cannot be told from any name.
NAMEABLE = tuple(
    s
    for s in SECRETS
    if len(s.value) < 200 and not any(c in s.value for c in "/\n \"'=:@")
    if to_record(s.value.encode()) != s.value
)


def test_the_nameable_corpus_covers_every_token_family() -> None:
    families = {s.name.split("-")[0] for s in NAMEABLE}
    assert {"aws", "github", "gitlab", "slack", "stripe", "google", "openai", "jwt"} <= families


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(NAMEABLE),
    st.text(st.characters(blacklist_characters="/\x00"), max_size=12),
    st.sampled_from(["/", " ", "=", "(", "@", "+", ","]),
    st.sampled_from(["", ".txt", ".json", ".pem", "_backup", "-old.env"]),
    st.sampled_from(["", "keys/", "deploy/config/", "a b/"]),
)
def test_a_secret_in_a_file_name_is_never_recorded(
    secret: Secret, prefix: str, separator: str, suffix: str, directory: str
) -> None:
    # The secret starts the name or follows a separator.  Known limit, the same
    # as in file contents: a token glued to a word by "_", "-" or "."
    # ("backup_ghp_...") has no word boundary before it and is not recognised.
    name = f"{directory}{prefix}{separator if prefix else ''}{secret.value}{suffix}"
    recorded_name = to_record(name.encode("utf-8", "surrogatepass"))
    assert secret.value not in recorded_name
    assert "[REDACTED:" in recorded_name


def searched(root: Path) -> bytes:
    """Every byte of every file under ``root``."""
    return b"\n".join(p.read_bytes() for p in root.rglob("*") if p.is_file())


def test_secrets_in_files_names_diffs_builds_never_reach_disk_logs_or_the_llm(
    tmp_path: Path, fault_proxy: FaultProxy
) -> None:
    repo = Repo("git", tmp_path / "ws")
    repo.write("app.py", "VALUE = 1\n")
    repo.commit()
    planted = [snippet for secret in SECRETS for snippet in secret.planted()]
    leak = tmp_path / "leak.txt"
    # lines that would make the miner drop the episode as "not a code error" (a
    # snippet with timeout=3) stay out of the build output: the episode must be kept
    # to reach the LLM; every secret still appears in its other snippets
    printed = [line for line in planted if not _NOT_CODE_OUTPUT.search(line)]
    leak.write_text("\n".join(printed) + "\n")
    # the build prints every secret, then fails while app.py is broken
    build = (
        f"cat {shlex.quote(str(leak))}; grep -q 'VALUE = 1$' app.py || "
        "python3 -c 'import ast,sys; ast.parse(open(\"app.py\").read())'"
    )
    data, log = tmp_path / "data", tmp_path / "agent.log"
    agent = AgentProcess(
        ["--workspace", str(repo.path), "--data-dir", str(data), "--interval", "0.5",
         "--build-cmd", build],
        log,
    )  # fmt: skip
    try:
        # green -> red (secrets in a file's content and in named files) -> green
        for secret in NAMEABLE:
            repo.write(f"keys/{secret.value}.txt", "token file\n")
        repo.write("settings.py", "\n".join(planted) + "\n")
        wait_for(
            lambda: any(
                (r["build"] or {}).get("status") == "green" and "keys/" in (r["diff"] or "")
                for r in (flush(data), recorded(data))[1]
            ),
            timeout=60,
            what="a green build with the secrets",
        )
        repo.write("app.py", "VALUE = (\n")
        wait_for(
            lambda: any(
                (r["build"] or {}).get("status") == "red" for r in (flush(data), recorded(data))[1]
            ),
            timeout=60,
            what="a red build",
        )
        repo.write("app.py", "VALUE = 2\n")
        wait_for(
            lambda: any(
                (r["build"] or {}).get("status") == "green" and "VALUE = 2" in (r["diff"] or "")
                for r in (flush(data), recorded(data))[1]
            ),
            timeout=60,
            what="the green fix",
        )
    finally:
        assert agent.stop() == 0, agent.output()

    out = tmp_path / "out"
    runner = CliRunner()
    mined = runner.invoke(miner_cli, ["run", "--data-dir", str(data), "--out", str(out)])
    assert mined.exit_code == 0, mined.output
    requests = tmp_path / "requests.jsonl"
    for extra in (["--dry-run", str(requests)], []):
        described = runner.invoke(
            miner_cli,
            ["describe", "--out", str(out), "--model", "tiny", "--base-url",
             fault_proxy.base_url, "--context-tokens", "2000", *extra],
        )  # fmt: skip
        assert described.exit_code == 0, described.output
    sent = json.dumps([r.json for r in fault_proxy.requests]).encode()
    assert fault_proxy.count >= 1 and requests.read_text(), mined.output + described.output

    stored = searched(data) + searched(tmp_path / "home") + searched(out)
    everything = {
        "data, state and miner output": stored,
        "agent log": log.read_bytes(),
        "LLM requests": sent,
        "dry-run requests": requests.read_bytes(),
    }
    assert b"[REDACTED:" in stored and b"keys/[REDACTED:" in stored
    for secret in SECRETS:
        for where, blob in everything.items():
            for needle in secret.needles:
                assert needle.encode() not in blob, f"{secret.name} reached the {where}"
                # the JSON of requests escapes some characters: search that form too
                assert json.dumps(needle)[1:-1].encode() not in blob, f"{secret.name} in {where}"


@pytest.mark.parametrize("kind", ["hg", "git"])
def test_a_secret_named_file_is_recorded_under_a_redacted_name(kind: str, tmp_path: Path) -> None:
    from snapshotter.record import Identity
    from snapshotter.snapshot import SnapshotOptions, take_snapshot

    repo = Repo(kind, tmp_path / "ws")
    repo.write("a.py", "x = 1\n")
    repo.commit()
    token = next(s for s in NAMEABLE if s.name == "github-ghp_").value
    repo.write(f"keys/{token}.txt", "hello\n")
    data = tmp_path / "data"
    take_snapshot(repo.path, data, SnapshotOptions(), Identity("h", "u"))
    (row,) = recorded(data)
    paths = [f["path"] for f in row["files"]]
    assert paths == ["keys/[REDACTED:github-token].txt"]
    assert token not in row["diff"] and "+hello" in row["diff"]
    assert token.encode() not in searched(data)


# every address the process connects a socket to, printed at exit
CONNECT_GUARD = """
import sys
connected = []
def hook(event, args):
    if event == "socket.connect":
        connected.append(args[1])
sys.addaudithook(hook)
from miner.cli import cli
try:
    cli(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
print("CONNECTED", sorted(set(map(str, connected))), "CODE", code)
"""


def test_the_miner_connects_only_to_the_configured_base_url(
    tmp_path: Path, fault_proxy: FaultProxy
) -> None:
    from tests.llm_episodes import write_kept_episodes

    data = write_kept_episodes(tmp_path / "data", 2)
    args = [
        "run", "--data-dir", str(data), "--out", str(tmp_path / "out"), "--model", "tiny",
        "--base-url", fault_proxy.base_url, "--context-tokens", "300",
    ]  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", CONNECT_GUARD, *args], capture_output=True, text=True, check=False
    )
    last = done.stdout.splitlines()[-1]
    assert last == f"CONNECTED {[str(('127.0.0.1', fault_proxy.port))]} CODE 0", (
        done.stdout + done.stderr
    )
    assert fault_proxy.count == 4
