"""The live check's metadata database: a private PostgreSQL cluster on loopback, or a SQLite file."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from deploy.processes import free_port
from deploy.report import CheckFailed, display_path, say


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
