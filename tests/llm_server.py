"""A real OpenAI-compatible LLM server for the tests: llama.cpp's llama-server and a tiny model.

Three pieces, each usable alone:

- `llama_server_binary()` builds `llama-server` once per machine from the llama.cpp sources
  vendored in the llama-cpp-python sdist (pinned URL + sha256 below: our lock for it) and caches
  the static binary outside the repository (`BINARY_DIR`; `$REDGREEN_TEST_CACHE` moves it). A
  file lock keeps two processes from building twice; a build cut short resumes.
- `write_tiny_model()` writes a 2-layer llama model with random weights (~0.5 MB). Its vocabulary
  is one token per printable ASCII character plus the 256 `<0xXX>` byte fallbacks and the ChatML
  control tokens, so a prompt costs about one token per character. Two hidden units bypass the
  layers (no layer writes to them). One is constant and the output layer reads it as a bias:
  printable ASCII is likely, byte tokens never are, so grammar-constrained (JSON schema)
  answers decode to valid text. The other is set only by the token "." and the output layer
  reads it as "end now": free text ends with `<|im_end|>` right after a ".", so an answer is
  never empty and is a few dozen characters long on average (`max_tokens` caps it).
- `LlamaServer` runs the binary on 127.0.0.1 with `--jinja` (needed for `response_format`
  json_schema / json_object and `chat.completions.parse()`), waits for `/health` and always
  stops the process. Requests may name any model: llama-server serves its one model whatever
  the `model` field says.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

LLAMA_CPP_PYTHON_VERSION = "0.3.36"
SDIST_URL = (
    "https://files.pythonhosted.org/packages/ec/e9/"
    "e7de2b0463ea3ffbf0ede6cb21b58c1258a8f6521aae45ca773a59fe7cf3/"
    f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}.tar.gz"
)
SDIST_SHA256 = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"

# Static, portable (no -march=native), no TLS, no web UI: the prebuilt UI would be fetched from
# Hugging Face, which CI cannot reach. LLAMA_CURL is gone from this llama.cpp (a no-op warning).
CMAKE_ARGS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DGGML_NATIVE=OFF",
    "-DGGML_OPENMP=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
)
BUILD_JOBS = 2


def _cache_root(env: dict[str, str]) -> Path:
    if env.get("REDGREEN_TEST_CACHE"):
        return Path(env["REDGREEN_TEST_CACHE"])
    if env.get("XDG_CACHE_HOME"):
        return Path(env["XDG_CACHE_HOME"]) / "redgreen-tests"
    return Path(env.get("HOME", "~")).expanduser() / ".cache" / "redgreen-tests"


# Read now: the suite's autouse fixture later points HOME and XDG_* at a per-test folder.
CACHE_ROOT = _cache_root(dict(os.environ))
_BUILD_KEY = hashlib.sha256("\n".join((SDIST_SHA256, *CMAKE_ARGS)).encode()).hexdigest()[:8]
BINARY_DIR = CACHE_ROOT / f"llama-server-{LLAMA_CPP_PYTHON_VERSION}-{_BUILD_KEY}"


class LlamaServerError(RuntimeError):
    """The binary could not be built, or the server did not start."""


def llama_server_binary() -> Path:
    """The cached `llama-server` binary, built first if missing (minutes; a note goes to stderr)."""
    binary = BINARY_DIR / "llama-server"
    if binary.exists():
        return binary
    BINARY_DIR.mkdir(parents=True, exist_ok=True)
    with open(BINARY_DIR / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building: wait for it
        if not binary.exists():
            _build(binary)
    return binary


def _build(binary: Path) -> None:
    missing = [tool for tool in ("cmake", "make", "gcc", "g++") if shutil.which(tool) is None]
    if missing:
        raise LlamaServerError(
            f"building llama-server needs {', '.join(missing)} on PATH "
            "(Debian: apt-get install cmake make g++)"
        )
    # In the cache, not a temp dir: a build cut short (a killed test run) resumes where it was.
    work = binary.parent / "work"
    print(
        f"note: building llama-server (llama-cpp-python {LLAMA_CPP_PYTHON_VERSION}) in {work}; "
        "this takes 10-15 minutes on 2 cores, once",
        file=sys.stderr,
        flush=True,
    )
    source = _fetch_sources(work)
    build_dir = work / "build"
    log = work / "build.log"
    steps = [
        ["cmake", "-S", str(source), "-B", str(build_dir), *CMAKE_ARGS],
        ["cmake", "--build", str(build_dir), "--target", "llama-server", f"-j{BUILD_JOBS}"],
    ]
    with open(log, "wb") as out:
        for step in steps:
            done = subprocess.run(step, stdout=out, stderr=subprocess.STDOUT, check=False)
            if done.returncode != 0:
                raise LlamaServerError(
                    f"{' '.join(step[:2])} failed ({done.returncode}); log {log}:\n{_tail(log)}"
                )
    staged = binary.with_name(f".{binary.name}.{os.getpid()}.tmp")
    shutil.copy2(build_dir / "bin" / "llama-server", staged)
    os.replace(staged, binary)
    shutil.rmtree(work)


def _fetch_sources(work: Path) -> Path:
    """Download the pinned sdist, check its sha256, unpack only llama.cpp; return its folder."""
    prefix = f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}/vendor/llama.cpp/"
    source, unpacked = work / "src" / prefix, work / "src" / ".unpacked"
    if unpacked.exists():
        return source
    shutil.rmtree(work / "src", ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    sdist = work / "sdist.tar.gz"
    digest = hashlib.sha256()
    with urllib.request.urlopen(SDIST_URL, timeout=60) as response, open(sdist, "wb") as out:
        while chunk := response.read(1 << 20):
            digest.update(chunk)
            out.write(chunk)
    if digest.hexdigest() != SDIST_SHA256:
        raise LlamaServerError(
            f"{SDIST_URL}: sha256 {digest.hexdigest()}, expected the pinned {SDIST_SHA256}"
        )
    with tarfile.open(sdist) as archive:
        members = [m for m in archive.getmembers() if m.name.startswith(prefix)]
        archive.extractall(work / "src", members=members, filter="data")
    sdist.unlink()
    unpacked.touch()
    return source


# --- the tiny model -------------------------------------------------------------------------

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
_CONTROL = ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]
_BYTES = [f"<0x{b:02X}>" for b in range(256)]
# SentencePiece writes a space as U+2581; every other printable ASCII character is a token.
_ASCII = ["\u2581", *(chr(c) for c in range(0x21, 0x7F))]
TOKENS = [*_CONTROL, *_BYTES, *_ASCII]
IM_END = TOKENS.index("<|im_end|>")

N_EMBD, N_HEAD, N_FF, N_LAYER = 64, 4, 128, 2
CONTEXT_LENGTH = 32768
# Hidden units that bypass the layers (see the module docstring) and their values.
_UNIT_BIAS, _UNIT_END = 0, 1
_CONSTANT, _END_SIGNAL = 4.0, 4.0
_END_CHAR = "."
# Output bias per token, read from the constant unit.
_BIAS_ASCII, _BIAS_AVOID = 1.0, -4.0
# The characters that close a JSON string, item or object are favoured so strings stay short;
# a backtick is avoided so no answer looks like a Markdown code fence.
_BIAS_CHARS = {'"': 1.5, "]": 1.3, "}": 1.3, ",": 1.2, _END_CHAR: 1.3, "`": _BIAS_AVOID}


def write_tiny_model(path: Path, *, seed: int = 0) -> Path:
    """Write the tiny llama model (GGUF, F32) to `path`; the same seed gives the same file."""
    import gguf  # imported here: conftest imports this module for every test run
    import numpy as np

    rng = np.random.default_rng(seed)
    n_vocab = len(TOKENS)

    def normal(shape: tuple[int, ...], std: float) -> np.ndarray[Any, np.dtype[np.float32]]:
        return rng.normal(0.0, std, size=shape).astype(np.float32)

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("redgreen-tiny-test-model")
    writer.add_context_length(CONTEXT_LENGTH)
    writer.add_embedding_length(N_EMBD)
    writer.add_block_count(N_LAYER)
    writer.add_feed_forward_length(N_FF)
    writer.add_head_count(N_HEAD)
    writer.add_head_count_kv(N_HEAD)
    writer.add_rope_dimension_count(N_EMBD // N_HEAD)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_vocab_size(n_vocab)

    writer.add_tokenizer_model("llama")
    writer.add_token_list(TOKENS)
    writer.add_token_scores([0.0] * n_vocab)
    types = [gguf.TokenType.CONTROL] * len(_CONTROL)
    types[0] = gguf.TokenType.UNKNOWN
    types += [gguf.TokenType.BYTE] * len(_BYTES) + [gguf.TokenType.NORMAL] * len(_ASCII)
    writer.add_token_types(types)
    writer.add_unk_token_id(0)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(IM_END)
    writer.add_eot_token_id(IM_END)
    writer.add_add_bos_token(False)
    writer.add_add_eos_token(False)
    # With a space prefix every response_format request gets 400 "Failed to initialize samplers".
    writer.add_add_space_prefix(False)
    writer.add_chat_template(CHATML_TEMPLATE)

    embd = normal((n_vocab, N_EMBD), 1.0)
    embd[:, _UNIT_BIAS] = _CONSTANT
    embd[:, _UNIT_END] = 0.0
    embd[TOKENS.index(_END_CHAR), _UNIT_END] = _END_SIGNAL
    writer.add_tensor("token_embd.weight", embd)
    for i in range(N_LAYER):
        attn_out = normal((N_EMBD, N_EMBD), 0.5 / np.sqrt(N_EMBD))
        attn_out[[_UNIT_BIAS, _UNIT_END], :] = 0.0  # the units bypass the layers
        ffn_down = normal((N_EMBD, N_FF), 0.5 / np.sqrt(N_FF))
        ffn_down[[_UNIT_BIAS, _UNIT_END], :] = 0.0
        tensors = {
            "attn_norm": np.ones(N_EMBD, np.float32),
            "attn_q": normal((N_EMBD, N_EMBD), 1 / np.sqrt(N_EMBD)),
            "attn_k": normal((N_EMBD, N_EMBD), 1 / np.sqrt(N_EMBD)),
            "attn_v": normal((N_EMBD, N_EMBD), 1 / np.sqrt(N_EMBD)),
            "attn_output": attn_out,
            "ffn_norm": np.ones(N_EMBD, np.float32),
            "ffn_gate": normal((N_FF, N_EMBD), 1 / np.sqrt(N_EMBD)),
            "ffn_up": normal((N_FF, N_EMBD), 1 / np.sqrt(N_EMBD)),
            "ffn_down": ffn_down,
        }
        for name, tensor in tensors.items():
            writer.add_tensor(f"blk.{i}.{name}.weight", tensor)
    writer.add_tensor("output_norm.weight", np.ones(N_EMBD, np.float32))

    bias = np.full(n_vocab, _BIAS_AVOID, np.float32)
    bias[len(_CONTROL) + len(_BYTES) :] = _BIAS_ASCII
    for char, value in _BIAS_CHARS.items():
        bias[TOKENS.index(char)] = value
    output = normal((n_vocab, N_EMBD), 0.1)
    output[:, _UNIT_BIAS] = bias
    output[:, _UNIT_END] = 0.0
    output[IM_END, _UNIT_END] = 8.0  # with the end unit set, <|im_end|> outweighs any character
    writer.add_tensor("output.weight", output)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


# --- the server -----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


class LlamaServer:
    """`llama-server` on 127.0.0.1 at a free port, for a `with` block.

    `base_url` is the OpenAI base URL ("http://127.0.0.1:PORT/v1"). Any model name is accepted;
    `/v1/models` lists the model as `alias`. `parallel` slots serve concurrent requests; each
    slot holds `ctx_per_slot` tokens (prompt and answer, about one token per character with the
    tiny model): a longer prompt is a 400 "exceeds the available context size". An answer stops
    at `n_predict` tokens when the request sets no `max_tokens`; one cut by `max_tokens` has
    finish_reason "length" (a JSON answer is then truncated). `temperature=0` answers the same
    request the same way. The server's output goes to `log_path`.

    One compute thread: the model is so small that a second one only waits, and on a busy
    2-core machine ggml's spinning threads made requests 10-40 times slower.
    """

    def __init__(
        self,
        binary: Path,
        model: Path,
        *,
        log_path: Path | None = None,
        parallel: int = 8,
        ctx_per_slot: int = 16384,
        n_predict: int = 1024,
        threads: int = 1,
        alias: str = "tiny",
        startup_timeout: float = 60.0,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.binary = binary
        self.model = model
        self.log_path = log_path or model.with_name(f"{model.stem}.llama-server.log")
        self.port = 0
        self.base_url = ""
        self._args = [
            "--jinja",
            "--parallel", str(parallel),
            "--ctx-size", str(parallel * ctx_per_slot),
            "--n-predict", str(n_predict),
            "--threads", str(threads),
            "--alias", alias,
            "--no-webui",
            "--no-warmup",
            *extra_args,
        ]  # fmt: skip
        self._startup_timeout = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> LlamaServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        # The free port can be taken between our probe and the server's bind: try a few.
        for attempt in range(3):
            self.port = _free_port()
            self.base_url = f"http://127.0.0.1:{self.port}/v1"
            command = [str(self.binary), "-m", str(self.model), "--host", "127.0.0.1"]
            command += ["--port", str(self.port), *self._args]
            with open(self.log_path, "wb") as log:
                self._process = subprocess.Popen(
                    command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
                )
            try:
                self._wait_ready()
                return
            except LlamaServerError:
                exited = self._process.poll() is not None
                self.stop()
                if not exited or "bind" not in _tail(self.log_path) or attempt == 2:
                    raise

    def _wait_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self._startup_timeout
        health = f"http://127.0.0.1:{self.port}/health"
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise LlamaServerError(
                    f"llama-server exited with {self._process.returncode} at start; "
                    f"log {self.log_path}:\n{_tail(self.log_path)}"
                )
            # refused, or 503 while loading
            with (
                contextlib.suppress(OSError, ValueError),
                urllib.request.urlopen(health, timeout=2) as response,
            ):
                if json.load(response).get("status") == "ok":
                    return
            time.sleep(0.05)
        raise LlamaServerError(
            f"llama-server not ready after {self._startup_timeout:.0f} s; "
            f"log {self.log_path}:\n{_tail(self.log_path)}"
        )

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def log_tail(self, lines: int = 30) -> str:
        return _tail(self.log_path, lines)
