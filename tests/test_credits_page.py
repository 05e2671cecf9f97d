"""The credits page inside a real api-server app (plugins loaded from the installed entry point).

Requests go through ``airflow.api_fastapi.app.create_app()`` with its auth manager, so access checks, the
plugin's mount point and the hook's connection lookup are Airflow's own; the Tamtam API is the fake server.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from airflow_provider_tamtam.testing import FakeTamtamServer, credit_line, status_fault
from tests.conftest import API_KEY, JWT
from tests.credits_page_support import (
    JWT_ISSUER_ENV,
    PAGE,
    bearer,
    conn_json,
    read_cards,
    token_for,
    unique_conn_id,
)

LINES = [
    credit_line("MaxKeyAccountsUnlocked", used=10, total=5000),
    credit_line("MaxKeyAccountsUnlocked", used=150, total=200),
    credit_line("Exports", used=95, total=100),
]


@pytest.fixture(scope="module")
def api_app(airflow_db: Path) -> Iterator[Any]:
    """The api-server's whole FastAPI app, built once: plugins load once per process, as in production."""
    from airflow.api_fastapi.app import create_app

    with pytest.MonkeyPatch.context() as patch:
        for key, value in JWT_ISSUER_ENV.items():
            patch.setenv(key, value)
        yield create_app()


@pytest.fixture
async def client(api_app: Any, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[httpx.AsyncClient]:
    # What the api-server's entry module (airflow.api_fastapi.main) sets: connections come from the
    # metadata database too, not only from the environment and external secrets backends.
    monkeypatch.setenv("_AIRFLOW_PROCESS_CONTEXT", "server")
    transport = httpx.ASGITransport(app=api_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api-server") as c:
        yield c


@pytest.fixture
def define_conn(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Define a tamtam connection in the environment under a fresh id; returns the id."""

    def define(**fields: Any) -> str:
        conn_id = unique_conn_id()
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", conn_json(**fields))
        return conn_id

    return define


async def test_page_shows_each_credit_type_with_its_lines_and_reading_time(
    client: httpx.AsyncClient, fake_server: FakeTamtamServer, define_conn: Any
) -> None:
    fake_server.set_credits(LINES)
    conn_id = define_conn(host=fake_server.url, password=API_KEY)

    response = await client.get(PAGE, headers=bearer("op"))

    assert response.status_code == 200, response.text[:500]
    assert response.headers["content-type"].startswith("text/html")
    card = read_cards(response.text)[conn_id]
    assert card.rows == {
        "Exports": {"remaining": 5, "used": 95, "total": 100},
        "MaxKeyAccountsUnlocked": {"remaining": 4990 + 50, "used": 160, "total": 5200},
    }
    assert card.lines["MaxKeyAccountsUnlocked"] == [
        "line 1: 4\u202f990 remaining, 10 used of 5\u202f000",
        "line 2: 50 remaining, 150 used of 200",
    ]
    assert card.read_at is not None
    assert card.read_at.endswith("+00:00")
    assert not card.error
    assert card.sections == ["Reservations", "Burn rate"]
    assert "not known yet" in card.text, "one reading gives no rate"


async def test_database_connections_are_listed_and_other_types_are_not(
    client: httpx.AsyncClient, fake_server: FakeTamtamServer
) -> None:
    from airflow.models import Connection
    from airflow.utils.session import create_session

    tamtam_id, http_id = unique_conn_id("tt_db"), unique_conn_id("http_db")
    with create_session() as session:
        session.add(Connection(conn_id=tamtam_id, conn_type="tamtam", host=fake_server.url, password=API_KEY))
        session.add(Connection(conn_id=http_id, conn_type="http", host=fake_server.url, password=API_KEY))
    try:
        response = await client.get(PAGE, headers=bearer("admin"))
    finally:
        with create_session() as session:
            session.query(Connection).filter(Connection.conn_id.in_([tamtam_id, http_id])).delete()

    cards = read_cards(response.text)
    assert cards[tamtam_id].rows["MaxKeyAccountsUnlocked"] == {"remaining": 4990, "used": 10, "total": 5000}
    assert http_id not in cards


async def test_fifty_concurrent_viewers_cause_one_api_call_per_connection(
    client: httpx.AsyncClient, fake_server: FakeTamtamServer, define_conn: Any
) -> None:
    first = define_conn(host=fake_server.url, password=API_KEY)
    second = define_conn(host=fake_server.url, password=JWT, extra={"auth_type": "bearer"})
    headers = bearer("op")

    pages = await asyncio.gather(*(client.get(PAGE, headers=headers) for _ in range(50)))
    again = await asyncio.gather(*(client.get(PAGE, headers=headers) for _ in range(50)))

    assert {page.status_code for page in pages + again} == {200}
    for page in pages + again:
        cards = read_cards(page.text)
        assert cards[first].rows
        assert cards[second].rows
    # one request per connection within the refresh period (60 s by default), however many pages
    assert fake_server.request_count == 2
    assert sorted(r.headers.get("Authorization", "") for r in fake_server.requests) == sorted(
        [API_KEY, f"Bearer {JWT}"]
    )


async def test_failing_connections_show_their_error_without_secrets(
    client: httpx.AsyncClient, fake_server: FakeTamtamServer, define_conn: Any
) -> None:
    wrong_key = "tt-live-WRONGSECRET-0a1b2c3d4e5f"
    bad_key = define_conn(host=fake_server.url, password=wrong_key)
    missing_password = define_conn(host=fake_server.url)
    good = define_conn(host=fake_server.url, password=API_KEY)

    response = await client.get(PAGE, headers=bearer("op"))

    cards = read_cards(response.text)
    assert "HTTP 401" in cards[bad_key].error
    assert "empty password" in cards[missing_password].error
    assert not cards[bad_key].rows
    assert cards[good].rows, "one failing connection must not hide the others"
    assert "Traceback" not in response.text
    for secret in (wrong_key, API_KEY, JWT, "Authorization"):
        assert secret not in response.text


async def test_a_key_that_the_api_echoes_in_an_error_is_masked(
    client: httpx.AsyncClient, fake_server: FakeTamtamServer, define_conn: Any
) -> None:
    conn_id = define_conn(host=fake_server.url, password=API_KEY)
    problem = {"title": "Bad Request", "status": 400, "detail": f"key {API_KEY} may not do this"}
    fake_server.add_faults(status_fault(400, problem=problem))

    response = await client.get(PAGE, headers=bearer("op"))

    error = read_cards(response.text)[conn_id].error
    assert "HTTP 400" in error
    assert "key *** may not do this" in error
    assert API_KEY not in response.text


async def test_server_errors_are_retried_by_the_hook_then_shown(
    client: httpx.AsyncClient, fake_server: FakeTamtamServer, define_conn: Any
) -> None:
    conn_id = define_conn(host=fake_server.url, password=API_KEY, extra={"max_retries": 1})
    fake_server.add_faults(status_fault(503), status_fault(503))

    response = await client.get(PAGE, headers=bearer("op"))

    assert "HTTP 503" in read_cards(response.text)[conn_id].error
    assert fake_server.request_count == 2  # the hook's retry, then the error on the page


async def test_page_is_self_contained_and_has_both_colour_schemes(
    client: httpx.AsyncClient, fake_server: FakeTamtamServer, define_conn: Any
) -> None:
    define_conn(host=fake_server.url, password=API_KEY)

    html = (await client.get(PAGE, headers=bearer("op"))).text

    assert "<script" not in html.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html), "nothing may be fetched"
    assert "@import" not in html
    assert "url(" not in html
    assert "prefers-color-scheme: dark" in html
    assert "<svg" in html


async def test_signed_in_ui_session_cookie_is_enough(
    client: httpx.AsyncClient, fake_server: FakeTamtamServer, define_conn: Any
) -> None:
    """The UI shows the page in a frame: the browser sends the api-server's session cookie, not a header."""
    from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN

    conn_id = define_conn(host=fake_server.url, password=API_KEY)
    client.cookies.set(COOKIE_NAME_JWT_TOKEN, token_for("op"))

    response = await client.get(PAGE)

    assert response.status_code == 200
    assert conn_id in read_cards(response.text)


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        pytest.param({}, 401, id="anonymous"),
        pytest.param({"Authorization": "Bearer not-a-jwt"}, 403, id="invalid-token"),
        pytest.param("viewer", 403, id="viewer-may-not-read-connections"),
        pytest.param("user", 403, id="user-may-not-read-connections"),
    ],
)
async def test_page_is_refused_without_a_right_to_read_connections(
    client: httpx.AsyncClient,
    fake_server: FakeTamtamServer,
    define_conn: Any,
    headers: dict[str, str] | str,
    status: int,
) -> None:
    conn_id = define_conn(host=fake_server.url, password=API_KEY)

    response = await client.get(PAGE, headers=bearer(headers) if isinstance(headers, str) else headers)

    assert response.status_code == status
    assert conn_id not in response.text
    assert "MaxKeyAccountsUnlocked" not in response.text
    assert fake_server.request_count == 0, "a refused request must not reach the Tamtam API"


async def test_the_plugin_adds_a_navigation_entry(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v2/plugins", headers=bearer("admin"))

    (plugin,) = [p for p in response.json()["plugins"] if p["name"] == "tamtam_credits"]
    (view,) = plugin["external_views"]
    assert view["name"] == "Tamtam credits"
    assert view["destination"] == "nav"
    assert view["href"].endswith(PAGE)
    assert view["icon"].startswith("data:image/svg+xml,"), "the icon needs no unauthenticated route"
    assert [app["url_prefix"] for app in plugin["fastapi_apps"]] == ["/tamtam"]


LOADED_PLUGINS = """
import json
from airflow import plugins_manager as pm
if hasattr(pm, "_get_plugins"):  # Airflow 3.2+
    plugins, errors = pm._get_plugins()
else:
    pm.ensure_plugins_loaded()
    plugins, errors = pm.plugins, pm.import_errors
print(json.dumps({"names": [p.name for p in plugins], "errors": errors}))
"""


@pytest.mark.parametrize("lazy", ["True", "False"])
def test_plugin_loads_once_whether_providers_are_discovered_lazily_or_not(
    airflow_db: Path, lazy: str, tmp_path: Path
) -> None:
    """Entry point and provider info both name the plugin; Airflow must load it once, without an error.

    Run outside the checkout, as an installed Airflow runs: from the repository root, ``python -c`` would
    also see the editable install's ``*.egg-info`` there, a second copy of every entry point.
    """
    env = {"AIRFLOW__CORE__LAZY_DISCOVER_PROVIDERS": lazy}
    result = subprocess.run(
        [sys.executable, "-c", LOADED_PLUGINS],
        cwd=tmp_path,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded["names"].count("tamtam_credits") == 1
    assert loaded["errors"] == {}


def test_provider_info_declares_the_plugin_and_the_refresh_setting(airflow_db: Path) -> None:
    import airflow
    import jsonschema

    from airflow_provider_tamtam import get_provider_info
    from tests.conftest import airflow_cli

    info = get_provider_info()
    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    jsonschema.validate(info, schema)
    assert info["plugins"] == [
        {
            "name": "tamtam_credits",
            "plugin-class": "airflow_provider_tamtam.plugins.credits_plugin.TamtamCreditsPlugin",
        }
    ]
    setting = airflow_cli("config", "get-value", "tamtam", "ui_refresh_seconds")
    assert setting.returncode == 0, setting.stderr[-2000:]
    assert setting.stdout.strip().splitlines()[-1] == "60"
