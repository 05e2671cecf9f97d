"""Every kind of answer FakeTamtamServer gives as a valid response conforms to the OpenAPI document.

Each answer is fetched over real HTTP and checked with ``jsonschema`` against the response the document
gives for its status and media type (``additionalProperties: false`` and ``int32`` included). Faults that
break the contract on purpose (``malformed_fault``) and redirects (no body) are not claims of a valid
answer and are left out.
"""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from airflow_provider_tamtam.testing import (
    DEFAULT_CREDITS,
    FakeTamtamServer,
    credit_line,
    delay_fault,
    status_fault,
)
from tests.contract import openapi

AUTH = {"Authorization": "test-api-key"}
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def server() -> Iterator[FakeTamtamServer]:
    with FakeTamtamServer() as fake:
        yield fake


def conforms(response: requests.Response) -> None:
    """The answer's status, media type and body are ones the document allows for the credits endpoint."""
    pointer = openapi.response_schema(response.status_code, response.headers.get("Content-Type", ""))
    assert openapi.errors(pointer, response.json()) == []


def get(server: FakeTamtamServer, **kwargs: object) -> requests.Response:
    return requests.request(
        str(kwargs.pop("method", "GET")),
        str(kwargs.pop("url", server.credits_url)),
        headers=kwargs.pop("headers", AUTH),  # type: ignore[arg-type]
        timeout=5,
    )


def test_the_shipped_document_is_the_published_one() -> None:
    published = REPO.parent / "shared" / "tamtam-openapi.yaml"
    if not published.exists():
        pytest.skip("the published document is not beside this checkout")
    assert openapi.DOCUMENT_PATH.read_bytes() == published.read_bytes()


def test_the_validator_enforces_what_the_document_says() -> None:
    """The checks below could fail: extra fields, wrong types, missing fields and int32 overflow are caught."""
    ok = openapi.response_schema(200, "application/json")
    line = credit_line("Exports", used=1, total=2)
    assert openapi.errors(ok, {"credits": [line]}) == []
    assert openapi.errors(ok, {"credits": [{**line, "renews_at": "soon"}]})
    assert openapi.errors(ok, {"credits": [line], "page": 1})
    assert openapi.errors(ok, {"credits": [{**line, "used_credits": "1"}]})
    assert openapi.errors(ok, {"credits": [{**line, "used_credits": 2**31}]})
    assert openapi.errors(ok, {"credits": [{k: v for k, v in line.items() if k != "credit_type"}]})
    assert openapi.errors(ok, {})
    problem = openapi.response_schema(503, "application/problem+json")
    assert openapi.errors(problem, {"title": "x", "status": 503, "trace": "..."})
    with pytest.raises(LookupError):
        openapi.response_schema(200, "text/plain")
    with pytest.raises(LookupError):
        openapi.response_schema(503, "application/json")


@pytest.mark.parametrize(
    "credits",
    [
        DEFAULT_CREDITS,
        [],
        None,
        [credit_line("A", used=0, total=2**31 - 1), credit_line("B", used=0, total=-(2**31))],
        [credit_line("MaxKeyAccountsUnlocked", used=10, total=5000), credit_line("Exports", used=3, total=3)],
    ],
    ids=["default", "empty", "null", "int32-limits", "two-types"],
)
def test_normal_answers(server: FakeTamtamServer, credits: list[dict[str, object]] | None) -> None:
    server.set_credits(credits)
    response = get(server)
    assert response.status_code == 200
    conforms(response)
    assert response.json() == {"credits": credits}


def test_answers_of_a_schedule_and_after_spending(server: FakeTamtamServer) -> None:
    server.schedule_credits([(1, None), (0, [credit_line("Exports", used=0, total=5)])])
    conforms(get(server))
    server.spend("Exports", 5)
    response = get(server)
    conforms(response)
    assert response.json()["credits"][0]["remaining_credits"] == 0


def test_constructor_default_answer() -> None:
    with FakeTamtamServer() as fake:
        conforms(get(fake))


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "wrong"}, {"Authorization": "Bearer wrong"}],
    ids=["missing", "wrong-key", "wrong-token"],
)
def test_unauthorized_problem(server: FakeTamtamServer, headers: dict[str, str]) -> None:
    response = get(server, headers=headers)
    assert response.status_code == 401
    conforms(response)


def test_unknown_path_and_wrong_method_problems(server: FakeTamtamServer) -> None:
    unknown = get(server, url=server.url + "/v2/nothing")
    assert unknown.status_code == 404
    conforms(unknown)
    wrong = get(server, method="POST")
    assert wrong.status_code == 405
    conforms(wrong)


def raw_answer(server: FakeTamtamServer, request: bytes) -> tuple[int, str, object]:
    """Send raw bytes, read one answer: status, Content-Type and decoded JSON body."""
    host, port = server.origin.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(request)
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, response.getheader("Content-Type", ""), json.loads(response.read())


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /api/v2/credits HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
        b"GET /api/v2/credits HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(101)) + b"\r\n",
    ],
    ids=["unreadable-body", "too-many-headers"],
)
def test_malformed_request_problems(server: FakeTamtamServer, request_bytes: bytes) -> None:
    """Requests the HTTP layer cannot read are answered with problem documents too."""
    status, content_type, body = raw_answer(server, request_bytes)
    assert 400 <= status <= 505
    assert openapi.errors(openapi.response_schema(status, content_type), body) == []


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422, 429, 500, 502, 503, 504, 599])
def test_status_fault_default_problems(server: FakeTamtamServer, status: int) -> None:
    server.add_faults(status_fault(status, retry_after="1"))
    response = get(server)
    assert response.status_code == status
    conforms(response)


@pytest.mark.parametrize(
    "build",
    [
        lambda: status_fault(503, problem={"type": "about:blank", "title": "Busy", "status": 503}),
        lambda: status_fault(
            422,
            problem={
                "title": "Unprocessable",
                "status": 422,
                "errors": [{"location": "header.Authorization", "message": "malformed", "value": "x"}],
            },
        ),
        lambda: delay_fault(0.01),
    ],
    ids=["custom-problem", "problem-with-errors", "delay"],
)
def test_faults_that_answer_validly(server: FakeTamtamServer, build: Callable[[], object]) -> None:
    server.add_faults(build())  # type: ignore[arg-type]
    response = get(server)
    conforms(response)
    assert server.pending_faults == 0
