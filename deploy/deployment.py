"""The throwaway deployment the live check runs against, and the data every scenario shares.

A temporary ``AIRFLOW_HOME``, the metadata database, a fake Tamtam API in its own process (short of
credits at first), ``airflow db migrate``, then api-server, scheduler (LocalExecutor), dag-processor and
triggerer as separate processes, with the repository's example DAGs and the scenarios' own DAG files.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import requests

from deploy.clients import AirflowApi, FakeApi
from deploy.database import Database
from deploy.processes import MARKER_VAR, Processes, free_port, wait_for
from deploy.report import REPO, CheckFailed, display_path, say

AIRFLOW = str(Path(sys.executable).with_name("airflow"))
CREDIT_TYPE = "MaxKeyAccountsUnlocked"
API_KEY = "deploy-check-key"  # the fake API's key: a throwaway value, never a real credential
SHORT_CREDITS = [
    {"credit_type": CREDIT_TYPE, "used_credits": 4900, "total_credits": 5000, "remaining_credits": 100}
]
RISEN_CREDITS = [
    {"credit_type": CREDIT_TYPE, "used_credits": 10, "total_credits": 5000, "remaining_credits": 4990}
]


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

    def __init__(
        self, db: str, parallel_runs: int, dag_files: Sequence[Path], env: Mapping[str, str]
    ) -> None:
        """``parallel_runs``: DAG runs the scenarios start at once; ``dag_files`` and ``env``: their own
        DAG files (copied beside the example DAGs) and environment for every Airflow process."""
        self.parallel_runs = parallel_runs
        self.dag_files = list(dag_files)
        self.scenario_env = dict(env)
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
            "AIRFLOW__CORE__PARALLELISM": str(self.parallel_runs + 8),
            "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": str(2 * self.parallel_runs + 8),
            "AIRFLOW__CORE__MAX_ACTIVE_RUNS_PER_DAG": str(self.parallel_runs + 8),
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
            **self.scenario_env,
        }

    def start(self) -> Live:
        """Database, fake API, ``airflow db migrate``, the four components; wait until all are healthy."""
        say(f"temporary AIRFLOW_HOME: {display_path(self.home)}")
        self.db.start()
        say(f"metadata database: {self.db.description}")
        shutil.copytree(
            REPO / "example_dags", self.home / "dags", ignore=shutil.ignore_patterns("__pycache__")
        )
        for dag_file in self.dag_files:
            shutil.copy(dag_file, self.home / "dags" / dag_file.name)

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
        say(f"fake Tamtam API at {fake_url}: 100 {CREDIT_TYPE} credits left")

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
