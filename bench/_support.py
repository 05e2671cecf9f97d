"""Setup shared by the benchmark scripts: a throwaway Airflow home, the fake server, connections.

The scripts run as ``python bench/<script>.py``, so this directory is on ``sys.path`` and they import this
module as ``_support``. Nothing here imports Airflow: :func:`use_throwaway_airflow_home` must run before
anything does.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

API_KEY = "bench-api-key-0123456789"


def use_throwaway_airflow_home() -> str:
    """Point Airflow at a fresh temporary home, deleted at exit; returns its path.

    Airflow reads its configuration when first imported, so call this before anything imports Airflow.
    Logging goes to WARNING: triggers log every poll at INFO (1000 waiters would print 1000 lines a
    second), and nothing a bench does logs above INFO unless it is broken, so the output stays the tables.
    With logging at WARNING those calls are no-ops, so their formatting cost is not measured either.
    """
    home = tempfile.mkdtemp(prefix="tamtam-bench-home-")
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    os.environ.update(
        {
            "AIRFLOW_HOME": home,
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        }
    )
    return home


@contextlib.contextmanager
def fake_server_process(latency: float, credits: list[dict[str, object]] | None = None) -> Iterator[str]:
    """Run the shipped FakeTamtamServer in a child process; yields its base URL (``http://127.0.0.1:P/api``).

    A child process, so that the server's handler threads do not compete with the measured client for
    this process's GIL. ``credits`` replaces the server's default credit lines.
    """
    with tempfile.TemporaryDirectory(prefix="tamtam-bench-") as tmp:
        url_file = Path(tmp) / "url"
        command = [
            sys.executable,
            "-m",
            "airflow_provider_tamtam.testing.fake_server",
            "--host",
            "127.0.0.1",
            "--api-key",
            API_KEY,
            "--latency",
            str(latency),
            "--url-file",
            str(url_file),
        ]
        if credits is not None:
            command += ["--credits-json", json.dumps(credits)]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 30
            while not url_file.exists():
                if process.poll() is not None:
                    error = process.stderr.read() if process.stderr else ""
                    raise RuntimeError(f"fake server exited early: {error}")
                if time.monotonic() > deadline:
                    raise RuntimeError("fake server did not start within 30 s")
                time.sleep(0.02)
            yield url_file.read_text().strip()
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def request_log(base_url: str, reset: bool = False) -> tuple[int, list[float]]:
    """The fake server's request log, from its control API: credits request count and their times, sorted.

    ``reset`` clears the log first (``DELETE`` instead of ``GET``), so the answer is ``(0, [])``. Times
    are the server's ``time.time()`` at arrival.
    """
    origin = base_url.rsplit("/", 1)[0]
    method = "DELETE" if reset else "GET"
    request = urllib.request.Request(f"{origin}/_fake/requests", method=method)  # noqa: S310 (loopback)
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (loopback only)
        body = json.load(response)
    times = [float(r["wall_time"]) for r in body["requests"] if r["path"].endswith("/v2/credits")]
    return int(body["count"]), sorted(times)


def control(base_url: str, method: str, route: str, payload: object) -> object:
    """Call the fake server's control API (``/_fake/<route>``) with a JSON body; returns the JSON answer."""
    origin = base_url.rsplit("/", 1)[0]
    request = urllib.request.Request(  # noqa: S310 (loopback)
        f"{origin}/_fake/{route}",
        data=json.dumps(payload).encode(),
        method=method,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (loopback only)
        return json.load(response)


def define_connection(conn_id: str, **fields: object) -> None:
    """Define an Airflow connection as the environment variable ``AIRFLOW_CONN_<ID>``, in JSON form."""
    os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(fields)


def define_tamtam_connection(conn_id: str, base_url: str) -> None:
    """A Tamtam connection to ``base_url`` (a fake server's) with the bench's API key."""
    define_connection(conn_id, conn_type="tamtam", host=base_url, password=API_KEY)


async def loop_lag_ticker(lags: list[tuple[float, float]], stop: asyncio.Event, tick: float = 0.005) -> None:
    """Sleep ``tick`` in a loop and record when (``loop.time()``), and how late, every wake-up was."""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        expected = loop.time() + tick
        await asyncio.sleep(tick)
        lags.append((expected, loop.time() - expected))


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"
