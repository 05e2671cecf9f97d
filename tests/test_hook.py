"""TamtamHook against the fake Tamtam server over real HTTP: results, retries, bad bodies, bad config."""

from __future__ import annotations

import asyncio
import email.utils
import logging
import re
import time
from collections.abc import Callable

import pytest

from airflow_provider_tamtam.client import RetryPolicy, parse_retry_after
from airflow_provider_tamtam.exceptions import (
    TamtamAPIError,
    TamtamAuthError,
    TamtamConfigError,
    TamtamConnectionError,
    TamtamResponseError,
)
from airflow_provider_tamtam.hooks.tamtam import TamtamHook
from airflow_provider_tamtam.models import CreditLine
from airflow_provider_tamtam.testing import (
    FakeTamtamServer,
    credit_line,
    delay_fault,
    drop_fault,
    http_date,
    malformed_fault,
    redirect_fault,
    status_fault,
)
from tests.conftest import API_KEY, JWT

FAST = RetryPolicy(initial_wait=0.01, max_wait=0.05, deadline=30.0)
LINES = [
    credit_line("MaxKeyAccountsUnlocked", used=10, total=5000),
    credit_line("Exports", used=7, total=10),
]
HOOK_LOGGER = "airflow.task.hooks.airflow_provider_tamtam.hooks.tamtam.TamtamHook"


def fast_hook(conn_id: str = "tamtam_default", **kwargs: object) -> TamtamHook:
    return TamtamHook(conn_id, retry_policy=FAST, **kwargs)  # type: ignore[arg-type]


# ---------------------------------------------------------------- results


def test_get_credits_returns_typed_lines_in_api_order(
    fake_server: FakeTamtamServer, tamtam_conn: Callable[..., str]
) -> None:
    tamtam_conn()
    fake_server.set_credits(LINES)
    lines = fast_hook().get_credits()
    assert [line.to_dict() for line in lines] == LINES
    assert all(isinstance(line, CreditLine) for line in lines)
    assert fake_server.request_count == 1
    assert fake_server.requests[0].path == "/api/v2/credits"


def test_null_credits_mean_no_subscription(
    fake_server: FakeTamtamServer, tamtam_conn: Callable[..., str]
) -> None:
    tamtam_conn()
    fake_server.set_credits(None)
    assert fast_hook().get_credits() == []


def test_credit_line_is_immutable_and_to_dict_has_api_names() -> None:
    line = CreditLine(credit_type="A", used_credits=1, total_credits=3, remaining_credits=2)
    with pytest.raises(ValueError, match="frozen"):
        line.remaining_credits = 5  # type: ignore[misc]
    assert list(line.to_dict()) == ["credit_type", "used_credits", "total_credits", "remaining_credits"]


def test_api_key_is_sent_raw(fake_server: FakeTamtamServer, tamtam_conn: Callable[..., str]) -> None:
    tamtam_conn()
    fast_hook().get_credits()
    assert fake_server.requests[0].headers["Authorization"] == API_KEY


@pytest.mark.parametrize("password", [JWT, f"Bearer {JWT}", f"  {JWT}\n"])
def test_bearer_token_is_sent_with_scheme(
    fake_server: FakeTamtamServer, tamtam_conn: Callable[..., str], password: str
) -> None:
    tamtam_conn(password=password, extra={"auth_type": "bearer"})
    fast_hook().get_credits()
    assert fake_server.requests[0].headers["Authorization"] == f"Bearer {JWT}"


def test_one_session_serves_every_call(
    fake_server: FakeTamtamServer, tamtam_conn: Callable[..., str]
) -> None:
    tamtam_conn()
    hook = fast_hook()
    hook.get_credits()
    client = hook.get_conn()
    hook.get_credits()
    assert hook.get_conn() is client
    assert fake_server.request_count == 2


def test_unknown_fields_are_ignored(fake_server: FakeTamtamServer, tamtam_conn: Callable[..., str]) -> None:
    tamtam_conn()
    fake_server.set_credits([{**LINES[0], "renews_at": "2027-01-01"}])
    assert fast_hook().get_credits()[0].to_dict() == LINES[0]


# ---------------------------------------------------------------- retries


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_transient_status_is_retried(
    fake_server: FakeTamtamServer, tamtam_conn: Callable[..., str], status: int
) -> None:
    tamtam_conn()
    fake_server.add_faults(status_fault(status), status_fault(status))
    assert fast_hook().get_credits()[0].credit_type == "MaxKeyAccountsUnlocked"
    assert fake_server.request_count == 3


@pytest.mark.parametrize("fault", [drop_fault(), delay_fault(1.5)], ids=["dropped", "read-timeout"])
def test_connection_failures_are_retried(
    fake_server: FakeTamtamServer, tamtam_conn: Callable[..., str], fault: object
) -> None:
    tamtam_conn()
    fake_server.add_faults(fault)  # type: ignore[arg-type]
    assert len(fast_hook(timeout=0.5).get_credits()) == 1
    assert fake_server.request_count == 2


def test_retries_stop_at_max_retries_with_the_last_error(
    fake_server: FakeTamtamServer, tamtam_conn: Callable[..., str]
) -> None:
    tamtam_conn(extra={"max_retries": 2})
    fake_server.add_faults(*[status_fault(503)] * 5)
    with pytest.raises(TamtamAPIError) as info:
        fast_hook().get_credits()
    assert info.value.status == 503
    assert fake_server.request_count == 3


def test_unreachable_server_raises_connection_error_after_retries(tamtam_conn: Callable[..., str]) -> None:
    with FakeTamtamServer() as gone:
        url = gone.url
    tamtam_conn(host=url, extra={"max_retries": 1})
    with pytest.raises(TamtamConnectionError, match="Could not reach Tamtam"):
        fast_hook().get_credits()


@pytest.mark.parametrize(
    ("status", "is_auth_error"),
    [(400, False), (404, False), (405, False), (409, False), (422, False), (401, True), (403, True)],
)
def test_other_client_errors_fail_at_once(
    fake_server: FakeTamtamServer, tamtam_conn: Callable[..., str], status: int, is_auth_error: bool
) -> None:
    tamtam_conn()
    fake_server.add_faults(status_fault(status))
    with pytest.raises(TamtamAPIError) as info:
        fast_hook().get_credits()
    assert info.value.status == status
    assert isinstance(info.value, TamtamAuthError) is is_auth_error
    assert ("check the API key or token" in str(info.value)) is is_auth_error
    assert fake_server.request_count == 1


def test_wrong_key_is_an_auth_error(fake_server: FakeTamtamServer, tamtam_conn: Callable[..., str]) -> None:
    tamtam_conn(password="not-the-key")
    with pytest.raises(TamtamAuthError, match="HTTP 401"):
        fast_hook().get_credits()
    assert fake_server.request_count == 1


def _logged_waits(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> list[str]:
    """Retry lines from the hook's logger, whether Airflow routes it to stdlib logging or to structlog."""
    out = capfd.readouterr().out.splitlines() + [r.getMessage() for r in caplog.records]
    return [re.sub(r".*(Tamtam GET .* s)\b.*", r"\1", line) for line in out if "retrying in" in line]


def test_retry_after_seconds_is_honoured_and_logged(
    fake_server: FakeTamtamServer,
    tamtam_conn: Callable[..., str],
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    tamtam_conn()
    fake_server.add_faults(status_fault(429, retry_after="1"))
    with caplog.at_level(logging.INFO):
        fast_hook().get_credits()
    first, second = fake_server.requests
    assert second.timestamp - first.timestamp >= 0.95
    assert _logged_waits(caplog, capfd) == [
        "Tamtam GET /v2/credits attempt 1/6 failed (HTTP 429); retrying in 1.00 s"
    ]


def test_retry_after_http_date_is_honoured(
    fake_server: FakeTamtamServer, tamtam_conn: Callable[..., str]
) -> None:
    tamtam_conn()
    retry_at = http_date(2.5)  # whole seconds: 1.5 to 2.5 s from now
    fake_server.add_faults(status_fault(503, retry_after=retry_at))
    fast_hook().get_credits()  # its own backoff would retry after about 0.01 s
    first, second = fake_server.requests
    when = email.utils.parsedate_to_datetime(retry_at).timestamp()
    assert first.wall_time < when - 1
    assert when - 0.05 <= second.wall_time < when + 5

    in_two_minutes = email.utils.formatdate(time.time() + 120, usegmt=True)
    assert 115 <= (parse_retry_after(in_two_minutes) or 0) <= 120
    assert parse_retry_after(email.utils.formatdate(time.time() - 60, usegmt=True)) == 0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_retry_after_is_capped(
    fake_server: FakeTamtamServer,
    tamtam_conn: Callable[..., str],
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    tamtam_conn()
    fake_server.add_faults(status_fault(503, retry_after="3600"))
    policy = RetryPolicy(initial_wait=0.01, max_wait=0.05, retry_after_cap=0.2)
    with caplog.at_level(logging.INFO):
        TamtamHook(retry_policy=policy).get_credits()
    assert _logged_waits(caplog, capfd)[0].endswith("retrying in 0.20 s")
    assert fake_server.request_count == 2


def test_no_retry_starts_past_the_deadline(
    fake_server: FakeTamtamServer, tamtam_conn: Callable[..., str]
) -> None:
    tamtam_conn()
    fake_server.add_faults(status_fault(429, retry_after="5"))
    policy = RetryPolicy(initial_wait=0.01, deadline=2.0)
    started = time.monotonic()
    with pytest.raises(TamtamAPIError) as info:
        TamtamHook(retry_policy=policy).get_credits()
    assert info.value.status == 429
    assert info.value.retry_after == 5
    assert fake_server.request_count == 1
    assert time.monotonic() - started < 2.0


# ---------------------------------------------------------------- bodies


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"<html>oops</html>", "not JSON"),
        (b"{}", "credits: Field required"),
        (b'{"credits": {"a": 1}}', "credits: Input should be a valid array (got dict)"),
        (
            b'{"credits": [{"credit_type": "A", "total_credits": 1, "remaining_credits": 1}]}',
            "credits[0].used_credits",
        ),
        (
            b'{"credits": [{"credit_type": "A", "used_credits": 1, "total_credits": 2, "remaining_credits": 1},'
            b' {"credit_type": "B", "used_credits": 1, "total_credits": 2, "remaining_credits": "1"}]}',
            "credits[1].remaining_credits: Input should be a valid integer (got str)",
        ),
        (
            b'{"credits": [{"credit_type": 5, "used_credits": 1, "total_credits": 2, "remaining_credits": 1}]}',
            "credits[0].credit_type",
        ),
        (
            b'{"credits": [{"credit_type": "A", "used_credits": true, "total_credits": 2, "remaining_credits": 1}]}',
            "credits[0].used_credits",
        ),
        (
            b'{"credits": [{"credit_type": "A", "used_credits": 1.5, "total_credits": 2, "remaining_credits": 1}]}',
            "credits[0].used_credits",
        ),
        (b"[]", "body: Input should be an object"),
    ],
    ids=[
        "html",
        "no-credits",
        "credits-object",
        "missing-field",
        "string-number",
        "int-type",
        "bool",
        "float",
        "array",
    ],
)
def test_contract_breaking_bodies_are_named(
    fake_server: FakeTamtamServer, tamtam_conn: Callable[..., str], body: bytes, expected: str
) -> None:
    tamtam_conn()
    fake_server.add_faults(malformed_fault(body))
    with pytest.raises(TamtamResponseError) as info:
        fast_hook().get_credits()
    assert expected in str(info.value)
    assert fake_server.request_count == 1


def test_problem_json_is_parsed(fake_server: FakeTamtamServer, tamtam_conn: Callable[..., str]) -> None:
    tamtam_conn()
    problem = {
        "type": "https://api.tamtam.ai/errors/validation",
        "title": "Unprocessable Entity",
        "status": 422,
        "detail": "Request is invalid",
        "instance": "https://api.tamtam.ai/error-log/abc",
        "errors": [{"location": "header.Authorization", "message": "malformed"}],
    }
    fake_server.add_faults(status_fault(422, problem=problem))
    with pytest.raises(TamtamAPIError) as info:
        fast_hook().get_credits()
    assert info.value.problem is not None
    assert info.value.problem.type == problem["type"]
    assert info.value.problem.instance == problem["instance"]
    assert info.value.problem.errors is not None
    assert info.value.problem.errors[0].location == "header.Authorization"
    assert "Request is invalid; header.Authorization: malformed" in str(info.value)


def test_html_error_page_gives_status_and_short_snippet(
    fake_server: FakeTamtamServer, tamtam_conn: Callable[..., str]
) -> None:
    tamtam_conn(extra={"max_retries": 0})
    page = b"<html><body><h1>502 Bad Gateway</h1>" + b"<p>nginx</p>" * 200 + b"</body></html>"
    fake_server.add_faults(status_fault(502, body=page, content_type="text/html"))
    with pytest.raises(TamtamAPIError) as info:
        fast_hook().get_credits()
    assert info.value.status == 502
    assert info.value.problem is None
    assert "502 Bad Gateway" in str(info.value)
    assert "<h1>" not in str(info.value)
    assert len(str(info.value)) < 400


# ---------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"password": ""}, "has an empty password"),
        ({"password": "   "}, "has an empty password"),
        (
            {"extra": {"auth_type": "basic"}},
            "extra auth_type must be one of ('api_key', 'bearer'), got 'basic'",
        ),
        ({"extra": {"timeout": "soon"}}, "extra timeout must be a number, got 'soon'"),
        ({"extra": {"timeout": 0}}, "timeout must be a positive number of seconds"),
        ({"extra": {"max_retries": "many"}}, "extra max_retries must be a whole number, got 'many'"),
        ({"extra": {"max_retries": 1.5}}, "extra max_retries must be a whole number, got 1.5"),
        ({"extra": {"max_retries": -1}}, "max_retries must be 0 or more"),
        ({"extra": {"allow_insecure_http": "maybe"}}, "extra allow_insecure_http must be true or false"),
        ({"host": "http://api.example.com"}, "Refusing plain http:// to api.example.com"),
        ({"host": "ftp://api.example.com"}, "must start with https:// or http://"),
        ({"host": "https://user:pw@api.example.com"}, "must not hold a user name or password"),
    ],
)
def test_bad_configuration_fails_before_any_request(
    fake_server: FakeTamtamServer, tamtam_conn: Callable[..., str], fields: dict[str, object], expected: str
) -> None:
    tamtam_conn(**fields)
    with pytest.raises(TamtamConfigError) as info:
        fast_hook().get_credits()
    assert expected in str(info.value)
    assert (
        "'tamtam_default'" in str(info.value) or "base URL" in str(info.value) or "http://" in str(info.value)
    )
    assert fake_server.request_count == 0


def test_missing_connection_names_it_and_how_to_define_it() -> None:
    with pytest.raises(TamtamConfigError) as info:
        TamtamHook("tamtam_nowhere").get_credits()
    assert "'tamtam_nowhere' is not defined" in str(info.value)
    assert "AIRFLOW_CONN_TAMTAM_NOWHERE" in str(info.value)


@pytest.mark.parametrize(
    ("host", "extra", "url"),
    [
        ("", {}, "https://api.tamtam.ai/api/v2/credits"),
        ("api.example.com", {}, "https://api.example.com/v2/credits"),
        ("https://api.example.com/api/", {}, "https://api.example.com/api/v2/credits"),
        (
            "http://api.example.com/api",
            {"allow_insecure_http": "true"},
            "http://api.example.com/api/v2/credits",
        ),
        ("http://localhost:8080", {}, "http://localhost:8080/v2/credits"),
    ],
)
def test_host_mapping(tamtam_conn: Callable[..., str], host: str, extra: dict[str, str], url: str) -> None:
    tamtam_conn(host=host, extra=extra)
    assert fast_hook().get_conn().url == url


@pytest.mark.parametrize(
    ("uri", "url"),
    [
        ("tamtam://:k@api.example.com/api", "https://api.example.com/api/v2/credits"),
        ("tamtam://:k@api.example.com:8443/api", "https://api.example.com:8443/api/v2/credits"),
        ("tamtam://:k@", "https://api.tamtam.ai/api/v2/credits"),
        ("tamtam://:k@http%3A%2F%2F127.0.0.1%3A8080%2Fapi", "http://127.0.0.1:8080/api/v2/credits"),
    ],
)
def test_uri_form_connections(monkeypatch: pytest.MonkeyPatch, uri: str, url: str) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_TAMTAM_URI", uri)
    assert fast_hook("tamtam_uri").get_conn().url == url


def test_extras_as_strings_from_a_uri_and_kwargs_override_them(tamtam_conn: Callable[..., str]) -> None:
    tamtam_conn(extra={"timeout": "2.5", "max_retries": "3"})
    client = fast_hook().get_conn()
    assert (client.timeout, client.max_retries) == (2.5, 3)
    client = fast_hook(timeout=9, max_retries=0).get_conn()
    assert (client.timeout, client.max_retries) == (9, 0)


def test_redirect_to_another_host_drops_the_credential(
    fake_server: FakeTamtamServer, tamtam_conn: Callable[..., str]
) -> None:
    with FakeTamtamServer(api_key=API_KEY) as other:
        other_url = other.url.replace("127.0.0.1", "localhost") + "/v2/credits"
        tamtam_conn()
        fake_server.add_faults(redirect_fault(other_url))
        with pytest.raises(TamtamAuthError):
            fast_hook().get_credits()
        assert other.request_count == 1
        assert "Authorization" not in other.requests[0].headers


# ---------------------------------------------------------------- async


async def test_aget_credits_matches_get_credits(
    fake_server: FakeTamtamServer, tamtam_conn: Callable[..., str]
) -> None:
    tamtam_conn()
    fake_server.set_credits(LINES)
    fake_server.add_faults(status_fault(503))
    lines = await fast_hook().aget_credits()
    assert [line.to_dict() for line in lines] == LINES
    assert fake_server.request_count == 2


async def test_aget_credits_raises_the_same_errors(
    fake_server: FakeTamtamServer, tamtam_conn: Callable[..., str]
) -> None:
    tamtam_conn()
    fake_server.add_faults(status_fault(403))
    with pytest.raises(TamtamAuthError):
        await fast_hook().aget_credits()
    tamtam_conn("tamtam_bad", extra={"auth_type": "nope"})
    with pytest.raises(TamtamConfigError, match="auth_type"):
        await fast_hook("tamtam_bad").aget_credits()
    assert fake_server.request_count == 1


async def test_aget_credits_leaves_the_event_loop_free(
    fake_server: FakeTamtamServer, tamtam_conn: Callable[..., str]
) -> None:
    tamtam_conn()
    fake_server.latency = 0.5
    fake_server.add_faults(status_fault(503, retry_after="1"))
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    await fast_hook().aget_credits()
    task.cancel()
    # Two slow requests and a one-second Retry-After wait: a blocked loop would have ticked a handful of times.
    assert ticks > 50


# ---------------------------------------------------------------- test_connection


def test_test_connection_reports_success(
    fake_server: FakeTamtamServer, tamtam_conn: Callable[..., str]
) -> None:
    tamtam_conn()
    fake_server.set_credits(LINES)
    ok, message = fast_hook().test_connection()
    assert ok
    assert message == "Connected to Tamtam: 2 credit line(s): Exports, MaxKeyAccountsUnlocked"


def test_test_connection_reports_failure_without_secret(
    fake_server: FakeTamtamServer, tamtam_conn: Callable[..., str]
) -> None:
    tamtam_conn(password="wrong-" + API_KEY)
    ok, message = fast_hook().test_connection()
    assert not ok
    assert "HTTP 401" in message
    assert API_KEY not in message


def test_hook_class_attributes() -> None:
    assert (TamtamHook.conn_name_attr, TamtamHook.default_conn_name) == ("tamtam_conn_id", "tamtam_default")
    assert (TamtamHook.conn_type, TamtamHook.hook_name) == ("tamtam", "Tamtam")
    assert TamtamHook().tamtam_conn_id == "tamtam_default"
