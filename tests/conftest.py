"""Shared fixtures: private XDG folders per test, real repositories of both kinds, leak checks."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fault_proxy import FaultProxy
from tests.llm_server import LlamaServer, llama_server_binary, write_tiny_model
from tests.repos import Repo

VCS_KINDS = ["hg", "git"]


@pytest.fixture(autouse=True)
def _private_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point every default location at this test's folder: no test touches the real home."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local/share"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / ".local/state"))
    monkeypatch.delenv("REDGREEN_DATA_DIR", raising=False)
    monkeypatch.delenv("REDGREEN_CONFIG", raising=False)


@pytest.fixture(autouse=True)
def _no_leaked_threads() -> Iterator[None]:
    """An agent has observer threads and build subprocesses: a test must not leave any behind."""
    before = set(threading.enumerate())
    yield
    leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    for thread in leaked:
        thread.join(timeout=2)
    still = [t.name for t in leaked if t.is_alive()]
    assert not still, f"test leaked threads: {still}"


@pytest.fixture(params=VCS_KINDS)
def repo(request: pytest.FixtureRequest, tmp_path: Path) -> Repo:
    """An empty working copy of each kind in turn."""
    return Repo(request.param, tmp_path / f"ws-{request.param}")


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture(scope="session")
def llm_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LlamaServer]:
    """llama.cpp's llama-server with the tiny model on 127.0.0.1, one for the whole session.

    `.base_url` is the OpenAI base URL; any model name is accepted. The first run on a machine
    builds the binary (minutes; see tests/llm_server.py), with its note shown despite capture.
    """
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        binary = llama_server_binary()
    model = write_tiny_model(tmp_path_factory.mktemp("llm") / "tiny.gguf")
    with LlamaServer(binary, model) as server:
        yield server


@pytest.fixture
def fault_proxy(llm_server: LlamaServer) -> Iterator[FaultProxy]:
    """A recording, fault-injecting proxy in front of `llm_server` (see tests/fault_proxy.py)."""
    with FaultProxy(llm_server.base_url) as proxy:
        yield proxy
