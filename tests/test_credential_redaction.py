"""A server that repeats the credential it was sent: the credential reaches no error, event, answer or log.

Every test runs with both auth types against a real local server, at DEBUG log level, and looks for the
raw key, the bearer token and the whole ``Authorization`` value in everything a user or the metadata
database could see: the exception's message, repr, parsed problem and traceback (causes included), the
connection test's answer, the trigger's error event and every log record.
"""

from __future__ import annotations

import asyncio
import json
import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest

from airflow_provider_tamtam.client import RetryPolicy
from airflow_provider_tamtam.exceptions import TamtamAPIError, TamtamError
from airflow_provider_tamtam.hooks.tamtam import TamtamHook
from airflow_provider_tamtam.testing import FakeTamtamServer, malformed_fault, redirect_fault, status_fault
from airflow_provider_tamtam.triggers.tamtam import TamtamCreditsTrigger
from tests.conftest import API_KEY, JWT
from tests.raw_http_server import RawHTTPServer, answer
from tests.trigger_run import first_event

FAST = RetryPolicy(initial_wait=0.01, max_wait=0.05, deadline=30.0)


@dataclass(frozen=True)
class Credential:
    password: str
    extra: dict[str, Any]
    secrets: tuple[str, ...]  # every form that must not show up anywhere
    echoed: str  # the form the hostile server repeats


CREDENTIALS = {
    "api_key": Credential(API_KEY, {}, (API_KEY,), API_KEY),
    "bearer": Credential(JWT, {"auth_type": "bearer"}, (JWT, f"Bearer {JWT}"), f"Bearer {JWT}"),
}


def echo_faults(secret: str) -> dict[str, Any]:
    """Answers of the fake server that repeat ``secret`` in every place server text can enter an error."""
    problem = {
        "type": f"https://errors.example/{quote(secret, safe='')}",
        "title": f"Key {secret} rejected",
        "status": 401,
        "detail": f"API key {secret} is not valid",
        "instance": f"/log/{secret}",
        "errors": [
            {"location": f"header.{secret}", "message": f"got {secret}", "value": secret},
            {"message": "nested", "value": {"sent": [secret, {secret: f"x{secret}x"}]}},
        ],
    }
    html = f"<html><body><h1>502 Bad Gateway</h1><p>upstream refused {secret}</p></body></html>"
    return {
        "problem": status_fault(401, problem=problem),
        "html": status_fault(502, body=html.encode(), content_type="text/html"),
        "plain": status_fault(400, body=f"bad key={secret}".encode(), content_type="text/plain"),
        "json_escaped": status_fault(
            400, body=json.dumps({"key": secret}).encode(), content_type="text/plain"
        ),
        "not_json": malformed_fault(f"key {secret}".encode(), content_type=f"text/plain; key={secret}"),
        "redirect": redirect_fault(f"/v2/credits?key={quote(secret, safe='')}"),
        "redirect_plain": redirect_fault(f"http://[{secret}"),
    }


@pytest.fixture(params=sorted(CREDENTIALS))
def credential(request: pytest.FixtureRequest) -> Credential:
    return CREDENTIALS[request.param]


@pytest.fixture
def everything_logged(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="urllib3")
    return caplog


def assert_free_of(text: str, credential: Credential, where: str) -> None:
    for secret in credential.secrets:
        assert secret not in text, f"the credential shows in {where}: {text[:2000]}"


def error_texts(exc: BaseException) -> str:
    """What a user, a callback, a log line or the database could get to see of an exception."""
    parts = [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
    problem = getattr(exc, "problem", None)
    if problem is not None:
        parts.append(problem.model_dump_json())
    return "\n".join(parts)


def log_texts(caplog: pytest.LogCaptureFixture) -> str:
    handler_format = logging.Formatter("%(name)s %(message)s")
    return "\n".join(handler_format.format(record) for record in caplog.records)


def trigger_event(conn_id: str) -> dict[str, Any]:
    trigger = TamtamCreditsTrigger("MaxKeyAccountsUnlocked", 10**9, tamtam_conn_id=conn_id, poll_interval=0.1)
    return asyncio.run(first_event(trigger))


@pytest.mark.parametrize(
    "fault", ["problem", "html", "plain", "json_escaped", "not_json", "redirect", "redirect_plain"]
)
def test_an_echoed_credential_reaches_no_error_answer_event_or_log(
    fake_server: FakeTamtamServer,
    tamtam_conn: Callable[..., str],
    credential: Credential,
    everything_logged: pytest.LogCaptureFixture,
    fault: str,
) -> None:
    tamtam_conn(password=credential.password, extra={**credential.extra, "max_retries": 0})

    fake_server.add_faults(echo_faults(credential.echoed)[fault])
    with pytest.raises(TamtamError) as info:
        TamtamHook(retry_policy=FAST).get_credits()
    assert "***" in str(info.value)  # the echo was there, and was replaced
    assert_free_of(error_texts(info.value), credential, "the exception")

    fake_server.add_faults(echo_faults(credential.echoed)[fault])
    ok, message = TamtamHook(retry_policy=FAST).test_connection()
    assert not ok
    assert_free_of(message, credential, "test_connection's answer")

    fake_server.add_faults(echo_faults(credential.echoed)[fault])
    event = trigger_event("tamtam_default")
    assert event["status"] == "error"
    assert_free_of(json.dumps(event), credential, "the trigger's error event")

    assert fake_server.request_count == 3  # a redirect holding the credential is not followed
    assert_free_of(log_texts(everything_logged), credential, "the logs")


def test_the_parsed_problem_keeps_its_shape_without_the_credential(
    fake_server: FakeTamtamServer, tamtam_conn: Callable[..., str], credential: Credential
) -> None:
    tamtam_conn(password=credential.password, extra=credential.extra)
    fake_server.add_faults(echo_faults(credential.echoed)["problem"])
    with pytest.raises(TamtamAPIError) as info:
        TamtamHook(retry_policy=FAST).get_credits()
    problem = info.value.problem
    assert problem is not None
    assert problem.title == "Key *** rejected"
    assert problem.detail == "API key *** is not valid"
    assert problem.type == "https://errors.example/***"
    assert problem.errors is not None
    assert [(e.location, e.message, e.value) for e in problem.errors] == [
        ("header.***", "got ***", "***"),
        (None, "nested", {"sent": ["***", {"***": "x***x"}]}),
    ]


def test_an_echo_in_the_reason_phrase_is_redacted(
    tamtam_conn: Callable[..., str], credential: Credential, everything_logged: pytest.LogCaptureFixture
) -> None:
    raw = f"HTTP/1.1 403 {credential.echoed} is revoked\r\nContent-Length: 0\r\n\r\n".encode()
    with RawHTTPServer(answer(raw)) as server:
        tamtam_conn(host=server.url, password=credential.password, extra=credential.extra)
        ok, message = TamtamHook(retry_policy=FAST).test_connection()
    assert not ok
    assert "HTTP 403 *** is revoked" in message
    assert_free_of(message, credential, "test_connection's answer")
    assert_free_of(log_texts(everything_logged), credential, "the logs")


@pytest.mark.parametrize(
    "head",
    ["X-A: 1\r\nkey {secret} refused\r\n", " {secret}\r\n"],
    ids=["line_without_colon", "continuation_line"],
)
def test_an_echo_in_an_unparsable_header_line_reaches_no_log(
    tamtam_conn: Callable[..., str],
    credential: Credential,
    everything_logged: pytest.LogCaptureFixture,
    head: str,
) -> None:
    raw = f"HTTP/1.1 401 Unauthorized\r\n{head.format(secret=credential.echoed)}Content-Length: 0\r\n\r\n"
    with RawHTTPServer(answer(raw.encode())) as server:
        tamtam_conn(host=server.url, password=credential.password, extra=credential.extra)
        with pytest.raises(TamtamError) as info:
            TamtamHook(retry_policy=FAST).get_credits()
    assert_free_of(error_texts(info.value), credential, "the exception")
    assert any("Failed to parse headers" in record.getMessage() for record in everything_logged.records)
    assert_free_of(log_texts(everything_logged), credential, "the logs")
