"""A reverse proxy that records requests and injects faults, in front of a real LLM server.

    with FaultProxy("http://127.0.0.1:8080/v1") as proxy:
        proxy.inject(status(429, retry_after=1), drop())  # the next two requests, in order
        proxy.always(reject_json_schema())                # then every request (None clears it)
        OpenAI(base_url=proxy.base_url, api_key="test")...
        proxy.requests[0].json["messages"], proxy.count

One handler thread per connection (`ThreadingHTTPServer`, HTTP/1.1 keep-alive); each request
is forwarded on a fresh `http.client` connection and the answer relayed as it arrives, so
streamed answers stream. Leaving the `with` block stops the server, closes the connections
clients still hold open in their pools, and joins every thread.

Faults (built by the functions below) apply to one request each, queued ones first:
`status` answers an OpenAI-style error, `drop` closes the connection without an answer, `cut`
relays the headers and half the body then closes, `reject_json_schema` answers 400 only when
the request asks for `response_format.type == "json_schema"` (`reject_response_format` for
any `response_format`), `reply` answers a well-formed
chat completion (streamed if asked) with the given content, `delay` waits then forwards.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

# Not relayed: they describe one hop, and the proxy frames each answer itself.
_HOP_HEADERS = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "content-length",
}


@dataclass(frozen=True)
class Fault:
    kind: str
    code: int = 0
    retry_after: float | None = None
    content: str = ""
    seconds: float = 0.0


def status(code: int, *, retry_after: float | None = None) -> Fault:
    """Answer `code` with an OpenAI-style error body (and `Retry-After` if given)."""
    return Fault("status", code=code, retry_after=retry_after)


def drop() -> Fault:
    """Read the request, then close the connection without answering."""
    return Fault("drop")


def cut() -> Fault:
    """Forward the request; relay the headers and half the answer's body, then close."""
    return Fault("cut")


def reject_json_schema() -> Fault:
    """400 for a `json_schema` response format, like a server without structured output."""
    return Fault("reject_json_schema", code=400)


def reject_response_format() -> Fault:
    """400 for any `response_format`, like a server with neither structured output nor JSON mode."""
    return Fault("reject_response_format", code=400)


def reply(content: str, *, after: float = 0.0) -> Fault:
    """Answer a chat completion with `content`, `after` seconds (upstream is not called)."""
    return Fault("reply", content=content, seconds=after)


def delay(seconds: float) -> Fault:
    """Wait `seconds` (cut short when the proxy stops), then forward."""
    return Fault("delay", seconds=seconds)


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    json: Any  # the parsed body, None when there is none or it is not JSON
    fault: Fault | None  # the fault applied to it, if any


class FaultProxy:
    """A recording, fault-injecting proxy on 127.0.0.1 at a free port, for a `with` block."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or parts.hostname is None or parts.port is None:
            raise ValueError(f"upstream must be http://HOST:PORT[/path], not {upstream!r}")
        self.upstream_host, self.upstream_port = parts.hostname, parts.port
        self._prefix = parts.path.rstrip("/")
        self.requests: list[RecordedRequest] = []
        self._faults: deque[Fault] = deque()
        self._rule: Fault | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self._prefix}"

    @property
    def count(self) -> int:
        return len(self.requests)

    def inject(self, *faults: Fault) -> None:
        """Apply these faults to the next requests, one each, in order."""
        with self._lock:
            self._faults.extend(faults)

    def always(self, fault: Fault | None) -> None:
        """Apply `fault` to every request the queue leaves alone; None forwards them again."""
        with self._lock:
            self._rule = fault

    def __enter__(self) -> FaultProxy:
        self._server = _Server(("127.0.0.1", 0), _Handler, self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fault-proxy"
        )
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._server = self._thread = None
        self._stopping.set()
        server.shutdown()
        thread.join()
        server.close_connections()
        server.server_close()  # joins the handler threads

    def _record(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> RecordedRequest:
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        with self._lock:
            fault = self._faults.popleft() if self._faults else self._rule
            recorded = RecordedRequest(method, path, headers, parsed, fault)
            self.requests.append(recorded)
        return recorded


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins them
    block_on_close = True

    def __init__(
        self, address: tuple[str, int], handler: type[_Handler], proxy: FaultProxy
    ) -> None:
        self.proxy = proxy
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, handler)

    def track(self, sock: socket.socket, alive: bool) -> None:
        with self._open_lock:
            if alive:
                self._open.add(sock)
            else:
                self._open.discard(sock)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], OSError):  # a client hanging up is no error
            super().handle_error(request, client_address)

    def close_connections(self) -> None:
        """Wake handler threads waiting for the next request on a kept-alive connection."""
        with self._open_lock:
            for sock in self._open:
                with contextlib.suppress(OSError):  # already closed
                    sock.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    _started = False  # the answer's status line is out: too late for an error answer

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: the tests read proxy.requests

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def _handle(self) -> None:
        self._started = False
        proxy = self.server.proxy
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {key.lower(): value for key, value in self.headers.items()}
        request = proxy._record(self.command, self.path, headers, body)
        fault = request.fault
        if fault is None or fault.kind == "delay":
            if fault is not None and proxy._stopping.wait(fault.seconds):
                self.close_connection = True
                return
            self._forward(body)
        elif fault.kind == "status":
            self._error(fault.code, "injected by FaultProxy", fault.retry_after)
        elif fault.kind == "drop":
            self.close_connection = True
        elif fault.kind == "cut":
            self._forward(body, cut=True)
        elif fault.kind == "reject_json_schema":
            format_ = (request.json or {}).get("response_format") or {}
            if isinstance(format_, dict) and format_.get("type") == "json_schema":
                self._error(400, "response_format type json_schema is not supported", None)
            else:
                self._forward(body)
        elif fault.kind == "reject_response_format":
            if (request.json or {}).get("response_format"):
                self._error(400, "response_format is not supported", None)
            else:
                self._forward(body)
        elif fault.kind == "reply":
            if fault.seconds and proxy._stopping.wait(fault.seconds):
                self.close_connection = True
                return
            self._reply(fault.content, request.json or {})
        else:
            raise AssertionError(f"unknown fault {fault.kind}")

    def _forward(self, body: bytes, *, cut: bool = False) -> None:
        proxy = self.server.proxy
        upstream = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=120)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_HEADERS}
            headers["Content-Length"] = str(len(body))
            upstream.request(self.command, self.path, body=body or None, headers=headers)
            response = upstream.getresponse()
            relayed = [(k, v) for k, v in response.getheaders() if k.lower() not in _HOP_HEADERS]
            if cut:
                whole = response.read()
                self._start(response.status, relayed, {"Content-Length": str(len(whole))})
                self.wfile.write(whole[: len(whole) // 2])
                self.wfile.flush()
                self.close_connection = True
            elif response.getheader("Content-Length") is not None:
                whole = response.read()
                self._start(response.status, relayed, {"Content-Length": str(len(whole))})
                self.wfile.write(whole)
            else:  # streamed (server-sent events): relay each piece as it comes, chunked
                self._start(response.status, relayed, {"Transfer-Encoding": "chunked"})
                while piece := response.read1(65536):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
        except (OSError, http.client.HTTPException) as error:
            if self._started:  # the client or upstream hung up mid-answer: end this connection
                self.close_connection = True
            else:  # upstream down: a gateway error, as a real proxy says
                self._error(502, f"upstream: {error}", None)
        finally:
            upstream.close()

    def _start(self, code: int, headers: list[tuple[str, str]], framing: dict[str, str]) -> None:
        self._started = True
        self.send_response(code)
        for key, value in [*headers, *framing.items()]:
            self.send_header(key, value)
        self.end_headers()

    def _send(self, code: int, content_type: str, data: bytes, extra: dict[str, str]) -> None:
        self._start(
            code,
            list(extra.items()),
            {"Content-Type": content_type, "Content-Length": str(len(data))},
        )
        self.wfile.write(data)

    def _error(self, code: int, message: str, retry_after: float | None) -> None:
        kind = {400: "invalid_request_error", 429: "rate_limit_error"}.get(code, "server_error")
        error = {"error": {"message": message, "type": kind, "param": None, "code": code}}
        extra = {}
        if retry_after is not None:
            extra["Retry-After"] = f"{retry_after:g}"
        self._send(code, "application/json", json.dumps(error).encode(), extra)

    def _reply(self, content: str, request: dict[str, Any]) -> None:
        messages = request.get("messages") or []
        prompt_chars = sum(len(str(m.get("content", ""))) for m in messages if isinstance(m, dict))
        usage = {
            "prompt_tokens": prompt_chars,  # the tiny model spends about a token per character
            "completion_tokens": len(content),
            "total_tokens": prompt_chars + len(content),
        }
        base = {
            "id": f"chatcmpl-proxy-{self.server.proxy.count}",
            "created": int(time.time()),
            "model": str(request.get("model", "proxy")),
        }
        if not request.get("stream"):
            message = {"role": "assistant", "content": content}
            choice = {"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}
            answer = {**base, "object": "chat.completion", "choices": [choice], "usage": usage}
            self._send(200, "application/json", json.dumps(answer).encode(), {})
            return
        chunk = {**base, "object": "chat.completion.chunk"}
        delta = {"role": "assistant", "content": content}
        events = [
            {**chunk, "choices": [{"index": 0, "delta": delta}]},
            {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        ]
        if (request.get("stream_options") or {}).get("include_usage"):
            events.append({**chunk, "choices": [], "usage": usage})
        data = "".join(f"data: {json.dumps(event)}\n\n" for event in events) + "data: [DONE]\n\n"
        self._send(200, "text/event-stream", data.encode(), {})
