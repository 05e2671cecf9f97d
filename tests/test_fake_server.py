"""FakeTamtamServer over real HTTP: credits, authentication, faults, request log, control API and CLI."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from airflow_provider_tamtam.testing import (
    DEFAULT_CREDITS,
    FakeTamtamServer,
    delay_fault,
    drop_fault,
    fault_from_dict,
    http_date,
    malformed_fault,
    redirect_fault,
    status_fault,
)
from airflow_provider_tamtam.testing.fake_server import main

REPO = Path(__file__).resolve().parent.parent
KEY = "test-api-key"
JWT = "test-jwt"
AUTH = {"Authorization": KEY}
SHORT = [{"credit_type": "Exports", "used_credits": 9, "total_credits": 10, "remaining_credits": 1}]
ENOUGH = [{"credit_type": "Exports", "used_credits": 0, "total_credits": 10, "remaining_credits": 10}]
UNAUTHORIZED = {
    "type": "about:blank",
    "title": "Unauthorized",
    "status": 401,
    "detail": "Missing or invalid credentials",
}


@pytest.fixture
def server() -> Iterator[FakeTamtamServer]:
    with FakeTamtamServer() as fake:
        yield fake


def get(
    server: FakeTamtamServer, headers: dict[str, str] | None = None, **kwargs: object
) -> requests.Response:
    return requests.get(
        server.credits_url,
        headers=AUTH if headers is None else headers,
        timeout=kwargs.pop("timeout", 5),  # type: ignore[arg-type]
        **kwargs,  # type: ignore[arg-type]
    )


# ---------------------------------------------------------------- credits


def test_default_credits(server: FakeTamtamServer) -> None:
    assert server.url.startswith("http://127.0.0.1:")
    assert server.url.endswith("/api")
    response = get(server)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert int(response.headers["Content-Length"]) == len(response.content)
    assert response.json() == {
        "credits": [
            {
                "credit_type": "MaxKeyAccountsUnlocked",
                "used_credits": 10,
                "total_credits": 5000,
                "remaining_credits": 4990,
            }
        ]
    }
    assert response.json()["credits"] == DEFAULT_CREDITS


def test_null_credits_from_constructor_and_setter() -> None:
    with FakeTamtamServer(None) as fake:
        assert get(fake).json() == {"credits": None}
        fake.set_credits(SHORT)
        assert get(fake).json() == {"credits": SHORT}
        fake.set_credits(None)
        assert get(fake).text == '{"credits": null}'


def test_set_credits_copies_its_argument(server: FakeTamtamServer) -> None:
    lines = [dict(SHORT[0])]
    server.set_credits(lines)
    lines[0]["remaining_credits"] = 999
    assert get(server).json()["credits"][0]["remaining_credits"] == 1


def test_schedule_counts_successful_answers_only(server: FakeTamtamServer) -> None:
    server.schedule_credits([(2, SHORT), (0, ENOUGH)])
    assert get(server).json()["credits"] == SHORT
    assert get(server, headers={}).status_code == 401
    server.add_faults(status_fault(503))
    assert get(server).status_code == 503
    assert get(server).json()["credits"] == SHORT
    assert [get(server).json()["credits"] for _ in range(3)] == [ENOUGH] * 3


def test_schedule_keeps_last_step_and_set_credits_drops_schedule(server: FakeTamtamServer) -> None:
    server.schedule_credits([(1, None), (1, SHORT), (2, ENOUGH)])
    assert [get(server).json()["credits"] for _ in range(5)] == [None, SHORT, ENOUGH, ENOUGH, ENOUGH]
    server.schedule_credits([(5, SHORT), (0, None)])
    server.set_credits(ENOUGH)
    assert get(server).json()["credits"] == ENOUGH


def test_schedule_rejects_zero_before_last() -> None:
    fake = FakeTamtamServer()
    with pytest.raises(ValueError, match="at least 1"):
        fake.schedule_credits([(0, SHORT), (0, ENOUGH)])


# ---------------------------------------------------------------- authentication


@pytest.mark.parametrize("value", [KEY, f"Bearer {JWT}"])
def test_accepted_credentials(server: FakeTamtamServer, value: str) -> None:
    assert get(server, headers={"Authorization": value}).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "wrong-key-XYZZY"},
        {"Authorization": f"Bearer {KEY}"},
        {"Authorization": JWT},
        {"Authorization": f"bearer {JWT}"},
        {"Authorization": f"{KEY} "},
    ],
)
def test_rejected_credentials(server: FakeTamtamServer, headers: dict[str, str]) -> None:
    response = get(server, headers=headers)
    assert response.status_code == 401
    assert response.headers["Content-Type"] == "application/problem+json"
    assert int(response.headers["Content-Length"]) == len(response.content)
    assert response.json() == UNAUTHORIZED
    for value in headers.values():
        assert value.strip() not in response.text


def test_disabled_schemes() -> None:
    with FakeTamtamServer(api_key=None, bearer_token="only-jwt") as fake:
        assert get(fake, headers={"Authorization": "test-api-key"}).status_code == 401
        assert get(fake, headers={"Authorization": "Bearer only-jwt"}).status_code == 200
    with FakeTamtamServer(api_key="only-key", bearer_token=None) as fake:
        assert get(fake, headers={"Authorization": "Bearer test-jwt"}).status_code == 401
        assert get(fake, headers={"Authorization": "only-key"}).status_code == 200


def test_unknown_path_and_wrong_method(server: FakeTamtamServer) -> None:
    missing = requests.get(server.url + "/v1/credits", headers=AUTH, timeout=5)
    assert missing.status_code == 404
    assert missing.headers["Content-Type"] == "application/problem+json"
    assert missing.json()["status"] == 404
    posted = requests.post(server.credits_url, headers=AUTH, json={"x": 1}, timeout=5)
    assert posted.status_code == 405
    assert posted.headers["Allow"] == "GET"
    assert posted.json()["title"] == "Method Not Allowed"
    assert server.request_count == 1
    assert [(r.method, r.status) for r in server.requests] == [("GET", 404), ("POST", 405)]


# ---------------------------------------------------------------- faults


def test_status_faults_are_served_in_order_before_auth(server: FakeTamtamServer) -> None:
    date = http_date(30)
    server.add_faults(status_fault(503, retry_after="1"), status_fault(429, retry_after=date))
    assert server.pending_faults == 2
    first = get(server, headers={})
    assert first.status_code == 503
    assert first.headers["Retry-After"] == "1"
    assert first.headers["Content-Type"] == "application/problem+json"
    assert first.json() == {
        "type": "about:blank",
        "title": "Service Unavailable",
        "status": 503,
        "detail": "The server cannot process the request due to a high load",
    }
    second = get(server, headers={})
    assert (second.status_code, second.headers["Retry-After"]) == (429, date)
    assert date.endswith(" GMT")
    assert get(server, headers={}).status_code == 401
    assert get(server).status_code == 200
    assert server.pending_faults == 0


def test_status_fault_with_custom_problem_body_and_headers(server: FakeTamtamServer) -> None:
    problem = {"title": "Payment Required", "status": 402, "errors": [{"message": "no plan"}]}
    server.add_faults(
        status_fault(402, problem=problem, headers={"X-Request-Id": "abc"}),
        status_fault(502, body=b"<html>bad gateway</html>", content_type="text/html"),
    )
    first = get(server)
    assert (first.status_code, first.json(), first.headers["X-Request-Id"]) == (402, problem, "abc")
    second = get(server)
    assert (second.status_code, second.text) == (502, "<html>bad gateway</html>")
    assert second.headers["Content-Type"] == "text/html"


def test_fault_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="between 200 and 599"):
        status_fault(99)
    with pytest.raises(ValueError, match="either problem or body"):
        status_fault(500, problem={}, body=b"")
    with pytest.raises(ValueError, match="managed by the server"):
        status_fault(500, headers={"Content-Length": "3"})
    with pytest.raises(ValueError, match="between 300 and 399"):
        redirect_fault("http://example.invalid/", status=200)
    with pytest.raises(ValueError, match="negative"):
        delay_fault(-1)


def test_delay_fault_runs_past_read_timeout_then_answers(server: FakeTamtamServer) -> None:
    server.add_faults(delay_fault(0.4), delay_fault(0.1))
    with pytest.raises(requests.ReadTimeout):
        get(server, timeout=0.1)
    started = time.monotonic()
    response = get(server)
    assert time.monotonic() - started >= 0.1
    assert response.status_code == 200
    assert response.json()["credits"] == DEFAULT_CREDITS
    assert server.request_count == 2


def test_drop_fault_closes_without_answer(server: FakeTamtamServer) -> None:
    server.add_faults(drop_fault())
    with pytest.raises(requests.ConnectionError):
        get(server)
    assert get(server).status_code == 200
    assert [r.status for r in server.requests] == [0, 200]
    assert server.request_count == 2


def test_malformed_fault(server: FakeTamtamServer) -> None:
    server.add_faults(
        malformed_fault(b"not json"),
        malformed_fault(b'{"credits": "many"}', status=200),
        malformed_fault(b"<h1>oops</h1>", status=500, content_type="text/html"),
    )
    first = get(server)
    assert (first.status_code, first.text, first.headers["Content-Type"]) == (
        200,
        "not json",
        "application/json",
    )
    assert get(server).json() == {"credits": "many"}
    third = get(server)
    assert (third.status_code, third.text, third.headers["Content-Type"]) == (
        500,
        "<h1>oops</h1>",
        "text/html",
    )


def test_redirect_fault_to_other_host_loses_credential(server: FakeTamtamServer) -> None:
    with FakeTamtamServer() as other:
        elsewhere = other.credits_url.replace("127.0.0.1", "localhost")
        server.add_faults(redirect_fault(elsewhere), redirect_fault(elsewhere, status=307))
        unfollowed = get(server, allow_redirects=False)
        assert (unfollowed.status_code, unfollowed.headers["Location"]) == (302, elsewhere)
        assert unfollowed.headers["Content-Length"] == "0"
        followed = get(server)
        assert followed.status_code == 401
        assert followed.history[0].status_code == 307
        assert [r.status for r in other.requests] == [401]
        assert "Authorization" not in other.requests[0].headers
        assert server.requests[-1].headers["Authorization"] == KEY


def test_latency_applies_to_every_credits_request(server: FakeTamtamServer) -> None:
    server.latency = 0.15
    started = time.monotonic()
    assert get(server).status_code == 200
    assert get(server, headers={}).status_code == 401
    assert time.monotonic() - started >= 0.3


# ---------------------------------------------------------------- request log


def test_request_log(server: FakeTamtamServer) -> None:
    before_wall = time.time()
    get(server, headers={"Authorization": f"Bearer {JWT}", "X-Trace": "1"})
    requests.get(server.credits_url + "?verbose=1", timeout=5)
    records = server.requests
    assert [(r.method, r.path, r.status) for r in records] == [
        ("GET", "/api/v2/credits", 200),
        ("GET", "/api/v2/credits?verbose=1", 401),
    ]
    assert records[0].headers["Authorization"] == f"Bearer {JWT}"
    assert records[0].headers["X-Trace"] == "1"
    assert "Authorization" not in records[1].headers
    assert records[0].timestamp <= records[1].timestamp
    assert before_wall - 1 <= records[0].wall_time <= time.time() + 1
    assert server.request_count == 2

    records.clear()
    records_again = server.requests
    records_again[0].headers["Authorization"] = "changed"
    assert len(server.requests) == 2
    assert server.requests[0].headers["Authorization"] == f"Bearer {JWT}"

    server.reset_requests()
    assert (server.requests, server.request_count) == ([], 0)


# ---------------------------------------------------------------- control API


def test_control_api(server: FakeTamtamServer) -> None:
    control = server.control_url
    assert requests.put(f"{control}/credits", json={"credits": SHORT}, timeout=5).status_code == 200
    assert get(server).json()["credits"] == SHORT
    assert requests.put(f"{control}/credits", json={"credits": None}, timeout=5).status_code == 200
    assert get(server).json() == {"credits": None}

    faults = [{"status": 503, "retry_after": "1"}, {"drop": True}, {"delay": 0.05}]
    queued = requests.post(f"{control}/faults", json=faults, timeout=5)
    assert queued.json() == {"queued": 3, "pending": 3}
    first = get(server)
    assert (first.status_code, first.headers["Retry-After"]) == (503, "1")
    with pytest.raises(requests.ConnectionError):
        get(server)

    schedule = {"steps": [[1, SHORT], [0, ENOUGH]]}
    assert requests.post(f"{control}/schedule", json=schedule, timeout=5).json() == {"steps": 2}
    assert get(server).json()["credits"] == SHORT  # after the delay fault
    assert get(server).json()["credits"] == ENOUGH

    log = requests.get(f"{control}/requests", timeout=5)
    assert log.status_code == 200
    body = log.json()
    assert body["count"] == 6 == server.request_count
    assert [r["status"] for r in body["requests"]] == [200, 200, 503, 0, 200, 200]
    assert set(body["requests"][0]) == {"method", "path", "status", "wall_time"}
    assert KEY not in log.text
    assert "Authorization" not in log.text

    assert requests.delete(f"{control}/requests", timeout=5).json() == {"count": 0, "requests": []}
    assert server.request_count == 0


@pytest.mark.parametrize(
    ("method", "route", "payload", "status"),
    [
        ("PUT", "credits", {"credits": {"not": "a list"}}, 400),
        ("PUT", "credits", {}, 400),
        ("POST", "faults", [{"explode": True}], 400),
        ("POST", "faults", [{"drop": "yes"}], 400),
        ("POST", "schedule", {"steps": [[0, SHORT], [0, ENOUGH]]}, 400),
        ("POST", "credits", {"credits": None}, 405),
        ("GET", "nothing", None, 404),
    ],
)
def test_control_api_rejects_bad_requests(
    server: FakeTamtamServer, method: str, route: str, payload: object, status: int
) -> None:
    response = requests.request(method, f"{server.control_url}/{route}", json=payload, timeout=5)
    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/problem+json"
    assert server.pending_faults == 0
    assert get(server).json()["credits"] == DEFAULT_CREDITS


def test_fault_from_dict() -> None:
    assert fault_from_dict({"status": 503, "retry_after": 2}) == status_fault(503, retry_after="2")
    assert fault_from_dict({"redirect": "http://x.invalid/"}) == redirect_fault("http://x.invalid/")
    assert fault_from_dict({"body": "[]", "status": 500}) == malformed_fault(b"[]", status=500)
    assert fault_from_dict({"delay": 1}) == delay_fault(1)


# ---------------------------------------------------------------- connections


def test_keep_alive_reuses_one_connection(server: FakeTamtamServer) -> None:
    with requests.Session() as session:
        statuses = [session.get(server.credits_url, headers=AUTH, timeout=5).status_code for _ in range(2)]
        pools = session.get_adapter(server.url).poolmanager.pools  # type: ignore[attr-defined]
        assert statuses == [200, 200]
        # The pool container refuses plain iteration.
        assert [pools[key].num_connections for key in pools.keys()] == [1]  # noqa: SIM118


def test_keep_alive_survives_errors_and_request_bodies(server: FakeTamtamServer) -> None:
    host, port = server.url.removeprefix("http://").split("/")[0].split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        exchanges = [
            ("GET", "/api/v2/credits", None, {}),
            ("POST", "/api/v2/credits", b'{"padding": "' + b"x" * 5000 + b'"}', AUTH),
            ("GET", "/nowhere", None, AUTH),
            ("PUT", "/_fake/credits", json.dumps({"credits": SHORT}).encode(), {}),
            ("GET", "/api/v2/credits", None, AUTH),
        ]
        statuses = []
        sockets = set()
        for method, path, body, headers in exchanges:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()
            statuses.append(response.status)
            assert connection.sock is not None
            sockets.add(id(connection.sock))
        assert statuses == [401, 405, 404, 200, 200]
        assert json.loads(payload) == {"credits": SHORT}
        assert len(sockets) == 1
    finally:
        connection.close()


def test_stop_closes_idle_keep_alive_connections() -> None:
    fake = FakeTamtamServer().start()
    with requests.Session() as session:
        assert session.get(fake.credits_url, headers=AUTH, timeout=5).status_code == 200
        url = fake.credits_url
        fake.stop()
        fake.stop()
        with pytest.raises(requests.ConnectionError):
            session.get(url, headers=AUTH, timeout=2)
    with pytest.raises(RuntimeError, match="not running"):
        _ = fake.url


def test_start_twice_fails(server: FakeTamtamServer) -> None:
    with pytest.raises(RuntimeError, match="already running"):
        server.start()


# ---------------------------------------------------------------- command line


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_cli(tmp_path: Path, stop_signal: signal.Signals) -> None:
    url_file = tmp_path / "url"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "airflow_provider_tamtam.testing.fake_server",
            "--port",
            "0",
            "--api-key",
            "cli-key",
            "--credits-json",
            json.dumps(SHORT),
            "--rise-after",
            "1",
            "--risen-credits-json",
            json.dumps(ENOUGH),
            "--url-file",
            str(url_file),
        ],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 10
        while not url_file.exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the server did not write its URL"
            time.sleep(0.02)
        url = url_file.read_text()
        assert url.startswith("http://127.0.0.1:")
        assert url.endswith("/api")
        credits_url = url + "/v2/credits"
        assert requests.get(credits_url, headers={"Authorization": "cli-key"}, timeout=5).json() == {
            "credits": SHORT
        }
        assert requests.get(credits_url, headers={"Authorization": "cli-key"}, timeout=5).json() == {
            "credits": ENOUGH
        }
        assert requests.get(credits_url, headers=AUTH, timeout=5).status_code == 401
        process.send_signal(stop_signal)
        stdout, stderr = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    assert stdout == f"FakeTamtamServer listening on {url}\n"
    assert "cli-key" not in stdout + stderr
    assert "Traceback" not in stderr
    assert "RuntimeWarning" not in stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["--credits-json", "{"],
        ["--credits-json", '{"credits": []}'],
        ["--rise-after", "2"],
        ["--risen-credits-json", "[]"],
    ],
)
def test_cli_rejects_bad_arguments(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert "usage:" in capsys.readouterr().err
