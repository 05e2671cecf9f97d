"""Shared fixtures: a throwaway Airflow home (SQLite), the fake Tamtam server and connections.

The environment is set before anything imports Airflow, which reads its configuration at import time.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
_HOME = Path(tempfile.mkdtemp(prefix="tamtam-airflow-home-"))
_DAGS = _HOME / "dags"
_DAGS.mkdir()
# A UDP socket standing in for a StatsD daemon; Airflow's metrics client is set up once per process, so the
# address must be configured before anything touches it.
STATSD = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
STATSD.bind(("127.0.0.1", 0))
STATSD.setblocking(False)
os.environ.update(
    {
        "AIRFLOW_HOME": str(_HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(_DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "AIRFLOW__METRICS__STATSD_ON": "True",
        "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
        "AIRFLOW__METRICS__STATSD_PORT": str(STATSD.getsockname()[1]),
    }
)

from airflow_provider_tamtam.testing import FakeTamtamServer  # noqa: E402

API_KEY = "tt-live-SECRETKEY-4f9c2e71d8b3a6"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJTRUNSRVRKV1QifQ.c2lnbmF0dXJlLVNFQ1JFVEpXVA"


def airflow_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run the ``airflow`` command of this interpreter's environment against the test home."""
    return subprocess.run(
        [sys.executable, "-m", "airflow", *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def drain_statsd() -> list[str]:
    """Every metric line received since the last call."""
    lines: list[str] = []
    while True:
        try:
            lines += STATSD.recv(65535).decode().splitlines()
        except BlockingIOError:
            return lines


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Stop a hung Airflow run with pytest-timeout's thread method.

    Airflow's task runner catches the exception that the default signal method raises and carries on (a
    trigger that never ends is run again), so there a hang ends the whole run, naming the test and its stack.
    """
    for item in items:
        if "airflow_db" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.timeout(method="thread"))


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """Migrate the SQLite metadata database once per test session."""
    result = airflow_cli("db", "migrate")
    assert result.returncode == 0, result.stderr[-3000:]
    return _HOME


@pytest.fixture(scope="session")
def dags_folder() -> Path:
    return _DAGS


@pytest.fixture
def install_dag(dags_folder: Path) -> Iterator[Callable[[Path], Path]]:
    """Copy a DAG file into the dags folder (``dag.test()`` insists on it) and remove it afterwards."""
    copied: list[Path] = []

    def install(source: Path) -> Path:
        target = dags_folder / source.name
        shutil.copy(source, target)
        copied.append(target)
        return target

    yield install
    for path in copied:
        path.unlink(missing_ok=True)


@pytest.fixture
def fake_server() -> Iterator[FakeTamtamServer]:
    with FakeTamtamServer(api_key=API_KEY, bearer_token=JWT) as server:
        yield server


def conn_env(conn_id: str, **fields: Any) -> dict[str, str]:
    """The ``AIRFLOW_CONN_<ID>`` variable that defines a connection, in Airflow's JSON form."""
    return {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps({"conn_type": "tamtam", **fields})}


@pytest.fixture
def tamtam_conn(fake_server: FakeTamtamServer, monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    """Define a Tamtam connection pointing at the fake server; keyword arguments override its fields."""

    def define(conn_id: str = "tamtam_default", **fields: Any) -> str:
        fields.setdefault("host", fake_server.url)
        fields.setdefault("password", API_KEY)
        for key, value in conn_env(conn_id, **fields).items():
            monkeypatch.setenv(key, value)
        return conn_id

    return define
