"""The HTTP side of the fake Tamtam server: a threading server that tracks its connections, and a handler.

The handler reads each request whole, hands control requests (``/_fake/...``) and API requests to the
``FakeTamtamServer`` it serves, and writes the answer it gets back. It never logs a request, so
credentials never reach the console.
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from airflow_provider_tamtam.testing.faults import JSON, PROBLEM_JSON, problem_body

if TYPE_CHECKING:
    from airflow_provider_tamtam.testing.server import FakeTamtamServer

CONTROL_PREFIX: Final = "/_fake/"
MAX_BODY_BYTES: Final = 1 << 20


@dataclass
class Response:
    """An answer to write: status, body, content type, extra headers, and whether to close afterwards."""

    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    close: bool = False


def json_response(status: int, payload: object, content_type: str = JSON) -> Response:
    """An answer with this JSON payload."""
    return Response(status, json.dumps(payload).encode(), content_type)


def problem_response(status: int, detail: str | None = None) -> Response:
    """An ``application/problem+json`` answer for ``status``."""
    return json_response(status, problem_body(status, detail), PROBLEM_JSON)


class FakeHTTPServer(ThreadingHTTPServer):
    """Serves one ``FakeTamtamServer``; can shut down the keep-alive connections it holds open."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, fake: FakeTamtamServer, address: tuple[str, int]) -> None:
        self.fake = fake
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, FakeRequestHandler)

    def track(self, connection: socket.socket, active: bool) -> None:
        """Remember an open client connection (``active``) or forget a closed one."""
        with self._connections_lock:
            if active:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def close_connections(self) -> None:
        """Shut down open keep-alive connections so that no handler thread keeps answering."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet about clients that went away; report anything else."""
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


class FakeRequestHandler(BaseHTTPRequestHandler):
    """Answers every method on every path through the ``FakeTamtamServer``, over HTTP/1.1 keep-alive."""

    protocol_version = "HTTP/1.1"
    server_version = "FakeTamtam/1.0"
    timeout = 60
    disable_nagle_algorithm = True
    server: FakeHTTPServer

    def version_string(self) -> str:
        return self.server_version

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        self.server.track(self.connection, False)
        with contextlib.suppress(OSError):
            super().finish()

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Answer malformed requests with a problem document as well, then close the connection."""
        response = problem_response(code)
        response.close = True
        self._write(response)

    def log_message(self, format: str, *args: Any) -> None:
        """Print nothing: requests (and their credentials) never reach the console."""

    def do_GET(self) -> None:
        self._dispatch()

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_GET

    def _read_body(self) -> bytes:
        """Read the whole request body so the connection can carry the next request."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            total = 0
            while True:
                size = int(self.rfile.readline(1024).split(b";")[0].strip() or b"x", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                total += size
                if total > MAX_BODY_BYTES:
                    raise ValueError("request body too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline(1024)
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 <= length <= MAX_BODY_BYTES:
            raise ValueError("bad Content-Length")
        return self.rfile.read(length) if length else b""

    def _dispatch(self) -> None:
        fake = self.server.fake
        try:
            body = self._read_body()
        except ValueError:
            unreadable = problem_response(400, "Unreadable request body")
            unreadable.close = True
            self._write(unreadable)
            return
        if urlsplit(self.path).path.startswith(CONTROL_PREFIX):
            self._write(fake._control(self.command, self.path, body))
            return
        entry = fake._record(self.command, self.path, dict(self.headers.items()))
        response = fake._answer(self.command, self.path, self.headers.get_all("Authorization") or [])
        if response is None:
            self.close_connection = True
            return
        fake._set_status(entry, response.status)
        self._write(response)

    def _write(self, response: Response) -> None:
        try:
            self.send_response(response.status)
            for name, value in response.headers:
                self.send_header(name, value)
            if response.content_type is not None:
                self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            if response.close:
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD" and response.body:
                self.wfile.write(response.body)
        except OSError:
            self.close_connection = True
