"""Whatever a server or a proxy sends back, the client answers with credit lines or a ``TamtamError``.

Garbled headers, unusable redirects and broken framing become precise ``TamtamError`` subclasses (retried
when the status says so); huge, endless or dribbled bodies cost at most 1 MiB and ``timeout`` seconds.
"""

from __future__ import annotations

import gzip
import json
import socket
import time
from collections.abc import Callable, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_tamtam.client import MAX_BODY_BYTES, RetryPolicy, TamtamClient
from airflow_provider_tamtam.exceptions import (
    RETRYABLE_STATUSES,
    TamtamConfigError,
    TamtamConnectionError,
    TamtamError,
    TamtamResponseError,
)
from airflow_provider_tamtam.hooks.tamtam import TamtamHook
from airflow_provider_tamtam.testing import FakeTamtamServer, credit_line, redirect_fault, status_fault
from airflow_provider_tamtam.testing.fake_server import StatusFault
from airflow_provider_tamtam.triggers.tamtam import TamtamCreditsTrigger
from tests.conftest import API_KEY
from tests.raw_http_server import RawHTTPServer, answer
from tests.trigger_run import first_event

FAST = RetryPolicy(initial_wait=0.01, max_wait=0.05, deadline=30.0)
LINES = [credit_line("MaxKeyAccountsUnlocked", used=10, total=5000)]


def fast_client(url: str, *, timeout: float = 5.0, max_retries: int = 0) -> TamtamClient:
    return TamtamClient(url, API_KEY, timeout=timeout, max_retries=max_retries, retry_policy=FAST)


# ---------------------------------------------------------------- only Tamtam exceptions


@pytest.mark.parametrize("retry_after", ["²", "٣", "1e3", "-5", "nan", "Thu, 99 Foo 99999 99:99:99 GMT", " "])
def test_a_503_with_a_garbled_retry_after_is_still_retried(
    fake_server: FakeTamtamServer, tamtam_conn: Callable[..., str], retry_after: str
) -> None:
    tamtam_conn()
    fake_server.set_credits(LINES)
    fake_server.add_faults(status_fault(503, retry_after=retry_after))
    assert TamtamHook(retry_policy=FAST).get_credits()[0].credit_type == "MaxKeyAccountsUnlocked"
    assert fake_server.request_count == 2


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("http://[::1", "unusable URL http://[::1"),
        ("http://127.0.0.1:99999/v2/credits", "unusable URL http://127.0.0.1:99999/v2/credits"),
        ("http://127.0.0.1:port/", "unusable URL"),
        ("ftp://127.0.0.1/v2/credits", "not an http(s) URL with a host"),
        ("mailto:tamtam@example.com", "not an http(s) URL with a host"),
        ("http://exa mple.com\x00/", "failed on what the server sent"),
    ],
)
def test_an_unusable_redirect_is_a_response_error(
    fake_server: FakeTamtamServer, tamtam_conn: Callable[..., str], location: str, expected: str
) -> None:
    tamtam_conn()
    fake_server.add_faults(redirect_fault(location))
    with pytest.raises(TamtamResponseError, match=r"redirected|server sent") as info:
        TamtamHook(retry_policy=FAST).get_credits()
    assert expected in str(info.value)
    fake_server.add_faults(redirect_fault(location))
    ok, message = TamtamHook(retry_policy=FAST).test_connection()
    assert not ok
    assert expected in message


@pytest.mark.parametrize("fault", [redirect_fault("http://[::1"), redirect_fault("http://127.0.0.1:99999/")])
async def test_a_trigger_reports_garbage_as_an_error_event(
    fake_server: FakeTamtamServer, tamtam_conn: Callable[..., str], fault: StatusFault
) -> None:
    tamtam_conn()
    fake_server.add_faults(fault)
    event = await first_event(TamtamCreditsTrigger("MaxKeyAccountsUnlocked", 1, poll_interval=0.1))
    assert event["status"] == "error"
    assert "redirected to an unusable URL" in event["message"]


def test_a_redirect_loop_stops(fake_server: FakeTamtamServer, tamtam_conn: Callable[..., str]) -> None:
    tamtam_conn()
    fake_server.add_faults(*[redirect_fault(fake_server.credits_url)] * 10)
    with pytest.raises(TamtamResponseError, match="redirected more than 5 times"):
        TamtamHook(retry_policy=FAST).get_credits()
    assert fake_server.request_count == 6


@pytest.mark.parametrize(
    "raw",
    [
        b"garbage\r\n\r\n",
        b"HTTP/1.1 abc OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 5\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\n" + b"X-Many: 1\r\n" * 200 + b"\r\n{}",
        b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * 70000 + b"\r\n\r\n{}",
        b"HTTP/1.1 999 Whatever\r\nContent-Length: 2\r\n\r\n{}",
        b"HTTP/1.1 503 Busy\r\nRetry-After: \xb2\r\nContent-Type: text/html; charset=rot13\r\n"
        b"Content-Length: 7\r\n\r\n<b>\xff</b>",
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=x-unknown\r\nContent-Length: 2\r\n\r\n[]",
        b"HTTP/1.1 302 Found\r\nLocation: http://[::1\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:99999/\r\nContent-Length: 0\r\n\r\n",
    ],
)
def test_broken_answers_are_tamtam_errors(raw: bytes) -> None:
    with RawHTTPServer(answer(raw)) as server:
        client = fast_client(server.url, timeout=5.0)
        start = time.monotonic()
        with pytest.raises(TamtamError):
            client.get_credits()
    assert time.monotonic() - start < 5


HEADER_NAMES = st.sampled_from(
    ["Retry-After", "Location", "Content-Encoding", "Content-Language", "X-Anything", "Set-Cookie", "Vary"]
)
# Header values are Latin-1 on the wire; CR and LF would end the header (separate tests break the framing).
HEADER_VALUES = st.one_of(
    st.text(st.characters(max_codepoint=255, exclude_characters="\r\n"), max_size=40),
    st.sampled_from(["²", "http://[::1", "http://127.0.0.1:99999/", "//", "gzip", "deflate", "br", "-1"]),
)
CONTENT_TYPES = st.one_of(
    st.none(),
    st.sampled_from(
        [
            "application/json",
            "application/problem+json",
            "application/problem+json; charset=utf-16",
            "text/html; charset=nope",
            "text/html",
            "text/plain; charset=",
            'application/json; charset="',
        ]
    ),
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30),
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
PROBLEM_KEYS = st.sampled_from(["type", "title", "status", "detail", "instance", "errors", "credits"])
BODIES = st.one_of(
    st.binary(max_size=300),
    st.dictionaries(PROBLEM_KEYS, JSON_VALUES, max_size=6).map(lambda d: json.dumps(d).encode()),
    JSON_VALUES.map(lambda v: json.dumps(v).encode()),
    st.just(b"[" * 5000 + b"]" * 5000),
    st.just(b"<" * 5000),
)


@pytest.fixture(scope="module")
def module_server() -> Iterator[FakeTamtamServer]:
    with FakeTamtamServer(api_key=API_KEY) as server:
        yield server


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    status=st.integers(200, 599),
    headers=st.lists(st.tuples(HEADER_NAMES, HEADER_VALUES), max_size=4),
    content_type=CONTENT_TYPES,
    body=BODIES,
)
def test_any_answer_gives_lines_or_a_tamtam_error(
    module_server: FakeTamtamServer,
    status: int,
    headers: list[tuple[str, str]],
    content_type: str | None,
    body: bytes,
) -> None:
    module_server.clear_faults()
    module_server.add_faults(StatusFault(status, body, content_type, tuple(headers)))
    client = fast_client(module_server.url)
    error: TamtamError | None = None
    try:
        lines = client.get_credits()
    except TamtamError as exc:  # anything else fails the test
        error = exc
    finally:
        client.close()
    if error is None:
        assert isinstance(lines, list)
    elif status in RETRYABLE_STATUSES:
        redirected = any(name == "Location" for name, _ in headers) and 300 <= status < 400
        assert error.retryable or redirected, f"HTTP {status} should be retried: {error}"


# ---------------------------------------------------------------- hostile bodies


def test_the_snippet_of_a_huge_tag_soup_takes_linear_time(
    fake_server: FakeTamtamServer, tamtam_conn: Callable[..., str]
) -> None:
    tamtam_conn(extra={"max_retries": 0})
    body = b"<" * (MAX_BODY_BYTES - 10)  # one unclosed tag after another: quadratic for a backtracking regex
    fake_server.add_faults(status_fault(502, body=body, content_type="text/html"))
    start = time.monotonic()
    with pytest.raises(TamtamError, match="HTTP 502") as info:
        TamtamHook(retry_policy=FAST).get_credits()
    assert time.monotonic() - start < 5  # it took minutes
    assert len(str(info.value)) < 400


def test_a_body_over_one_mebibyte_is_refused(
    fake_server: FakeTamtamServer, tamtam_conn: Callable[..., str]
) -> None:
    tamtam_conn()
    body = json.dumps({"credits": [], "padding": "x" * (4 * MAX_BODY_BYTES)}).encode()
    fake_server.add_faults(status_fault(200, body=body, content_type="application/json"))
    with pytest.raises(TamtamResponseError, match="body larger than 1024 KiB") as info:
        TamtamHook(retry_policy=FAST).get_credits()
    assert not info.value.retryable


def endless_chunks(connection: socket.socket) -> None:
    """A chunked JSON body that would be 8 MiB; the client must stop reading long before."""
    connection.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b'{"credits": [], "padding": "' + b"x" * 65000
    connection.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    filler = b"x" * 65536
    for _ in range(128):
        connection.sendall(b"%x\r\n%s\r\n" % (len(filler), filler))
    connection.sendall(b'3\r\n"}\n\r\n0\r\n\r\n')


def test_a_body_without_length_is_cut_at_one_mebibyte() -> None:
    with (
        RawHTTPServer(endless_chunks) as server,
        pytest.raises(TamtamResponseError, match="body larger than 1024 KiB"),
    ):
        fast_client(server.url).get_credits()


def test_a_compressed_body_counts_at_its_decompressed_size() -> None:
    bomb = gzip.compress(b'{"credits": [], "padding": "' + b"0" * (8 * MAX_BODY_BYTES) + b'"}')
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
    raw = head + b"Content-Length: %d\r\n\r\n%s" % (len(bomb), bomb)
    with (
        RawHTTPServer(answer(raw)) as server,
        pytest.raises(TamtamResponseError, match="body larger than 1024 KiB"),
    ):
        fast_client(server.url).get_credits()


def dribble(head_too: bool) -> Callable[[socket.socket], None]:
    """Send an answer one byte every 0.3 s: each read gets a byte well within any per-read timeout."""
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 300\r\n\r\n"

    def respond(connection: socket.socket) -> None:
        if not head_too:
            connection.sendall(head)
        for byte in (head if head_too else b"") + b" " * 300:
            connection.sendall(bytes([byte]))
            time.sleep(0.3)

    return respond


@pytest.mark.parametrize("head_too", [False, True], ids=["body", "headers"])
def test_a_dribbling_server_cannot_hold_an_attempt_past_the_timeout(head_too: bool) -> None:
    with RawHTTPServer(dribble(head_too)) as server:
        client = fast_client(server.url, timeout=1.0)
        start = time.monotonic()
        with pytest.raises(TamtamConnectionError, match="no complete answer within the timeout of 1 s"):
            client.get_credits()
        elapsed = time.monotonic() - start
    assert elapsed < 4  # a per-read timeout lets it run for the 25 s or more of the whole answer


async def test_the_whole_attempt_bound_holds_for_async_callers_and_retries() -> None:
    with RawHTTPServer(dribble(False)) as server:
        client = fast_client(server.url, timeout=0.5, max_retries=2)
        start = time.monotonic()
        with pytest.raises(TamtamConnectionError, match="no complete answer"):
            await client.aget_credits()
        elapsed = time.monotonic() - start
        assert server.requests == 3
    assert elapsed < 6


@pytest.mark.parametrize("timeout", ["inf", "nan", "1e400"])
def test_a_timeout_that_is_not_finite_is_refused_before_any_request(
    fake_server: FakeTamtamServer, tamtam_conn: Callable[..., str], timeout: str
) -> None:
    tamtam_conn(extra={"timeout": timeout})
    with pytest.raises(TamtamConfigError, match="timeout must be a finite positive number of seconds"):
        TamtamHook(retry_policy=FAST).get_credits()
    assert fake_server.request_count == 0
