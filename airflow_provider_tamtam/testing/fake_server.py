"""A local stand-in for the Tamtam credits API, for tests, demos and live deployment checks.

``FakeTamtamServer`` answers ``GET {base}/v2/credits`` the way the real API does (same JSON shapes, same
``application/problem+json`` errors, same two ``Authorization`` schemes) from a thread of the calling
process, so code under test talks real HTTP to it. Faults (error statuses, ``Retry-After``, slow answers,
dropped connections, malformed bodies, redirects) are queued and served in order, and every request is
recorded so tests can check what a client really sent.

A small control API under ``/_fake/`` lets another process drive a running server, and
``python -m airflow_provider_tamtam.testing.fake_server`` runs one from the command line.

Only the standard library is used so that importing this module costs nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import email.utils
import json
import os
import signal
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Final, TypeAlias
from urllib.parse import urlsplit

__all__ = [
    "CREDITS_PATH",
    "DEFAULT_CREDITS",
    "DelayFault",
    "DropFault",
    "FakeTamtamServer",
    "Fault",
    "RecordedRequest",
    "StatusFault",
    "credit_line",
    "delay_fault",
    "drop_fault",
    "fault_from_dict",
    "http_date",
    "main",
    "malformed_fault",
    "redirect_fault",
    "status_fault",
]

CREDITS_PATH: Final = "/v2/credits"
"""Path of the credits endpoint, relative to the base URL."""

CONTROL_PREFIX: Final = "/_fake/"
PROBLEM_JSON: Final = "application/problem+json"
JSON: Final = "application/json"
MAX_BODY_BYTES: Final = 1 << 20

CreditLines: TypeAlias = list[dict[str, object]] | None


def credit_line(credit_type: str, *, used: int, total: int) -> dict[str, object]:
    """One credit line as the API sends it, with ``remaining_credits = total - used``."""
    return {
        "credit_type": credit_type,
        "used_credits": used,
        "total_credits": total,
        "remaining_credits": total - used,
    }


DEFAULT_CREDITS: Final[list[dict[str, object]]] = [credit_line("MaxKeyAccountsUnlocked", used=10, total=5000)]
"""The credit lines a new server answers with (copied, never shared)."""

UNAUTHORIZED_PROBLEM: Final[dict[str, object]] = {
    "type": "about:blank",
    "title": "Unauthorized",
    "status": 401,
    "detail": "Missing or invalid credentials",
}


# --------------------------------------------------------------------------------------------- faults


@dataclass(frozen=True)
class StatusFault:
    """Answer one request with this status, headers and body instead of the normal response."""

    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class DelayFault:
    """Wait ``seconds`` before answering one request normally, e.g. to run past a client read timeout."""

    seconds: float


@dataclass(frozen=True)
class DropFault:
    """Close the connection of one request without sending any response."""


Fault: TypeAlias = StatusFault | DelayFault | DropFault


def problem_body(status: int, detail: str | None = None) -> dict[str, object]:
    """Build an RFC 9457 problem document for ``status`` with the standard reason phrase as title."""
    try:
        known = HTTPStatus(status)
        title, description = known.phrase, known.description
    except ValueError:
        title, description = "Error", ""
    return {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": description if detail is None else detail,
    }


def _check_status(status: int, low: int = 200, high: int = 599) -> None:
    if isinstance(status, bool) or not isinstance(status, int) or not low <= status <= high:
        raise ValueError(f"status must be an integer between {low} and {high}, got {status!r}")


def status_fault(
    status: int,
    *,
    retry_after: str | None = None,
    problem: Mapping[str, object] | None = None,
    body: bytes | None = None,
    content_type: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> StatusFault:
    """Answer ``status`` once.

    The body is ``problem`` (serialized as is), else the raw ``body``, else a standard problem document
    for the status. ``content_type`` defaults to ``application/problem+json``. ``retry_after`` is sent
    verbatim as ``Retry-After`` (delay seconds or an HTTP date, see :func:`http_date`).
    """
    _check_status(status)
    if problem is not None and body is not None:
        raise ValueError("pass either problem or body, not both")
    if body is None:
        body = json.dumps(dict(problem) if problem is not None else problem_body(status)).encode()
    extra = list((headers or {}).items())
    if any(name.lower() in ("content-length", "transfer-encoding", "connection") for name, _ in extra):
        raise ValueError("Content-Length, Transfer-Encoding and Connection are managed by the server")
    if retry_after is not None:
        extra.append(("Retry-After", retry_after))
    return StatusFault(status, body, content_type or PROBLEM_JSON, tuple(extra))


def delay_fault(seconds: float) -> DelayFault:
    """Answer once normally, but only after ``seconds``."""
    if seconds < 0:
        raise ValueError("seconds must not be negative")
    return DelayFault(float(seconds))


def drop_fault() -> DropFault:
    """Close the connection once without answering."""
    return DropFault()


def malformed_fault(body: bytes, status: int = 200, content_type: str = JSON) -> StatusFault:
    """Answer once with this raw body (invalid JSON, wrong types, missing fields...)."""
    _check_status(status)
    return StatusFault(status, body, content_type)


def redirect_fault(location: str, status: int = 302) -> StatusFault:
    """Answer once with a redirect to ``location`` and an empty body."""
    _check_status(status, 300, 399)
    return StatusFault(status, b"", None, (("Location", location),))


def http_date(offset_seconds: float = 0.0) -> str:
    """Format now plus ``offset_seconds`` as an HTTP date, e.g. for a date-valued ``Retry-After``."""
    return email.utils.formatdate(time.time() + offset_seconds, usegmt=True)


def _expect(value: object, kind: type | tuple[type, ...], what: str) -> Any:
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ValueError(f"{what} has the wrong type: {type(value).__name__}")
    return value


def fault_from_dict(spec: Mapping[str, object]) -> Fault:
    """Build a fault from its JSON form, as accepted by ``POST /_fake/faults``.

    ``{"drop": true}``, ``{"delay": 2}``, ``{"redirect": "http://...", "status": 307}``,
    ``{"body": "not json", "status": 200, "content_type": "text/plain"}`` or
    ``{"status": 503, "retry_after": "1", "problem": {...}, "headers": {...}}``.
    """
    keys = set(spec)
    if "drop" in spec:
        if keys != {"drop"} or spec["drop"] is not True:
            raise ValueError('a drop fault is exactly {"drop": true}')
        return drop_fault()
    if "delay" in spec:
        if keys != {"delay"}:
            raise ValueError('a delay fault is exactly {"delay": <seconds>}')
        return delay_fault(_expect(spec["delay"], (int, float), "delay"))
    status = spec.get("status")
    if "redirect" in spec:
        if not keys <= {"redirect", "status"}:
            raise ValueError("a redirect fault only takes redirect and status")
        location = _expect(spec["redirect"], str, "redirect")
        return redirect_fault(location, _expect(302 if status is None else status, int, "status"))
    if "body" in spec:
        if not keys <= {"body", "status", "content_type"}:
            raise ValueError("a body fault only takes body, status and content_type")
        return malformed_fault(
            _expect(spec["body"], str, "body").encode(),
            _expect(200 if status is None else status, int, "status"),
            _expect(spec.get("content_type", JSON), str, "content_type"),
        )
    if not keys <= {"status", "retry_after", "problem", "headers", "content_type"} or status is None:
        raise ValueError(f"unknown fault: {sorted(keys)}")
    retry_after = spec.get("retry_after")
    if retry_after is not None:
        retry_after = str(_expect(retry_after, (str, int, float), "retry_after"))
    problem = spec.get("problem")
    content_type = spec.get("content_type")
    headers = _expect(spec.get("headers", {}), dict, "headers")
    return status_fault(
        _expect(status, int, "status"),
        retry_after=retry_after,
        problem=None if problem is None else _expect(problem, dict, "problem"),
        content_type=None if content_type is None else _expect(content_type, str, "content_type"),
        headers={str(name): _expect(value, str, "header value") for name, value in headers.items()},
    )


# --------------------------------------------------------------------------------------------- records


@dataclass(frozen=True)
class RecordedRequest:
    """One request the server received; ``status`` is what it answered (0: dropped or not answered yet)."""

    method: str
    path: str
    headers: dict[str, str]
    timestamp: float
    """``time.monotonic()`` on arrival."""
    wall_time: float
    """``time.time()`` on arrival."""
    status: int


@dataclass
class _Entry:
    method: str
    path: str
    headers: dict[str, str]
    timestamp: float
    wall_time: float
    status: int = 0

    def freeze(self) -> RecordedRequest:
        return RecordedRequest(
            self.method, self.path, dict(self.headers), self.timestamp, self.wall_time, self.status
        )


@dataclass
class _Step:
    remaining: int
    body: bytes


@dataclass
class _Response:
    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    close: bool = False


def _json_response(status: int, payload: object, content_type: str = JSON) -> _Response:
    return _Response(status, json.dumps(payload).encode(), content_type)


def _problem_response(status: int, detail: str | None = None) -> _Response:
    return _json_response(status, problem_body(status, detail), PROBLEM_JSON)


def _encode_credits(credits: CreditLines) -> bytes:
    if credits is not None and not isinstance(credits, list):
        raise TypeError("credits must be a list of credit lines or None")
    return json.dumps({"credits": credits}).encode()


# --------------------------------------------------------------------------------------------- server


class FakeTamtamServer:
    """A local Tamtam credits API on a background thread.

    Usage::

        with FakeTamtamServer() as server:
            requests.get(server.url + "/v2/credits", headers={"Authorization": "test-api-key"})

    Requests to ``{url}/v2/credits`` first wait ``latency`` seconds, then take the next queued fault if
    any (before any authentication check), then are authenticated, then answered with the current credit
    lines. ``None`` credits are answered as ``{"credits": null}``.
    """

    def __init__(
        self,
        credits: CreditLines = DEFAULT_CREDITS,
        *,
        api_key: str | None = "test-api-key",
        bearer_token: str | None = "test-jwt",  # noqa: S107
        latency: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
        base_path: str = "/api",
    ) -> None:
        self.api_key = api_key
        """The raw key accepted as ``Authorization: <key>``; ``None`` accepts no raw key."""
        self.bearer_token = bearer_token
        """The token accepted as ``Authorization: Bearer <token>``; ``None`` accepts no bearer token."""
        self.latency = latency
        """Seconds every credits request waits before it is answered; may be changed at any time."""
        self._host = host
        self._port = port
        stripped = base_path.strip("/")
        self._base_path = f"/{stripped}" if stripped else ""
        self._lock = threading.Lock()
        self._credits_body = _encode_credits(credits)
        self._schedule: deque[_Step] = deque()
        self._faults: deque[Fault] = deque()
        self._entries: list[_Entry] = []
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle

    def start(self) -> FakeTamtamServer:
        """Bind the socket and serve on a daemon thread; returns ``self``."""
        if self._httpd is not None:
            raise RuntimeError("FakeTamtamServer is already running")
        httpd = _HTTPServer(self, (self._host, self._port))
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, name="FakeTamtamServer", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close the socket and every open client connection. Safe to call twice."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._httpd = self._thread = None
        httpd.shutdown()
        httpd.server_close()
        httpd.close_connections()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> FakeTamtamServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- addresses

    @property
    def origin(self) -> str:
        """``http://host:port`` of the running server."""
        if self._httpd is None:
            raise RuntimeError("FakeTamtamServer is not running; call start() first")
        host, port = self._httpd.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else str(host)
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    @property
    def url(self) -> str:
        """Base URL of the API, e.g. ``http://127.0.0.1:54321/api``; the endpoint is ``url + "/v2/credits"``.

        Raises ``RuntimeError`` before ``start()``.
        """
        return self.origin + self._base_path

    @property
    def credits_url(self) -> str:
        """Full URL of the credits endpoint."""
        return self.url + CREDITS_PATH

    @property
    def control_url(self) -> str:
        """Base URL of the control API, e.g. ``http://127.0.0.1:54321/_fake``."""
        return self.origin + CONTROL_PREFIX.rstrip("/")

    # -- behaviour

    def set_credits(self, credits: CreditLines) -> None:
        """Answer with these credit lines from now on; drops any schedule.

        ``None`` is answered as ``{"credits": null}``.
        """
        body = _encode_credits(credits)
        with self._lock:
            self._credits_body = body
            self._schedule.clear()

    def schedule_credits(self, steps: Sequence[tuple[int, CreditLines]]) -> None:
        """Serve a sequence of credit lines, counted in successful (200) credits responses.

        ``[(3, short), (0, enough)]`` answers ``short`` three times, then ``enough`` for good. The last
        step is kept once reached whatever its count; every earlier step needs a count of at least 1.
        Replaces any earlier schedule; an empty list just drops the schedule.
        """
        if not steps:
            with self._lock:
                self._schedule.clear()
            return
        encoded = [(count, _encode_credits(credits)) for count, credits in steps]
        for count, _ in encoded[:-1]:
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                raise ValueError("every step but the last needs a count of at least 1")
        if encoded[-1][0] < 0:
            raise ValueError("the last step count must not be negative")
        with self._lock:
            self._schedule = deque(_Step(count, body) for count, body in encoded[:-1])
            self._credits_body = encoded[-1][1]

    def add_faults(self, *faults: Fault) -> None:
        """Queue faults; each credits request takes the next one, before authentication."""
        for fault in faults:
            if not isinstance(fault, StatusFault | DelayFault | DropFault):
                raise TypeError(f"not a fault: {fault!r}")
        with self._lock:
            self._faults.extend(faults)

    def clear_faults(self) -> None:
        """Forget the faults not served yet."""
        with self._lock:
            self._faults.clear()

    @property
    def pending_faults(self) -> int:
        """Number of queued faults not served yet."""
        with self._lock:
            return len(self._faults)

    # -- request log

    @property
    def requests(self) -> list[RecordedRequest]:
        """Copy of every API request received (any path outside ``/_fake/``), oldest first."""
        with self._lock:
            return [entry.freeze() for entry in self._entries]

    @property
    def request_count(self) -> int:
        """Number of credits endpoint requests received, faulted and unanswered ones included."""
        endpoint = self._base_path + CREDITS_PATH
        with self._lock:
            return sum(1 for entry in self._entries if urlsplit(entry.path).path == endpoint)

    def reset_requests(self) -> None:
        """Forget the recorded requests."""
        with self._lock:
            self._entries.clear()

    # -- request handling (called from handler threads)

    def _record(self, method: str, path: str, headers: dict[str, str]) -> _Entry:
        entry = _Entry(method, path, headers, time.monotonic(), time.time())
        with self._lock:
            self._entries.append(entry)
        return entry

    def _set_status(self, entry: _Entry, status: int) -> None:
        with self._lock:
            entry.status = status

    def _authorized(self, values: list[str]) -> bool:
        if len(values) != 1:
            return False
        value = values[0]
        if self.api_key is not None and value == self.api_key:
            return True
        return self.bearer_token is not None and value == f"Bearer {self.bearer_token}"

    def _next_credits_body(self) -> bytes:
        with self._lock:
            if not self._schedule:
                return self._credits_body
            step = self._schedule[0]
            step.remaining -= 1
            if step.remaining <= 0:
                self._schedule.popleft()
            return step.body

    def _answer(self, method: str, path: str, authorization: list[str]) -> _Response | None:
        """Decide the answer to an API request; ``None`` means drop the connection."""
        if urlsplit(path).path != self._base_path + CREDITS_PATH:
            return _problem_response(404, f"No route for {urlsplit(path).path}")
        if self.latency > 0:
            time.sleep(self.latency)
        with self._lock:
            fault = self._faults.popleft() if self._faults else None
        if isinstance(fault, DropFault):
            return None
        if isinstance(fault, StatusFault):
            return _Response(fault.status, fault.body, fault.content_type, list(fault.headers))
        if isinstance(fault, DelayFault):
            time.sleep(fault.seconds)
        if method != "GET":
            response = _problem_response(405, f"Method {method} is not allowed; use GET")
            response.headers.append(("Allow", "GET"))
            return response
        if not self._authorized(authorization):
            response = _json_response(401, UNAUTHORIZED_PROBLEM, PROBLEM_JSON)
            response.headers.append(("WWW-Authenticate", 'Bearer realm="tamtam"'))
            return response
        return _Response(200, self._next_credits_body(), JSON)

    def _control(self, method: str, path: str, body: bytes) -> _Response:
        """Answer a control API request (``/_fake/...``)."""
        route = urlsplit(path).path[len(CONTROL_PREFIX) :].strip("/")
        allowed = {
            "requests": ("GET", "DELETE"),
            "credits": ("PUT",),
            "faults": ("POST",),
            "schedule": ("POST",),
        }
        if route not in allowed:
            return _problem_response(404, f"No control route {route!r}")
        if method not in allowed[route]:
            response = _problem_response(405, f"Method {method} is not allowed here")
            response.headers.append(("Allow", ", ".join(allowed[route])))
            return response
        if route == "requests":
            if method == "DELETE":
                self.reset_requests()
            records = [
                {"method": r.method, "path": r.path, "status": r.status, "wall_time": r.wall_time}
                for r in self.requests
            ]
            return _json_response(200, {"count": self.request_count, "requests": records})
        try:
            payload = json.loads(body or b"null")
            if route == "credits":
                credits = _expect(payload, dict, "body")["credits"]
                self.set_credits(_expect(credits, list, "credits") if credits is not None else None)
                return _json_response(200, {"credits": credits})
            if route == "faults":
                specs = [payload] if isinstance(payload, dict) else _expect(payload, list, "body")
                faults = [fault_from_dict(_expect(spec, dict, "fault")) for spec in specs]
                self.add_faults(*faults)
                return _json_response(200, {"queued": len(faults), "pending": self.pending_faults})
            steps = _expect(_expect(payload, dict, "body")["steps"], list, "steps")
            parsed: list[tuple[int, CreditLines]] = []
            for step in steps:
                count, credits = _expect(step, list, "step")
                _expect(count, int, "step count")
                parsed.append((count, _expect(credits, list, "credits") if credits is not None else None))
            self.schedule_credits(parsed)
            return _json_response(200, {"steps": len(parsed)})
        except (ValueError, KeyError, TypeError) as error:
            return _problem_response(400, f"Invalid control request: {error}")


# --------------------------------------------------------------------------------------------- HTTP


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, fake: FakeTamtamServer, address: tuple[str, int]) -> None:
        self.fake = fake
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def track(self, connection: socket.socket, active: bool) -> None:
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


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeTamtam/1.0"
    timeout = 60
    disable_nagle_algorithm = True
    server: _HTTPServer

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
        response = _problem_response(code)
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
            unreadable = _problem_response(400, "Unreadable request body")
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

    def _write(self, response: _Response) -> None:
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


# --------------------------------------------------------------------------------------------- CLI


def _credits_arg(text: str) -> CreditLines:
    value = json.loads(text)
    if value is not None and not isinstance(value, list):
        raise argparse.ArgumentTypeError("expected a JSON list of credit lines or null")
    return value


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_tamtam.testing.fake_server",
        description="Serve a local Tamtam credits API until SIGTERM or SIGINT.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--base-path", default="/api")
    parser.add_argument("--api-key", default="test-api-key", help="raw key accepted; '' accepts none")
    parser.add_argument("--bearer-token", default="test-jwt", help="bearer token accepted; '' accepts none")
    parser.add_argument("--credits-json", type=_credits_arg, default=DEFAULT_CREDITS, metavar="JSON")
    parser.add_argument("--rise-after", type=int, metavar="N", help="switch credits after N answers")
    parser.add_argument("--risen-credits-json", type=_credits_arg, default=argparse.SUPPRESS, metavar="JSON")
    parser.add_argument("--latency", type=float, default=0.0, metavar="SECONDS")
    parser.add_argument("--url-file", type=Path, help="also write the base URL to this file")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run a server from the command line; prints ``FakeTamtamServer listening on <url>``."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    if (args.rise_after is None) == hasattr(args, "risen_credits_json"):
        parser.error("--rise-after and --risen-credits-json go together")
    if args.rise_after is not None and args.rise_after < 0:
        parser.error("--rise-after must not be negative")
    server = FakeTamtamServer(
        args.credits_json,
        api_key=args.api_key or None,
        bearer_token=args.bearer_token or None,
        latency=args.latency,
        host=args.host,
        port=args.port,
        base_path=args.base_path,
    )
    if args.rise_after:
        server.schedule_credits([(args.rise_after, args.credits_json), (0, args.risen_credits_json)])
    elif args.rise_after == 0:
        server.set_credits(args.risen_credits_json)

    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.start()
        print(f"FakeTamtamServer listening on {server.url}", flush=True)
        if args.url_file is not None:
            partial = args.url_file.with_name(args.url_file.name + ".partial")
            partial.write_text(server.url)
            os.replace(partial, args.url_file)
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
