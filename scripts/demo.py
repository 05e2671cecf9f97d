"""`make demo`: the provider end to end in a real Airflow, in about a minute, with nothing to set up.

A throwaway AIRFLOW_HOME with SQLite, the repo's example DAGs, and the connection ``tamtam_default`` from
an ``AIRFLOW_CONN_TAMTAM_DEFAULT`` variable. Against the bundled fake Tamtam server by default (its credits
start short and rise after a few polls, so the gate visibly waits); against the real API when
``TAMTAM_API_KEY`` is set (``TAMTAM_API_URL`` overrides the base URL). The audit runs twice, the fake
server's usage rising in between, so that its table shows a burn rate and when the credits run out at it.
Exits non-zero if a task failed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from airflow_provider_tamtam.testing import FakeTamtamServer, credit_line

REPO = Path(__file__).resolve().parent.parent
DAGS = ("tamtam_gate_on_credits", "tamtam_credit_audit")
#: The DAG runs of the demo, in order: the audit twice, to have a previous reading to forecast from.
RUNS = ("tamtam_gate_on_credits", "tamtam_credit_audit", "tamtam_credit_audit")
POKE_INTERVAL = "2"
SHORT = [
    credit_line("MaxKeyAccountsUnlocked", used=4800, total=5000),
    credit_line("Exports", used=40, total=100),
]
TOPPED_UP = [
    credit_line("MaxKeyAccountsUnlocked", used=4800, total=100_000),
    credit_line("Exports", used=95, total=100),
]
#: Between the two audits: one more credit used, so the second audit has a burn rate to show. The
#: balance is large enough for the forecast to stay beyond the audit's 3-day horizon at this pace.
USED_MORE = [
    credit_line("MaxKeyAccountsUnlocked", used=4801, total=100_000),
    credit_line("Exports", used=95, total=100),
]
_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT")


def say(message: str) -> None:
    print(f"\n==> {message}", flush=True)


def airflow(env: dict[str, str], *args: str, show: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """Run the airflow CLI; echo only the output lines that contain one of ``show``."""
    process = subprocess.Popen(
        [sys.executable, "-m", "airflow", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    output = []
    in_table = False  # the rows of a logged table follow its log line, without a log prefix
    for line in process.stdout:
        output.append(line)
        in_table = in_table and not _LOG_LINE.match(line)
        if in_table:
            print("      " + line.rstrip().split(" [", 1)[0], flush=True)
        elif any(marker in line for marker in show):
            print("    " + _strip_log_prefix(line), flush=True)
            in_table = "Tamtam credit lines" in line
    return subprocess.CompletedProcess(process.args, process.wait(), "".join(output), "")


def _strip_log_prefix(line: str) -> str:
    """Keep the message of a structlog line: drop the timestamp, level and logger columns."""
    text = line.strip()
    if "] " in text:
        text = text.split("] ", 1)[1]
    return text.split(" [", 1)[0].strip()


def airflow_json(env: dict[str, str], *args: str) -> list[dict[str, str]]:
    """Run an airflow CLI listing with ``-o json`` and parse its JSON line (warnings may share stdout)."""
    result = subprocess.run(
        [sys.executable, "-m", "airflow", *args, "-o", "json"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    for line in reversed(result.stdout.splitlines()):
        if line.startswith("["):
            rows: list[dict[str, str]] = json.loads(line)
            return rows
    return []


def task_states(env: dict[str, str], dag_id: str) -> dict[str, str]:
    runs = airflow_json(env, "dags", "list-runs", dag_id)
    if not runs:
        return {}
    states = airflow_json(env, "tasks", "states-for-dag-run", dag_id, runs[0]["run_id"])
    return {row["task_id"]: row["state"] for row in states}


def main() -> int:
    with ExitStack() as stack:
        home = Path(tempfile.mkdtemp(prefix="tamtam-demo-"))
        stack.callback(shutil.rmtree, home, True)
        server: FakeTamtamServer | None = None
        api_key = os.environ.get("TAMTAM_API_KEY", "").strip()
        gate_conf: list[str] = []
        if api_key:
            # A real account's balance is what it is: let the gate open on whatever is there.
            gate_conf = ["--conf", json.dumps({"min_credits": 0, "credits_needed": None})]
            base_url = os.environ.get("TAMTAM_API_URL", "").strip()
            say(f"TAMTAM_API_KEY is set: using the Tamtam API at {base_url or 'https://api.tamtam.ai/api'}")
        else:
            api_key = "demo-api-key"
            server = stack.enter_context(FakeTamtamServer(SHORT, api_key=api_key))
            server.schedule_credits([(3, SHORT), (0, TOPPED_UP)])
            base_url = server.url
            say(f"Started the fake Tamtam server at {base_url}: credits start short and rise after 3 polls")
        env = {
            **os.environ,
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "example_dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW_CONN_TAMTAM_DEFAULT": json.dumps(
                {"conn_type": "tamtam", "host": base_url, "password": api_key}
            ),
            "TAMTAM_GATE_POKE_INTERVAL": POKE_INTERVAL,
        }
        say("Preparing a throwaway Airflow home (SQLite), deleted at the end")
        migrated = airflow(env, "db", "migrate")
        if migrated.returncode:
            print(migrated.stdout[-3000:])
            return 1

        progress = (
            "Tamtam credits",
            "Starting the import",
            "LOW:",
            "All ",
            "Tamtam credit lines",
            "below threshold",
        )
        for number, dag_id in enumerate(RUNS):
            if server is not None and dag_id == "tamtam_credit_audit" and number == len(RUNS) - 1:
                server.set_credits(USED_MORE)
                say("The fake server's usage rises by 1 credit: the second audit forecasts from the first")
            say(f"airflow dags test {dag_id}")
            started = time.monotonic()
            conf = gate_conf if dag_id == "tamtam_gate_on_credits" else []
            result = airflow(env, "dags", "test", dag_id, *conf, show=progress)
            print(f"    finished in {time.monotonic() - started:.0f} s (exit code {result.returncode})")

        say("Credit lines now")
        os.environ.update({k: env[k] for k in ("AIRFLOW_HOME", "AIRFLOW_CONN_TAMTAM_DEFAULT")})
        from airflow_provider_tamtam.hooks.tamtam import TamtamHook
        from airflow_provider_tamtam.operators.tamtam import format_table

        print(format_table(TamtamHook().get_credits()))

        say("Task states")
        failed = False
        for dag_id in DAGS:
            states = task_states(env, dag_id)
            for task_id, state in states.items():
                print(f"    {dag_id:<26} {task_id:<20} {state}")
            failed |= not states or any(state != "success" for state in states.values())
        say("Demo failed: a task did not succeed" if failed else "Demo succeeded")
        return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
