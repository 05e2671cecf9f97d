"""Live deployment check: a real Airflow 3 deployment gates DAG runs on Tamtam credits and watches them.

Starts, from the repository alone, a throwaway Airflow deployment (``deploy/deployment.py``: a temporary
``AIRFLOW_HOME``, a private PostgreSQL cluster on a loopback port as the metadata database, ``airflow db
migrate``, then api-server, scheduler (LocalExecutor), dag-processor and triggerer as separate processes,
with the repository's example DAGs and a local Tamtam API whose credits are short), checks that the DAGs
load and the connection tests over REST, then runs the scenarios in ``SCENARIOS`` in order against it:

1. ``deploy/gate_scenario.py``: 20 concurrent deferrable sensors share one poll and survive a triggerer
   crash, and every run succeeds once credits rise;
2. ``deploy/watch_scenario.py``: 20 asset watchers share one poll and each fires exactly once, also across
   a triggerer restart;
3. ``deploy/reservation_scenario.py``: 20 gated runs reserve and spend 500 credits each across two
   triggerers, one SIGKILLed while runs are admitted and unspent; the measured overdraw is reported;
4. ``deploy/browser_form.py``: the Tamtam connection form works in a real browser (``--no-browser`` skips);
5. ``deploy/credits_page_scenario.py``: the Tamtam credits page, signed in, from the UI's navigation, with
   the fake API's numbers, refused without a session and to a viewer (``--no-browser`` skips).

Run it as ``make deploy-check``, or ``.venv/bin/python -m deploy.check`` from the repository root
(``--help`` lists the options). It prints a summary table (``deploy/report.py``), exits non-zero when a
check fails, and stops every process it started, also on errors, SIGTERM and Ctrl-C. The temporary home is
deleted on success and kept, with every process's log, on failure. Paths are printed relative to the
repository, or as ``$TMPDIR/...`` for temporary ones, so the output can be committed.

A new scenario is a ``deploy.scenario.Scenario`` subclass in its own module, added to ``SCENARIOS``.
"""

from __future__ import annotations

import argparse
import atexit
import json
import signal
import sys
import time
import traceback
from collections.abc import Sequence
from types import FrameType

from deploy.browser_form import ConnectionFormCheck
from deploy.credits_page_scenario import CreditsPageCheck
from deploy.deployment import API_KEY, Deployment, Live
from deploy.gate_scenario import GateScenario
from deploy.processes import wait_for
from deploy.report import CheckFailed, Report, display_path, say
from deploy.reservation_scenario import ReservationScenario
from deploy.scenario import Scenario
from deploy.watch_scenario import WatchScenario

SCENARIOS: list[type[Scenario]] = [
    GateScenario,
    WatchScenario,
    ReservationScenario,
    ConnectionFormCheck,
    CreditsPageCheck,
]
"""Every scenario, in the order they run; each decides from the options whether it is enabled."""


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The deployment's options, then each scenario's."""
    parser = argparse.ArgumentParser(
        prog="python -m deploy.check",
        description="Run a throwaway Airflow 3 deployment with the Tamtam provider and check it end to end.",
    )
    parser.add_argument(
        "--db",
        choices=("postgres", "sqlite"),
        default="postgres",
        help="metadata database (default postgres). sqlite: Airflow 3.3.2 accepts it with LocalExecutor, but "
        "with four components writing at once it fails here with 'database is locked'; kept to show that",
    )
    parser.add_argument(
        "--poke-interval",
        type=float,
        default=5.0,
        help="sensor poke interval and watcher poll interval, s (default 5)",
    )
    parser.add_argument("--wait-intervals", type=int, default=5, help="poll intervals measured per phase")
    parser.add_argument("--finish-timeout", type=float, default=300.0, help="s for all runs to finish")
    parser.add_argument("--keep", action="store_true", help="keep the temporary home even on success")
    for scenario in SCENARIOS:
        scenario.add_arguments(parser)
    return parser.parse_args(argv)


def check_loaded(live: Live, scenarios: Sequence[Scenario], report: Report) -> None:
    """The dag-processor parsed every DAG without import errors, and the connection tests over REST."""
    expected = {dag_id for scenario in scenarios for dag_id in scenario.expected_dag_ids()}
    own = {dag_id for scenario in scenarios for dag_id in scenario.own_dag_ids()}

    def dag_ids() -> list[str]:
        return sorted(dag["dag_id"] for dag in live.api.call("GET", "/dags?limit=500")["dags"])

    def parsed() -> bool:
        errors = live.api.call("GET", "/importErrors")["import_errors"]
        if errors:
            raise CheckFailed(
                f"DAG import error in {errors[0]['filename']}: {errors[0]['stack_trace'][-500:]}"
            )
        return expected <= set(dag_ids())

    wait_for(f"the dag-processor to parse {len(expected)} DAGs", parsed, 120, 1.0, live.procs.ensure_running)
    detail = f"no import errors; DAGs: {', '.join(i for i in dag_ids() if i not in own)}"
    for scenario in scenarios:
        ids = sorted(scenario.own_dag_ids())
        if ids:
            files = ", ".join(display_path(path) for path in scenario.dag_files())
            detail += f"; and {ids[0]} to {ids[-1]} from {files}" if len(ids) > 1 else f"; and {ids[0]}"
    report.add("Provider and example DAGs load", True, detail)
    body = {
        "connection_id": "tamtam_rest_check",
        "conn_type": "tamtam",
        "host": live.fake_url,
        "password": API_KEY,
        "extra": json.dumps({"auth_type": "api_key"}),
    }
    result = live.api.call("POST", "/connections/test", body)
    report.add("POST /connections/test (REST)", bool(result["status"]), str(result["message"]))


def main(argv: Sequence[str] | None = None) -> int:
    """Start the deployment, run every enabled scenario, print the summary; 0 when every check passed."""
    args = parse_args(argv)
    report = Report()
    scenarios = [scenario for scenario in (kind(args) for kind in SCENARIOS) if scenario.enabled]
    env = {name: value for scenario in scenarios for name, value in scenario.airflow_env().items()}
    deployment = Deployment(
        args.db,
        sum(scenario.parallel_runs() for scenario in scenarios),
        [path for scenario in scenarios for path in scenario.dag_files()],
        env,
    )
    keep = True
    atexit.register(lambda: deployment.stop(keep))

    def on_signal(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)  # unwinds through the finally below

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    code = 1
    try:
        live = deployment.start()
        check_loaded(live, scenarios, report)
        for scenario in scenarios:
            scenario.run(live, report)
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
