"""Live deployment check: a real Airflow 3 deployment gates DAG runs on Tamtam credits and watches them.

Starts, from the repository alone, a throwaway Airflow deployment: a temporary ``AIRFLOW_HOME``, a private
PostgreSQL cluster on a loopback port as the metadata database, ``airflow db migrate``, then api-server,
scheduler (LocalExecutor), dag-processor and triggerer as separate processes, with the repository's
example DAGs, ``deploy/dags/tamtam_watchers_check.py`` and a local Tamtam API (``FakeTamtamServer``)
whose credits are short. Then it checks what unit tests cannot:

1. 20 concurrent runs of ``tamtam_gate_on_credits`` each poke once on a worker, then defer to the triggerer;
2. while they wait, the Tamtam API sees about one call per poll interval, not one per sensor;
3. the triggerer is SIGKILLed and restarted while they wait: the sensors resume in the new triggerer;
4. once credits rise, every run succeeds;
5. 20 asset watchers (``TamtamCreditsEventTrigger``, one threshold each) run in the triggerer for about one
   call per poll interval between them; once credits rise above every threshold each asset gets exactly
   one event and each watcher DAG exactly one run, and no more while credits stay high, not even after a
   triggerer restart (the armed state lives in the asset state store);
6. the Tamtam connection form works in a real browser (``deploy/browser_form.py``; ``--no-browser`` skips).

Run it as ``.venv/bin/python deploy/check.py`` (``--help`` lists the options). It prints a summary table,
exits non-zero when a check fails, and stops every process it started, also on errors, SIGTERM and Ctrl-C.
The temporary home is deleted on success and kept, with every process's log, on failure. Paths are printed
relative to the repository, or as ``$TMPDIR/...`` for temporary ones, so the output can be committed.
"""

from __future__ import annotations

import argparse
import atexit
import base64
import contextlib
import datetime as dt
import importlib.util
import itertools
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import browser_form
import requests
import sqlalchemy
from browser_form import display_path

REPO = Path(__file__).resolve().parent.parent
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
DAG_ID = "tamtam_gate_on_credits"
SENSOR_TASK = "wait_for_credits"
CREDIT_TYPE = "MaxKeyAccountsUnlocked"
MIN_CREDITS = 500  # the example DAG's default param
API_KEY = "deploy-check-key"  # the fake API's key: a throwaway value, never a real credential
MARKER_VAR = "TAMTAM_DEPLOY_CHECK_RUN"  # every process started here inherits it: how leftovers are found
SHORT_CREDITS = [
    {"credit_type": CREDIT_TYPE, "used_credits": 4900, "total_credits": 5000, "remaining_credits": 100}
]
RISEN_CREDITS = [
    {"credit_type": CREDIT_TYPE, "used_credits": 10, "total_credits": 5000, "remaining_credits": 4990}
]
RATE_BAR = "[bar: mean <= 1.5, max <= 2]"
WATCH_DAG_FILE = Path(__file__).resolve().parent / "dags" / "tamtam_watchers_check.py"
WATCH_DAG_PREFIX = "tamtam_watchers_check_"  # watcher DAG i is tamtam_watchers_check_<i:02d>
WATCH_ASSET_PREFIX = "tamtam/watchers_check/"  # its asset is tamtam/watchers_check/<i:02d>
WATCH_BASE_THRESHOLD = 1000  # its watcher fires once the remaining credits reach 1000 + i
WATCH_LOG_LINE = f"Watching Tamtam credits {CREDIT_TYPE}"  # what each watcher logs when it starts
STATE_KEY_PREFIX = "tamtam_credits_event:"  # a watcher's key in its asset's state store


# --------------------------------------------------------------------------------------------- output


class Console:
    """Timestamped progress lines on stdout, relative to the start of the check."""

    def __init__(self) -> None:
        self.start = time.monotonic()

    def __call__(self, message: str) -> None:
        print(f"[{time.monotonic() - self.start:6.1f}s] {message}", flush=True)


say = Console()


@dataclass
class Check:
    """One row of the summary: a bar that passes or fails, or an informational measurement."""

    name: str
    passed: bool | None  # None: informational, never fails the run
    detail: str


@dataclass
class Report:
    """The rows of the summary table, in the order they were measured."""

    checks: list[Check] = field(default_factory=list)

    def add(self, name: str, passed: bool | None, detail: str) -> None:
        self.checks.append(Check(name, passed, detail))
        say(f"{_mark(passed)}: {name}: {detail}")

    @property
    def failed(self) -> bool:
        return any(check.passed is False for check in self.checks)

    def table(self, detail_width: int = 78) -> str:
        """Plain-text table, details wrapped, that stays readable in a terminal and a CI log."""
        name_width = max([len("Check"), *(len(check.name) for check in self.checks)])
        rule = f"+-{'-' * name_width}-+------+-{'-' * detail_width}-+"
        lines = [rule, f"| {'Check'.ljust(name_width)} | Bar  | {'Detail'.ljust(detail_width)} |", rule]
        for check in self.checks:
            wrapped = textwrap.wrap(check.detail, detail_width, break_on_hyphens=False) or [""]
            for index, text in enumerate(wrapped):
                name, mark = (check.name, _mark(check.passed)) if index == 0 else ("", "")
                lines.append(f"| {name.ljust(name_width)} | {mark.ljust(4)} | {text.ljust(detail_width)} |")
        lines.append(rule)
        return "\n".join(lines)


def _mark(passed: bool | None) -> str:
    return {True: "PASS", False: "FAIL", None: "info"}[passed]


class CheckFailed(Exception):
    """The deployment did not reach a state the check needs; the message says which."""


# --------------------------------------------------------------------------------------------- processes


def free_port() -> int:
    """A loopback port that is free now (the small race with other programs is acceptable here)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(
    what: str,
    condition: Callable[[], bool],
    timeout: float,
    interval: float = 0.5,
    alive: Callable[[], None] | None = None,
) -> None:
    """Poll ``condition`` until it holds; raise :class:`CheckFailed` naming ``what`` after ``timeout`` s.

    Connection errors count as "not yet" (a component may still be starting); ``alive`` is called on each
    round so that a component that died ends the wait at once.
    """
    deadline = time.monotonic() + timeout
    while True:
        if alive is not None:
            alive()
        with contextlib.suppress(requests.ConnectionError, requests.Timeout):
            if condition():
                return
        if time.monotonic() > deadline:
            raise CheckFailed(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


class Processes:
    """Child processes, each in its own process group, stopped by group and then swept by marker.

    Every child inherits ``MARKER_VAR`` with this run's id, so anything they spawned (task supervisors,
    trigger runners, api-server workers, the browser) is found in ``/proc`` and stopped by PID even when it
    left its process group. Only processes carrying this run's marker are ever signalled.
    """

    def __init__(self, marker: str, log_dir: Path) -> None:
        self.marker = marker
        self.log_dir = log_dir
        self.env: dict[str, str] = {**os.environ, MARKER_VAR: marker}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: list[TextIO] = []
        self._starts: dict[str, int] = {}
        self.log_paths: dict[str, Path] = {}  # the current log of each component, by name

    def start(self, name: str, argv: Sequence[str]) -> int:
        """Start ``argv`` in a new session, output to ``<log_dir>/<name>[.N].log``; returns its PID."""
        count = self._starts.get(name, 0)
        self._starts[name] = count + 1
        path = self.log_dir / (f"{name}.log" if count == 0 else f"{name}.{count}.log")
        self.log_paths[name] = path
        log = open(path, "w")  # noqa: SIM115
        self._logs.append(log)  # closed in stop_all
        self.procs[name] = subprocess.Popen(
            list(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=self.log_dir,
            start_new_session=True,
        )
        return self.procs[name].pid

    def pid(self, name: str) -> int:
        return self.procs[name].pid

    def ensure_running(self) -> None:
        """Fail fast, naming the log to read, when a component died on its own."""
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise CheckFailed(
                    f"{name} exited with code {proc.returncode}; see {display_path(self.log_paths[name])}"
                )

    def kill(self, name: str, sig: signal.Signals = signal.SIGKILL) -> None:
        """Signal one component's whole process group and reap it; SIGKILL the group after 30 s, or at once.

        The group is always SIGKILLed at the end: children left behind by a leader that exited on SIGTERM
        would otherwise escape :meth:`stop_all`, which only knows the components still registered.
        """
        proc = self.procs.pop(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)

    def stop_all(self, grace: float = 10.0) -> None:
        """SIGTERM every group, then SIGKILL each group once its leader exited or ``grace`` s passed."""
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # the group may outlive its leader
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        self.procs.clear()
        for log in self._logs:
            log.close()
        self._logs.clear()

    def sweep(self) -> list[int]:
        """SIGKILL, by PID, every process but this one that carries this run's marker."""
        swept: set[int] = set()
        for _ in range(10):
            found = self.leftovers()
            if not found:
                break
            for pid in found:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
                    swept.add(pid)
            time.sleep(0.5)
        return sorted(swept)

    def leftovers(self) -> list[int]:
        """Live processes other than this one whose environment holds this run's marker."""
        needle = f"{MARKER_VAR}={self.marker}".encode()
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                environ = (entry / "environ").read_bytes()
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue
            if state != "Z" and needle in environ.split(b"\0"):
                pids.append(int(entry.name))
        return pids


# --------------------------------------------------------------------------------------------- database


class Database:
    """The metadata database: a private PostgreSQL cluster on loopback (default), or a SQLite file.

    PostgreSQL comes from Debian's packages (installed with apt-get when missing) and runs as the
    ``postgres`` user when this script runs as root, since PostgreSQL refuses to run as root. Its data
    directory is a fresh temporary directory, deleted on stop.
    """

    def __init__(self, kind: str, home: Path) -> None:
        self.kind = kind
        self.home = home
        self.url = ""
        self.description = ""
        self._pg_dir: Path | None = None
        self._pg_ctl: list[str] = []

    def start(self) -> None:
        if self.kind == "sqlite":
            self.url = f"sqlite:///{self.home / 'airflow.db'}"
            self.description = "SQLite file in the temporary home"
        else:
            self._start_postgres()

    def _start_postgres(self) -> None:
        bin_dir = _postgres_bin_dir()
        for module, package in (("psycopg2", "psycopg2-binary"), ("asyncpg", "asyncpg")):
            if importlib.util.find_spec(module) is None:
                say(f"installing {package} (Airflow's PostgreSQL driver) with pip")
                subprocess.run(
                    [sys.executable, "-m", "pip", "install", "--quiet", package],
                    check=True,
                    capture_output=True,
                )
        port = free_port()
        pg_dir = Path(tempfile.mkdtemp(prefix="tamtam-deploy-pg-"))
        self._pg_dir = pg_dir
        as_user: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(pg_dir, "postgres", "postgres")
            as_user = ["runuser", "-u", "postgres", "--"]
        data = pg_dir / "data"
        self._pg_ctl = [*as_user, str(bin_dir / "pg_ctl"), "-D", str(data)]
        options = f"-p {port} -k {pg_dir} -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off"
        for argv in (
            [*as_user, str(bin_dir / "initdb"), "-D", str(data), "-U", "airflow", "-A", "trust", "--no-sync"],
            [*self._pg_ctl, "-l", str(pg_dir / "postgres.log"), "-o", options, "-w", "-t", "60", "start"],
            [
                *as_user,
                str(bin_dir / "createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-U",
                "airflow",
                "airflow",
            ],
        ):
            result = subprocess.run(argv, capture_output=True, text=True)
            if result.returncode != 0:
                raise CheckFailed(f"{Path(argv[len(as_user)]).name} failed: {result.stderr.strip()[-500:]}")
        self.url = f"postgresql+psycopg2://airflow@127.0.0.1:{port}/airflow"
        self.description = (
            f"PostgreSQL {bin_dir.parent.name} on 127.0.0.1:{port}, data in {display_path(data)}"
        )

    def stop(self, keep_log_in: Path | None) -> None:
        """Stop PostgreSQL (fast shutdown, else its postmaster by PID) and delete its data directory."""
        if self._pg_dir is None:
            return
        pg_dir, self._pg_dir = self._pg_dir, None
        result = subprocess.run([*self._pg_ctl, "-m", "fast", "-w", "-t", "30", "stop"], capture_output=True)
        pid_file = pg_dir / "data" / "postmaster.pid"
        if result.returncode != 0 and pid_file.exists():
            with contextlib.suppress(ValueError, ProcessLookupError, OSError):
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)
        if keep_log_in is not None and (pg_dir / "postgres.log").exists():
            shutil.copy(pg_dir / "postgres.log", keep_log_in / "postgres.log")
        shutil.rmtree(pg_dir, ignore_errors=True)


def _postgres_bin_dir() -> Path:
    """Debian's PostgreSQL server binaries, installed with apt-get when missing."""
    for attempt in range(2):
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
        if found:
            return found[-1].parent
        if attempt == 0:
            say("installing Debian's postgresql package with apt-get")
            env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, capture_output=True)
            subprocess.run(
                ["apt-get", "install", "-y", "-qq", "postgresql"], check=True, env=env, capture_output=True
            )
    raise CheckFailed("no PostgreSQL server binaries under /usr/lib/postgresql, even after apt-get install")


# --------------------------------------------------------------------------------------------- HTTP clients


class AirflowApi:
    """Tiny client for the api-server's public REST API (``/api/v2``) with a simple-auth-manager JWT."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.session = requests.Session()

    def login(self) -> None:
        """With ``simple_auth_manager_all_admins``, ``GET /auth/token`` hands out an admin token."""
        response = self.session.get(f"{self.base_url}/auth/token", timeout=30)
        response.raise_for_status()
        self.session.headers["Authorization"] = f"Bearer {response.json()['access_token']}"

    def call(self, method: str, path: str, body: Any = None, ok: Sequence[int] = (200,)) -> Any:
        response = self.session.request(method, f"{self.base_url}/api/v2{path}", json=body, timeout=60)
        if response.status_code not in ok:
            raise CheckFailed(
                f"{method} /api/v2{path} answered {response.status_code}: {response.text[:300]}"
            )
        return response.json() if response.content else None

    def sensors(self) -> list[dict[str, Any]]:
        path = f"/dags/{DAG_ID}/dagRuns/~/taskInstances?task_id={SENSOR_TASK}&limit=100"
        return list(self.call("GET", path)["task_instances"])

    def runs(self) -> list[dict[str, Any]]:
        return list(self.call("GET", f"/dags/{DAG_ID}/dagRuns?limit=100")["dag_runs"])


class FakeApi:
    """The fake Tamtam server's control API (``/_fake/``)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.origin = base_url.rsplit("/", 1)[0]

    def credit_calls(self) -> list[float]:
        """Arrival times (epoch seconds) of every credits request since the last reset."""
        response = requests.get(f"{self.origin}/_fake/requests", timeout=10)
        response.raise_for_status()
        return sorted(
            r["wall_time"] for r in response.json()["requests"] if r["path"].endswith("/v2/credits")
        )

    def reset(self) -> None:
        requests.delete(f"{self.origin}/_fake/requests", timeout=10).raise_for_status()

    def set_credits(self, credits: list[dict[str, Any]]) -> None:
        requests.put(f"{self.origin}/_fake/credits", json={"credits": credits}, timeout=10).raise_for_status()


def epoch(value: str) -> float:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


@dataclass
class Rate:
    """Credits calls in a time window, counted per whole poll interval (a trailing partial one is dropped)."""

    start: float
    end: float
    interval: float
    times: list[float]

    @property
    def buckets(self) -> list[int]:
        count = int((self.end - self.start) // self.interval)
        edges = [self.start + i * self.interval for i in range(count + 1)]
        return [sum(1 for t in self.times if low <= t < high) for low, high in itertools.pairwise(edges)]

    @property
    def mean(self) -> float:
        buckets = self.buckets
        return sum(buckets) / len(buckets) if buckets else float("nan")

    def passes(self, mean_bar: float = 1.5, max_bar: int = 2) -> bool:
        buckets = self.buckets
        return bool(buckets) and self.mean <= mean_bar and max(buckets) <= max_bar

    def describe(self) -> str:
        buckets = self.buckets
        return (
            f"{self.mean:.2f} calls per {self.interval:g}-s interval, max {max(buckets, default=0)} "
            f"({sum(buckets)} calls in {len(buckets)} intervals: {' '.join(map(str, buckets))}) {RATE_BAR}"
        )


# --------------------------------------------------------------------------------------------- deployment


@dataclass
class Live:
    """What the scenario needs from a deployment that is up."""

    procs: Processes
    api: AirflowApi
    fake: FakeApi
    api_url: str
    fake_url: str
    db_url: str


class Deployment:
    """Temporary home, database, fake Tamtam API and the four Airflow components; cleanup that always runs."""

    def __init__(self, db: str, runs: int, poke_interval: float, watchers: int) -> None:
        self.runs = runs
        self.poke_interval = poke_interval
        self.watchers = watchers
        self.marker = uuid.uuid4().hex
        os.environ[MARKER_VAR] = self.marker  # inherited by everything started from here, the browser too
        self.home = Path(tempfile.mkdtemp(prefix="tamtam-deploy-check-"))
        self.log_dir = self.home / "process-logs"
        self.log_dir.mkdir()
        self.db = Database(db, self.home)
        self.procs = Processes(self.marker, self.log_dir)
        self._stopped = False

    def airflow_env(self, api_port: int, fake_url: str) -> dict[str, str]:
        """One environment for every Airflow process: the deployment's whole configuration."""
        connection = {
            "conn_type": "tamtam",
            "host": fake_url,
            "password": API_KEY,
            "extra": {"auth_type": "api_key", "timeout": 10, "max_retries": 2},
        }
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        return {
            **inherited,
            MARKER_VAR: self.marker,
            "PYTHONUNBUFFERED": "1",
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.home / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.db.url,
            "AIRFLOW__CORE__FERNET_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
            # room for every run at once: the first, synchronous poke of each sensor runs on a worker
            "AIRFLOW__CORE__PARALLELISM": str(self.runs + 8),
            "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": str(2 * self.runs + 8),
            "AIRFLOW__CORE__MAX_ACTIVE_RUNS_PER_DAG": str(self.runs + 8),
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(api_port),
            "AIRFLOW__API__WORKERS": "2",
            "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
            # one JWT secret for all: the scheduler signs the task tokens the api-server checks
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
            # own log-server ports, so that this check can run beside another Airflow on the machine
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            # a SIGKILLed triggerer's triggers go to a live one once its last heartbeat is this old
            "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "15",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
            "AIRFLOW_CONN_TAMTAM_DEFAULT": json.dumps(connection),
            "TAMTAM_GATE_POKE_INTERVAL": f"{self.poke_interval:g}",
            "TAMTAM_WATCHERS_CHECK_COUNT": str(self.watchers),
            "TAMTAM_WATCHERS_CHECK_POLL_INTERVAL": f"{self.poke_interval:g}",
        }

    def start(self) -> Live:
        """Database, fake API, ``airflow db migrate``, the four components; wait until all are healthy."""
        say(f"temporary AIRFLOW_HOME: {display_path(self.home)}")
        self.db.start()
        say(f"metadata database: {self.db.description}")
        shutil.copytree(
            REPO / "example_dags", self.home / "dags", ignore=shutil.ignore_patterns("__pycache__")
        )
        shutil.copy(WATCH_DAG_FILE, self.home / "dags" / WATCH_DAG_FILE.name)

        url_file = self.home / "fake-tamtam.url"
        self.procs.start(
            "fake-tamtam",
            [
                sys.executable, "-m", "airflow_provider_tamtam.testing.fake_server",
                "--port", "0", "--api-key", API_KEY, "--bearer-token", "",
                "--credits-json", json.dumps(SHORT_CREDITS), "--url-file", str(url_file),
            ],
        )  # fmt: skip
        wait_for("the fake Tamtam API", url_file.exists, 30, alive=self.procs.ensure_running)
        fake_url = url_file.read_text().strip()
        say(f"fake Tamtam API at {fake_url}: 100 {CREDIT_TYPE} credits left, the DAG needs {MIN_CREDITS}")

        api_port = free_port()
        api_url = f"http://127.0.0.1:{api_port}"
        self.procs.env = self.airflow_env(api_port, fake_url)
        say("airflow db migrate")
        migrate = subprocess.run(
            [AIRFLOW, "db", "migrate"], env=self.procs.env, cwd=self.home, capture_output=True, text=True
        )
        (self.log_dir / "db-migrate.log").write_text(migrate.stdout + migrate.stderr)
        if migrate.returncode != 0:
            raise CheckFailed(
                f"airflow db migrate failed; see {display_path(self.log_dir / 'db-migrate.log')}"
            )
        for component in ("api-server", "scheduler", "dag-processor", "triggerer"):
            self.procs.start(component, [AIRFLOW, component])
        say(f"started airflow api-server ({api_url}), scheduler, dag-processor and triggerer")

        def healthy() -> bool:
            health = requests.get(f"{api_url}/api/v2/monitor/health", timeout=5).json()
            parts = ("metadatabase", "scheduler", "triggerer", "dag_processor")
            return all((health.get(part) or {}).get("status") == "healthy" for part in parts)

        wait_for(
            "every component to be healthy on /api/v2/monitor/health",
            healthy,
            180,
            1.0,
            self.procs.ensure_running,
        )
        api = AirflowApi(api_url)
        api.login()
        say("all components healthy; REST API token from GET /auth/token")
        return Live(self.procs, api, FakeApi(fake_url), api_url, fake_url, self.db.url)

    def stop(self, keep: bool) -> None:
        """Stop everything started here; delete the home, or keep it (and say where) for inspection."""
        if self._stopped:
            return
        self._stopped = True
        self.procs.stop_all()
        self.db.stop(self.log_dir if keep else None)
        swept = self.procs.sweep()  # last: whatever slipped out of its process group
        if swept:
            say(f"stopped {len(swept)} process(es) that had left their process group: {swept}")
        leftovers = self.procs.leftovers()
        if leftovers:
            say(f"WARNING: processes of this run still alive: {leftovers}")
        if keep:
            say(
                f"kept the temporary home for inspection: {display_path(self.home)} (component logs in "
                f"{display_path(self.log_dir)}, task logs in {display_path(self.home / 'logs')})"
            )
        else:
            shutil.rmtree(self.home, ignore_errors=True)
            say("stopped every process started here and deleted the temporary home")


# --------------------------------------------------------------------------------------------- scenario


class Scenario:
    """Trigger the runs, watch them defer, kill and restart the triggerer, raise credits, measure."""

    def __init__(self, live: Live, args: argparse.Namespace, report: Report) -> None:
        self.live = live
        self.api = live.api
        self.fake = live.fake
        self.procs = live.procs
        self.args = args
        self.runs: int = args.runs
        self.interval: float = args.poke_interval
        self.report = report

    def deferred(self) -> tuple[int, set[int], int]:
        """Sensors deferred, the triggerer job ids their triggers are assigned to, and how many are not."""
        sensors = [ti for ti in self.api.sensors() if ti["state"] == "deferred"]
        jobs = [(ti.get("trigger") or {}).get("triggerer_id") for ti in sensors]
        return len(sensors), {int(job) for job in jobs if job is not None}, jobs.count(None)

    def hold(self, seconds: float, what: str) -> None:
        """Let the deployment run untouched; fail at once if a sensor leaves the deferred state."""
        say(f"{what}: watching for {seconds:.0f} s")
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            self.procs.ensure_running()
            count, _, _ = self.deferred()
            if count != self.runs:
                raise CheckFailed(f"{count} of {self.runs} sensors deferred while {what}")
            time.sleep(min(2.0, left))

    def run(self) -> None:
        self.prepare()
        t_trigger = self.trigger()
        t_all, t_last_deferral = self.wait_all_deferred(t_trigger)
        self.hold(self.args.wait_intervals * self.interval, f"all {self.runs} sensors deferred")
        t_kill = time.time()
        calls = self.fake.credit_calls()
        initial = [t for t in calls if t <= t_last_deferral]
        self.report.add(
            "Calls until the last sensor deferred",
            None if len(initial) >= self.runs else False,
            f"{len(initial)} in the {t_last_deferral - t_trigger:.0f} s from trigger to last deferral: "
            f"the {self.runs} synchronous first pokes on workers and {len(initial) - self.runs} shared "
            "poll(s) of the triggerer",
        )
        waiting = Rate(t_all, t_kill, self.interval, calls)
        self.report.add(
            f"Calls per poll interval, {self.runs} deferred", waiting.passes(), waiting.describe()
        )
        t_resumed = self.restart_triggerer()
        self.hold(self.args.wait_intervals * self.interval, "the new triggerer polls")
        t_raise = time.time()
        after = Rate(t_resumed, t_raise, self.interval, self.fake.credit_calls())
        self.report.add("Calls per poll interval after restart", after.passes(), after.describe())
        self.finish(t_trigger, t_last_deferral, t_raise)

    def prepare(self) -> None:
        """The DAG is parsed without import errors and the hook's test_connection works via REST."""

        watchers: int = self.args.watchers

        def dag_ids() -> list[str]:
            return sorted(dag["dag_id"] for dag in self.api.call("GET", "/dags?limit=500")["dags"])

        def parsed() -> bool:
            errors = self.api.call("GET", "/importErrors")["import_errors"]
            if errors:
                raise CheckFailed(
                    f"DAG import error in {errors[0]['filename']}: {errors[0]['stack_trace'][-500:]}"
                )
            ids = dag_ids()
            return DAG_ID in ids and sum(i.startswith(WATCH_DAG_PREFIX) for i in ids) == watchers

        wait_for(
            f"the dag-processor to parse {DAG_ID} and {watchers} watcher DAGs",
            parsed,
            120,
            1.0,
            self.procs.ensure_running,
        )
        examples = [i for i in dag_ids() if not i.startswith(WATCH_DAG_PREFIX)]
        self.report.add(
            "Provider and example DAGs load",
            True,
            f"no import errors; DAGs: {', '.join(examples)}"
            + (
                f"; and {WATCH_DAG_PREFIX}01 to {WATCH_DAG_PREFIX}{watchers:02d} from "
                f"{display_path(WATCH_DAG_FILE)}"
                if watchers
                else ""
            ),
        )
        body = {
            "connection_id": "tamtam_rest_check",
            "conn_type": "tamtam",
            "host": self.live.fake_url,
            "password": API_KEY,
            "extra": json.dumps({"auth_type": "api_key"}),
        }
        result = self.api.call("POST", "/connections/test", body)
        self.report.add("POST /connections/test (REST)", bool(result["status"]), str(result["message"]))

    def trigger(self) -> float:
        """Unpause the DAG and trigger every run at once through the REST API; returns when."""
        self.api.call("PATCH", f"/dags/{DAG_ID}", {"is_paused": False})
        self.fake.reset()  # from here on, the fake API's log holds the runs' calls only
        start = time.time()

        def trigger(index: int) -> None:
            body = {"dag_run_id": f"deploy_check_{index:02d}", "logical_date": None}
            self.api.call("POST", f"/dags/{DAG_ID}/dagRuns", body)

        with ThreadPoolExecutor(max_workers=self.runs) as pool:
            list(pool.map(trigger, range(1, self.runs + 1)))
        say(f"unpaused {DAG_ID} and triggered {self.runs} runs in {time.time() - start:.1f} s")
        return start

    def wait_all_deferred(self, t_trigger: float) -> tuple[float, float]:
        """Poll the sensors until all are deferred; returns that moment and the last trigger's creation."""
        seen: set[str] = set()
        states: set[str] = set()
        created: dict[str, float] = {}
        jobs: set[int] = set()
        deadline = time.monotonic() + self.args.defer_timeout
        while True:
            self.procs.ensure_running()
            sensors = self.api.sensors()
            for ti in sensors:
                states.add(str(ti["state"] or "no state"))
                if ti["state"] in ("failed", "upstream_failed", "up_for_retry", "success", "skipped"):
                    raise CheckFailed(f"sensor of {ti['dag_run_id']} is {ti['state']} before credits rose")
                if ti["state"] != "deferred":
                    continue
                seen.add(ti["dag_run_id"])
                trigger = ti.get("trigger") or {}
                if trigger.get("created_date"):
                    created.setdefault(ti["dag_run_id"], epoch(trigger["created_date"]))
                if trigger.get("triggerer_id") is not None:
                    jobs.add(int(trigger["triggerer_id"]))
            count = sum(1 for ti in sensors if ti["state"] == "deferred")
            if len(sensors) == self.runs and count == self.runs:
                break
            if time.monotonic() > deadline:
                raise CheckFailed(
                    f"{count} of {self.runs} sensors deferred after {self.args.defer_timeout:.0f} s"
                )
            time.sleep(0.5)
        t_all = time.time()
        first, last = min(created.values(), default=t_all), max(created.values(), default=t_all)
        say(f"all {self.runs} sensors deferred, {t_all - t_trigger:.0f} s after the trigger")
        self.report.add(
            f"{self.runs} sensors deferred",
            len(seen) == self.runs,
            f"state 'deferred' seen for {len(seen)}/{self.runs} sensors via the REST API (states seen: "
            f"{', '.join(sorted(states))}); triggers created {first - t_trigger:.0f}-"
            f"{last - t_trigger:.0f} s after the trigger; on triggerer job(s) {sorted(jobs) or '(none yet)'}",
        )
        return t_all, last

    def restart_triggerer(self) -> float:
        """SIGKILL the triggerer, check nothing polls while it is down, restart it; returns its first poll."""
        _, old_jobs, _ = self.deferred()
        old_pid = self.procs.pid("triggerer")
        self.procs.kill("triggerer", signal.SIGKILL)
        t_killed = time.time()
        say(f"SIGKILLed the triggerer (pid {old_pid}, job {sorted(old_jobs)}), {self.runs} sensors deferred")
        self.hold(self.args.down_seconds, "no triggerer runs")
        t_restart = time.time()
        down = [t for t in self.fake.credit_calls() if t_killed < t <= t_restart]
        self.report.add(
            "Calls while the triggerer is down",
            not down,
            f"{len(down)} in {t_restart - t_killed:.0f} s: deferred sensors poll from the triggerer only",
        )
        new_pid = self.procs.start("triggerer", [AIRFLOW, "triggerer"])
        say(f"restarted the triggerer (pid {new_pid})")
        new_jobs: set[int] = set()

        def taken_over() -> bool:
            nonlocal new_jobs
            count, new_jobs, unassigned = self.deferred()
            if count != self.runs:
                raise CheckFailed(f"{count} of {self.runs} sensors deferred after the triggerer restart")
            return bool(new_jobs) and not unassigned and not new_jobs & old_jobs

        wait_for(
            "the new triggerer to take the triggers over", taken_over, 120, 1.0, self.procs.ensure_running
        )
        t_moved = time.time()

        def polled() -> bool:
            return any(t > t_restart for t in self.fake.credit_calls())

        wait_for("the first call from the new triggerer", polled, 60, 0.5, self.procs.ensure_running)
        t_resumed = min(t for t in self.fake.credit_calls() if t > t_restart)
        self.report.add(
            "Triggerer restart: sensors resume",
            True,
            f"all {self.runs} triggers moved from job {sorted(old_jobs)} to job {sorted(new_jobs)} "
            f"{t_moved - t_restart:.0f} s after the restart (dead triggerer's heartbeat threshold 15 s); "
            f"first poll {t_resumed - t_restart:.0f} s after the restart; sensors stayed deferred throughout",
        )
        return t_resumed

    def finish(self, t_trigger: float, t_last_deferral: float, t_raise: float) -> None:
        """Raise the credits; every sensor must succeed and every run finish with success."""
        self.fake.set_credits(RISEN_CREDITS)
        say(f"raised the credits to 4990 {CREDIT_TYPE} through PUT /_fake/credits")

        def finished() -> bool:
            runs = self.api.runs()
            return any(run["state"] == "failed" for run in runs) or (
                len(runs) == self.runs and all(run["state"] == "success" for run in runs)
            )

        wait_for(
            f"all {self.runs} runs to finish",
            finished,
            self.args.finish_timeout,
            2.0,
            self.procs.ensure_running,
        )
        t_done = time.time()
        states = [str(run["state"]) for run in self.api.runs()]
        sensors_ok = sum(1 for ti in self.api.sensors() if ti["state"] == "success")
        self.report.add(
            f"{self.runs} DAG runs succeed",
            states.count("success") == self.runs and sensors_ok == self.runs,
            f"{states.count('success')}/{self.runs} runs success, {sensors_ok}/{self.runs} sensors success, "
            f"all done {t_done - t_raise:.0f} s after the credits rose"
            + ("" if states.count("success") == self.runs else f"; run states: {sorted(set(states))}"),
        )
        calls = self.fake.credit_calls()
        unshared = self.runs + round(self.runs * (t_raise - t_last_deferral) / self.interval)
        self.report.add(
            "Credits calls in total",
            None,
            f"{len(calls)} for {self.runs} runs over {t_raise - t_trigger:.0f} s, "
            f"{sum(1 for t in calls if t > t_raise)} of them after the rise; without the shared poll, "
            f"one call per sensor per interval, about {unshared}",
        )


class WatchScenario:
    """Asset watchers: many share one poll, each fires once when credits cross, none while they stay up."""

    def __init__(self, live: Live, args: argparse.Namespace, report: Report) -> None:
        self.api = live.api
        self.fake = live.fake
        self.procs = live.procs
        self.args = args
        self.count: int = args.watchers
        self.interval: float = args.poke_interval
        self.report = report
        self.engine = sqlalchemy.create_engine(live.db_url, poolclass=sqlalchemy.pool.NullPool)
        self.index: dict[int, int] = {}  # asset id -> watcher number i (its threshold is 1000 + i)
        self.trigger_ids: list[int] = []

    def run(self) -> None:
        try:
            self._run()
        finally:
            self.engine.dispose()

    # ------------------------------------------------------------------ observations

    def watched_assets(self) -> list[dict[str, Any]]:
        """The check's assets with their watchers (each names its trigger id), via the REST API."""
        path = f"/assets?name_prefix_pattern={WATCH_ASSET_PREFIX}&limit=100"
        return [a for a in self.api.call("GET", path)["assets"] if a["name"].startswith(WATCH_ASSET_PREFIX)]

    def events(self) -> list[dict[str, Any]]:
        path = f"/assets/events?name_prefix_pattern={WATCH_ASSET_PREFIX}&limit=200"
        events = self.api.call("GET", path)["asset_events"]
        return [e for e in events if str(e.get("name") or "").startswith(WATCH_ASSET_PREFIX)]

    def runs(self) -> list[dict[str, Any]]:
        path = f"/dags/~/dagRuns?dag_id_prefix_pattern={WATCH_DAG_PREFIX}&limit=200"
        runs = self.api.call("GET", path)["dag_runs"]
        return [r for r in runs if r["dag_id"].startswith(WATCH_DAG_PREFIX)]

    def trigger_jobs(self) -> dict[int, int | None]:
        """The triggerer job each watcher's trigger is assigned to (None: unassigned), from the database.

        The REST API shows a trigger's triggerer only for deferred task instances, not for asset watchers.
        """
        query = sqlalchemy.text("SELECT id, triggerer_id FROM trigger WHERE id IN :ids").bindparams(
            sqlalchemy.bindparam("ids", expanding=True)
        )
        with self.engine.connect() as connection:
            rows = connection.execute(query, {"ids": self.trigger_ids}).all()
        return {int(row[0]): None if row[1] is None else int(row[1]) for row in rows}

    def started_in_log(self) -> int:
        """How many watchers the current triggerer's log says have started watching."""
        path = self.procs.log_paths["triggerer"]
        return path.read_text(errors="replace").count(WATCH_LOG_LINE) if path.exists() else 0

    def hold(self, seconds: float, what: str) -> None:
        """Let the deployment run untouched for ``seconds``, failing at once if a component dies."""
        say(f"{what}: watching for {seconds:.0f} s")
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            self.procs.ensure_running()
            time.sleep(min(2.0, left))

    def first_call_after(self, moment: float, what: str) -> float:
        """When the fake API first saw a credits call after ``moment`` (waits up to 60 s for one)."""

        def polled() -> bool:
            return any(t > moment for t in self.fake.credit_calls())

        wait_for(what, polled, 60, 0.5, self.procs.ensure_running)
        return min(t for t in self.fake.credit_calls() if t > moment)

    # ------------------------------------------------------------------ phases

    def _run(self) -> None:
        self.fake.set_credits(SHORT_CREDITS)
        say(f"set the credits back to 100 {CREDIT_TYPE}, below every watcher's threshold")
        self.fake.reset()  # from here on, the fake API's log holds the watchers' calls only
        t_unpause = self.unpause()
        t_running = self.wait_running(t_unpause)
        self.hold(self.args.wait_intervals * self.interval, f"{self.count} watchers, credits below")
        t_raise = time.time()
        below = Rate(t_running, t_raise, self.interval, self.fake.credit_calls())
        self.report.add(f"Calls per poll interval, {self.count} watching", below.passes(), below.describe())
        early_events, early_runs = len(self.events()), len(self.runs())

        self.fake.set_credits(RISEN_CREDITS)
        say(f"raised the credits to 4990 {CREDIT_TYPE}, above every watcher's threshold")
        t_done = self.wait_fired()
        self.check_fired(t_raise, t_done, early_events, early_runs)
        events, runs = len(self.events()), len(self.runs())
        last_event = max((epoch(e["timestamp"]) for e in self.events()), default=t_raise)
        self.hold(self.args.wait_intervals * self.interval, "credits stay high")
        t_quiet = time.time()
        calls = self.fake.credit_calls()
        after = Rate(t_raise, t_quiet, self.interval, calls)
        self.report.add("Calls per poll interval, after the rise", after.passes(), after.describe())
        new_events, new_runs = len(self.events()) - events, len(self.runs()) - runs
        polls = sum(1 for t in calls if t > last_event)
        self.report.add(
            "No second event while credits stay high",
            new_events == 0 and new_runs == 0,
            f"{new_events} new asset events and {new_runs} new runs in the {t_quiet - last_event:.0f} s "
            f"after the last event, over {polls} polls that all saw 4990 credits, above every threshold",
        )
        self.check_state_store()

        t_resumed = self.restart_triggerer()
        events, runs = len(self.events()), len(self.runs())
        self.hold(self.args.wait_intervals * self.interval, "the new triggerer watches, credits still high")
        t_end = time.time()
        calls = self.fake.credit_calls()
        restarted = Rate(t_resumed, t_end, self.interval, calls)
        new_events, new_runs = len(self.events()) - events, len(self.runs()) - runs
        self.report.add(
            "No second event after a triggerer restart",
            new_events == 0 and new_runs == 0,
            f"{new_events} new asset events and {new_runs} new runs in the {t_end - t_resumed:.0f} s after "
            f"the new triggerer's first poll ({sum(1 for t in calls if t >= t_resumed)} polls, credits "
            "above every threshold): each watcher read its armed state back from the asset state store",
        )
        self.report.add(
            "Calls per poll interval after restart, watching", restarted.passes(), restarted.describe()
        )
        unshared = round(self.count * (t_end - t_running) / self.interval)
        self.report.add(
            "Watcher credits calls in total",
            None,
            f"{len(calls)} for {self.count} watchers over {t_end - t_unpause:.0f} s from the unpause; one "
            f"request per watcher per interval would be about {unshared}",
        )

    def unpause(self) -> float:
        """Unpause every watcher DAG in one PATCH and ask the dag-processor to reparse their file.

        Airflow attaches a watcher's trigger to its asset only while a DAG scheduled on the asset is
        unpaused, and only when the file is parsed, so the reparse request saves up to a parse interval.
        The PATCH selects by ``dag_id_pattern``: on Airflow 3.3.2 ``dag_id_prefix_pattern`` alone matches
        only DAG ids containing "none", as the absent ``dag_id_pattern`` becomes ``ILIKE '%None%'``.
        """
        self.api.call(
            "PATCH",
            f"/dags?dag_id_pattern={WATCH_DAG_PREFIX}&update_mask=is_paused",
            {"is_paused": False},
        )
        t_unpause = time.time()
        path = f"/dags?dag_id_prefix_pattern={WATCH_DAG_PREFIX}&paused=false&limit=100"
        dags = [d for d in self.api.call("GET", path)["dags"] if d["dag_id"].startswith(WATCH_DAG_PREFIX)]
        if len(dags) != self.count:
            raise CheckFailed(f"{len(dags)} of {self.count} watcher DAGs unpaused after PATCH /api/v2/dags")
        self.api.call("PUT", f"/parseDagFile/{dags[0]['file_token']}", ok=(201,))
        say(f"unpaused the {self.count} watcher DAGs and requested a reparse of {WATCH_DAG_FILE.name}")
        return t_unpause

    def wait_running(self, t_unpause: float) -> float:
        """Wait until each asset has its trigger, assigned to the triggerer, which logged it started."""
        assets: list[dict[str, Any]] = []

        def created() -> bool:
            nonlocal assets
            assets = self.watched_assets()
            return len(assets) == self.count and all(len(a["watchers"]) == 1 for a in assets)

        wait_for("a trigger on every watched asset", created, 120, 1.0, self.procs.ensure_running)
        t_created = time.time()
        self.index = {int(a["id"]): int(a["name"].rsplit("/", 1)[1]) for a in assets}
        self.trigger_ids = sorted(int(a["watchers"][0]["trigger_id"]) for a in assets)
        jobs: dict[int, int | None] = {}

        def running() -> bool:
            nonlocal jobs
            jobs = self.trigger_jobs()
            assigned = len(jobs) == self.count and None not in jobs.values()
            return assigned and self.started_in_log() >= self.count

        wait_for("the triggerer to run every watcher", running, 120, 1.0, self.procs.ensure_running)
        t_running = time.time()
        t_first = self.first_call_after(t_unpause, "the watchers' first poll")
        say(
            f"all {self.count} watchers run in the triggerer, {t_running - t_unpause:.0f} s after the unpause"
        )
        self.report.add(
            f"{self.count} watcher triggers running",
            len(set(self.trigger_ids)) == self.count,
            f"{self.count} distinct triggers (ids {self.trigger_ids[0]}-{self.trigger_ids[-1]}), one per "
            f"asset, created {t_created - t_unpause:.0f} s after the unpause; by "
            f"{t_running - t_unpause:.0f} s after it all were assigned to triggerer job(s) "
            f"{sorted({j for j in jobs.values() if j})} and "
            f"each had logged '{WATCH_LOG_LINE} ...'; first poll {t_first - t_unpause:.0f} s after it",
        )
        return t_running

    def wait_fired(self) -> float:
        """Wait until every asset has an event and every watcher DAG a finished run; returns when."""

        def fired() -> bool:
            runs = self.runs()
            finished = sum(1 for r in runs if r["state"] in ("success", "failed"))
            return len(self.events()) >= self.count and finished >= self.count

        with contextlib.suppress(CheckFailed):  # what did happen is reported below
            wait_for(
                "an event per asset and a finished run per watcher DAG",
                fired,
                self.args.finish_timeout,
                2.0,
                self.procs.ensure_running,
            )
        return time.time()

    def check_fired(self, t_raise: float, t_done: float, early_events: int, early_runs: int) -> None:
        """Exactly one event per asset, carrying its own threshold, and one successful run per DAG."""
        events = self.events()
        per_asset = Counter(int(e["asset_id"]) for e in events)
        mismatched = [
            e["name"]
            for e in events
            if ((e.get("extra") or {}).get("payload") or {}).get("threshold")
            != WATCH_BASE_THRESHOLD + self.index.get(int(e["asset_id"]), -1)
            or not (e.get("extra") or {}).get("from_trigger")
        ]
        delays = [round(epoch(e["timestamp"]) - t_raise) for e in events] or [-1]
        spread = f"{min(delays)}" if min(delays) == max(delays) else f"{min(delays)}-{max(delays)}"
        self.report.add(
            "One asset event per asset",
            early_events == 0
            and len(per_asset) == self.count
            and set(per_asset.values()) == {1}
            and not mismatched,
            f"{len(events)} events on {len(per_asset)}/{self.count} assets (per asset: "
            f"{', '.join(f'{n} x{k}' for n, k in sorted(Counter(per_asset.values()).items()))}), "
            f"{spread} s after the credits rose, {early_events} before; "
            + (
                f"payload threshold or from_trigger wrong on {mismatched}"
                if mismatched
                else "each from the trigger, with its own asset's threshold in the payload"
            ),
        )
        runs = self.runs()
        per_dag = Counter(r["dag_id"] for r in runs)
        states = Counter(str(r["state"]) for r in runs)
        run_types = sorted({str(r["run_type"]) for r in runs})
        self.report.add(
            "One run per watcher DAG, all succeed",
            early_runs == 0
            and len(per_dag) == self.count
            and set(per_dag.values()) == {1}
            and states["success"] == self.count,
            f"{len(runs)} runs of {len(per_dag)}/{self.count} DAGs (at most "
            f"{max(per_dag.values(), default=0)} per DAG), {states['success']} success"
            + (f" ({dict(states)})" if states["success"] != len(runs) else "")
            + f", run type {', '.join(run_types) or 'none'}; all done {t_done - t_raise:.0f} s after the "
            f"credits rose, {early_runs} before",
        )

    def check_state_store(self) -> None:
        """Each asset's state store holds its watcher's armed state, now false (fired, waiting for a fall)."""
        disarmed, kinds, keys = 0, set[str](), set[str]()
        for asset_id in self.index:
            entries = self.api.call("GET", f"/assets/{asset_id}/state-store")["asset_state_store"]
            for entry in entries:
                if entry["key"].startswith(STATE_KEY_PREFIX):
                    keys.add(entry["key"])
                    kinds.add(str((entry.get("last_updated_by") or {}).get("kind")))
                    disarmed += entry["value"] == {"armed": False}
        self.report.add(
            "Armed state in the asset state store",
            disarmed == self.count and len(keys) == self.count,
            f'{disarmed}/{self.count} assets hold {{"armed": false}} under their own '
            f"'{STATE_KEY_PREFIX}<hash>' key ({len(keys)} distinct keys; written by: "
            f"{', '.join(sorted(kinds)) or 'nobody'}); GET /api/v2/assets/<id>/state-store",
        )

    def restart_triggerer(self) -> float:
        """Stop the triggerer gracefully (SIGTERM) and start a new one; returns the new one's first poll."""
        old_jobs = {j for j in self.trigger_jobs().values() if j is not None}
        old_pid = self.procs.pid("triggerer")
        self.procs.kill("triggerer", signal.SIGTERM)
        t_restart = time.time()
        new_pid = self.procs.start("triggerer", [AIRFLOW, "triggerer"])
        say(f"stopped the triggerer (SIGTERM, pid {old_pid}, job {sorted(old_jobs)}); started pid {new_pid}")
        new_jobs: set[int] = set()

        def taken_over() -> bool:
            nonlocal new_jobs
            jobs = self.trigger_jobs()
            new_jobs = {j for j in jobs.values() if j is not None}
            moved = len(jobs) == self.count and None not in jobs.values() and not new_jobs & old_jobs
            return moved and self.started_in_log() >= self.count

        wait_for("the new triggerer to run every watcher", taken_over, 120, 1.0, self.procs.ensure_running)
        t_moved = time.time()
        t_resumed = self.first_call_after(t_restart, "the first poll of the new triggerer")
        self.report.add(
            "Triggerer restart: watchers resume",
            True,
            f"all {self.count} watcher triggers moved from job {sorted(old_jobs)} to job "
            f"{sorted(new_jobs)} {t_moved - t_restart:.0f} s after a graceful restart (SIGTERM, as in a "
            f"redeploy); first poll {t_resumed - t_restart:.0f} s after it",
        )
        return t_resumed


# --------------------------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Run a throwaway Airflow 3 deployment with the Tamtam provider and check it end to end."
    )
    parser.add_argument(
        "--db",
        choices=("postgres", "sqlite"),
        default="postgres",
        help="metadata database (default postgres). sqlite: Airflow 3.3.2 accepts it with LocalExecutor, but "
        "with four components writing at once it fails here with 'database is locked'; kept to show that",
    )
    parser.add_argument("--runs", type=int, default=20, help="concurrent DAG runs (default 20)")
    parser.add_argument(
        "--watchers", type=int, default=20, help="asset watchers and watcher DAGs (default 20; 0 skips them)"
    )
    parser.add_argument(
        "--poke-interval",
        type=float,
        default=5.0,
        help="sensor poke interval and watcher poll interval, s (default 5)",
    )
    parser.add_argument("--wait-intervals", type=int, default=5, help="poll intervals measured per phase")
    parser.add_argument("--down-seconds", type=float, default=10.0, help="how long the triggerer stays down")
    parser.add_argument("--defer-timeout", type=float, default=240.0, help="s for all sensors to defer")
    parser.add_argument("--finish-timeout", type=float, default=300.0, help="s for all runs to finish")
    parser.add_argument("--no-browser", dest="browser", action="store_false", help="skip the browser check")
    parser.add_argument(
        "--screenshot",
        type=Path,
        default=REPO / "docs" / "connection-form.png",
        help="where the browser check saves the filled form (default docs/connection-form.png)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary home even on success")
    return parser.parse_args(argv)


def check_browser(live: Live, screenshot: Path, report: Report) -> None:
    """The connection form in Chromium against this api-server (``deploy/browser_form.py``)."""
    for name, passed, detail in browser_form.run(live.api_url, live.fake_url, API_KEY, screenshot, say):
        report.add(name, passed, detail)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    report = Report()
    deployment = Deployment(args.db, args.runs, args.poke_interval, args.watchers)
    keep = True
    atexit.register(lambda: deployment.stop(keep))

    def on_signal(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)  # unwinds through the finally below

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    code = 1
    try:
        live = deployment.start()
        Scenario(live, args, report).run()
        if args.watchers > 0:
            WatchScenario(live, args, report).run()
        if args.browser:
            check_browser(live, args.screenshot.resolve(), report)
        code = 1 if report.failed else 0
    except CheckFailed as exc:
        report.add("Deployment check ran to the end", False, str(exc))
    except (KeyboardInterrupt, SystemExit) as exc:
        code = exc.code if isinstance(exc, SystemExit) and isinstance(exc.code, int) else 130
        say(f"interrupted (exit code {code})")
        report.add("Deployment check ran to the end", False, "interrupted")
    except Exception as exc:
        traceback.print_exc()
        report.add("Deployment check ran to the end", False, f"{type(exc).__name__}: {exc}")
    finally:
        keep = code != 0 or args.keep
        deployment.stop(keep)
    print(
        f"\nSummary ({args.runs} runs, {args.watchers} watchers, poll interval {args.poke_interval:g} s, "
        f"{args.db}, LocalExecutor)"
    )
    print(report.table())
    verdict = {0: "PASSED", 1: "FAILED"}.get(code, "INTERRUPTED")
    print(f"\nDeployment check {verdict} in {time.monotonic() - say.start:.0f} s.")
    return code


if __name__ == "__main__":
    sys.exit(main())
