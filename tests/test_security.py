"""Secrets planted everywhere a developer might put them never leave the keyboard.

Files, their diffs, the build's output and the files' *names* carry secrets
from the corpus.  A real agent process records the workspace; then every byte
of the data directory (spool and Parquet), the state directory (status), the
agent's log, and every request the miner makes to a real LLM server (and
writes with --dry-run) are searched for each secret.

``test_no_planted_marker_in_any_byte_written`` does it for hg and git, through
``snapshotter snapshot`` and the running agent, with every corpus secret plus
the forms issue 12 found leaking (tokens after escapes and colour codes, branch
names, a key body past the output cut, registry tokens, a file reached through a
symlinked directory, files to exclude, credentials in --base-url); Parquet is
decoded before it is searched (it is compressed).  A form another part of the
issue fixes is ``xfail(strict=True)`` with that part named in its reason.
"""

from __future__ import annotations

import base64
import json
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from miner.cli import cli as miner_cli
from miner.filters import _NOT_CODE_OUTPUT
from snapshotter.pathnames import to_record
from tests.agent_process import SNAPSHOTTER, AgentProcess, flush, recorded, wait_for
from tests.fault_proxy import FaultProxy
from tests.leak_search import written
from tests.llm_server import LlamaServer
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


# -- the end-to-end byte search: every form, both VCSs, snapshot and run ------------

_NEEDS_FAMILIES = "needs the redaction engine's new families and boundaries (issue 12, redact)"
_NEEDS_READS = "needs symlink confinement of reads (issue 12, reads)"
_NEEDS_EXCLUSIONS = "needs exclusions matched on the real name, case-insensitively (issue 12)"
_NEEDS_URL_MASKING = "needs credentials masked in --base-url (issue 12, miner side)"


def _r(alphabet: str, n: int, seed: str) -> str:
    import random

    rng = random.Random(seed)
    return "".join(rng.choice(alphabet) for _ in range(n))


_A = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_PW = "Zq8v" + _r(_A, 12, "pw")
_PEM_B64 = base64.b64encode(
    ("-----BEGIN RSA PRIVATE KEY-----\n" + _r(_A + "+/", 64, "b64") + "\n"
     "-----END RSA PRIVATE KEY-----\n").encode()
).decode()  # fmt: skip
_BRANCH_TOKEN = "ghp_" + _r(_A, 32, "branch") + "Xy9z"
_CUT_KEY_LINES = [_r(_A + "+/", 64, f"cut{i}") for i in range(64)]
_CUT_KEY = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    + "\n".join(_CUT_KEY_LINES)
    + "\n-----END RSA PRIVATE KEY-----\n"
)


@dataclass(frozen=True)
class Marker:
    """One planted form: ``line`` goes into a file and the build output; ``needles`` must vanish."""

    name: str
    needles: tuple[str, ...]
    line: str = ""
    xfail: str = ""


NEW_FORMS: tuple[Marker, ...] = (
    Marker("token-after-json-escape", (t := "ghp_" + _r(_A, 36, "esc"),), f'{{"m": "a\\n{t}"}}',
           _NEEDS_FAMILIES),
    Marker("token-after-ansi", (t := "ghp_" + _r(_A, 36, "ansi"),), f"\x1b[1m{t}\x1b[0m",
           _NEEDS_FAMILIES),
    Marker("passphrase", (v := _PW + "pp",), f'passphrase = "{v}"', _NEEDS_FAMILIES),
    Marker("db-pass", (v := _PW + "db",), f"DB_PASS={v}", _NEEDS_FAMILIES),
    Marker("mysql-p", (v := _PW + "my",), f"mysql -uroot -p{v} shop", _NEEDS_FAMILIES),
    Marker("curl-u", (v := _PW + "cu",), f"curl -u deploy:{v} https://api.example.org",
           _NEEDS_FAMILIES),
    Marker("url-password-with-slash", (v := "Zq8v/" + _r(_A, 12, "slash"),),
           f"https://app:{v}@db.internal/x", _NEEDS_FAMILIES),
    Marker("aws-secret-without-keyword", (v := _r(_A, 20, "aws1") + "/" + _r(_A, 19, "aws2"),),
           f"{v}", _NEEDS_FAMILIES),
    Marker("base64-private-key", (_PEM_B64,), f"key: {_PEM_B64}", _NEEDS_FAMILIES),
    Marker("npm-token", (v := "npm_" + _r(_A, 36, "npm"),), f"npm publish failed for {v}",
           _NEEDS_FAMILIES),
    Marker("pypi-token", (v := "pypi-AgEIcHlwaS5vcmc" + _r(_A, 60, "pypi"),), f"PYPI={v}",
           _NEEDS_FAMILIES),
    # redacted on their way to disk (branch names, build output): these pass
    Marker("branch-name", (_BRANCH_TOKEN,)),
    Marker("key-body-past-the-output-cut", tuple(_CUT_KEY_LINES)),
    # other parts of issue 12
    Marker("outside-file-through-symlinked-dir", ("OUTSIDE-" + _r(_A, 16, "out"),),
           xfail=_NEEDS_READS),
    Marker("excluded-by-real-name", ("EXCLUDED-KEY-" + _r(_A, 16, "ex1"),),
           xfail=_NEEDS_EXCLUSIONS),
    Marker("excluded-case-insensitively", ("EXCLUDED-ENV-" + _r(_A, 16, "ex2"),),
           xfail=_NEEDS_EXCLUSIONS),
    Marker("dry-run-base-url-password", ("DryRunPw" + _r(_A, 12, "dry"),),
           xfail=_NEEDS_URL_MASKING),
)  # fmt: skip

CORPUS = tuple(Marker(s.name, s.needles) for s in SECRETS)


def _cut_build_output(path: Path) -> Path:
    """A key, then filler so that the last 64 KiB start inside the key's body."""
    filler = "".join(f"compiling module {i:05d}\n" for i in range(64 * 1024 // 23 - 80))
    path.write_text(_CUT_KEY + filler)
    return path


def _env(home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "HOME": str(home),
        "XDG_DATA_HOME": str(home / ".local/share"),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_STATE_HOME": str(home / ".local/state"),
    }


def _has_build(data: Path, status: str, text: str = "") -> bool:
    flush(data)
    return any(
        (r["build"] or {}).get("status") == status and text in (r["diff"] or "")
        for r in recorded(data)
    )


def _plant(repo: Repo, top: Path) -> str:
    """Every marker in the working copy; returns the build command."""
    repo.write("app.py", "VALUE = 1\n")
    repo.write("d/passwd", "root:x:0:0\n")
    repo.commit()
    if repo.kind == "git":
        repo.vcs("checkout", "-q", "-b", f"feature/{_BRANCH_TOKEN}")
    else:
        repo.vcs("bookmark", f"feature/{_BRANCH_TOKEN}")
    outside = top / "outside"
    outside.mkdir()
    (outside / "passwd").write_text(_marker("outside-file-through-symlinked-dir") + "\n")
    shutil.rmtree(repo.path / "d")
    (repo.path / "d").symlink_to(outside)
    repo.write("password=Hunter2Secret.key", _marker("excluded-by-real-name") + "\n")
    repo.write(".ENV", _marker("excluded-case-insensitively") + "\n")
    for secret in NAMEABLE:
        repo.write(f"keys/{secret.value}.txt", "token file\n")
    planted = [s for secret in SECRETS for s in secret.planted()]
    planted += [m.line + "\n" for m in NEW_FORMS if m.line]
    repo.write("settings.py", "".join(planted))
    leak = top / "leak.txt"
    leak.write_text("".join(line for line in planted if not _NOT_CODE_OUTPUT.search(line)))
    cut = _cut_build_output(top / "cut.txt")
    # green: the key past the cut; red: every secret, then the syntax error
    return (
        f"if grep -q 'VALUE = 1$' app.py; then cat {shlex.quote(str(cut))}; "
        f"else cat {shlex.quote(str(leak))}; fi; grep -q 'VALUE = [12]$' app.py || "
        "python3 -c 'import ast,sys; ast.parse(open(\"app.py\").read())'"
    )


def _marker(name: str) -> str:
    return next(m for m in NEW_FORMS if m.name == name).needles[0]


def _scenario(kind: str, mode: str, top: Path, llm: LlamaServer) -> dict[str, bytes]:
    home, data, out = top / "home", top / "data", top / "out"
    home.mkdir()
    env = _env(home)
    repo = Repo(kind, top / "ws")
    build = _plant(repo, top)
    stderr: list[bytes] = []
    steps = [("VALUE = 1\n", "green", "keys/"), ("VALUE = (\n", "red", ""),
             ("VALUE = 2\n", "green", "VALUE = 2")]  # fmt: skip
    if mode == "snapshot":
        for content, _, _ in steps:
            repo.write("app.py", content)
            done = subprocess.run(
                [SNAPSHOTTER, "snapshot", "--workspace", str(repo.path), "--data-dir", str(data),
                 "--build-cmd", build], capture_output=True, env=env, check=False,
            )  # fmt: skip
            stderr.append(done.stdout + done.stderr)
    else:
        log = top / "agent.log"
        agent = AgentProcess(
            ["--workspace", str(repo.path), "--data-dir", str(data), "--interval", "0.5",
             "--build-cmd", build], log, env=env,
        )  # fmt: skip
        try:
            for content, status, text in steps:
                repo.write("app.py", content)
                wait_for(partial(_has_build, data, status, text), timeout=90, what=status)
        finally:
            assert agent.stop() == 0, agent.output()
        stderr.append(log.read_bytes())
    miner = str(Path(SNAPSHOTTER).parent / "miner")
    requests = top / "requests.jsonl"
    with FaultProxy(llm.base_url) as proxy:
        host = proxy.base_url.replace(
            "http://", f"http://u:{_marker('dry-run-base-url-password')}@"
        )
        for args in (
            ["run", "--data-dir", str(data), "--out", str(out)],
            ["describe", "--out", str(out), "--model", "tiny", "--base-url", host,
             "--context-tokens", "2000", "--dry-run", str(requests)],
            ["describe", "--out", str(out), "--model", "tiny", "--base-url", proxy.base_url,
             "--context-tokens", "2000"],
        ):  # fmt: skip
            done = subprocess.run([miner, *args], capture_output=True, env=env, check=False)
            assert done.returncode == 0, done.stderr
            stderr.append(done.stdout + done.stderr)
        sent = json.dumps([r.json for r in proxy.requests]).encode()
        assert proxy.count >= 1 and requests.read_text()
    stored = written(data)
    assert b"[REDACTED:" in stored and b"keys/[REDACTED:" in stored
    return {
        "data dir": stored,
        "state and config": written(home),
        "miner output": written(out),
        "stdout and stderr, logs": b"\n".join(stderr),
        "LLM requests": sent,
        "dry-run requests": requests.read_bytes(),
    }


_SCENARIOS: dict[tuple[str, str], dict[str, bytes]] = {}


@pytest.fixture(scope="module", params=["hg-snapshot", "git-snapshot", "hg-run", "git-run"])
def everything_written(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
    llm_server: LlamaServer,
) -> dict[str, bytes]:  # fmt: skip
    kind, mode = request.param.split("-")
    return _scenario(kind, mode, tmp_path_factory.mktemp(request.param), llm_server)


@pytest.mark.slow
@pytest.mark.parametrize(
    "marker",
    [pytest.param(m, id=m.name) for m in CORPUS]
    + [
        pytest.param(m, id=m.name, marks=pytest.mark.xfail(strict=True, reason=m.xfail))
        if m.xfail
        else pytest.param(m, id=m.name)
        for m in NEW_FORMS
    ],
)
def test_no_planted_marker_in_any_byte_written(
    everything_written: dict[str, bytes], marker: Marker
) -> None:
    for where, blob in everything_written.items():
        for needle in marker.needles:
            assert needle.encode() not in blob, f"{marker.name} reached the {where}"
            assert json.dumps(needle)[1:-1].encode() not in blob, f"{marker.name} in {where}"
