"""A local stand-in for the Tamtam credits API, for tests, demos and live deployment checks.

``FakeTamtamServer`` answers ``GET {base}/v2/credits`` the way the real API does (same JSON shapes, same
``application/problem+json`` errors, same two ``Authorization`` schemes) from a thread of the calling
process, so code under test talks real HTTP to it. Faults (see ``faults``) are queued and served in order,
every request is recorded so tests can check what a client really sent, and jobs can spend credits
through it (never below zero). The control API (see ``control``) drives a server from another process.

Only the standard library is used so that importing this module costs nothing.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Final
from urllib.parse import urlsplit

from airflow_provider_tamtam.testing.control import answer_control
from airflow_provider_tamtam.testing.credit_lines import (
    DEFAULT_CREDITS,
    CreditLines,
    Spend,
    SpendRefused,
    encode_credits,
    remaining_of,
    spend_from,
)
from airflow_provider_tamtam.testing.faults import (
    JSON,
    PROBLEM_JSON,
    DelayFault,
    DropFault,
    Fault,
    StatusFault,
)
from airflow_provider_tamtam.testing.transport import (
    CONTROL_PREFIX,
    FakeHTTPServer,
    Response,
    json_response,
    problem_response,
)

__all__ = ["CREDITS_PATH", "FakeTamtamServer", "RecordedRequest"]

CREDITS_PATH: Final = "/v2/credits"
"""Path of the credits endpoint, relative to the base URL."""

UNAUTHORIZED_PROBLEM: Final[dict[str, object]] = {
    "type": "about:blank",
    "title": "Unauthorized",
    "status": 401,
    "detail": "Missing or invalid credentials",
}


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
        self._credits_body = encode_credits(credits)
        self._credits = _copy_lines(credits)
        self._schedule: deque[_Step] = deque()
        self._spends: list[Spend] = []
        self._faults: deque[Fault] = deque()
        self._entries: list[_Entry] = []
        self._httpd: FakeHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle

    def start(self) -> FakeTamtamServer:
        """Bind the socket and serve on a daemon thread; returns ``self``."""
        if self._httpd is not None:
            raise RuntimeError("FakeTamtamServer is already running")
        httpd = FakeHTTPServer(self, (self._host, self._port))
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
        body = encode_credits(credits)
        with self._lock:
            self._credits_body = body
            self._credits = _copy_lines(credits)
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
        encoded = [(count, encode_credits(credits)) for count, credits in steps]
        for count, _ in encoded[:-1]:
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                raise ValueError("every step but the last needs a count of at least 1")
        if encoded[-1][0] < 0:
            raise ValueError("the last step count must not be negative")
        with self._lock:
            self._schedule = deque(_Step(count, body) for count, body in encoded[:-1])
            self._credits_body = encoded[-1][1]
            self._credits = _copy_lines(steps[-1][1])

    def spend(self, credit_type: str, credits: int) -> int:
        """Spend ``credits`` of ``credit_type`` the way a job using the API would; returns what is left.

        Takes from the type's lines oldest (first listed) first, raising their ``used_credits`` and
        lowering their ``remaining_credits``; later answers show the new balance. Raises ``SpendRefused``
        and changes nothing when the type has fewer credits left than asked for, and ``ValueError`` while
        a schedule is still being served. Every attempt goes to the spend log (see ``spends``).
        """
        with self._lock:
            if self._schedule:
                raise ValueError("cannot spend while a credit schedule is being served")
            try:
                lines, remaining = spend_from(self._credits, credit_type, credits)
            except SpendRefused:
                left = remaining_of(self._credits, credit_type)
                self._spends.append(Spend(credit_type, credits, False, left, time.time()))
                raise
            self._credits = lines
            self._credits_body = encode_credits(lines)
            self._spends.append(Spend(credit_type, credits, True, remaining, time.time()))
            return remaining

    @property
    def spends(self) -> list[Spend]:
        """Every spend attempt, accepted or refused, with the type's remaining credits after it."""
        with self._lock:
            return list(self._spends)

    def reset_spends(self) -> None:
        """Forget the spend log (the balance stays as it is)."""
        with self._lock:
            self._spends.clear()

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

    def _answer(self, method: str, path: str, authorization: list[str]) -> Response | None:
        """Decide the answer to an API request; ``None`` means drop the connection."""
        if urlsplit(path).path != self._base_path + CREDITS_PATH:
            return problem_response(404, f"No route for {urlsplit(path).path}")
        if self.latency > 0:
            time.sleep(self.latency)
        with self._lock:
            fault = self._faults.popleft() if self._faults else None
        if isinstance(fault, DropFault):
            return None
        if isinstance(fault, StatusFault):
            return Response(fault.status, fault.body, fault.content_type, list(fault.headers))
        if isinstance(fault, DelayFault):
            time.sleep(fault.seconds)
        if method != "GET":
            response = problem_response(405, f"Method {method} is not allowed; use GET")
            response.headers.append(("Allow", "GET"))
            return response
        if not self._authorized(authorization):
            response = json_response(401, UNAUTHORIZED_PROBLEM, PROBLEM_JSON)
            response.headers.append(("WWW-Authenticate", 'Bearer realm="tamtam"'))
            return response
        return Response(200, self._next_credits_body(), JSON)

    def _control(self, method: str, path: str, body: bytes) -> Response:
        """Answer a control API request (``/_fake/...``)."""
        return answer_control(self, method, path, body)


def _copy_lines(credits: CreditLines) -> CreditLines:
    """A private copy of credit lines, so that later changes by the caller do not reach the server."""
    return json.loads(encode_credits(credits))["credits"]  # type: ignore[no-any-return]
