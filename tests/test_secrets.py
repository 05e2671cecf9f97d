"""The credential never shows: not in logs at DEBUG (urllib3 included), errors, reprs; and it is masked."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from airflow_provider_tamtam.client import RetryPolicy
from airflow_provider_tamtam.exceptions import TamtamError
from airflow_provider_tamtam.hooks.tamtam import TamtamHook
from airflow_provider_tamtam.testing import FakeTamtamServer, malformed_fault, status_fault
from tests.conftest import API_KEY, JWT

FAST = RetryPolicy(initial_wait=0.01, max_wait=0.02)


def _redact(text: str) -> str:
    try:
        from airflow.sdk._shared.secrets_masker import redact
    except ImportError:  # Airflow 3.1
        from airflow.sdk.execution_time.secrets_masker import redact
    return str(redact(text))


@pytest.mark.parametrize(("secret", "auth_type"), [(API_KEY, "api_key"), (JWT, "bearer")])
def test_credential_absent_from_debug_logs_errors_and_reprs(
    fake_server: FakeTamtamServer,
    tamtam_conn: Callable[..., str],
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    secret: str,
    auth_type: str,
) -> None:
    tamtam_conn(password=secret, extra={"auth_type": auth_type})
    hook = TamtamHook(retry_policy=FAST)
    seen: list[str] = []
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("urllib3").setLevel(logging.DEBUG)
        hook.get_credits()
        fake_server.add_faults(status_fault(503), status_fault(401), malformed_fault(b'{"credits": 1}'))
        for _ in range(2):
            with pytest.raises(TamtamError) as info:
                hook.get_credits()
            seen += [str(info.value), repr(info.value), repr(info.value.__cause__)]
    assert fake_server.request_count == 4
    assert any("urllib3" in r.name for r in caplog.records), "urllib3 debug logging was not captured"
    out, err = capfd.readouterr()
    seen += [caplog.text, out, err, repr(hook), repr(hook.get_conn()), repr(hook.get_conn().__dict__)]
    for text in seen:
        assert secret not in text


@pytest.fixture
def unmasked_connections(
    monkeypatch: pytest.MonkeyPatch, fake_server: FakeTamtamServer
) -> Callable[[str], str]:
    """Serve Tamtam connections from a dict, through a lookup that, unlike Airflow's, masks nothing.

    Airflow's own lookup registers the password with the masker, so a masked password after a lookup through
    it says nothing about the hook; with this source, only the hook can have registered it.
    """
    from airflow.sdk.definitions.connection import Connection
    from airflow.sdk.execution_time import context

    defined: dict[str, Connection] = {}

    def lookup(conn_id: str) -> Connection:
        return defined[conn_id]

    async def alookup(conn_id: str) -> Connection:
        return defined[conn_id]

    monkeypatch.setattr(context, "_get_connection", lookup)
    monkeypatch.setattr(context, "_async_get_connection", alookup)

    def define(password: str) -> str:
        defined["tamtam_default"] = Connection(
            conn_id="tamtam_default", conn_type="tamtam", host=fake_server.url, password=password
        )
        assert _redact(password) == password, "the connection source masked the password itself"
        return password

    return define


def test_credential_is_registered_with_airflows_masker(unmasked_connections: Callable[[str], str]) -> None:
    distinctive = unmasked_connections("tt-mask-me-7d1f0c9ab2e84")
    TamtamHook().get_conn()
    assert _redact(f"key={distinctive}") == "key=***"


async def test_async_path_registers_the_credential_too(unmasked_connections: Callable[[str], str]) -> None:
    distinctive = unmasked_connections("tt-async-mask-5e2a9b7c1d")
    await TamtamHook().aget_conn()
    assert _redact(distinctive) == "***"
